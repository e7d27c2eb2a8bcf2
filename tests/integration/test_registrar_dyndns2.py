"""The dyndns2 client against a real HTTP server on loopback answering every return code."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dynmx import __version__
from dynmx.errors import ConfigError
from dynmx.selfcheck.dyndns2_client import Dyndns2Adapter, Dyndns2Settings
from dynmx.selfcheck.registrar import AdapterStateStore, Outcome, PushReport, PushResult, push_all
from tests.fake_servers import QuietHandler, http_server

PASSWORD = "pa55-w0rd"
T0 = 1_700_000_000.0
MINUTE = 60.0


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class FakeDyndns2:
    """Answers each request with the next scripted (status, body); records what it was sent."""

    answers: list[tuple[int, str]]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


@contextmanager
def fake_dyndns2(*answers: tuple[int, str] | str) -> Iterator[FakeDyndns2]:
    fake = FakeDyndns2([(200, a) if isinstance(a, str) else a for a in answers])

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            fake.seen.append(
                Seen(parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()})
            )
            status, body = fake.answers.pop(0) if fake.answers else (599, "script exhausted")
            moved = {"Location": "http://127.0.0.1:9/elsewhere"} if status in (301, 302) else {}
            self.reply(status, body.encode(), moved | {"Content-Type": "text/plain"})

    with http_server(Handler) as port:
        fake.url = f"http://127.0.0.1:{port}/nic/update"
        yield fake


def adapter(
    url: str, password: str = PASSWORD, hostnames: tuple[str, ...] = (), contact: str = ""
) -> Dyndns2Adapter:
    settings = Dyndns2Settings(
        "dyn", url, "home", password, hostnames=hostnames, timeout=5.0, contact=contact
    )
    return Dyndns2Adapter(settings)


def push(dyn: Dyndns2Adapter, address: str = "192.0.2.7", hostname: str = "ns1.example.test.") -> PushResult:
    return asyncio.run(dyn.push(hostname, 4, address, None))


def offer(dyn: Dyndns2Adapter, store: AdapterStateStore, address: str, now: float) -> PushReport:
    return asyncio.run(push_all([dyn], store, "ns1.example.test.", 4, address, None, now))[0]


def test_good_sends_hostname_myip_basic_auth_and_user_agent() -> None:
    with fake_dyndns2("good 192.0.2.7") as fake:
        result = push(adapter(fake.url, contact="ops@example.test"))
    assert result == PushResult(Outcome.SUCCESS, "ns1.example.test: good 192.0.2.7")
    (seen,) = fake.seen
    assert seen.path == "/nic/update"
    assert seen.query == {"hostname": ["ns1.example.test"], "myip": ["192.0.2.7"]}
    assert seen.headers["authorization"] == "Basic " + base64.b64encode(f"home:{PASSWORD}".encode()).decode()
    assert seen.headers["user-agent"] == f"dynmx/{__version__} ops@example.test"


def test_the_update_url_keeps_its_own_query_parameters() -> None:
    with fake_dyndns2("good 192.0.2.7") as fake:
        push(adapter(fake.url + "?system=dyndns"))
    assert fake.seen[0].query["system"] == ["dyndns"]


def test_ipv6_addresses_go_in_myip() -> None:
    with fake_dyndns2("good 2001:db8::7") as fake:
        result = asyncio.run(adapter(fake.url).push("ns1.example.test.", 6, "2001:db8::7", None))
    assert result.outcome is Outcome.SUCCESS and fake.seen[0].query["myip"] == ["2001:db8::7"]


def test_nochg_is_success_marked_nochg() -> None:
    with fake_dyndns2("nochg 192.0.2.7") as fake:
        result = push(adapter(fake.url))
    assert result.outcome is Outcome.SUCCESS and result.nochg


def test_nochg_twice_for_changed_addresses_stops_until_the_address_changes(tmp_path: Path) -> None:
    store = AdapterStateStore(tmp_path / "r.db")
    with fake_dyndns2("nochg 192.0.2.7", "nochg 192.0.2.8", "good 192.0.2.9") as fake:
        dyn = adapter(fake.url)
        assert offer(dyn, store, "192.0.2.7", T0).state.stopped_reason is None
        assert offer(dyn, store, "192.0.2.8", T0 + 5 * MINUTE).state.stopped_address == "192.0.2.8"
        held = offer(dyn, store, "192.0.2.8", T0 + 26 * 86400.0)  # not even the forced refresh
        assert not held.sent and "repeated nochg" in held.reason
        assert offer(dyn, store, "192.0.2.9", T0 + 26 * 86400.0).result == PushResult(
            Outcome.SUCCESS, "ns1.example.test: good 192.0.2.9"
        )
    assert len(fake.seen) == 3


@pytest.mark.parametrize("code", ["badauth", "nohost", "notfqdn", "badagent", "abuse", "!yours", "numhost"])
def test_account_and_host_errors_stop(code: str) -> None:
    with fake_dyndns2(code) as fake:
        result = push(adapter(fake.url))
    assert result.outcome is Outcome.STOP and result.message.startswith(f"ns1.example.test: {code}: ")


def test_a_stop_holds_until_the_config_changes(tmp_path: Path) -> None:
    store = AdapterStateStore(tmp_path / "r.db")
    with fake_dyndns2((401, "badauth"), "good 192.0.2.8") as fake:
        assert offer(adapter(fake.url, "wrong"), store, "192.0.2.7", T0).result.outcome is Outcome.STOP  # type: ignore[union-attr]
        later = offer(adapter(fake.url, "wrong"), store, "192.0.2.8", T0 + 3 * 86400.0)
        assert not later.sent and later.reason.startswith("stopped until the config changes")
        fixed = offer(adapter(fake.url, PASSWORD), store, "192.0.2.8", T0 + 3 * 86400.0)
        assert fixed.sent and fixed.result is not None and fixed.result.outcome is Outcome.SUCCESS
    assert len(fake.seen) == 2


def test_http_401_without_a_body_is_badauth() -> None:
    with fake_dyndns2((401, "")) as fake:
        result = push(adapter(fake.url))
    assert result.outcome is Outcome.STOP and "badauth" in result.message


@pytest.mark.parametrize("answer", ["911", "dnserr", (500, "oops"), (503, ""), (429, "slow down")])
def test_provider_trouble_backs_off(answer: tuple[int, str] | str) -> None:
    with fake_dyndns2(answer) as fake:
        assert push(adapter(fake.url)).outcome is Outcome.BACKOFF


def test_backoff_is_at_least_30_minutes_and_grows(tmp_path: Path) -> None:
    store = AdapterStateStore(tmp_path / "r.db")
    with fake_dyndns2("911", "dnserr", (500, ""), "good 192.0.2.7") as fake:
        dyn, now = adapter(fake.url), T0
        for wait in (30 * MINUTE, 60 * MINUTE, 120 * MINUTE):
            assert offer(dyn, store, "192.0.2.7", now).result.outcome is Outcome.BACKOFF  # type: ignore[union-attr]
            assert not offer(dyn, store, "192.0.2.7", now + wait - 1).sent
            now += wait
        assert offer(dyn, store, "192.0.2.7", now).state.backoff_seconds == 0
    assert len(fake.seen) == 4


def test_several_hostnames_go_in_one_request_and_get_one_line_each() -> None:
    with fake_dyndns2("good 192.0.2.7\nnochg 192.0.2.7") as fake:
        result = push(adapter(fake.url, hostnames=("a.example.test.", "b.example.test")))
    assert fake.seen[0].query["hostname"] == ["a.example.test,b.example.test"]
    assert result == PushResult(
        Outcome.SUCCESS, "a.example.test: good 192.0.2.7; b.example.test: nochg 192.0.2.7"
    )


def test_the_worst_line_decides_and_names_its_host() -> None:
    with fake_dyndns2("good 192.0.2.7\nnohost\n911") as fake:
        result = push(adapter(fake.url, hostnames=("a.example.test", "b.example.test", "c.example.test")))
    assert result.outcome is Outcome.STOP
    assert "b.example.test: nohost" in result.message and "c.example.test: trouble" in result.message


def test_one_account_level_line_applies_to_every_host() -> None:
    with fake_dyndns2("badauth") as fake:
        result = push(adapter(fake.url, hostnames=("a.example.test", "b.example.test")))
    assert result.outcome is Outcome.STOP and result.message.count("badauth") == 2


def test_good_127_0_0_1_means_the_request_was_ignored() -> None:
    with fake_dyndns2("good 127.0.0.1") as fake:
        result = push(adapter(fake.url))
    assert result.outcome is Outcome.STOP and "ignored" in result.message


def test_good_for_another_address_backs_off() -> None:
    with fake_dyndns2("good 198.51.100.3") as fake:
        result = push(adapter(fake.url))
    assert result.outcome is Outcome.BACKOFF and "holds 198.51.100.3, not 192.0.2.7" in result.message


def test_an_unknown_answer_backs_off() -> None:
    with fake_dyndns2("<html><body>Parked</body></html>") as fake:
        result = push(adapter(fake.url))
    assert result.outcome is Outcome.BACKOFF and "unexpected answer" in result.message


def test_a_redirect_is_not_followed() -> None:
    with fake_dyndns2((302, "")) as fake:
        result = push(adapter(fake.url))
    assert result.outcome is Outcome.STOP and "redirect" in result.message and len(fake.seen) == 1


def test_a_silent_server_backs_off_after_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        settings = Dyndns2Settings(
            "dyn", f"http://127.0.0.1:{silent.getsockname()[1]}/", "home", PASSWORD, timeout=0.5
        )
        result = push(Dyndns2Adapter(settings))
    assert result.outcome is Outcome.BACKOFF and "no answer within 0.5 s" in result.message


def test_a_dripping_server_is_cut_off_by_the_total_timeout() -> None:
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)

        def drip() -> None:  # a byte every 50 ms: no single read ever times out
            connection, _ = listener.accept()
            with connection:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(200):
                    if stop.wait(0.05):
                        return
                    connection.sendall(b"g")

        thread = threading.Thread(target=drip, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/nic/update"
        started = time.monotonic()
        result = push(Dyndns2Adapter(Dyndns2Settings("dyn", url, "home", PASSWORD, timeout=0.5)))
        stop.set()
        thread.join(5)
    assert result.outcome is Outcome.BACKOFF and time.monotonic() - started < 3


def test_connection_refused_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = push(adapter(f"http://127.0.0.1:{port}/nic/update"))
    assert result.outcome is Outcome.RETRY and "ConnectError" in result.message


def test_a_broken_connection_retries() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection without sending a response", request=request)

    settings = Dyndns2Settings("dyn", "https://dyn.example.test/nic/update", "home", PASSWORD)
    result = asyncio.run(
        Dyndns2Adapter(settings, httpx.MockTransport(broken)).push("h.example.test", 4, "192.0.2.7", None)
    )
    assert result.outcome is Outcome.RETRY and "RemoteProtocolError" in result.message


def test_the_password_never_shows() -> None:
    with fake_dyndns2(f"badauth {PASSWORD}") as fake:
        dyn = adapter(fake.url)
        result = push(dyn)
    for text in (repr(dyn.settings), repr(dyn), result.message, dyn.fingerprint()):
        assert PASSWORD not in text


def test_the_fingerprint_changes_with_the_password_only_when_it_changes() -> None:
    url = "https://dyn.example.test/nic/update"
    assert adapter(url).fingerprint() == adapter(url).fingerprint()
    assert adapter(url).fingerprint() != adapter(url, "other").fingerprint()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://dyn.example.test/", "http:// or https://"),
        ("https://home:pw@dyn.example.test/", "credentials belong in username/password"),
    ],
)
def test_settings_refuse_bad_urls(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=r"registrar\.dyn\.url") as error:
        Dyndns2Settings("dyn", url, "home", PASSWORD)
    assert problem in str(error.value)


def test_settings_refuse_a_hostname_that_is_not_fully_qualified() -> None:
    with pytest.raises(ConfigError, match=r"registrar.dyn.hostnames\[1\]"):
        Dyndns2Settings(
            "dyn", "https://dyn.example.test/", "home", PASSWORD, hostnames=("a.example.test", "home")
        )

"""Health probes against real peers on loopback: aiosmtpd, fake misbehaving servers, http.server.

Mocks (httpx MockTransport, a patched connect) stand in only for faults a real peer on
loopback cannot make on demand: a connect timeout inside httpx, no route to host.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import functools
import gc
import importlib.util
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynmx.health.probes import REASONS, ProbeResult, run_probe
from dynmx.health.smtp_probe import ReplyParser, SmtpFault
from dynmx.health.spec import ProbeSpec
from tests.fake_servers import (
    Behaviour,
    FakeServer,
    banner,
    blackhole,
    close,
    fake_server,
    fake_server_thread,
    flood,
    free_port,
    garbage,
    hang,
    reset,
)

T = TypeVar("T")
LOCAL = "127.0.0.1"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def smtp(port: int, **options: Any) -> ProbeSpec:
    return ProbeSpec("smtp", LOCAL, port, **options)


async def probe_fake(behaviour: Behaviour, **options: Any) -> tuple[ProbeResult, FakeServer]:
    async with fake_server(behaviour) as server:
        result = await run_probe(smtp(server.port, **options))
    return result, server


def assert_printable(result: ProbeResult) -> None:
    assert len(result.evidence) <= 200
    assert all(" " <= c <= "~" for c in result.evidence), result.evidence


# -- SMTP against aiosmtpd ----------------------------------------------------------------


@pytest.fixture
def aiosmtpd_server(smtp_controllers: Callable[..., Any]) -> Callable[..., Any]:
    """Start `Controller(**options)` on 127.0.0.1, greeting as sink.test."""
    return functools.partial(smtp_controllers, "sink.test")


def test_smtp_ok_against_aiosmtpd(aiosmtpd_server: Any) -> None:
    controller = aiosmtpd_server()
    result = run(run_probe(smtp(controller.port)))
    assert (result.ok, result.reason) == (True, "ok")
    assert result.latency > 0
    assert result.evidence.startswith("220 sink.test")
    assert result.load is None


def test_smtp_starttls_required_but_not_offered(aiosmtpd_server: Any) -> None:
    controller = aiosmtpd_server()
    result = run(run_probe(smtp(controller.port, require_starttls=True)))
    assert (result.ok, result.reason) == (False, "no-starttls")
    assert "STARTTLS" not in result.evidence


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost: with cryptography if installed, else openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    if importlib.util.find_spec("cryptography") is not None:
        from cryptography import x509  # type: ignore[import-not-found,unused-ignore]
        from cryptography.hazmat.primitives import hashes, serialization  # type: ignore[import-not-found,unused-ignore]
        from cryptography.hazmat.primitives.asymmetric import ec  # type: ignore[import-not-found,unused-ignore]
        from cryptography.x509.oid import NameOID  # type: ignore[import-not-found,unused-ignore]

        private = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(private, hashes.SHA256())
        )
        key.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    elif shutil.which("openssl"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
    else:
        pytest.skip("neither cryptography nor openssl is available to make a certificate")
    return cert, key


def test_smtp_starttls_required_and_offered(aiosmtpd_server: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = aiosmtpd_server(tls_context=context)
    result = run(run_probe(smtp(controller.port, require_starttls=True)))
    assert (result.ok, result.reason) == (True, "ok")


# -- SMTP against fake servers: one test per reason --------------------------------------

MULTI_EHLO = "250-fake.invalid\r\n250-STARTTLS\r\n250 SIZE 1000\r\n"


@pytest.mark.parametrize(
    ("behaviour", "options", "reason", "evidence"),
    [
        (banner("421 4.3.2 busy\r\n"), {}, "banner-4xx", "421 4.3.2 busy"),
        (banner("554 5.3.2 go away\r\n"), {}, "banner-5xx", "554 5.3.2 go away"),
        (banner("220-one\r\n220-two\r\n220 three\r\n"), {}, "ok", "220 one"),
        (banner("220 bare line feed\n"), {}, "ok", "220 bare line feed"),
        (banner("220\r\n"), {}, "ok", "220"),
        (banner("220 hi\r\n", ehlo="502 5.5.2 no EHLO\r\n"), {}, "ehlo-rejected", "502 5.5.2 no EHLO"),
        (banner("220 hi\r\n", ehlo="250 only\r\n"), {"require_starttls": True}, "no-starttls", ""),
        (banner("220 hi\r\n", ehlo=MULTI_EHLO), {"require_starttls": True}, "ok", "220 hi"),
        (banner("SSH-2.0-OpenSSH_9.2\r\n"), {}, "garbage", "SSH-2.0"),
        (banner("HTTP/1.1 400 Bad Request\r\n"), {}, "garbage", "HTTP/1"),
        (banner("220-one\r\n250 two\r\n"), {}, "garbage", "code changed"),
        (banner("250 not a greeting\r\n"), {}, "garbage", "250 not a greeting"),
        (banner("220-" + "x" * 1100 + "\r\n"), {}, "garbage", "line over 1000 octets"),
        (banner("220-x\r\n" * 150 + "220 x\r\n"), {}, "garbage", "longer than 100 lines"),
        (banner("220 hi\r\n", ehlo="hello?\r\n"), {}, "garbage", "hello?"),
        (garbage(), {}, "garbage", "\\xff"),
        (reset(), {}, "reset", "banner: "),
        (close(), {}, "reset", "banner: closed"),
        (close("220 hi\r\n"), {}, "reset", "ehlo: closed"),
        (close("220 half a li"), {}, "reset", "banner: closed after: 220 half a li"),
    ],
)
def test_smtp_reasons(behaviour: Behaviour, options: dict[str, Any], reason: str, evidence: str) -> None:
    result, _ = run(probe_fake(behaviour, timeout=2.0, **options))
    assert (result.reason, result.ok) == (reason, reason == "ok"), result
    assert evidence in result.evidence
    assert_printable(result)


def test_smtp_says_quit_once_greeted() -> None:
    result, server = run(probe_fake(banner("220 hi\r\n"), helo_name="probe.example"))
    assert result.ok
    assert server.received == [b"EHLO probe.example", b"QUIT"]
    result, server = run(probe_fake(banner("554 no\r\n")))
    assert result.reason == "banner-5xx"
    assert server.received == [b"QUIT"]
    result, server = run(probe_fake(banner("220 hi\r\n", ehlo="502 no\r\n")))
    assert server.received == [b"EHLO dynmx.invalid", b"QUIT"]


def test_smtp_hang_is_timeout_banner_within_budget() -> None:
    started = time.monotonic()
    result, server = run(probe_fake(hang(), timeout=0.5))
    assert result.reason == "timeout-banner"
    assert time.monotonic() - started < 0.5 + 0.5
    assert 0.45 <= result.latency < 1.0
    assert server.received == []


def test_smtp_silent_after_ehlo_is_timeout_ehlo() -> None:
    result, _ = run(probe_fake(banner("220 hi\r\n", ehlo=""), timeout=0.4))
    assert (result.reason, result.evidence) == ("timeout-ehlo", "220 hi")


@pytest.mark.parametrize(
    ("behaviour", "evidence"),
    [(flood(), ""), (flood(prefix=b"\x00"), "\\x00"), (flood(prefix=b"220 "), "line over 1000 octets: 220")],
)
def test_smtp_flood_is_garbage_in_bounded_memory(behaviour: Behaviour, evidence: str) -> None:
    tracemalloc.start()
    try:
        started = time.monotonic()
        result, _ = run(probe_fake(behaviour, timeout=3.0))
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.reason == "garbage"
    assert elapsed < 1.0
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while the peer offered 10 MiB"
    assert evidence in result.evidence


@pytest.mark.parametrize(
    "behaviour",
    [hang(), banner("220 hi\r\n"), banner("554 no\r\n"), garbage(), reset(), close()],
    ids=["hang", "ok", "banner-5xx", "garbage", "reset", "close"],
)
def test_smtp_always_hangs_up(behaviour: Behaviour) -> None:
    async def probe() -> None:
        async with fake_server(behaviour) as server:
            await run_probe(smtp(server.port, timeout=0.2))
            await asyncio.sleep(0.05)
            assert (server.connections, server.finished) == (1, 1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        run(probe())
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], "a connection was left open"


def test_cancelled_probe_raises_and_hangs_up() -> None:
    async def probe() -> None:
        async with fake_server(hang()) as server:
            task = asyncio.create_task(run_probe(smtp(server.port, timeout=5.0)))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.05)
            assert (server.connections, server.finished) == (1, 1)

    run(probe())


def test_fake_server_in_a_thread_serves_probes_from_another_loop() -> None:
    with fake_server_thread(banner("220 threaded\r\n")) as server:
        result = run(run_probe(smtp(server.port)))
    assert (result.reason, result.evidence) == ("ok", "220 threaded")
    assert server.received == [b"EHLO dynmx.invalid", b"QUIT"]


def test_smtp_refused() -> None:
    result = run(run_probe(smtp(free_port())))
    assert (result.ok, result.reason) == (False, "refused")
    assert result.evidence.startswith("127.0.0.1:")


def test_smtp_connect_timeout() -> None:
    with blackhole() as port:
        started = time.monotonic()
        result = run(run_probe(smtp(port, timeout=0.3)))
    assert result.reason == "timeout-connect"
    assert time.monotonic() - started < 0.3 + 0.5


def test_unreachable_maps_other_oserrors(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_route(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EHOSTUNREACH, "No route to host")

    monkeypatch.setattr(asyncio, "open_connection", no_route)
    result = run(run_probe(ProbeSpec("smtp", "192.0.2.1", 25)))
    assert (result.reason, result.evidence) == ("unreachable", "192.0.2.1:25: No route to host")


def test_latency_uses_the_injected_clock() -> None:
    ticks = iter([100.0, 100.25])
    result = run(run_probe(smtp(free_port()), clock=lambda: next(ticks)))
    assert (result.reason, result.latency) == ("refused", 0.25)


def test_fifty_concurrent_probes_of_a_hanging_server() -> None:
    async def many() -> list[ProbeResult]:
        async with fake_server(hang()) as server:
            return await asyncio.gather(*(run_probe(smtp(server.port, timeout=0.3)) for _ in range(50)))

    started = time.monotonic()
    results = run(many())
    assert time.monotonic() - started < 2.0
    assert {r.reason for r in results} == {"timeout-banner"}


# -- SMTP: any bytes from the peer -------------------------------------------------------

BANNER = re.compile(rb"(?:220-[^\n]*\n)*220(?:\r?|[ ][^\n]*)\n")
reply_line = st.builds(
    lambda code, sep, text, end: code + sep + text + end,
    st.sampled_from([b"220", b"250", b"421", b"554", b"220", b"999", b"2x0"]),
    st.sampled_from([b" ", b"-", b""]),
    st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"\r\n", b"\n", b""]),
)
peer_bytes = st.one_of(st.binary(max_size=300), st.lists(reply_line, max_size=4).map(b"".join))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=peer_bytes)
def test_any_first_bytes_give_a_result(data: bytes) -> None:
    result, _ = run(probe_fake(banner(data), timeout=0.25))
    assert result.reason in REASONS
    assert_printable(result)
    if result.ok:
        assert BANNER.match(data), data
    if BANNER.fullmatch(data) and len(data) < 1000:
        assert result.ok, (data, result)


@settings(max_examples=200, deadline=None)
@given(data=peer_bytes, cuts=st.lists(st.integers(0, 300), max_size=5))
def test_reply_parser_ignores_how_bytes_are_split(data: bytes, cuts: list[int]) -> None:
    def parse(chunks: list[bytes]) -> list[object]:
        parser, seen = ReplyParser(), list[object]()
        try:
            for chunk in chunks:
                parser.feed(chunk)
                while (reply := parser.next_reply()) is not None:
                    seen.append(reply)
        except SmtpFault as fault:
            seen.append(fault.reason)
        return seen

    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert parse(chunks) == parse([data])


# -- TCP -------------------------------------------------------------------------------------


def test_tcp_ok_and_refused() -> None:
    async def both() -> tuple[ProbeResult, ProbeResult, FakeServer]:
        async with fake_server(hang()) as server:
            ok = await run_probe(ProbeSpec("tcp", LOCAL, server.port))
            await asyncio.sleep(0.05)
        refused = await run_probe(ProbeSpec("tcp", LOCAL, free_port()))
        return ok, refused, server

    ok, refused, server = run(both())
    assert (ok.ok, ok.reason, ok.evidence) == (True, "ok", f"connected to 127.0.0.1:{server.port}")
    assert (refused.ok, refused.reason) == (False, "refused")
    assert server.connections == 1


def test_ipv6_loopback() -> None:
    try:
        free_port("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")

    async def probe() -> tuple[ProbeResult, ProbeResult]:
        async with fake_server(banner("220 six\r\n"), host="::1") as server:
            return (
                await run_probe(ProbeSpec("smtp", "::1", server.port)),
                await run_probe(ProbeSpec("tcp", "::1", server.port)),
            )

    smtp_result, tcp_result = run(probe())
    assert smtp_result.ok and tcp_result.ok
    assert tcp_result.evidence.startswith("connected to [::1]:")


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "ping"},
        {"address": "mail.example"},
        {"port": 0},
        {"port": 70000},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"helo_name": "two words"},
        {"helo_name": "x\r\nRCPT TO:<a@b>"},
        {"expect_status": (99,)},
    ],
)
def test_spec_refuses_bad_input(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        replace(smtp(25), **bad)


# -- HTTP and load against http.server ---------------------------------------------------


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    delay: float = 0.0


class Site(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    routes: dict[str, Route]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Probes hang up early on purpose (body limit, timeout): not worth a traceback."""


class Handler(BaseHTTPRequestHandler):
    server: Site

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path, Route(404, b"not here"))
        time.sleep(route.delay)
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, dict[str, Route]]]:
    server = Site((LOCAL, 0), Handler)
    server.routes = {}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://{LOCAL}:{server.server_address[1]}", server.routes
    server.shutdown()
    server.server_close()


def http_probe(
    site: tuple[str, dict[str, Route]], route: Route, kind: str = "http", **options: Any
) -> ProbeResult:
    base, routes = site
    path = f"/r{len(routes)}"
    routes[path] = route
    return run(run_probe(ProbeSpec(kind, "", 0, url=base + path, **{"timeout": 2.0, **options})))


def test_http_ok_status_and_body(site: tuple[str, dict[str, Route]]) -> None:
    ok = http_probe(site, Route(200, b"queue fine"), body_match="fine")
    assert (ok.ok, ok.reason, ok.evidence) == (True, "ok", "HTTP 200")
    assert ok.latency > 0
    down = http_probe(site, Route(503, b"maintenance"))
    assert (down.ok, down.reason, down.evidence) == (False, "http-status", "HTTP 503")
    wrong = http_probe(site, Route(200, b"queue stuck"), body_match="fine")
    assert (wrong.ok, wrong.reason) == (False, "body-mismatch")
    expected = http_probe(site, Route(503, b""), expect_status=(503,))
    assert expected.ok
    redirect = http_probe(site, Route(302, b""))
    assert redirect.reason == "http-status"


def test_http_body_is_read_only_up_to_a_limit(site: tuple[str, dict[str, Route]]) -> None:
    big = b"x" * (2 * 1024 * 1024) + b"needle"
    result = http_probe(site, Route(200, big), body_match="needle")
    assert result.reason == "body-mismatch"
    assert http_probe(site, Route(200, big + b"{}"), kind="load").reason == "load-invalid"


def test_http_slow_server_times_out(site: tuple[str, dict[str, Route]]) -> None:
    started = time.monotonic()
    result = http_probe(site, Route(200, b"late", delay=1.0), timeout=0.3)
    assert result.reason == "timeout-connect"
    assert time.monotonic() - started < 0.3 + 0.5


def test_http_transport_faults() -> None:
    def connect_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    async def with_transport(url: str, handler: Any) -> ProbeResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await run_probe(ProbeSpec("http", "", 0, url=url, timeout=1.0), http=client)

    timeout = run(with_transport("http://127.0.0.1/health", connect_timeout))
    assert (timeout.ok, timeout.reason, timeout.evidence) == (False, "timeout-connect", "ConnectTimeout")

    refused = run(run_probe(ProbeSpec("http", "", 0, url=f"http://{LOCAL}:{free_port()}/", timeout=1.0)))
    assert (refused.ok, refused.reason) == (False, "http-error")
    for url in ("", "ftp://127.0.0.1/"):
        assert run(run_probe(ProbeSpec("http", "", 0, url=url))).reason == "http-error"


def test_http_error_evidence_hides_credentials() -> None:
    url = "http://probe:hunter2@127.0.0.1/status?token=s3cr3t-t0ken&x=1"

    def leaky(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {url} (token s3cr3t-t0ken)", request=request)

    async def probe() -> ProbeResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(leaky)) as client:
            return await run_probe(ProbeSpec("http", "", 0, url=url), http=client)

    result = run(probe())
    assert result.reason == "http-error"
    assert "hunter2" not in result.evidence and "s3cr3t" not in result.evidence
    assert result.evidence.startswith("ConnectError: cannot reach http://")


PROMETHEUS = b"# HELP mail_queue_load Queue load.\n# TYPE mail_queue_load gauge\nmail_queue_load 0.7\n"


@pytest.mark.parametrize(
    ("route", "options", "reason", "load"),
    [
        (Route(200, b'{"load": 0.42}', "application/json"), {}, "ok", 0.42),
        (Route(200, b'{"stats": {"load": 3}}'), {"load_field": "stats.load"}, "ok", 3.0),
        (Route(200, PROMETHEUS), {"load_metric": "mail_queue_load"}, "ok", 0.7),
        (Route(200, b"requests_total 5\n"), {"load_metric": "requests_total"}, "ok", 5.0),
        (Route(200, b'{"other": 1}'), {}, "load-missing", None),
        (Route(200, b'{"stats": [1]}'), {"load_field": "stats.load"}, "load-missing", None),
        (Route(200, PROMETHEUS), {"load_metric": "other_metric"}, "load-missing", None),
        (Route(200, b'{"load": "high"}'), {}, "load-invalid", None),
        (Route(200, b'{"load": true}'), {}, "load-invalid", None),
        (Route(200, b'{"load": null}'), {}, "load-invalid", None),
        (Route(200, b'{"load": NaN}'), {}, "load-invalid", None),
        (Route(200, b"<html>not json</html>"), {}, "load-invalid", None),
        (Route(200, b"mail_queue_load{oops 1\n"), {"load_metric": "mail_queue_load"}, "load-invalid", None),
        (Route(500, b'{"load": 0.1}'), {}, "http-status", None),
    ],
)
def test_load(
    site: tuple[str, dict[str, Route]], route: Route, options: dict[str, Any], reason: str, load: float | None
) -> None:
    result = http_probe(site, route, kind="load", **options)
    assert (result.reason, result.ok, result.load) == (reason, reason == "ok", load), result
    assert_printable(result)


def test_load_evidence_shows_the_value(site: tuple[str, dict[str, Route]]) -> None:
    result = http_probe(site, Route(200, json.dumps({"load": "x" * 500}).encode()), kind="load")
    assert result.reason == "load-invalid"
    assert result.evidence.startswith("HTTP 200, load='xxx") and len(result.evidence) < 100

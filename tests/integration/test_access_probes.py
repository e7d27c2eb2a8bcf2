"""Access probes (IMAP, POP3, submission, each also over implicit TLS) against real peers on loopback.

Servers are aiosmtpd and the small IMAP/POP3 fakes of fake_servers, on 127.0.0.1 with
ephemeral ports; certificates are made here with openssl (or cryptography), so expiry is
tested on real handshakes, not on a patched clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import ssl
import time
import tracemalloc
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.smtp import AuthResult
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.health.access_probe import AccessFault, ImapParser, Pop3Parser
from dynmx.health.kinds import DEFAULT_PORTS, PROBE_KINDS
from dynmx.health.probes import REASONS, ProbeResult, run_probe
from dynmx.health.spec import ProbeSpec
from dynmx.health.tls import DAY, certificate_not_after
from tests.fake_servers import (
    Behaviour,
    FakeServer,
    banner,
    blackhole,
    certificate,
    close,
    fake_server,
    flood,
    free_port,
    garbage,
    hang,
    imap,
    pop3,
    reset,
    server_context,
    tls,
)

T = TypeVar("T")
LOCAL = "127.0.0.1"
ACCESS_KINDS = ("imap", "imaps", "pop3", "pop3s", "submission", "submissions")
SMTP_BANNER = banner("220 mx.example ESMTP\r\n")
AUTH_EHLO = "250-fake.invalid\r\n250 AUTH PLAIN\r\n"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def probe_fake(behaviour: Behaviour, kind: str, **options: Any) -> tuple[ProbeResult, FakeServer]:
    async with fake_server(behaviour) as server:
        result = await run_probe(ProbeSpec(kind, LOCAL, server.port, **{"timeout": 2.0, **options}))
        await asyncio.sleep(0.02)  # let the server see our goodbye before it is torn down
    return result, server


def assert_printable(result: ProbeResult) -> None:
    assert len(result.evidence) <= 200
    assert all(" " <= c <= "~" for c in result.evidence), result.evidence


# -- certificates, made once ---------------------------------------------------------------


class Certs:
    """Server contexts whose certificates expire in 90, 5 and -2 days."""

    def __init__(self, directory: Path) -> None:
        self.paths = {days: certificate(directory, days) for days in (90, 5, -2)}
        self.fresh, self.expiring, self.expired = (server_context(*self.paths[d]) for d in (90, 5, -2))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


# -- aiosmtpd for submission ---------------------------------------------------------------


def refuse_all(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    return AuthResult(success=False)


@pytest.fixture
def aiosmtpd_server(smtp_controllers: Callable[..., Any]) -> Callable[..., Any]:
    """Start `Controller(**options)` on 127.0.0.1, greeting as sub.test."""
    return functools.partial(smtp_controllers, "sub.test")


def test_submission_with_auth(aiosmtpd_server: Any) -> None:
    controller = aiosmtpd_server(authenticator=refuse_all, auth_require_tls=False)
    result = run(run_probe(ProbeSpec("submission", LOCAL, controller.port)))
    assert (result.ok, result.reason, result.cert_expires_in) == (True, "ok", None)
    assert result.evidence.startswith("220 sub.test")


def test_submission_with_starttls_only(aiosmtpd_server: Any, certs: Certs) -> None:
    controller = aiosmtpd_server(tls_context=certs.fresh, authenticator=refuse_all)  # AUTH only after TLS
    result = run(run_probe(ProbeSpec("submission", LOCAL, controller.port)))
    assert (result.ok, result.reason) == (True, "ok")


def test_submission_without_auth_or_starttls(aiosmtpd_server: Any) -> None:
    controller = aiosmtpd_server()  # AUTH needs TLS, and there is no TLS: EHLO offers neither
    result = run(run_probe(ProbeSpec("submission", LOCAL, controller.port)))
    assert (result.ok, result.reason) == (False, "no-auth")
    assert result.evidence.startswith("EHLO offers: ")


def test_submissions_over_implicit_tls(aiosmtpd_server: Any, certs: Certs) -> None:
    controller = aiosmtpd_server(ssl_context=certs.fresh, authenticator=refuse_all, auth_require_tls=False)
    result = run(run_probe(ProbeSpec("submissions", LOCAL, controller.port)))
    assert (result.ok, result.reason) == (True, "ok"), result
    assert result.cert_expires_in is not None and abs(result.cert_expires_in - 90 * DAY) < 600


def test_submissions_requires_auth_not_starttls(certs: Certs) -> None:
    offers = "250-fake.invalid\r\n250 STARTTLS\r\n"
    result, server = run(probe_fake(tls(certs.fresh, banner("220 hi\r\n", offers)), "submissions"))
    assert (result.ok, result.reason) == (False, "no-auth")
    assert server.received == [b"EHLO dynmx.invalid", b"QUIT"]


def test_submissions_ignores_require_starttls(certs: Certs) -> None:
    behaviour = tls(certs.fresh, banner("220 hi\r\n", AUTH_EHLO))
    result, _ = run(probe_fake(behaviour, "submissions", require_starttls=True))
    assert (result.ok, result.reason) == (True, "ok")


# -- IMAP and POP3 ----------------------------------------------------------------------------


def test_imap_ok_says_capability_then_logout() -> None:
    result, server = run(probe_fake(imap(), "imap"))
    assert (result.ok, result.reason, result.evidence) == (True, "ok", "* OK ready")
    assert server.received == [b"a1 CAPABILITY", b"a2 LOGOUT"]
    assert server.finished == 1


def test_pop3_ok_says_capa_then_quit() -> None:
    result, server = run(probe_fake(pop3(), "pop3"))
    assert (result.ok, result.reason, result.evidence) == (True, "ok", "+OK ready")
    assert server.received == [b"CAPA", b"QUIT"]


@pytest.mark.parametrize(
    ("behaviour", "kind", "reason", "evidence"),
    [
        (imap("* PREAUTH hello\r\n"), "imap", "ok", "* PREAUTH hello"),
        (imap("* ok [CAPABILITY IMAP4rev1] lower case\n"), "imap", "ok", "* ok [CAPABILITY"),
        (imap(capability="* CAPABILITY IMAP4rev2\r\n* OK [ALERT] hi\r\n{tag} OK\r\n"), "imap", "ok", "* OK"),
        (imap("* BYE too many connections\r\n"), "imap", "greeting-bye", "* BYE too many"),
        (imap(capability="{tag} NO not now\r\n"), "imap", "command-rejected", "a1 NO not now"),
        (imap(capability="{tag} BAD what\r\n"), "imap", "command-rejected", "a1 BAD what"),
        (imap(capability="* CAPABILITY IMAP4rev1\r\n"), "imap", "timeout-command", "capability: no reply"),
        (imap(capability="+ go on\r\n"), "imap", "garbage", "+ go on"),
        (imap(capability="a9 OK wrong tag\r\n"), "imap", "garbage", "a9 OK"),
        (imap(capability="{tag} MAYBE\r\n"), "imap", "garbage", "a1 MAYBE"),
        (imap("* HELLO there\r\n"), "imap", "garbage", "* HELLO there"),
        (imap("*\r\n"), "imap", "garbage", "*"),
        (imap("* OK " + "x" * 9000), "imap", "garbage", "line over 8192 octets: * OK xxx"),
        (imap("+OK ready\r\n"), "imap", "garbage", "+OK"),
        (SMTP_BANNER, "imap", "garbage", "220 mx"),
        (garbage(), "imap", "garbage", "\\xff"),
        (hang(), "imap", "timeout-banner", "greeting: no reply before the deadline"),
        (close("* OK half a li"), "imap", "reset", "greeting: closed after: * OK half a li"),
        (close("* OK hi\r\n"), "imap", "reset", "capability: closed"),
        (reset(), "imap", "reset", "greeting: "),
        (pop3("+OK\r\n"), "pop3", "ok", "+OK"),
        (pop3(capa="-ERR no CAPA here\r\n"), "pop3", "ok", "+OK ready"),
        (pop3(capa="+OK\r\n..stuffed\r\nSASL PLAIN\n.\n"), "pop3", "ok", "+OK ready"),
        (pop3("-ERR maintenance\r\n"), "pop3", "greeting-err", "-ERR maintenance"),
        (pop3("+OKAY\r\n"), "pop3", "garbage", "+OKAY"),
        (pop3(capa="+OK\r\nUSER\r\n"), "pop3", "timeout-command", "capa: no reply"),
        (pop3(capa="+OK\r\n" + "X\r\n" * 150 + ".\r\n"), "pop3", "garbage", "longer than 100 lines"),
        (pop3(capa="what?\r\n"), "pop3", "garbage", "what?"),
        (imap(), "pop3", "garbage", "* OK ready"),
        (SMTP_BANNER, "pop3", "garbage", "220 mx"),
        (garbage(), "pop3", "garbage", "\\xff"),
        (hang(), "pop3", "timeout-banner", "greeting: no reply"),
        (close(), "pop3", "reset", "greeting: closed"),
        (banner("220 hi\r\n", "250 fake.invalid\r\n"), "submission", "no-auth", "EHLO offers: no extensions"),
        (banner("220 hi\r\n", "250-x\r\n250 AUTH=LOGIN\r\n"), "submission", "ok", "220 hi"),
        (banner("220 hi\r\n", "250-x\r\n250 STARTTLS\r\n"), "submission", "ok", "220 hi"),
        (banner("554 no\r\n"), "submission", "banner-5xx", "554 no"),
        (hang(), "submission", "timeout-banner", ""),
        (imap(), "submission", "garbage", "* OK"),
    ],
)
def test_access_reasons(behaviour: Behaviour, kind: str, reason: str, evidence: str) -> None:
    result, _ = run(probe_fake(behaviour, kind, timeout=0.5))
    assert (result.reason, result.ok) == (reason, reason == "ok"), result
    assert evidence in result.evidence
    assert_printable(result)


def test_imap_literals_in_untagged_responses_are_skipped() -> None:
    literal = "a1 OK\r\n* x\r\n"  # 12 octets that would end the command if they were read as lines
    answer = (
        f"* CAPABILITY IMAP4rev1\r\n* ID {{12}}\r\n{literal} ({{3}}\r\n\r\n\r) more\r\n{{tag}} OK done\r\n"
    )
    result, server = run(probe_fake(imap(capability=answer), "imap"))
    assert (result.reason, result.evidence) == ("ok", "* OK ready")
    assert server.received == [b"a1 CAPABILITY", b"a2 LOGOUT"]
    huge, _ = run(probe_fake(imap(capability="* ID {100000}\r\n"), "imap"))
    assert (huge.reason, huge.evidence) == ("garbage", "literal of 100000 octets: * ID {100000}")


def test_no_goodbye_to_a_server_that_refused_us() -> None:
    _, server = run(probe_fake(imap("* BYE no\r\n"), "imap"))
    assert server.received == []
    _, server = run(probe_fake(pop3("-ERR no\r\n"), "pop3"))
    assert server.received == []
    _, server = run(probe_fake(imap(capability="{tag} NO\r\n"), "imap"))
    assert server.received == [b"a1 CAPABILITY", b"a2 LOGOUT"]


@pytest.mark.parametrize("kind", ["imap", "pop3"])
@pytest.mark.parametrize("prefix", [b"", b"* OK ", b"+OK "])
def test_flood_is_garbage_in_bounded_memory(kind: str, prefix: bytes) -> None:
    tracemalloc.start()
    try:
        started = time.monotonic()
        result, _ = run(probe_fake(flood(prefix=prefix), kind, timeout=3.0))
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.reason == "garbage"
    assert elapsed < 1.0
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while the peer offered 10 MiB"


@pytest.mark.parametrize("kind", ACCESS_KINDS)
def test_refused_for_every_kind(kind: str) -> None:
    result = run(run_probe(ProbeSpec(kind, LOCAL, free_port())))
    assert (result.ok, result.reason, result.cert_expires_in) == (False, "refused", None)


@pytest.mark.parametrize("kind", ["imaps", "pop3"])
def test_connect_timeout(kind: str) -> None:
    with blackhole() as port:
        started = time.monotonic()
        result = run(run_probe(ProbeSpec(kind, LOCAL, port, timeout=0.3)))
    assert result.reason == "timeout-connect"
    assert time.monotonic() - started < 0.3 + 0.5


# -- implicit TLS -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "behaviour"), [("imaps", imap()), ("pop3s", pop3())])
def test_tls_ok_reports_expiry(certs: Certs, kind: str, behaviour: Behaviour) -> None:
    result, server = run(probe_fake(tls(certs.fresh, behaviour), kind))
    assert (result.ok, result.reason) == (True, "ok"), result
    assert result.cert_expires_in is not None and abs(result.cert_expires_in - 90 * DAY) < 600
    assert len(server.received) == 2


@pytest.mark.parametrize("kind", ["imaps", "pop3s", "submissions"])
def test_tls_expiring_is_a_warning(certs: Certs, kind: str) -> None:
    behaviour = {"imaps": imap(), "pop3s": pop3(), "submissions": banner("220 hi\r\n", AUTH_EHLO)}
    result, _ = run(probe_fake(tls(certs.expiring, behaviour[kind]), kind))
    assert (result.ok, result.reason) == (True, "tls-expiring"), result
    assert result.cert_expires_in is not None and abs(result.cert_expires_in - 5 * DAY) < 600
    assert "certificate expires in 5.0 days" in result.evidence
    quiet, _ = run(probe_fake(tls(certs.expiring, behaviour[kind]), kind, tls_warn_days=3))
    assert (quiet.ok, quiet.reason) == (True, "ok")


def test_tls_expiring_does_not_hide_a_failure(certs: Certs) -> None:
    result, _ = run(probe_fake(tls(certs.expiring, imap("* BYE\r\n")), "imaps"))
    assert (result.ok, result.reason) == (False, "greeting-bye")
    assert result.cert_expires_in is not None


@pytest.mark.parametrize("kind", ["imaps", "pop3s", "submissions"])
def test_tls_expired_fails_without_talking(certs: Certs, kind: str) -> None:
    result, server = run(probe_fake(tls(certs.expired, imap()), kind))
    assert (result.ok, result.reason) == (False, "tls-expired"), result
    assert result.cert_expires_in is not None and abs(result.cert_expires_in + 2 * DAY) < 600
    assert result.evidence.startswith("certificate expired 2.0 days ago (notAfter ")
    assert server.received == []


@pytest.mark.parametrize(
    ("kind", "behaviour", "evidence"),
    [
        ("imaps", imap(), "WRONG_VERSION_NUMBER"),
        ("pop3s", pop3(), "WRONG_VERSION_NUMBER"),
        ("submissions", SMTP_BANNER, "WRONG_VERSION_NUMBER"),
        ("imaps", hang(), "no TLS handshake before the deadline"),
        ("pop3s", close(), ""),
        ("imaps", reset(), ""),
    ],
)
def test_tls_handshake_failures(kind: str, behaviour: Behaviour, evidence: str) -> None:
    result, _ = run(probe_fake(behaviour, kind, timeout=0.5))
    assert (result.ok, result.reason, result.cert_expires_in) == (False, "tls-handshake", None), result
    assert evidence in result.evidence
    assert_printable(result)


def test_submissions_against_plain_aiosmtpd(aiosmtpd_server: Any) -> None:
    controller = aiosmtpd_server()
    result = run(run_probe(ProbeSpec("submissions", LOCAL, controller.port, timeout=1.0)))
    assert result.reason == "tls-handshake"


def test_tls_sends_the_server_name(certs: Certs) -> None:
    seen: list[str | None] = []
    context = server_context(*certs.paths[90])
    context.sni_callback = lambda sock, name, ctx: seen.append(name)
    result, _ = run(probe_fake(tls(context, imap()), "imaps", server_name="imap.example.org."))
    without, _ = run(probe_fake(tls(context, imap()), "imaps"))
    assert result.ok and without.ok
    assert seen == ["imap.example.org", None]


@pytest.mark.parametrize("kind", ["imaps", "pop3s", "submissions"])
@pytest.mark.parametrize("which", ["fresh", "expired", "hang"])
def test_tls_probes_always_hang_up(certs: Certs, kind: str, which: str) -> None:
    served = {"imaps": imap(), "pop3s": pop3(), "submissions": banner("220 hi\r\n", AUTH_EHLO)}
    behaviour = hang() if which == "hang" else tls(getattr(certs, which), served[kind])

    async def probe() -> None:
        async with fake_server(behaviour) as server:
            await run_probe(ProbeSpec(kind, LOCAL, server.port, timeout=0.3))
            await asyncio.sleep(0.05)
            assert (server.connections, server.finished) == (1, 1)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        run(probe())
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], "a connection was left open"


def test_cancelled_tls_probe_raises_and_hangs_up() -> None:
    async def probe() -> None:
        async with fake_server(hang()) as server:
            task = asyncio.create_task(run_probe(ProbeSpec("imaps", LOCAL, server.port, timeout=5.0)))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.05)
            assert (server.connections, server.finished) == (1, 1)

    run(probe())


# -- the DER reader and the parsers, alone ---------------------------------------------------------


def test_not_after_matches_what_ssl_reads(certs: Certs) -> None:
    for cert, _ in certs.paths.values():
        der = ssl.PEM_cert_to_DER_cert(cert.read_text())
        decoded = ssl._ssl._test_decode_cert(str(cert))  # type: ignore[attr-defined]
        assert certificate_not_after(der) == ssl.cert_time_to_seconds(decoded["notAfter"])


@given(st.binary(max_size=400))
def test_not_after_refuses_anything_else_with_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):  # and nothing else: no IndexError, no UnicodeError
        certificate_not_after(data)


def test_not_after_refuses_a_truncated_certificate(certs: Certs) -> None:
    der = ssl.PEM_cert_to_DER_cert(certs.paths[90][0].read_text())
    for size in range(0, len(der), 7):
        with pytest.raises(ValueError):
            certificate_not_after(der[:size])


imap_lines = st.lists(
    st.sampled_from(
        [b"* OK hi\r\n", b"* CAPABILITY IMAP4rev1\r\n", b"a1 OK done\r\n", b"a1 NO\n", b"* X {3}\r\nabc\r\n",
         b"+ more\r\n", b"a2 OK\r\n", b"\xff\r\n", b"* BYE\r\n"]
    ),
    max_size=6,
).map(b"".join)  # fmt: skip
pop3_lines = st.lists(
    st.sampled_from([b"+OK hi\r\n", b"-ERR no\r\n", b"USER\r\n", b"..x\r\n", b".\r\n", b"+OKAY\r\n", b"\n"]),
    max_size=6,
).map(b"".join)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(imap_lines, st.binary(max_size=100)), cuts=st.lists(st.integers(0, 120), max_size=5))
def test_imap_parser_ignores_how_bytes_are_split(data: bytes, cuts: list[int]) -> None:
    def parse(chunks: list[bytes]) -> list[object]:
        parser, seen = ImapParser(), list[object]()
        parser.expect(b"a1")
        try:
            for chunk in chunks:
                parser.feed(chunk)
                while (response := parser.next_response()) is not None:
                    seen.append(response)
        except AccessFault as fault:
            seen.append(fault.reason)
        return seen

    assert parse(split(data, cuts)) == parse([data])


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(pop3_lines, st.binary(max_size=100)), cuts=st.lists(st.integers(0, 120), max_size=5))
def test_pop3_parser_ignores_how_bytes_are_split(data: bytes, cuts: list[int]) -> None:
    def parse(chunks: list[bytes]) -> list[object]:
        parser, seen = Pop3Parser(), list[object]()
        try:
            for chunk in chunks:
                parser.feed(chunk)
                while (reply := parser.next_reply(multiline=True)) is not None:
                    seen.append(reply)
        except AccessFault as fault:
            seen.append(fault.reason)
        return seen

    assert parse(split(data, cuts)) == parse([data])


# -- the spec ------------------------------------------------------------------------------------------


def test_new_kinds_and_reasons_are_listed() -> None:
    assert set(ACCESS_KINDS) <= set(PROBE_KINDS)
    assert {DEFAULT_PORTS[k] for k in ACCESS_KINDS} == {143, 993, 110, 995, 587, 465}
    new = {"greeting-bye", "greeting-err", "command-rejected", "timeout-command", "no-auth"}
    assert new | {"tls-handshake", "tls-expired", "tls-expiring"} <= set(REASONS)


@pytest.mark.parametrize(
    "bad",
    [
        {"address": "imap.example"},
        {"port": 0},
        {"tls_warn_days": -1},
        {"tls_warn_days": 1.5},
        {"tls_warn_days": True},
        {"server_name": "two words"},
        {"server_name": "x" * 254},
    ],
)
@pytest.mark.parametrize("kind", ["imaps", "pop3"])
def test_spec_refuses_bad_input(kind: str, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        replace(ProbeSpec(kind, LOCAL, DEFAULT_PORTS[kind]), **bad)

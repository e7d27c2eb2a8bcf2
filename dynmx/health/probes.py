"""One health probe of one mail server: connect, talk, and turn whatever happened into a fact.

`run_probe` never raises (only CancelledError passes): every fault a peer can cause maps
to a ProbeResult with a short, stable reason, so the up/down state machine counts facts
and never handles exceptions. All I/O runs under the spec's one budget, `timeout`.
The clock is injected for `latency` only; deadlines use the event loop's clock, as
asyncio's timeouts do. The SMTP dialogue (smtp, submission) lives in smtp_probe, IMAP and
POP3 in access_probe, implicit TLS and certificate expiry in tls, HTTP and load in http_probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from dynmx.health.access_probe import check_imap, check_pop3
from dynmx.health.http_probe import check_http
from dynmx.health.kinds import TLS_KINDS
from dynmx.health.smtp_probe import READ_SIZE, SmtpSession, check_dane
from dynmx.health.spec import ProbeSpec
from dynmx.health.tls import Peer, handshake, judge_expiry
from dynmx.health.verdict import Verdict, printable

SUBMISSION_OFFERS = {  # EHLO must offer one of these
    "submission": frozenset({"AUTH", "STARTTLS"}),
    "submissions": frozenset({"AUTH"}),
}
REASONS = (
    "ok",
    "timeout-connect",
    "timeout-banner",
    "refused",
    "reset",
    "banner-4xx",
    "banner-5xx",
    "garbage",
    "ehlo-rejected",
    "no-starttls",
    "timeout-ehlo",
    "http-status",
    "body-mismatch",
    "http-error",
    "load-missing",
    "load-invalid",
    "unreachable",
    "greeting-bye",
    "greeting-err",
    "command-rejected",
    "timeout-command",
    "no-auth",
    "tls-handshake",
    "tls-expired",
    "tls-expiring",
    "starttls-rejected",
    "timeout-starttls",
    "tlsa-mismatch",
)
WARNINGS = frozenset({"tls-expiring"})  # reasons that still leave the probe ok
CLOSE_WAIT = 0.5  # seconds granted to a closing connection, after the verdict


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A probe's verdict: `reason` is one of REASONS; evidence is printable ASCII, <= 200 chars."""

    ok: bool
    reason: str
    latency: float  # seconds from start to verdict
    load: float | None = None
    evidence: str = ""
    cert_expires_in: float | None = None  # TLS_KINDS: seconds until notAfter, negative once expired


async def run_probe(
    spec: ProbeSpec,
    *,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """Probe once; every peer fault becomes a result, never an exception."""
    start = clock()

    def result(verdict: Verdict, peer: Peer | None = None) -> ProbeResult:
        latency = max(0.0, clock() - start)
        ok = verdict.ok or verdict.reason in WARNINGS
        expires_in = peer.expires_in if peer is not None else None
        return ProbeResult(ok, verdict.reason, latency, verdict.load, verdict.evidence, expires_in)

    if spec.kind in ("http", "load"):
        return result(await check_http(spec, http))
    deadline = asyncio.get_running_loop().time() + spec.timeout
    connected = await _connect(spec, deadline)
    if isinstance(connected, Verdict):
        return result(connected)
    reader, writer = connected
    try:
        peer: Peer | None = None
        if spec.kind in TLS_KINDS:
            shaken = await handshake(writer, spec.server_name, deadline)
            if isinstance(shaken, Verdict):
                return result(shaken)
            peer = shaken
            if peer.expires_in <= 0:  # no need to talk: this alone fails the probe
                return result(Verdict("tls-expired", peer.describe()), peer)
        verdict = await _talk(spec, reader, writer, deadline)
        return result(judge_expiry(verdict, peer, spec.tls_warn_days), peer)
    finally:
        await _close(writer)


async def _talk(
    spec: ProbeSpec, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: float
) -> Verdict:
    """The kind's dialogue over the open (and, for TLS_KINDS, encrypted) connection."""
    if spec.kind == "tcp":
        return Verdict("ok", f"connected to {_where(spec)}")
    if spec.kind in ("imap", "imaps"):
        return await check_imap(reader, writer, deadline)
    if spec.kind in ("pop3", "pop3s"):
        return await check_pop3(reader, writer, deadline)
    session = SmtpSession(reader, writer, deadline)
    starttls = spec.require_starttls and spec.kind not in TLS_KINDS  # STARTTLS inside TLS means nothing
    dane = bool(spec.tlsa)  # a DANE sender delivers only over TLS (RFC 7672 2.2)
    verdict = await session.greet(
        spec.helo_name, starttls or dane, SUBMISSION_OFFERS.get(spec.kind, frozenset())
    )
    if dane and verdict.ok:
        return await check_dane(spec, session, writer, deadline)
    if dane and verdict.reason == "no-starttls":
        verdict = Verdict("no-starttls", printable(f"TLSA published; {verdict.evidence}"))
    await session.quit()
    return verdict


async def _connect(
    spec: ProbeSpec, deadline: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | Verdict:
    """An open connection, or the verdict on why there is none."""
    where = _where(spec)
    try:
        async with asyncio.timeout_at(deadline):
            return await asyncio.open_connection(spec.address, spec.port, limit=READ_SIZE)
    except TimeoutError:  # before OSError: TimeoutError is one
        return Verdict("timeout-connect", where)
    except ConnectionRefusedError:
        return Verdict("refused", where)
    except ConnectionResetError:
        return Verdict("reset", where)
    except OSError as exc:
        return Verdict("unreachable", printable(f"{where}: {exc.strerror or type(exc).__name__}"))


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close and wait briefly for the close to finish, then abort: a TLS peer may never answer ours.

    A transport already closing was closed under us (the peer left, or a failed TLS handshake
    closed it without telling the stream), so there is nothing to wait for.
    """
    if writer.transport.is_closing():
        writer.transport.abort()
        return
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_WAIT):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()


def _where(spec: ProbeSpec) -> str:
    host = f"[{spec.address}]" if ":" in spec.address else spec.address
    return f"{host}:{spec.port}"

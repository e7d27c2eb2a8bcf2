"""One health probe of one mail server: connect, talk, and turn whatever happened into a fact.

`run_probe` never raises (only CancelledError passes): every fault a peer can cause maps
to a ProbeResult with a short, stable reason, so the up/down state machine counts facts
and never handles exceptions. All I/O runs under the spec's one budget, `timeout`.
The clock is injected for `latency` only; deadlines use the event loop's clock, as
asyncio's timeouts do. The SMTP dialogue lives in smtp_probe, HTTP and load in http_probe.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import httpx

from dynmx.health.http_probe import check_http
from dynmx.health.smtp_probe import READ_SIZE, SmtpSession
from dynmx.health.verdict import Verdict, printable

KINDS = ("smtp", "tcp", "http", "load")
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
)
CLOSE_WAIT = 0.5  # seconds granted to a closing connection, after the verdict


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """What to probe and how; checked when built, so that running it cannot fail on our own input.

    A bad url is not checked here: like an unreachable peer, it is a probe result (http-error).
    """

    kind: str  # "smtp" | "tcp" | "http" | "load"
    address: str  # IP literal (v4 or v6) to connect to; smtp and tcp only
    port: int
    timeout: float = 3.0  # whole probe budget in seconds
    helo_name: str = "dynmx.invalid"  # EHLO argument
    require_starttls: bool = False  # smtp: EHLO must offer STARTTLS
    url: str = ""  # http/load
    expect_status: tuple[int, ...] = ()  # http/load: empty means any 2xx
    body_match: str = ""  # http/load: substring that must be in the body
    load_field: str = "load"  # load: JSON field, dotted path allowed ("stats.load")
    load_metric: str = ""  # load: if set, read this metric from Prometheus text instead

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        if not (isinstance(self.timeout, int | float) and math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout: expected a positive number of seconds, got {self.timeout!r}")
        if self.kind in ("smtp", "tcp"):
            try:
                ipaddress.ip_address(self.address)
            except ValueError:
                raise ValueError(f"address: expected an IP literal, got {self.address!r}") from None
            if not 1 <= self.port <= 65535:
                raise ValueError(f"port: expected 1-65535, got {self.port}")
        if not (self.helo_name and all("!" <= c <= "~" for c in self.helo_name)):
            raise ValueError(f"helo_name: expected printable ASCII without spaces, got {self.helo_name!r}")
        if any(not 100 <= status <= 599 for status in self.expect_status):
            raise ValueError(f"expect_status: expected HTTP status codes, got {self.expect_status!r}")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A probe's verdict: `reason` is one of REASONS; evidence is printable ASCII, <= 200 chars."""

    ok: bool
    reason: str
    latency: float  # seconds from start to verdict
    load: float | None = None
    evidence: str = ""


async def run_probe(
    spec: ProbeSpec,
    *,
    http: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """Probe once; every peer fault becomes a result, never an exception."""
    start = clock()

    def result(verdict: Verdict) -> ProbeResult:
        latency = max(0.0, clock() - start)
        return ProbeResult(verdict.ok, verdict.reason, latency, verdict.load, verdict.evidence)

    if spec.kind in ("http", "load"):
        return result(await check_http(spec, http))
    deadline = asyncio.get_running_loop().time() + spec.timeout
    connected = await _connect(spec, deadline)
    if isinstance(connected, Verdict):
        return result(connected)
    reader, writer = connected
    try:
        if spec.kind == "tcp":
            return result(Verdict("ok", f"connected to {_where(spec)}"))
        session = SmtpSession(reader, writer, deadline)
        verdict = result(await session.greet(spec.helo_name, spec.require_starttls))
        await session.quit()
        return verdict
    finally:
        await _close(writer)


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
    """Close and wait briefly for the close to finish; a peer that already went away is fine."""
    writer.close()
    with suppress(OSError, TimeoutError):
        async with asyncio.timeout(CLOSE_WAIT):
            await writer.wait_closed()


def _where(spec: ProbeSpec) -> str:
    host = f"[{spec.address}]" if ":" in spec.address else spec.address
    return f"{host}:{spec.port}"

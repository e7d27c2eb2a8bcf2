"""What one health probe checks: a ProbeSpec is validated when built, so running it cannot
fail on our own input. Apart from the probes so that each probe module can take a spec
without importing the others."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dynmx.health.kinds import PROBE_KINDS, SOCKET_KINDS

if TYPE_CHECKING:  # dane loads cryptography; a spec only carries its records
    from dynmx.health.dane import Tlsa

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """What to probe and how; checked when built, so that running it cannot fail on our own input.

    A bad url is not checked here: like an unreachable peer, it is a probe result (http-error).
    """

    kind: str  # one of PROBE_KINDS
    address: str  # IP literal (v4 or v6) to connect to; SOCKET_KINDS only
    port: int
    timeout: float = 3.0  # whole probe budget in seconds
    helo_name: str = "dynmx.invalid"  # EHLO argument
    require_starttls: bool = False  # smtp: EHLO must offer STARTTLS
    url: str = ""  # http/load
    expect_status: tuple[int, ...] = ()  # http/load: empty means any 2xx
    body_match: str = ""  # http/load: substring that must be in the body
    load_field: str = "load"  # load: JSON field, dotted path allowed ("stats.load")
    load_metric: str = ""  # load: if set, read this metric from Prometheus text instead
    tls_warn_days: int = 14  # TLS_KINDS: a certificate expiring sooner is reported (tls-expiring)
    server_name: str = ""  # TLS_KINDS: SNI to send; empty sends none
    tlsa: tuple[Tlsa, ...] = ()  # smtp: the TLSA RRset we serve at _25._tcp.<host>; empty: no DANE check

    def __post_init__(self) -> None:
        if self.kind not in PROBE_KINDS:
            raise ValueError(f"kind: expected one of {', '.join(PROBE_KINDS)}, got {self.kind!r}")
        if not (isinstance(self.timeout, int | float) and math.isfinite(self.timeout) and self.timeout > 0):
            raise ValueError(f"timeout: expected a positive number of seconds, got {self.timeout!r}")
        if self.kind in SOCKET_KINDS:
            try:
                ipaddress.ip_address(self.address)
            except ValueError:
                raise ValueError(f"address: expected an IP literal, got {self.address!r}") from None
            if not 1 <= self.port <= 65535:
                raise ValueError(f"port: expected 1-65535, got {self.port}")
        if not (self.helo_name and all("!" <= c <= "~" for c in self.helo_name)):
            raise ValueError(f"helo_name: expected printable ASCII without spaces, got {self.helo_name!r}")
        days = self.tls_warn_days
        if isinstance(days, bool) or not (isinstance(days, int) and days >= 0):
            raise ValueError(f"tls_warn_days: expected a whole number of days >= 0, got {days!r}")
        if len(self.server_name) > 253 or not set(self.server_name) <= _NAME_CHARS:
            raise ValueError(f"server_name: expected a DNS name, got {self.server_name!r}")
        if self.tlsa and self.kind != "smtp":
            raise ValueError(f"tlsa: only the smtp probe checks TLSA records, not {self.kind}")
        if any(not 100 <= status <= 599 for status in self.expect_status):
            raise ValueError(f"expect_status: expected HTTP status codes, got {self.expect_status!r}")

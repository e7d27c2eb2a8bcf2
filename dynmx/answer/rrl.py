"""Response rate limiting (RRL) for UDP, as NSD and Knot do it: per-prefix token buckets.

Replies are counted per (source prefix, response class, name) bucket: /24 for IPv4 and
/56 for IPv6 by default, so one spoofed victim cannot be flooded with amplified
answers. A bucket refills at `rate` replies per second; a reply over the limit is
dropped, except every `slip`-th one, which is sent truncated (TC=1, no records) so a
real client retries over TCP (RFC 7766) and still gets its answer. Loopback is exempt,
and so are the `exempt` prefixes (an operator's own resolvers and monitors, as Knot's RRL
whitelist). Time is a parameter: tests are exact.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

POSITIVE, NXDOMAIN, REFERRAL, ERROR = "positive", "nxdomain", "referral", "error"
TABLE_LIMIT = 100_000  # buckets kept at most; the oldest half is dropped when full


@dataclass(frozen=True, slots=True)
class RrlSettings:
    rate: float = 200.0  # replies per second per bucket (NSD's rrl-ratelimit default)
    slip: int = 2  # every n-th limited reply goes out truncated; 0: drop them all
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    exempt: tuple[Network, ...] = ()  # sources never limited, besides loopback


class Verdict:
    SEND, SLIP, DROP = 0, 1, 2


class RateLimiter:
    """Decides per reply: send, send truncated (slip), or drop."""

    def __init__(self, settings: RrlSettings) -> None:
        self.settings = settings
        self.buckets: dict[tuple[str, str, bytes], list[float]] = {}  # key -> [tokens, last time, limited]
        self._prefixes: dict[str, str | None] = {}
        self.exempt_hosts: set[str] = set()  # sources seen whose prefix is None: no work per reply
        self.limited = 0
        self.slipped = 0

    def prefix(self, host: str) -> str | None:
        """The bucket prefix of a source address; None for loopback, an exempt one or junk."""
        found = self._prefixes.get(host, "")
        if found != "":
            return found
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            result: str | None = None
        else:
            if address.is_loopback or any(address in network for network in self.settings.exempt):
                result = None
            else:
                length = self.settings.ipv4_prefix if address.version == 4 else self.settings.ipv6_prefix
                result = str(ipaddress.ip_network(f"{address}/{length}", strict=False))
        if len(self._prefixes) > TABLE_LIMIT:
            self._prefixes.clear()
            self.exempt_hosts.clear()
        self._prefixes[host] = result
        if result is None:
            self.exempt_hosts.add(host)
        return result

    def check(self, host: str, kind: str, name: bytes, now: float) -> int:
        """Count one reply of class `kind` about `name` to `host` at time `now`."""
        prefix = self.prefix(host)
        if prefix is None:
            return Verdict.SEND
        key = (prefix, kind, name)
        bucket = self.buckets.get(key)
        rate = self.settings.rate
        if bucket is None:
            if len(self.buckets) >= TABLE_LIMIT:
                for old in list(self.buckets)[: TABLE_LIMIT // 2]:
                    del self.buckets[old]
            self.buckets[key] = [rate - 1.0, now, 0.0]
            return Verdict.SEND
        tokens = min(rate, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return Verdict.SEND
        bucket[0] = tokens
        bucket[2] += 1
        self.limited += 1
        slip = self.settings.slip
        if slip and int(bucket[2]) % slip == 0:
            self.slipped += 1
            return Verdict.SLIP
        return Verdict.DROP


def classify(reply: bytes) -> str:
    """The response class of a reply, from its header: error, nxdomain, referral or positive."""
    rcode = reply[3] & 0x0F
    if rcode == 3:
        return NXDOMAIN
    if rcode != 0:
        return ERROR
    if not reply[2] & 0x04 and reply[6:8] == b"\x00\x00":  # no AA and no answer: a referral
        return REFERRAL
    return POSITIVE

"""Zones answered with an error instead of their data, decided per query before any lookup.

Two reasons, one walk up the query name: a zone with an `allow_query` list (as BIND's)
answers REFUSED to everyone else, and a secondary zone held without a current copy
(before its first transfer, or once SOA EXPIRE has passed without reaching its primary)
answers SERVFAIL, as NSD does. Checked on the hot path only when some zone has a
rule, so the common server pays nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from dynmx.wire.response import RCODE_REFUSED, RCODE_SERVFAIL

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_in(host: str, networks: Iterable[Network]) -> bool:
    """Is `host` (an address text, maybe with a %zone) inside one of `networks`?"""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return any(address in network for network in networks)


@dataclass(frozen=True)
class ZoneRule:
    networks: tuple[Network, ...] | None = None  # who may ask; None = everyone
    unavailable: bool = False  # no current copy: SERVFAIL to those who may ask


class ZoneGate:
    def __init__(
        self,
        allow_query: Mapping[bytes, Iterable[Network]],
        unavailable: Iterable[bytes] = (),
        served_below: Iterable[bytes] = (),
    ) -> None:
        """Lower-case wire origins: `allow_query` maps a zone to the networks that may ask it;
        `unavailable` zones answer SERVFAIL; `served_below` are zones served inside an
        unavailable one, which answer as usual (the deepest zone decides)."""
        rules = {origin: ZoneRule(tuple(networks)) for origin, networks in allow_query.items()}
        for origin in unavailable:
            rules[origin] = replace(rules.get(origin, ZoneRule()), unavailable=True)
        for origin in served_below:
            rules.setdefault(origin, ZoneRule())
        self.rules = rules

    def refusal(self, name: bytes, peer: object) -> int:
        """The rcode to answer wire name `name` with instead of data, or 0 to answer from data.
        `peer` is (host, port), or None for a caller inside the server (no query list applies)."""
        rule = self._closest(name)
        if rule is None:
            return 0
        networks = rule.networks
        if networks is not None and isinstance(peer, tuple) and not address_in(str(peer[0]), networks):
            return RCODE_REFUSED
        return RCODE_SERVFAIL if rule.unavailable else 0

    def _closest(self, name: bytes) -> ZoneRule | None:
        """The rule of the deepest listed zone at or above `name` (its labels walked in order)."""
        rules = self.rules
        offset = 0
        while offset < len(name):
            found = rules.get(name[offset:])
            if found is not None:
                return found
            offset += name[offset] + 1
        return rules.get(b"\x00")

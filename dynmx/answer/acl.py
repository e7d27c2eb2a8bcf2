"""Who may query which zone (`allow_query`, as BIND's): a zone not listed answers everyone.

Checked on the hot path only when some zone has a list, so the common server pays nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_in(host: str, networks: Iterable[Network]) -> bool:
    """Is `host` (an address text, maybe with a %zone) inside one of `networks`?"""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return any(address in network for network in networks)


class QueryAcl:
    def __init__(self, rules: Mapping[bytes, Iterable[Network]]) -> None:
        """`rules`: lower-case wire name of a zone origin -> the networks that may ask it."""
        self.rules = {origin: tuple(networks) for origin, networks in rules.items()}

    def permits(self, name: bytes, peer: object) -> bool:
        """May `peer` ((host, port), or None for an internal caller) ask about wire name `name`?"""
        networks = self._closest(name)
        if networks is None or not isinstance(peer, tuple):
            return True
        return address_in(str(peer[0]), networks)

    def _closest(self, name: bytes) -> tuple[Network, ...] | None:
        """The rules of the deepest listed zone at or above `name` (its labels walked in order)."""
        rules = self.rules
        offset = 0
        while offset < len(name):
            found = rules.get(name[offset:])
            if found is not None:
                return found
            offset += name[offset] + 1
        return rules.get(b"\x00")

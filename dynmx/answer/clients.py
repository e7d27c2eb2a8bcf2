"""Who is asking: longest-prefix match of a source address onto client actions."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

CACHE_LIMIT = 65536

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ClientAction:
    """What to do with a pool query from a prefix: answer, refuse, drop, or answer a hint."""

    network: Network
    action: str  # "answer" | "refuse" | "drop" | "hint"
    hint: str = ""


class ClientRules:
    """Longest prefix wins; results are cached per source address (bounded)."""

    def __init__(self, actions: list[ClientAction]) -> None:
        self.actions = sorted(actions, key=lambda a: a.network.prefixlen, reverse=True)
        self._cache: dict[str, ClientAction | None] = {}

    def __bool__(self) -> bool:
        return bool(self.actions)

    def match(self, host: str) -> ClientAction | None:
        """The most specific rule covering `host`, or None (answer normally)."""
        cache = self._cache
        if host in cache:
            return cache[host]
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        found = next((a for a in self.actions if address in a.network), None)
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[host] = found
        return found

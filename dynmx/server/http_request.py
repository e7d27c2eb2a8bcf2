"""What an HTTP route sees and returns, and the limits a listener holds its clients to.

The vocabulary shared by the listener (`server.http`), its request handler
(`server.http_handler`) and the app's routes, apart so that a route needs no server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

# A route returns (status, content type, body), optionally with extra headers.
Response = tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Request:
    """What a route may look at: the query string, the headers, the peer's address."""

    query: str
    headers: dict[str, str]  # names lower-cased
    client: str  # the peer's address; "local" on the unix socket
    body: bytes = b""
    method: str = "GET"
    path: str = ""
    local: str = ""  # the address the connection arrived at; "" on the unix socket
    port: int = 0  # the listener's port; 0 on the unix socket


Route = Callable[[Request], Response]
Guard = Callable[[Request], Response | None]  # a refusal, or None to go on


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 64
    timeout: float = 10.0  # seconds for a whole request to arrive, and for each write
    max_per_source: int = 16


def source_of(client: object) -> str:
    """Whom a connection counts against: its IPv4 address (also when mapped into IPv6), an
    IPv6 client's /64 (it may hold every address in it), "local" on a unix socket."""
    if not isinstance(client, tuple) or not client:
        return "local"
    try:
        ip = ipaddress.ip_address(str(client[0]).split("%", 1)[0])
    except ValueError:
        return str(client[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)

"""UDP transport: one datagram in, at most one datagram out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("dynmx.server.udp")

# (message, peer address, over TCP) -> reply or None for silence.
Handler = Callable[[bytes, object, bool], bytes | None]


class UdpServer(asyncio.DatagramProtocol):
    """Hands each datagram to the handler and sends back what it returns."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received += 1
        reply = self.handler(data, addr, False)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("event=udp-error error=%s", exc)

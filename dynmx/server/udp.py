"""UDP transport: one datagram in, at most one datagram out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("dynmx.server.udp")

# A reply decided elsewhere (a worker forwards UPDATE/NOTIFY to the control process).
Deferred = Awaitable[Any]
# (message, peer address, over TCP) -> reply, None for silence, or a reply to come.
Handler = Callable[[bytes, object, bool], bytes | Deferred | None]


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
        if reply is None or self.transport is None:
            return
        if isinstance(reply, bytes):
            self.transport.sendto(reply, addr)
        else:
            asyncio.ensure_future(reply).add_done_callback(lambda done: self._send_later(done, addr))

    def _send_later(self, done: asyncio.Future[Any], addr: tuple[str, int]) -> None:
        reply = None if done.cancelled() or done.exception() else done.result()
        if isinstance(reply, bytes) and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("event=udp-error error=%s", exc)

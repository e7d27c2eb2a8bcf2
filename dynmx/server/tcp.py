"""TCP transport per RFC 7766: 2-byte framing, pipelining, idle timeout, connection cap.

Back-pressure keeps every connection's memory bounded: while the client does not read
its replies (the write buffer is over its high-water mark) or too many replies are still
being decided elsewhere (`max_in_flight`), the connection stops reading; at most one
unanswered 64 KiB message waits in its input buffer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

Replies = bytes | list[bytes] | None
# (message, peer address) -> reply, several replies (a zone transfer), None, or a reply to come.
TcpHandler = Callable[[bytes, object], Replies | Awaitable[Any]]
WRITE_HIGH_WATER = 256 * 1024  # bytes of unread replies before the connection stops reading

log = logging.getLogger("dynmx.server.tcp")


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """Defaults follow NSD/Knot practice: short idle timeout, bounded connections."""

    idle_timeout: float = 10.0  # RFC 7766 6.2.3: servers may close idle connections
    max_connections: int = 200
    max_per_source: int = 20
    message_timeout: float = 5.0  # a message begun must be complete by then (slow senders cut off)
    max_in_flight: int = 32  # pipelined messages whose replies are still being decided

    def share(self, processes: int) -> TcpLimits:
        """One of `processes` answer processes' part of the caps, so that together they hold at
        most the configured number of connections, overall and per source (each at least one).
        The kernel spreads connections over the processes by hash, so one may refuse while
        another still has room."""
        if processes <= 1:
            return self
        return replace(
            self,
            max_connections=max(1, self.max_connections // processes),
            max_per_source=max(1, self.max_per_source // processes),
        )


class TcpConnections:
    """Shared state of all connections on all TCP listeners (the caps are global)."""

    def __init__(self, handler: TcpHandler, limits: TcpLimits) -> None:
        self.handler = handler
        self.limits = limits
        self.open: set[TcpConnection] = set()
        self.per_source: dict[str, int] = {}
        self.refused = 0
        self.messages = 0
        self.slow_senders = 0

    def protocol(self) -> TcpConnection:
        return TcpConnection(self)

    async def drain(self, timeout: float) -> None:
        """Stop reading, let in-flight replies flush, then close (graceful shutdown)."""
        for conn in list(self.open):
            conn.close_when_flushed()
        deadline = asyncio.get_running_loop().time() + timeout
        while self.open and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.open):
            conn.abort()


class TcpConnection(asyncio.Protocol):
    """One client connection; replies are written as each message completes."""

    def __init__(self, shared: TcpConnections) -> None:
        self.shared = shared
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.source = ""
        self.peer: object = None
        self.idle: asyncio.TimerHandle | None = None
        self.partial: asyncio.TimerHandle | None = None  # deadline of a message begun, not finished
        self.in_flight = 0  # replies decided elsewhere (forwarded), not yet written
        self.write_blocked = False  # the peer is not reading its replies
        self.reading = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = peer
        self.source = str(peer[0]) if peer else ""
        shared = self.shared
        count = shared.per_source.get(self.source, 0)
        if len(shared.open) >= shared.limits.max_connections or count >= shared.limits.max_per_source:
            shared.refused += 1
            self.abort()
            return
        shared.open.add(self)
        shared.per_source[self.source] = count + 1
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        shared = self.shared
        if self in shared.open:
            shared.open.discard(self)
            left = shared.per_source.get(self.source, 1) - 1
            if left:
                shared.per_source[self.source] = left
            else:
                shared.per_source.pop(self.source, None)
        if self.idle is not None:
            self.idle.cancel()
        if self.partial is not None:
            self.partial.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._arm_idle()
        self._process()

    def _process(self) -> None:
        """Answer every complete message the back-pressure allows; pause reading when it does not."""
        buffer = self.buffer
        limit = self.shared.limits.max_in_flight
        while len(buffer) >= 2 and not self.write_blocked and self.in_flight < limit:
            length = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + length:
                break
            message = bytes(buffer[2 : 2 + length])
            del buffer[: 2 + length]
            self.shared.messages += 1
            reply = self.shared.handler(message, self.peer)
            if reply is None or isinstance(reply, (bytes, list)):
                self._write(reply)
            else:
                self.in_flight += 1
                asyncio.ensure_future(reply).add_done_callback(self._deferred_done)
        blocked = self.write_blocked or self.in_flight >= limit
        self._set_reading(not blocked)
        begun = bool(buffer) and not blocked
        if begun and self.partial is None:
            loop = asyncio.get_running_loop()
            self.partial = loop.call_later(self.shared.limits.message_timeout, self._on_slow_sender)
        elif not begun and self.partial is not None:
            self.partial.cancel()
            self.partial = None

    def _write(self, reply: Replies) -> None:
        if reply is None or self.transport is None or self.transport.is_closing():
            return
        for part in reply if isinstance(reply, list) else (reply,):
            self.transport.write(len(part).to_bytes(2, "big") + part)

    def _deferred_done(self, done: asyncio.Future[Any]) -> None:
        self.in_flight -= 1
        if not done.cancelled() and done.exception() is None:
            self._write(done.result())  # RFC 7766 6.2.1.1: replies may leave out of order
        if self.transport is not None and not self.transport.is_closing():
            self._arm_idle()
        self._process()

    def _set_reading(self, wanted: bool) -> None:
        if wanted == self.reading or self.transport is None or self.transport.is_closing():
            return
        self.reading = wanted
        if wanted:
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        self.write_blocked = True

    def resume_writing(self) -> None:
        self.write_blocked = False
        self._process()

    def _on_slow_sender(self) -> None:
        """A message that trickles in byte by byte holds a slot forever (slowloris): cut it off."""
        log.debug("event=tcp-slow-sender-close peer=%s", self.source)
        self.shared.slow_senders += 1
        self.abort()

    def _arm_idle(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(self.shared.limits.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        """RFC 7766 6.2.3: idle is no query outstanding. One waiting for its reply (an UPDATE
        whose zone compiles, a forwarded message) keeps the connection; the idle time starts
        again when the reply is written."""
        if self.in_flight:
            self.idle = None
            return
        log.debug("event=tcp-idle-close peer=%s", self.source)
        self.close_when_flushed()

    def close_when_flushed(self) -> None:
        if self.transport is not None:
            self.transport.close()  # asyncio flushes the write buffer before closing

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

"""Small TCP servers that misbehave on purpose, for probe and prober tests.

A fault a real peer can make is made by a real socket on loopback, not by a mock: each
server listens on 127.0.0.1 (or ::1) with an ephemeral port, serves one behaviour to
every connection, and lives no longer than `lifetime` seconds, so a stuck test cannot
leave one behind.

    async with fake_server(banner("421 busy\\r\\n")) as server:
        result = await run_probe(ProbeSpec("smtp", server.host, server.port))

`fake_server_thread` runs the same server on its own loop in a thread, for code that
probes from elsewhere (sync code, a subprocess). `blackhole` and `free_port` give a port
whose connects hang and a port where nothing listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
CHUNK = 64 * 1024


@dataclass
class FakeServer:
    """Where a fake server listens, and what its peers did."""

    host: str
    port: int
    connections: int = 0
    finished: int = 0  # connections whose behaviour ended (the peer hung up, or it was done)
    received: list[bytes] = field(default_factory=list)  # command lines from peers, CRLF removed

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


Behaviour = Callable[[FakeServer, Reader, Writer], Awaitable[None]]


def _bytes(data: str | bytes) -> bytes:
    return data.encode("latin-1") if isinstance(data, str) else data


# -- behaviours --------------------------------------------------------------------------


def banner(text: str | bytes, ehlo: str | bytes = "250-fake.invalid\r\n250 PIPELINING\r\n") -> Behaviour:
    """Send `text` (any bytes), then answer EHLO/HELO with `ehlo`, QUIT with 221, others with 502."""

    async def serve(server: FakeServer, reader: Reader, writer: Writer) -> None:
        writer.write(_bytes(text))
        await writer.drain()
        while line := await reader.readline():
            command = line.rstrip(b"\r\n")
            server.received.append(command)
            verb = command.split(b" ", 1)[0].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(_bytes(ehlo))
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 not here\r\n")
            await writer.drain()

    return serve


def hang() -> Behaviour:
    """Accept and say nothing until the peer leaves (or the lifetime ends)."""

    async def serve(server: FakeServer, reader: Reader, writer: Writer) -> None:
        while await reader.read(CHUNK):
            pass

    return serve


def garbage(size: int = 512, seed: int = 0) -> Behaviour:
    """Send `size` random bytes that do not start an SMTP reply, then hang."""
    rng = random.Random(seed)
    data = b"\xff" + rng.randbytes(max(0, size - 1))

    async def serve(server: FakeServer, reader: Reader, writer: Writer) -> None:
        writer.write(data)
        await writer.drain()
        await hang()(server, reader, writer)

    return serve


def flood(size: int = 10 * 1024 * 1024, prefix: bytes = b"", seed: int = 0) -> Behaviour:
    """Send `prefix`, then up to `size` random bytes with no line end, as fast as the peer reads."""
    rng = random.Random(seed)
    chunk = rng.randbytes(CHUNK).replace(b"\n", b"\xfe")

    async def serve(server: FakeServer, reader: Reader, writer: Writer) -> None:
        writer.write(prefix)
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
        await hang()(server, reader, writer)

    return serve


def reset(after: str | bytes = b"") -> Behaviour:
    """Send `after` (maybe nothing), then abort with SO_LINGER 0, so the peer gets an RST."""

    async def serve(server: FakeServer, reader: Reader, writer: Writer) -> None:
        if after:
            writer.write(_bytes(after))
            await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    return serve


def close(after: str | bytes = b"") -> Behaviour:
    """Send `after` (maybe nothing), then close cleanly (FIN)."""

    async def serve(server: FakeServer, reader: Reader, writer: Writer) -> None:
        if after:
            writer.write(_bytes(after))
            await writer.drain()
        writer.close()

    return serve


# -- servers -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fake_server(
    behaviour: Behaviour, *, host: str = "127.0.0.1", lifetime: float = 10.0
) -> AsyncIterator[FakeServer]:
    """A server on `host`, ephemeral port, serving `behaviour`; every connection ends by `lifetime`."""
    handlers: set[asyncio.Task[None]] = set()
    state = FakeServer(host, 0)

    async def handle(reader: Reader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        state.connections += 1
        try:
            async with asyncio.timeout(lifetime):
                await behaviour(state, reader, writer)
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            pass  # the peer left, or the line was too long, or time is up: all fine for a fake
        except asyncio.CancelledError:
            pass  # only our shutdown cancels; ending quietly keeps 3.11's streams from logging it
        finally:
            state.finished += 1
            writer.transport.abort()
            handlers.discard(task)

    server = await asyncio.start_server(handle, host, 0)
    state.port = int(server.sockets[0].getsockname()[1])
    watchdog = asyncio.get_running_loop().call_later(lifetime, server.close)
    try:
        yield state
    finally:
        watchdog.cancel()
        server.close()
        for task in list(handlers):  # before wait_closed: from 3.12 it waits for open connections
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@contextlib.contextmanager
def fake_server_thread(
    behaviour: Behaviour, *, host: str = "127.0.0.1", lifetime: float = 30.0
) -> Iterator[FakeServer]:
    """`fake_server` on its own event loop in a daemon thread."""
    ready = threading.Event()
    box: list[tuple[FakeServer, asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        stop = asyncio.Event()
        async with fake_server(behaviour, host=host, lifetime=lifetime) as state:
            box.append((state, asyncio.get_running_loop(), stop))
            ready.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lifetime):
                    await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(5.0):
        raise RuntimeError("fake server did not start")
    state, loop, stop = box[0]
    try:
        yield state
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5.0)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on just now (for `refused`, or for servers that need a number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def blackhole(host: str = "127.0.0.1") -> Iterator[int]:
    """A port whose connects hang: a listener that never accepts, its one-slot queue kept full.

    Linux drops a SYN when the accept queue is full, so the next connect sees no answer
    at all, as with a host that is down; this gives a real `timeout-connect` on loopback.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind((host, 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(16):
            filler = socket.socket(family, socket.SOCK_STREAM)
            filler.settimeout(0.2)
            try:
                filler.connect((host, port))
            except TimeoutError:
                filler.close()
                break
            fillers.append(filler)
        else:
            raise RuntimeError("could not fill the accept queue: connects never hang here")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()

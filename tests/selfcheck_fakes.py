"""Real loopback peers for the self-check tests: a DNS resolver, a probe listener, HTTP echo services.

Each runs on the test's own event loop, on 127.0.0.1 with an ephemeral port, and is closed
when its `async with` block ends; a server told to hang holds a connection at most HANG_MAX
seconds, so a stuck test cannot leave one behind.

    async with fake_resolver({("ns1.example.test.", "A"): ["127.0.0.3"]}) as resolver:
        published = await resolve_published("ns1.example.test.", [resolver.address], 1.0)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import dns.exception
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dynmx.selfcheck.nonce import NonceBook, has_label

LOCAL = "127.0.0.1"
HANG_MAX = 10.0  # seconds a hanging HTTP fake keeps a connection open
HEAD_MAX = 16 * 1024  # bytes of request head an HTTP fake reads before it answers


# -- DNS: a resolver that answers from a table -----------------------------------------------


@dataclass
class FakeResolver(asyncio.DatagramProtocol):
    """Answers (name, type) from `records`; an unknown name is NXDOMAIN, a known one without the type NODATA.

    `mode` "silent" answers nothing (the asker times out); "servfail" answers SERVFAIL to all.
    """

    records: dict[tuple[str, str], list[str]]
    mode: str = "answer"
    port: int = 0
    queries: list[tuple[str, str]] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (LOCAL, self.port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # not a registered subclass

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        question = query.question[0]
        name, rdtype = question.name.to_text().lower(), dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if self.mode == "silent" or self.transport is None:
            return
        response = dns.message.make_response(query)
        known = {key_name.lower() for key_name, _ in self.records}
        if self.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name not in known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif texts := self.records.get((name, rdtype)):
            response.answer.append(dns.rrset.from_text_list(name, 60, dns.rdataclass.IN, rdtype, texts))
        self.transport.sendto(response.to_wire(), addr)


@contextlib.asynccontextmanager
async def fake_resolver(
    records: dict[tuple[str, str], list[str]], mode: str = "answer"
) -> AsyncIterator[FakeResolver]:
    """A FakeResolver listening on 127.0.0.1 (ephemeral port) for the block's duration."""
    loop = asyncio.get_running_loop()
    resolver = FakeResolver(
        {(name.lower(), rdtype): texts for (name, rdtype), texts in records.items()}, mode
    )
    transport, _ = await loop.create_datagram_endpoint(lambda: resolver, local_addr=(LOCAL, 0))
    resolver.port = transport.get_extra_info("sockname")[1]
    try:
        yield resolver
    finally:
        transport.close()


# -- DNS: the server's own listener, as far as probes are concerned -------------------------------


@dataclass
class ProbeListener(asyncio.DatagramProtocol):
    """Hands every `_selfcheck` query to `book.arrived`, as the engine does; `drop` loses them (hairpin)."""

    book: NonceBook
    drop: bool = False
    port: int = 0
    received: list[str] = field(default_factory=list)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            qname = dns.message.from_wire(data).question[0].name.to_text()
        except (dns.exception.DNSException, IndexError):
            return
        self.received.append(qname)
        if has_label(qname) and not self.drop:
            self.book.arrived(qname)


@contextlib.asynccontextmanager
async def probe_listener(book: NonceBook, host: str = LOCAL, port: int = 0) -> AsyncIterator[ProbeListener]:
    """A ProbeListener on `host` (ephemeral port unless given) for the block's duration."""
    loop = asyncio.get_running_loop()
    listener = ProbeListener(book)
    transport, _ = await loop.create_datagram_endpoint(lambda: listener, local_addr=(host, port))
    listener.port = transport.get_extra_info("sockname")[1]
    try:
        yield listener
    finally:
        transport.close()


# -- HTTP: echo services -------------------------------------------------------------------------


@dataclass
class EchoServer:
    """An HTTP/1.1 server answering every GET with `status` and `body`, or never (`hang`)."""

    body: bytes
    status: int = 200
    content_type: str = "text/plain"
    hang: bool = False
    port: int = 0
    requests: int = 0
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://{LOCAL}:{self.port}/ip"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.handlers.add(task)
        try:
            async with asyncio.timeout(HANG_MAX):
                await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                if self.hang:
                    await asyncio.sleep(HANG_MAX)
                    return
                head = (
                    f"HTTP/1.1 {self.status} Whatever\r\nContent-Type: {self.content_type}\r\n"
                    f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
                )
                writer.write(head.encode("ascii") + self.body)
                await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            if task is not None:
                self.handlers.discard(task)


@contextlib.asynccontextmanager
async def echo_server(
    body: str | bytes, status: int = 200, content_type: str = "text/plain", hang: bool = False
) -> AsyncIterator[EchoServer]:
    """An EchoServer on 127.0.0.1 (ephemeral port) for the block's duration."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    server = EchoServer(data, status, content_type, hang)
    listening = await asyncio.start_server(server.handle, LOCAL, 0, limit=HEAD_MAX)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()
        for task in list(server.handlers):  # handlers still hanging end with the block
            task.cancel()

"""Small TCP servers that misbehave on purpose, for probe and prober tests.

A fault a real peer can make is made by a real socket on loopback, not by a mock: each
server listens on 127.0.0.1 (or ::1) with an ephemeral port, serves one behaviour to
every connection, and lives no longer than `lifetime` seconds, so a stuck test cannot
leave one behind.

    async with fake_server(banner("421 busy\\r\\n")) as server:
        result = await run_probe(ProbeSpec("smtp", server.host, server.port))

`fake_server_thread` runs the same server on its own loop in a thread, for code that
probes from elsewhere (sync code, a subprocess). `blackhole` and `free_port` give a port
whose connects hang and a port where nothing listens. For HTTP peers that behave (a
registrar, an RDAP or echo service), `http_server` serves a `QuietHandler` subclass.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http.server
import importlib.util
import random
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

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


# -- mail access servers (IMAP, POP3) and implicit TLS ----------------------------------


async def _commands(server: FakeServer, reader: Reader) -> AsyncIterator[bytes]:
    """Command lines from the peer, CRLF removed, each recorded in `server.received`."""
    while line := await reader.readline():
        command = line.rstrip(b"\r\n")
        server.received.append(command)
        yield command


def imap(
    greeting: str | bytes = "* OK ready\r\n",
    capability: str | bytes = "* CAPABILITY IMAP4rev1\r\n{tag} OK done\r\n",
) -> Behaviour:
    """Send `greeting`, answer CAPABILITY with `capability` ({tag} is the command's tag), LOGOUT
    with BYE and OK, anything else with BAD."""

    async def serve(server: FakeServer, reader: Reader, writer: Writer) -> None:
        writer.write(_bytes(greeting))
        await writer.drain()
        async for command in _commands(server, reader):
            tag, _, verb = command.partition(b" ")
            if verb.upper() == b"CAPABILITY":
                writer.write(_bytes(capability).replace(b"{tag}", tag))
            elif verb.upper() == b"LOGOUT":
                writer.write(b"* BYE logging out\r\n" + tag + b" OK done\r\n")
                await writer.drain()
                return
            else:
                writer.write(tag + b" BAD unknown command\r\n")
            await writer.drain()

    return serve


def pop3(
    greeting: str | bytes = "+OK ready\r\n", capa: str | bytes = "+OK list follows\r\nUSER\r\nUIDL\r\n.\r\n"
) -> Behaviour:
    """Send `greeting`, answer CAPA with `capa`, QUIT with +OK, anything else with -ERR."""

    async def serve(server: FakeServer, reader: Reader, writer: Writer) -> None:
        writer.write(_bytes(greeting))
        await writer.drain()
        async for command in _commands(server, reader):
            verb = command.split(b" ", 1)[0].upper()
            if verb == b"CAPA":
                writer.write(_bytes(capa))
            elif verb == b"QUIT":
                writer.write(b"+OK bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"-ERR unknown command\r\n")
            await writer.drain()

    return serve


def tls(context: ssl.SSLContext, behaviour: Behaviour) -> Behaviour:
    """`behaviour` behind implicit TLS: the handshake comes first, as on ports 993, 995 and 465."""

    async def serve(server: FakeServer, reader: Reader, writer: Writer) -> None:
        await writer.start_tls(context)
        await behaviour(server, reader, writer)

    return serve


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context for `cert` and `key`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def certificate(directory: Path, days: float, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate that expires in `days` (negative: expired that long ago).

    `openssl ca` is used because it takes explicit start and end dates (OpenSSL 3.0's
    `req -x509 -days` refuses days <= 0); else `cryptography`; else the test is skipped.
    """
    import pytest  # here, so that importing the fakes does not need pytest

    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    end = now + datetime.timedelta(days=days)
    start = min(now - datetime.timedelta(hours=1), end - datetime.timedelta(days=1))
    cert, key = directory / f"{name}-{days:g}.crt", directory / f"{name}-{days:g}.key"
    if shutil.which("openssl"):
        _openssl_certificate(directory, cert, key, name, start, end)
    elif importlib.util.find_spec("cryptography") is not None:
        _cryptography_certificate(cert, key, name, start, end)
    else:
        pytest.skip("neither openssl nor cryptography is available to make a certificate")
    return cert, key


def _openssl_certificate(
    directory: Path, cert: Path, key: Path, name: str, start: datetime.datetime, end: datetime.datetime
) -> None:
    ca = directory / f"ca-{cert.stem}"
    ca.mkdir()
    (ca / "index.txt").write_text("")
    (ca / "serial").write_text("01\n")
    (ca / "ca.cnf").write_text(
        "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n"
        "default_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n"
    )
    request = ca / "request.csr"

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=ca, check=True, capture_output=True, timeout=30)

    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(request), "-subj", f"/CN={name}")  # fmt: skip
    openssl("ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", str(key), "-in", str(request),
            "-out", str(cert), "-notext", "-startdate", start.strftime("%Y%m%d%H%M%SZ"),
            "-enddate", end.strftime("%Y%m%d%H%M%SZ"))  # fmt: skip


def _cryptography_certificate(
    cert: Path, key: Path, name: str, start: datetime.datetime, end: datetime.datetime
) -> None:
    from cryptography import x509  # type: ignore[import-not-found,unused-ignore]
    from cryptography.hazmat.primitives import hashes, serialization  # type: ignore[import-not-found,unused-ignore]
    from cryptography.hazmat.primitives.asymmetric import ec  # type: ignore[import-not-found,unused-ignore]
    from cryptography.x509.oid import NameOID  # type: ignore[import-not-found,unused-ignore]

    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert.write_bytes(built.public_bytes(serialization.Encoding.PEM))


# -- well-behaved HTTP peers -------------------------------------------------------------


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler for `http_server` that logs nothing (pytest would show each request)."""

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        """Answer with `status`, `headers` in order, Content-Length and `body`."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server for `handler` on 127.0.0.1; yields its port.

    It is shut down and its thread joined on the way out, so no test leaves a listener behind.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

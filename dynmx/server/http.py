"""HTTP listeners on a stdlib server in threads: the control listener (/metrics, /status,
/reload, ...), the dyndns2 listener (/nic/update) and the local control socket.

They stay off the event loop so that a slow scrape never delays a DNS reply; handlers
that must touch loop state are given a thread-safe callable by the app. The same server
also listens on a unix socket (`ControlHttp.unix`): the local control channel, whose
file mode (0600, made in a private directory and moved into place) is its authorization,
as knotc's socket is.

Bounds, so that nobody who can connect can exhaust threads or descriptors:

* at most `Limits.max_connections` connections are served at once (one thread each),
  at most `Limits.max_per_source` of them from one address (an IPv6 client: its /64), so
  one client cannot take every slot; a connection over a cap is closed as soon as it is
  accepted;
* a request (TLS handshake, request line, headers and body) must arrive within
  `Limits.timeout` seconds of the connection, however slowly it trickles in, and each
  write of the reply must complete within as long; one request per connection (HTTP/1.0);
* a client's fault (a reset, a timeout, a TLS error, a request cut short) is one log line
  at DEBUG and a count, never a traceback.

A `Guard` sees each request before its body is read and may refuse it (the control
listener's token, Host and Origin checks live in `dynmx.app.control`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import ipaddress
import logging
import os
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dynmx.server.bind import naming

log = logging.getLogger("dynmx.server.http")

MAX_BODY = 4 * 1024 * 1024  # octets of a request body (a new zone's text, an UPDATE message)
SHUTDOWN_POLL = 0.1  # seconds `close` may wait for the accept loop to notice
SUN_PATH_MAX = 100  # octets: sun_path holds 108, with the terminating NUL
DISCARD_BODY = 64 * 1024  # octets of a refused request's body read before answering
BACKLOG = 128  # connections the kernel queues before they are accepted
FULL_LOG_INTERVAL = 10.0  # seconds between two `event=http-connections-full` lines

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


class _DeadlineReader(io.RawIOBase):
    """Reads from a socket until a deadline: each receive may wait only for what is left."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request not complete in time")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class _Writer(io.BufferedIOBase):
    """Writes all or fails (socket.sendall), as socketserver's own unbuffered writer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


class ControlHttp:
    """Serves `routes[(method, path)]` on host:port (or a unix socket) until `close()`."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: dict[tuple[str, str], Route],
        unix: Path | None = None,
        *,
        name: str = "http",
        limits: Limits | None = None,
        guard: Guard | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.routes = routes
        self.name = name
        self.limits = limits or Limits()  # replaced as a whole on reload; read per connection
        self.guard = guard
        self.tls = tls  # replaced on reload (a renewed certificate); read per connection
        self.counts: Counter[str] = Counter()  # connections_refused, client_faults, status_NNN
        self._lock = threading.Lock()
        self._active = 0
        self._per_source: Counter[str] = Counter()
        self._full_logged = 0.0
        self._full_since = 0
        self.port = 0
        self.httpd: socketserver.BaseServer
        handler = _handler(self)
        if unix is not None:
            self.httpd = _bind_unix(unix, handler, self)
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with naming(host, port, "tcp", name):  # which listener could not be bound
                httpd = _TcpServer((host, port), handler, self, family)
            self.port = int(httpd.server_address[1])
            self.httpd = httpd
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(SHUTDOWN_POLL,), name=f"dynmx-{name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    @classmethod
    def unix(
        cls, path: Path, routes: dict[tuple[str, str], Route], limits: Limits | None = None
    ) -> ControlHttp:
        """Listen on a unix socket at `path` (replacing a stale one), readable by its owner only."""
        return cls("", 0, routes, unix=path, name="control", limits=limits)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def active(self) -> int:
        return self._active

    def snapshot(self) -> dict[str, int]:
        """The counts now (connections_refused, client_faults, status_NNN)."""
        with self._lock:
            return dict(self.counts)

    def count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    # -- the connection cap (called by the server classes below) --------------------------

    def _admit(self, client: object) -> bool:
        source = source_of(client)
        with self._lock:
            limits = self.limits
            if self._active < limits.max_connections and self._per_source[source] < limits.max_per_source:
                self._active += 1
                self._per_source[source] += 1
                return True
            self.counts["connections_refused"] += 1
            self._full_since += 1
            now = time.monotonic()
            if now - self._full_logged < FULL_LOG_INTERVAL:
                return False
            self._full_logged, refused, self._full_since = now, self._full_since, 0
        log.warning(
            "event=http-connections-full listener=%s max=%d max_per_source=%d refused=%d last_source=%s",
            self.name,
            limits.max_connections,
            limits.max_per_source,
            refused,
            source,
        )
        return False

    def _leave(self, client: object) -> None:
        source = source_of(client)
        with self._lock:
            self._active -= 1
            self._per_source[source] -= 1
            if self._per_source[source] <= 0:
                del self._per_source[source]

    def _fault(self, client: object, error: BaseException | None) -> None:
        """A handler ended with an exception: the client's doing (one DEBUG line), else ours."""
        peer = client[0] if isinstance(client, tuple) and client else "local"
        if isinstance(error, OSError | EOFError):  # resets, timeouts, TLS errors, cut-short requests
            self.count("client_faults")
            log.debug("event=http-client-fault listener=%s client=%s error=%r", self.name, peer, str(error))
            return
        log.error("event=http-error listener=%s client=%s", self.name, peer, exc_info=error)


class _Bounded:
    """The cap and the quiet error handling, for the TCP and the unix server alike."""

    outer: ControlHttp

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.outer._admit(client_address):
            self.shutdown_request(request)  # type: ignore[attr-defined]
            return
        try:
            super().process_request(request, client_address)  # type: ignore[misc]
        except BaseException:
            self.outer._leave(client_address)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self.outer._leave(client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.outer._fault(client_address, sys.exc_info()[1])


class _TcpServer(_Bounded, ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], outer: ControlHttp, family: int
    ) -> None:
        self.outer = outer
        self.address_family = family
        super().__init__(address, handler)


class _UnixServer(_Bounded, socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address: str, handler: type[BaseHTTPRequestHandler], outer: ControlHttp) -> None:
        self.outer = outer
        super().__init__(address, handler)


def _handler(outer: ControlHttp) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = "dynmx"
        sys_version = ""

        def setup(self) -> None:
            timeout = outer.limits.timeout
            deadline = time.monotonic() + timeout
            sock: socket.socket = self.request
            sock.settimeout(timeout)
            context = outer.tls
            if context is not None:
                wrapped = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                try:
                    wrapped.do_handshake()  # bounded as a whole by the timeout (CPython's deadline)
                except BaseException:
                    wrapped.close()
                    raise
                sock = wrapped
            self.connection = sock
            self.rfile = io.BufferedReader(_DeadlineReader(sock, deadline))
            self.wfile = _Writer(sock)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                if isinstance(self.connection, ssl.SSLSocket):
                    self.connection.close()  # the plain socket handed over its descriptor

        def _serve(self, method: str) -> None:
            path, _, query = self.path.partition("?")
            peer = self.client_address
            local = ""
            if outer.port:
                with contextlib.suppress(OSError):
                    local = str(self.connection.getsockname()[0])
            request = Request(
                query,
                {k.lower(): v for k, v in self.headers.items()},
                peer[0] if isinstance(peer, tuple) else "local",
                b"",
                method,
                path,
                local,
                outer.port,
            )
            response = outer.guard(request) if outer.guard is not None else None
            if response is not None:
                self._discard_body()
            else:
                response = self._route(request)
                if response is None:
                    return  # the request was cut short: nothing to answer
            self._send(response)

        def _discard_body(self) -> None:
            """Read a small refused body, so that closing the connection does not reset it
            before the client has read the refusal (a large one is left: the reset may come)."""
            with contextlib.suppress(ValueError, OSError):
                length = int(self.headers.get("Content-Length") or 0)
                if 0 < length <= DISCARD_BODY:
                    self.rfile.read(length)

        def _route(self, request: Request) -> Response | None:
            route = outer.routes.get((request.method, request.path))
            if route is None:
                allowed = any(p == request.path for (_, p) in outer.routes)
                return (405 if allowed else 404), "text/plain", b"not found\n"
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return 400, "text/plain", b"bad Content-Length\n"
            if not 0 <= length <= MAX_BODY:
                return 413, "text/plain", f"at most {MAX_BODY} octets\n".encode()
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                self.close_connection = True
                outer._fault(self.client_address, EOFError(f"body cut short at {len(body)} of {length}"))
                return None
            try:
                return route(dataclasses.replace(request, body=body))
            except Exception:
                log.exception("event=http-error listener=%s path=%s", outer.name, request.path)
                return 500, "text/plain", b"internal error\n"

        def _send(self, response: Response) -> None:
            status, ctype, body = response[0], response[1], response[2]
            extra = response[3] if len(response) == 4 else {}
            outer.count(f"status_{status}")
            self.connection.settimeout(outer.limits.timeout)  # each write of the reply
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: object) -> None:
            log.debug("event=http-request listener=" + outer.name + " " + format, *args)

    return _Handler


def _bind_unix(path: Path, handler: type[BaseHTTPRequestHandler], outer: ControlHttp) -> _UnixServer:
    """Bind in a private directory, then move the socket into place: nobody else can ever
    connect to it, not even between the bind and a chmod."""
    private = Path(tempfile.mkdtemp(prefix=".control-", dir=path.parent))
    try:
        with socket_address(private / "s") as address:
            server = _UnixServer(address, handler, outer)
        os.chmod(private / "s", 0o600)
        os.replace(private / "s", path)
    finally:
        with contextlib.suppress(OSError):
            (private / "s").unlink()
        private.rmdir()
    return server


@contextlib.contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """`path` as a unix socket address while the block runs: a long one (over the 108 octets
    of sun_path) is reached through a descriptor of its directory."""
    text = str(path)
    if len(text.encode()) < SUN_PATH_MAX:
        yield text
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)

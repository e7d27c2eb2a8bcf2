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
listener's token, Host and Origin checks live in `dynmx.app.guard`).

This module holds the listeners and their connection caps; one request is read and
answered in `http_handler`, and what a route sees and returns is in `http_request`.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dynmx.server.bind import naming
from dynmx.server.http_handler import _handler
from dynmx.server.http_request import Guard, Limits, Request, Response, Route, source_of

# The listener as the app knows it: these names are its, wherever they are defined.
__all__ = ["ControlHttp", "Guard", "Limits", "Request", "Response", "Route", "socket_address"]

log = logging.getLogger("dynmx.server.http")

SHUTDOWN_POLL = 0.1  # seconds `close` may wait for the accept loop to notice
SUN_PATH_MAX = 100  # octets: sun_path holds 108, with the terminating NUL
BACKLOG = 128  # connections the kernel queues before they are accepted
FULL_LOG_INTERVAL = 10.0  # seconds between two `event=http-connections-full` lines


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

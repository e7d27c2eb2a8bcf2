"""The control HTTP listener (/metrics, /status, /reload) on a stdlib server in a thread.

It stays off the event loop so that a slow scrape never delays a DNS reply; handlers
that must touch loop state are given a thread-safe callable by the app. The same server
also listens on a unix socket (`ControlHttp.unix`): the local control channel, whose
file mode (0600, made in a private directory and moved into place) is its authorization,
as knotc's socket is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("dynmx.server.http")

MAX_BODY = 4 * 1024 * 1024  # octets of a request body (a new zone's text, an UPDATE message)
SHUTDOWN_POLL = 0.1  # seconds `close` may wait for the accept loop to notice
SUN_PATH_MAX = 100  # octets: sun_path holds 108, with the terminating NUL

# A route returns (status, content type, body), optionally with extra headers.
Response = tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Request:
    """What a route may look at: the query string, the headers, the peer's address."""

    query: str
    headers: dict[str, str]
    client: str  # the peer's address; "local" on the unix socket
    body: bytes = b""


Route = Callable[[Request], Response]


class ControlHttp:
    """Serves `routes[(method, path)]` on host:port until `close()`."""

    def __init__(
        self, host: str, port: int, routes: dict[tuple[str, str], Route], unix: Path | None = None
    ) -> None:
        self.routes = routes
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            server_version = "dynmx"

            def _serve(self, method: str) -> None:
                path, _, query = self.path.partition("?")
                route = outer.routes.get((method, path))
                extra: dict[str, str] = {}
                if route is None:
                    allowed = any(p == path for (_, p) in outer.routes)
                    status, ctype, body = (405 if allowed else 404), "text/plain", b"not found\n"
                else:
                    try:
                        length = int(self.headers.get("Content-Length") or 0)
                        if not 0 <= length <= MAX_BODY:
                            self.send_error(413, f"at most {MAX_BODY} octets")
                            return
                        peer = self.client_address
                        request = Request(
                            query,
                            {k.lower(): v for k, v in self.headers.items()},
                            peer[0] if isinstance(peer, tuple) else "local",
                            self.rfile.read(length) if length else b"",
                        )
                        response = route(request)
                    except Exception:
                        log.exception("event=http-error path=%s", path)
                        response = (500, "text/plain", b"internal error\n")
                    status, ctype, body = response[0], response[1], response[2]
                    extra = response[3] if len(response) == 4 else {}
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
                log.debug("event=http-request " + format, *args)

        server_class = ThreadingHTTPServer
        if ":" in host:
            import socket

            class _V6(ThreadingHTTPServer):
                address_family = socket.AF_INET6

            server_class = _V6
        self.handler = _Handler
        self.httpd: socketserver.BaseServer
        self.port = 0
        if unix is not None:
            self.httpd = _bind_unix(unix, _Handler)
        else:
            httpd = server_class((host, port), _Handler)
            httpd.daemon_threads = True
            self.port = int(httpd.server_address[1])
            self.httpd = httpd
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(SHUTDOWN_POLL,), name="dynmx-http", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    @classmethod
    def unix(cls, path: Path, routes: dict[tuple[str, str], Route]) -> ControlHttp:
        """Listen on a unix socket at `path` (replacing a stale one), readable by its owner only."""
        return cls("", 0, routes, unix=path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def _bind_unix(path: Path, handler: type[BaseHTTPRequestHandler]) -> _UnixServer:
    """Bind in a private directory, then move the socket into place: nobody else can ever
    connect to it, not even between the bind and a chmod."""
    private = Path(tempfile.mkdtemp(prefix=".control-", dir=path.parent))
    try:
        with socket_address(private / "s") as address:
            server = _UnixServer(address, handler)
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

"""The control HTTP listener (/metrics, /status, /reload) on a stdlib server in a thread.

It stays off the event loop so that a slow scrape never delays a DNS reply; handlers
that must touch loop state are given a thread-safe callable by the app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("dynmx.server.http")

# A route returns (status, content type, body), optionally with extra headers.
Response = tuple[int, str, bytes] | tuple[int, str, bytes, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Request:
    """What a route may look at: the query string, the headers, the peer's address."""

    query: str
    headers: dict[str, str]
    client: str


Route = Callable[[Request], Response]


class ControlHttp:
    """Serves `routes[(method, path)]` on host:port until `close()`."""

    def __init__(self, host: str, port: int, routes: dict[tuple[str, str], Route]) -> None:
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
                        request = Request(
                            query, {k.lower(): v for k, v in self.headers.items()}, self.client_address[0]
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
        self.httpd = server_class((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="dynmx-http", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""One HTTP request on a listener's connection: read within a deadline, guarded, routed, answered.

A request (TLS handshake, request line, headers and body) must arrive within
`Limits.timeout` seconds of the connection, however slowly it trickles in, and each
write of the reply must complete within as long; one request per connection (HTTP/1.0).
A `Guard` sees each request before its body is read and may refuse it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import socket
import ssl
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from dynmx.server.http_request import Request, Response

if TYPE_CHECKING:
    from dynmx.server.http import ControlHttp

log = logging.getLogger("dynmx.server.http")  # the listener's one logger, whichever part logs

MAX_BODY = 4 * 1024 * 1024  # octets of a request body (a new zone's text, an UPDATE message)
DISCARD_BODY = 64 * 1024  # octets of a refused request's body read before answering


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

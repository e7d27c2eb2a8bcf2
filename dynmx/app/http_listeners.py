"""The control process's HTTP listeners: the control listener (`[http] listen`, guarded by the
token of `state_dir`), the local control socket (the CLI's way to the one owner) and the
dyndns2 endpoint (`[dyndns2]`). A reload moves, opens or closes them as the config says and
keeps the server reachable when a new address cannot be bound.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import ssl
from typing import TYPE_CHECKING

from dynmx.app.guard import control_guard
from dynmx.app.routes import DYNDNS2_PORT, control_routes, dyndns2_routes, local_routes
from dynmx.config import parse_hostport
from dynmx.control.lock import CONTROL_SOCKET
from dynmx.control.token import ensure_token
from dynmx.server.http import ControlHttp, Limits

if TYPE_CHECKING:
    from dynmx.app.root import App

log = logging.getLogger("dynmx.app")


class HttpListeners:
    """The listeners of one server process and what they were opened with."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.http: ControlHttp | None = None
        self.control_socket: ControlHttp | None = None
        self.dyndns2_http: ControlHttp | None = None  # `[dyndns2] listen`
        self.dyndns2_address = ""  # where it listens, as configured
        self._dyndns2_was = ""  # the address it was last opened at (to open it again)
        self.control_token = ""  # STATE_DIR/control.token, read when the control listener opens

    def all(self) -> list[tuple[str, ControlHttp | None]]:
        """Each listener by the name its metrics carry."""
        return [("http", self.http), ("dyndns2", self.dyndns2_http), ("control", self.control_socket)]

    def close(self) -> None:
        """Close every listener (the control socket's file with it)."""
        if self.http is not None:
            self.http.close()
        if self.dyndns2_http is not None:
            self.dyndns2_http.close()
        if self.control_socket is not None:
            self.control_socket.close()
            config = self.app.config
            (config.path(config.server.state_dir) / CONTROL_SOCKET).unlink(missing_ok=True)

    async def apply(self, running: str) -> None:
        """A reload: the control listener's limits apply to its next connection and its token
        is read again (removed, a new one is made: how it is rotated); the dyndns2 listener
        follows `[dyndns2]`. When `[http] listen` changed from `running`: close that listener,
        open the new one ("" leaves it closed). A request being answered, the POST /reload
        that asked for this among them, still gets its reply. An address that cannot be
        bound is logged and the previous listener opened again, so the server stays
        reachable; the next reload tries again."""
        await self.apply_dyndns2()
        settings = self.app.config.http
        limits = Limits(settings.max_connections, settings.timeout, settings.max_per_source)
        if self.control_socket is not None:
            self.control_socket.limits = limits
        if self.http is not None:
            self.http.limits = limits
            try:
                self.control_token = ensure_token(self.app.config.path(self.app.config.server.state_dir))
            except OSError as error:  # the token in use stays
                log.error("event=control-token-failed error=%r action=kept", str(error))
        wanted = settings.listen
        if wanted == running:
            return
        previous, self.http = self.http, None
        was = parse_hostport(running, 9153)[0] if running else ""
        if previous is not None:  # waits for its accept loop to end, off the event loop
            await asyncio.get_running_loop().run_in_executor(None, previous.close)
            log.info("event=listener-closed proto=http address=%s port=%d", was, previous.port)
        if not wanted:
            return
        host, port = parse_hostport(wanted, 9153)
        try:
            self.open_http(host, port)
        except OSError as error:
            log.error("event=listen-failed proto=http address=%s port=%d error=%r", host, port, str(error))
            kept = dataclasses.replace(self.app.config.http, listen=running)
            self.app.config = dataclasses.replace(self.app.config, http=kept)
            if previous is not None:
                try:
                    self.open_http(was, previous.port)
                except OSError as again:  # taken meanwhile: the control listener stays closed
                    log.error(
                        "event=listen-failed proto=http address=%s port=%d error=%r",
                        was,
                        previous.port,
                        str(again),
                    )

    def open_control_socket(self, loop: asyncio.AbstractEventLoop) -> None:
        """The local control channel in `state_dir`: every route, edits included; the CLI's way
        to the one owner (its file mode, 0600, is the authorization: no token, no guard)."""
        path = self.app.config.path(self.app.config.server.state_dir) / CONTROL_SOCKET
        routes = {**control_routes(self.app, loop), **local_routes(self.app, loop)}
        settings = self.app.config.http
        limits = Limits(settings.max_connections, settings.timeout, settings.max_per_source)
        self.control_socket = ControlHttp.unix(path, routes, limits)
        self.control_socket.start()
        log.info("event=listening proto=control path=%s", path)

    def open_http(self, host: str, port: int) -> None:
        """Open the control HTTP listener (/status, /metrics, POST /reload, ...), guarded by the
        token of `state_dir` (made at its first start), Host and Origin checks."""
        self.control_token = ensure_token(self.app.config.path(self.app.config.server.state_dir))
        settings = self.app.config.http
        self.http = ControlHttp(
            host,
            port,
            control_routes(self.app, asyncio.get_running_loop()),
            limits=Limits(settings.max_connections, settings.timeout, settings.max_per_source),
            guard=control_guard(self.app),
        )
        self.http.start()
        log.info("event=listening proto=http address=%s port=%d", host, self.http.port)

    async def apply_dyndns2(self, starting: bool = False) -> None:
        """Open, move, close or re-certify the dyndns2 listener as `[dyndns2]` says: it runs
        while `enabled` and `listen` are set; its limits apply to the next connection, and
        its certificate files are read again (a renewed certificate needs only a reload).
        At start a failure stops the server; on reload it is logged and what runs is kept
        (a listener moving is opened at its new address before the old one closes, or after
        when they overlap; failing both, the old one is opened again), and the next reload
        tries again."""
        settings = self.app.config.dyndns2
        wanted = settings.listen if settings.enabled else ""
        limits = Limits(settings.max_connections, settings.timeout, settings.max_per_source)
        running = self.dyndns2_http
        try:
            context = self._dyndns2_tls() if wanted else None
        except OSError as error:  # ssl.SSLError among them
            if starting:
                raise
            log.error("event=dyndns2-tls-failed cert=%s error=%r action=kept", settings.tls_cert, str(error))
            if running is not None:
                running.limits = limits
            return
        if running is not None and wanted == self.dyndns2_address:
            running.limits, running.tls = limits, context
            return
        if starting:  # nothing runs yet: a failure stops the server
            if wanted:
                self._start_dyndns2(self._dyndns2_listener(wanted, limits, context), wanted)
            return
        fresh = self._try_dyndns2(wanted, limits, context, quiet=running is not None) if wanted else None
        if running is not None:
            self.dyndns2_http, self.dyndns2_address = None, ""
            await asyncio.get_running_loop().run_in_executor(None, running.close)
            log.info("event=listener-closed proto=dyndns2 port=%d", running.port)
            if wanted and fresh is None:  # the two addresses overlap: the new one is free now
                fresh = self._try_dyndns2(wanted, limits, context)
                if fresh is None:  # back where it was, unless that was taken meanwhile
                    was = self._dyndns2_was
                    wanted = was.rsplit(":", 1)[0] + f":{running.port}" if was.count(":") else was
                    fresh = self._try_dyndns2(wanted, running.limits, running.tls)
        if fresh is not None:
            self._start_dyndns2(fresh, wanted)

    def _dyndns2_listener(self, address: str, limits: Limits, context: ssl.SSLContext | None) -> ControlHttp:
        """The dyndns2 listener bound at `address` (not started): /nic/update and nothing else."""
        host, port = parse_hostport(address, DYNDNS2_PORT)
        routes = dyndns2_routes(self.app, asyncio.get_running_loop())
        return ControlHttp(host, port, routes, name="dyndns2", limits=limits, tls=context)

    def _try_dyndns2(
        self, address: str, limits: Limits, context: ssl.SSLContext | None, quiet: bool = False
    ) -> ControlHttp | None:
        try:
            return self._dyndns2_listener(address, limits, context)
        except OSError as error:
            if not quiet:
                log.error("event=listen-failed proto=dyndns2 address=%s error=%r", address, str(error))
            return None

    def _start_dyndns2(self, listener: ControlHttp, address: str) -> None:
        listener.start()
        self.dyndns2_http, self.dyndns2_address, self._dyndns2_was = listener, address, address
        host = parse_hostport(address, DYNDNS2_PORT)[0]
        scheme = "https" if listener.tls is not None else "http"
        log.info("event=listening proto=dyndns2 address=%s port=%d scheme=%s", host, listener.port, scheme)
        if listener.tls is None and not ipaddress.ip_address(host).is_loopback:
            log.warning(
                "event=dyndns2-plaintext address=%s port=%d"
                " reason='basic-auth passwords cross the network readable: set tls_cert and tls_key'",
                host,
                listener.port,
            )

    def _dyndns2_tls(self) -> ssl.SSLContext | None:
        """The dyndns2 listener's TLS context from `tls_cert`/`tls_key` (read now), or None."""
        settings = self.app.config.dyndns2
        if not settings.tls_cert:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        config = self.app.config
        context.load_cert_chain(config.path(settings.tls_cert), config.path(settings.tls_key))
        return context

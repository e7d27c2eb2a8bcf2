"""The CLI's one way to a running server: its control socket, else its HTTP control listener.

The local control socket (`STATE_DIR/control.sock`) takes every request, edits included;
the `[http] listen` address (or `--http`) serves the rest. The address is read by the
same parser the server binds with, so `listen = "127.0.0.1"` means port 9153 here too.
Over the HTTP listener each request carries the server's token (`Authorization: Bearer`),
read from `STATE_DIR/control.token` of the config, or from the file `DYNMX_TOKEN_FILE`
names (a copy on another machine); the socket needs none, its file mode authorizes.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynmx.config import Config
from dynmx.config_values import parse_hostport
from dynmx.control.lock import CONTROL_SOCKET
from dynmx.control.token import read_token, token_path
from dynmx.errors import CommandError
from dynmx.server.http import socket_address

DEFAULT_HTTP_PORT = 9153
TOKEN_ENV = "DYNMX_TOKEN_FILE"  # names the token file when it is not the config's state_dir's


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            with socket_address(self.path) as address:
                sock.connect(address)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {"error": self.text()}
        return value if isinstance(value, dict) else {"value": value}

    def text(self) -> str:
        return self.body.decode(errors="replace").strip()


class ControlClient:
    """Requests to the running server named by a config (and `--http`, which wins)."""

    def __init__(self, config: Config, http_address: str | None = None) -> None:
        self.socket = config.path(config.server.state_dir) / CONTROL_SOCKET
        named = os.environ.get(TOKEN_ENV)
        self.token_file = Path(named) if named else token_path(config.path(config.server.state_dir))
        self.explicit = http_address is not None
        self.http_address = http_address if http_address is not None else config.http.listen

    def url(self) -> str | None:
        """`http://HOST:PORT` of the HTTP control listener; None when it is off."""
        if not self.http_address:
            return None
        try:
            host, port = parse_hostport(self.http_address, DEFAULT_HTTP_PORT)
        except ValueError as error:
            raise CommandError(f"control listener {self.http_address!r}: {error}") from None
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def where(self) -> str:
        return str(self.socket) if self._use_socket() else (self.url() or "nowhere")

    def available(self) -> bool:
        """Whether there is anywhere to send a request (a control socket, or a listener)."""
        return self._use_socket() or bool(self.http_address)

    def _use_socket(self) -> bool:
        return not self.explicit and self.socket.exists()

    def _token(self) -> str | None:
        """The token to send to the HTTP listener; None when there is none to read (a route
        that needs one then answers 401, which `request` explains)."""
        try:
            return read_token(self.token_file)
        except FileNotFoundError:
            return None
        except PermissionError as error:
            raise CommandError(
                f"cannot read the control token: {error}: run this as the user the server runs as"
            ) from None
        except OSError as error:
            raise CommandError(f"cannot read the control token {self.token_file}: {error}") from None

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: bytes = b"",
        timeout: float = 30.0,
        local: bool = False,
    ) -> Reply:
        """One request; `local` ones (edits) only go over the control socket."""
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        if self._use_socket():
            connection: http.client.HTTPConnection = _UnixConnection(self.socket, timeout)
            where = str(self.socket)
        elif local:
            raise CommandError(
                f"no running server owns {self.socket.parent} ({self.socket.name} is missing):"
                " start one, or edit offline (--offline) while none runs"
            )
        else:
            url = self.url()
            if url is None:
                raise CommandError(
                    f"no running server: {self.socket} does not exist and there is no control"
                    " listener ([http] listen in the config, or --http HOST:PORT)"
                )
            parsed = urllib.parse.urlsplit(url)
            connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=timeout)
            where = url
        headers = {"Content-Type": "application/octet-stream"} if body else {}
        token = None if isinstance(connection, _UnixConnection) else self._token()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            connection.request(method, target, body=body or None, headers=headers)
            response = connection.getresponse()
            reply = Reply(response.status, response.read())
        except PermissionError:
            raise CommandError(
                f"{where}: permission denied: run this as the user the server runs as"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            raise CommandError(f"cannot reach the server at {where}: {error}") from None
        finally:
            connection.close()
        if reply.status == 401 and not isinstance(connection, _UnixConnection):
            found = "was refused" if token is not None else f"is missing ({self.token_file})"
            raise CommandError(
                f"{where}: 401: the control token {found}: give the server's config (--config), whose"
                f" state_dir holds {self.token_file.name}, or name a copy in {TOKEN_ENV}"
            )
        return reply

    def checked(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: bytes = b"",
        timeout: float = 30.0,
        local: bool = False,
    ) -> Reply:
        """`request`, with an error status turned into a CommandError carrying the server's words."""
        reply = self.request(method, path, query, body, timeout, local)
        if reply.status >= 400:
            raise CommandError(f"{path}: {reply.text() or reply.status}")
        return reply

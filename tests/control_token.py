"""The control listener's token for tests that call it directly, as an operator's script would
(`Authorization: Bearer $(cat STATE_DIR/control.token)`)."""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

from tests.conftest import RunningServer

CONTROL_SOCKET = re.compile(r"event=listening proto=control path=(\S+)")


def state_dir(server: RunningServer) -> Path | None:
    """The server's state_dir, from the line that names its control socket (logged before
    `event=serving`); None for a server without one (from before the control socket)."""
    for line in server.lines:
        match = CONTROL_SOCKET.search(line)
        if match is not None:
            return Path(match.group(1)).parent
    return None


def token_file(server: RunningServer) -> Path:
    found = state_dir(server)
    assert found is not None, "the server named no control socket"
    return found / "control.token"


def auth(server: RunningServer) -> dict[str, str]:
    """The header that authorizes a request to the server's control listener (none when the
    server made no token: a server from before tokens, for checking a test against it)."""
    found = state_dir(server)
    path = found / "control.token" if found is not None else None
    return {"Authorization": "Bearer " + path.read_text().strip()} if path and path.exists() else {}


def authorized(server: RunningServer, path: str, method: str = "GET") -> urllib.request.Request:
    """A request for `path` (with its query) on the control listener, carrying the token."""
    url = f"http://127.0.0.1:{server.http_port}{path}"
    return urllib.request.Request(url, method=method, headers=auth(server))


def token_env(server: RunningServer) -> dict[str, str]:
    """The environment for a CLI run with `--http` and no config: DYNMX_TOKEN_FILE names the token."""
    return {**os.environ, "DYNMX_TOKEN_FILE": str(token_file(server))}

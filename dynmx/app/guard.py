"""Who may use the TCP control listener (`control_guard`), in the order it checks:

* an `Origin` header that is not the listener's own origin is refused (403): a web page
  on another site is not an operator (CSRF);
* a `Host` that is neither the listener's own address, a loopback address, `localhost`
  nor one of `[http] allowed_hosts` is refused (403): a page whose name was rebound to
  this address must not read what it answers (DNS rebinding); /nic/update is exempt (a
  router names the server as it likes; its password protects it);
* /metrics is open (Prometheus scrapes it without credentials), /nic/update needs its
  own basic auth, GET /status, /routes and /explain are open when `[http] public_status`;
  everything else (and those, by default) needs `Authorization: Bearer TOKEN` with the
  token of `STATE_DIR/control.token` (401 otherwise), as rndc needs its key.

The local control socket has no guard: its file mode (0600) authorizes, as knotc's does.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING

from dynmx.app.routes import DYNDNS2_PATH
from dynmx.config import HttpConfig
from dynmx.control.token import TOKEN_FILE, bearer_matches
from dynmx.server.http import Guard, Request, Response

if TYPE_CHECKING:
    from dynmx.app.root import App

log = logging.getLogger("dynmx.app.control")

OPEN_PATHS = frozenset({"/metrics"})  # served without the token: Prometheus scrapes it
READ_PATHS = frozenset({"/status", "/routes", "/explain"})  # without it too under `public_status`
REFUSAL_LOG_INTERVAL = 60.0  # seconds between two lines of one kind of refusal


def _text(status: int, body: str) -> Response:
    return status, "text/plain", body.encode() + b"\n"


class _Refusals:
    """One log line per kind of refusal and interval, with the count of those in between."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def note(self, kind: str, request: Request, detail: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._since[kind] = self._since.get(kind, 0) + 1
            if now - self._last.get(kind, -REFUSAL_LOG_INTERVAL) < REFUSAL_LOG_INTERVAL:
                return
            self._last[kind], count = now, self._since.pop(kind)
        log.warning(
            "event=control-refused reason=%s client=%s path=%s%s count=%d",
            kind,
            request.client,
            request.path,
            f" {detail}" if detail else "",
            count,
        )


def control_guard(app: App) -> Guard:
    """The TCP control listener's checks (module docstring); settings read per request, so a
    reload applies them to the next one."""
    refusals = _Refusals()

    def guard(request: Request) -> Response | None:
        settings = app.config.http
        origin = request.headers.get("origin")
        if origin is not None and not _own_origin(origin, request, settings):
            refusals.note("origin", request, f"origin={origin[:100]!r}")
            return _text(403, "cross-origin request refused")
        host = request.headers.get("host")
        if request.path != DYNDNS2_PATH and host is not None and not _allowed_host(host, request, settings):
            refusals.note("host", request, f"host={host[:100]!r}")
            return _text(403, f"Host {host[:100]!r} is not this listener's (add it to [http] allowed_hosts)")
        if request.path in OPEN_PATHS or request.path == DYNDNS2_PATH:
            return None
        if settings.public_status and request.method == "GET" and request.path in READ_PATHS:
            return None
        if bearer_matches(request.headers.get("authorization"), app.listening.control_token):
            return None
        refusals.note("token", request, "")
        body = f"needs the control token: Authorization: Bearer <STATE_DIR/{TOKEN_FILE}>"
        return 401, "text/plain", body.encode() + b"\n", {"WWW-Authenticate": 'Bearer realm="dynmx"'}

    return guard


def _split_host(value: str) -> str:
    """The host of a Host header or URL authority, without port or brackets, lower-case."""
    text = value.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def _allowed_host(value: str, request: Request, settings: HttpConfig) -> bool:
    host = _split_host(value).rstrip(".")
    if host == "localhost" or host in settings.allowed_hosts:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or _same_address(address, request.local)


def _same_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, local: str) -> bool:
    try:
        mine = ipaddress.ip_address(local)
    except ValueError:
        return False
    if isinstance(mine, ipaddress.IPv6Address) and mine.ipv4_mapped is not None:
        mine = mine.ipv4_mapped
    return address == mine


def _own_origin(origin: str, request: Request, settings: HttpConfig) -> bool:
    """Whether `Origin` names this listener: http, an allowed host, its port."""
    parsed = urllib.parse.urlsplit(origin.strip())
    try:
        port = parsed.port or 80
    except ValueError:
        return False
    return (
        parsed.scheme == "http" and port == request.port and _allowed_host(parsed.netloc, request, settings)
    )

"""Tell a supervisor (systemd's `Type=notify`) when the server serves, reloads and stops.

With many zones the process runs long before it answers (minutes at 100,000 zones), so
"started" must mean "serving": units ordered after dynmx, and `systemctl start`, wait for
READY=1. The protocol (sd_notify(3)) is one datagram of `KEY=value` lines to the Unix socket
named in $NOTIFY_SOCKET; without that variable nothing is sent. A few lines of socket code,
so no dependency for it.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("dynmx.server")


def notify(*fields: str) -> bool:
    """Send `fields` (`READY=1`, `STATUS=...`) in one datagram; False when no supervisor
    asked for them or it cannot be reached. Never raises and never blocks: the event loop
    calls it."""
    where = os.environ.get("NOTIFY_SOCKET", "")
    if not where:
        return False
    if where[0] not in "/@":
        log.warning("event=sd-notify-failed socket=%s error=%r", where, "not a Unix socket path")
        return False
    address = "\0" + where[1:] if where[0] == "@" else where  # "@" names the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto("\n".join(fields).encode(), address)
    except OSError as error:
        log.warning("event=sd-notify-failed socket=%s error=%r", where, error.strerror or str(error))
        return False
    return True


def ready(status: str) -> bool:
    return notify("READY=1", f"STATUS={status}")


def reloading() -> bool:
    """systemd 253's `Type=notify-reload` wants the monotonic time with RELOADING=1."""
    return notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", "STATUS=reloading")


def stopping() -> bool:
    return notify("STOPPING=1", "STATUS=stopping")

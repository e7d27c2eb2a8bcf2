"""Who owns a state directory: an exclusive `flock` on `STATE_DIR/dynmx.lock`.

A running server holds it for its lifetime, an offline edit (`dynmx record --offline`,
`dynmx zone add` with no server) for its duration, so two writers never hold the same
zone files and journal. The kernel drops the lock when its holder dies, even by kill -9,
so a crash never leaves a stale lock behind. The file says who holds it (pid and role),
for the message that refuses the second comer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from dynmx.errors import DynmxError

LOCK_FILE = "dynmx.lock"
CONTROL_SOCKET = "control.sock"  # where the owner listens for the CLI (`dynmx.app.routes.local_routes`)
PEEK_GRACE = 1.0  # seconds `holder` may hold a shared lock for its question


class StateDirBusy(DynmxError):
    """Another process owns the state directory."""

    def __init__(self, state_dir: Path, holder: str) -> None:
        self.state_dir = state_dir
        self.holder = holder
        super().__init__(f"{state_dir} is owned by {holder or 'another process'} (it holds {LOCK_FILE})")


class StateLock:
    """The exclusive lock of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, role: str) -> None:
        """Take the lock at once or raise StateDirBusy naming its holder."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
        deadline = time.monotonic() + PEEK_GRACE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read(fd)
                # An empty file is no owner but someone asking who the owner is (`holder`).
                if holder or time.monotonic() > deadline:
                    os.close(fd)
                    raise StateDirBusy(self.state_dir, holder) from None
                time.sleep(0.01)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({role})\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> str | None:
        """Who holds the lock now (`pid N (server)`), or None when nobody does."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read(fd) or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _read(fd: int) -> str:
    with contextlib.suppress(OSError):
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    return ""

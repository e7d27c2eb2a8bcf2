"""The mode and owner a rewritten file keeps: a leaf shared by the zone writer and the CLI's
config edits, so that neither reaches into the other."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

NEW_FILE_MODE = 0o644  # zone data is what the server publishes; NSD and Knot files are so too


def keep_mode(handle: int, path: Path) -> None:
    """Give a new file the mode and owner of the one it replaces (a temp file is 0600): a group
    that could read the file still can."""
    try:
        info = path.stat()
    except FileNotFoundError:
        os.fchmod(handle, NEW_FILE_MODE)
        return
    os.fchmod(handle, info.st_mode & 0o7777)
    with contextlib.suppress(PermissionError):  # not root: the file stays ours, as a hand edit leaves it
        os.fchown(handle, info.st_uid, info.st_gid)

"""The zone directory at a glance: every `*.zone` file's name and stat stamp (mtime, ctime,
size, inode), taken in one pass, to tell a reload that nothing changed since the last scan
without asking anything of each served zone (Knot's `zone-reload` skips a zone whose file's
mtime did not change; NSD's reload reads only changed files).

A glance is trusted only when every file in it last changed at least `RACY_SECONDS` before
the scan it vouches for began (racy-git's rule, as `zonescan` keeps it): a file rewritten with
the same size within one tick of the clock has the same mtime, but a write moves its ctime
too, and a ctime that old cannot hide a later write. A file changed more recently leaves the
glance untrusted: the next reload scans as before (reading what it must), and the one after
can glance again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dynmx.app.zonescan import RACY_SECONDS

_RACY_NS = int(RACY_SECONDS * 1e9)

Stamp = tuple[int, int, int, int]  # mtime_ns, ctime_ns, size, inode


@dataclass(frozen=True, slots=True)
class Glance:
    """The directory as seen once: names in listing order and their stamps, and the newest
    ctime among them (ns since the epoch)."""

    directory: Path
    names: list[str]
    stamps: list[Stamp]
    newest_ns: int


def glance(directory: Path) -> Glance | None:
    """Stat every `*.zone` file of `directory` (None: the directory or a file could not be
    read: let a scan say why). One pass, no file opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)  # each stat relative to it: no path walk
    except OSError:
        return None
    try:
        with os.scandir(fd) as listing:
            entries = [entry for entry in listing if entry.name.endswith(".zone") and entry.is_file()]
        infos = [entry.stat() for entry in entries]
    except OSError:
        return None
    finally:
        os.close(fd)
    stamps = [(info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino) for info in infos]
    # Any write moves the ctime, which nothing sets back (an mtime may be set anywhere).
    newest = max((info.st_ctime_ns for info in infos), default=0)
    return Glance(directory, [entry.name for entry in entries], stamps, newest)


@dataclass(frozen=True, slots=True)
class Scanned:
    """What a reload may skip a scan by: the directory as glanced before (or during) a scan
    that began at `began` (wall clock, s), and what the served state was then."""

    seen: Glance
    began: float
    edits: int  # commits published when the scan began (any since: the files may be behind)
    settings: object  # what else shaped the scan (the size limit): a change of it rescans

    @property
    def trusted(self) -> bool:
        return self.seen.newest_ns <= int(self.began * 1e9) - _RACY_NS


def unchanged_since(scanned: Scanned | None, now: Glance | None, edits: int, settings: object) -> bool:
    """Whether a scan now would find what the last one found: the same files with the same
    stamps, no edit published since, and the same settings; the last glance was trusted."""
    return (
        scanned is not None
        and now is not None
        and scanned.trusted
        and scanned.edits == edits
        and scanned.settings == settings
        and scanned.seen.directory == now.directory
        and scanned.seen.names == now.names
        and scanned.seen.stamps == now.stamps
    )

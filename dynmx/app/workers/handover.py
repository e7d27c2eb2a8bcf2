"""The zones the control process loaded, handed to its answer processes through a file
that has no name.

A worker that parses every zone file itself spends what the control process just spent,
in each worker; unpickling the control process's versions costs a fraction of that.
A file, not the channel:
the channel would hold a copy of every zone per worker in the control process's buffers.
Each zone is pickled on its own, so no pickler memo spans 100,000 zones.

Pickles run code when loaded, so they come only from where no one else can write: the file
is made without a name (`O_TMPFILE` in the state directory, else an unlinked temporary file
there, else `memfd_create`), written, and passed to each worker as an open file descriptor,
as its sockets are. No path is ever opened to read it, so nothing placed in the state
directory (a planted file, a symlink) is read or written. The control process keeps the
descriptor open while the workers run: one started again after a crash is given it too,
takes the versions whose files have not changed since (the scan checks each file's stamp or
bytes, as a reload does) and parses only the others. Each worker maps the file and reads it
from its own offset (the descriptors share one file position).
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import pickle
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.app")


def _anonymous_file(state_dir: Path) -> tuple[IO[bytes], str]:
    """A new read-write file no path leads to, and what kind it is. In the state directory
    first (on disk, as the page cache holds it: it grows with the number of zones), else in
    memory."""
    try:
        return tempfile.TemporaryFile(dir=state_dir), "file"
    except OSError:
        if not hasattr(os, "memfd_create"):
            raise
    return os.fdopen(os.memfd_create("dynmx-handover"), "w+b"), "memfd"


@contextlib.contextmanager
def handed_over(state_dir: Path, zones: dict[Path, LoadedZone]) -> Iterator[int | None]:
    """Write `zones` for the workers about to start; yields the file's descriptor (not
    inheritable: `WorkerPool` passes it to each worker it starts), closed when the context ends.

    Yields None when it cannot be written: the workers then parse the zone files.
    """
    started = time.monotonic()
    try:
        out, kind = _anonymous_file(state_dir)
    except OSError as error:
        log.warning("event=handover-failed error=%r", error.strerror or str(error))
        yield None
        return
    with out:
        try:
            for zone in zones.values():
                pickle.dump(zone, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
        except OSError as error:  # a full disk
            log.warning("event=handover-failed error=%r", error.strerror or str(error))
            written = None
        else:
            written = out.fileno()
            seconds = time.monotonic() - started
            log.info(
                "event=handover-written zones=%d kind=%s bytes=%d seconds=%.3f",
                len(zones),
                kind,
                out.tell(),
                seconds,
            )
        yield written


def taken_over(fd: int) -> dict[Path, LoadedZone]:
    """The zones in the handover file open as `fd` (inherited from the control process), by
    file; none when it cannot be read (the worker then parses the zone files). Closes `fd`."""
    zones: dict[Path, LoadedZone] = {}
    try:
        size = os.fstat(fd).st_size
        if size:
            with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as view:  # an offset of its own
                while view.tell() < size:
                    zone = pickle.load(view)
                    if not isinstance(zone, LoadedZone):
                        raise pickle.UnpicklingError(f"not a zone: {type(zone).__name__}")
                    zones[zone.path] = zone
    except Exception as error:  # whatever a damaged file makes pickle raise: parse the files instead
        log.warning("event=handover-unread error=%r", str(error))
        zones = {}
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return zones

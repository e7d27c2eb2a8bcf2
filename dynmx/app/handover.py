"""The zones the control process loaded, handed to its answer processes through a file.

A worker that parses every zone file itself spends what the control process just spent:
about 1.4 ms of CPU per small zone, 140 s for 100,000 zones, in each worker. Unpickling
the control process's versions costs about 0.4 ms per zone. A file, not the channel:
the channel would hold a copy of every zone per worker in the control process's buffers.
Each zone is pickled on its own, so no pickler memo spans 100,000 zones. Both ends are
this program (the control process writes the file in its own state directory).

The file is kept while the workers run: one started again after a crash takes the
versions whose files have not changed since (the scan checks each file's stamp or
bytes, as a reload does) and parses only the others.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import time
from collections.abc import Iterator
from pathlib import Path

from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.app")

HANDOVER_FILE = "workers-start.zones"


@contextlib.contextmanager
def handed_over(state_dir: Path, zones: dict[Path, LoadedZone]) -> Iterator[Path | None]:
    """Write `zones` for the workers about to start; the file is gone when the context ends.

    Yields None when it cannot be written: the workers then parse the zone files.
    """
    path = state_dir / HANDOVER_FILE
    started = time.monotonic()
    try:
        with path.open("wb") as out:
            for zone in zones.values():
                pickle.dump(zone, out, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError as error:
        log.warning("event=handover-failed file=%s error=%r", path, error.strerror or str(error))
        with contextlib.suppress(OSError):
            path.unlink()
        yield None
        return
    seconds = time.monotonic() - started
    log.info("event=handover-written zones=%d file=%s seconds=%.3f", len(zones), path, seconds)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def taken_over(path: Path) -> dict[Path, LoadedZone]:
    """The zones in a handover file, by file; none when it cannot be read (the worker then
    parses the zone files, as a worker started again later always does)."""
    zones: dict[Path, LoadedZone] = {}
    try:
        with path.open("rb") as source:
            while source.peek(1):
                zone = pickle.load(source)
                if not isinstance(zone, LoadedZone):
                    raise pickle.UnpicklingError(f"not a zone: {type(zone).__name__}")
                zones[zone.path] = zone
    except Exception as error:  # whatever a damaged file makes pickle raise: parse the files instead
        log.warning("event=handover-unread file=%s error=%r", path, str(error))
        return {}
    return zones

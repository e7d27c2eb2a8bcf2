"""Parse many zone files at once, spread over processes when there are many of them.

Parsing is pure Python and holds the GIL: 100,000 small zones take minutes on one core.
Child processes parse and send each zone back pickled, which costs the parent about a
quarter of parsing it. The children come from a fork server, not a fork of the running
server (its threads and sockets stay out of them).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.loader import LoadedZone, parse_zone

log = logging.getLogger("dynmx.zone")

PARALLEL_FROM = 1000  # fewer files parse about as fast here as processes start (a second)
CHUNK = 250  # files per task: small enough to keep every process busy to the end

Parsed = LoadedZone | list[Problem]


def available_cpus() -> int:
    """The CPUs this process may run on (taskset and cgroups included where Linux says so)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_many(
    files: Sequence[tuple[Path, bytes]], processes: int, min_files: int = PARALLEL_FROM
) -> dict[Path, Parsed]:
    """Each file's zone, or its problems. With `processes` > 1 and at least `min_files`
    files, the parsing is spread over that many processes; should they fail to start or
    die, the files are parsed here instead."""
    if processes < 2 or len(files) < min_files:
        return dict(_parse_chunk(files))
    chunks = [files[start : start + CHUNK] for start in range(0, len(files), CHUNK)]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["dynmx.zone.loader"])
    try:
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            return dict(itertools.chain.from_iterable(pool.map(_parse_chunk_list, chunks)))
    except (BrokenProcessPool, OSError) as error:
        log.warning("event=parallel-parse-failed error=%r files=%d fallback=serial", str(error), len(files))
        return dict(_parse_chunk(files))


def _parse_chunk(files: Sequence[tuple[Path, bytes]]) -> Iterator[tuple[Path, Parsed]]:
    for path, data in files:
        try:
            yield path, parse_zone(path, data)
        except ZoneLoadError as error:
            yield path, error.problems


def _parse_chunk_list(files: Sequence[tuple[Path, bytes]]) -> list[tuple[Path, Parsed]]:
    """In a child process: what goes back is pickled, so a list, not a generator."""
    return list(_parse_chunk(files))

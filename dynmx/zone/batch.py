"""Parse many zone files at once, spread over processes when there are many of them, and
check large files in a process of their own before a running server parses them.

Parsing is pure Python and holds the GIL: 100,000 small zones take minutes on one core.
Child processes parse and send each zone back pickled, which costs the parent about a
quarter of parsing it. The children come from a fork server, not a fork of the running
server (its threads and sockets stay out of them).

A large file costs many times its size in memory while it is parsed, and CPU in
proportion: parsed by a running server, a refused file would hold its GIL (answers to
other zones wait) and leave it larger for nothing. `check_apart` reads and parses such a
file in a child that exits after it and sends back only its problems (at most
`MAX_PROBLEMS` and a count), so a bad one costs the server nothing. A good one is then
parsed by the server itself: receiving the zone pickled from the child costs more memory
and time than parsing it.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.filebytes import read_zone_bytes
from dynmx.zone.limits import DEFAULT_MAX_FILE_SIZE
from dynmx.zone.loader import LoadedZone, parse_zone

log = logging.getLogger("dynmx.zone")

PARALLEL_FROM = 1000  # fewer files parse about as fast here as processes start (a second)
APART_FROM = 1 << 20  # bytes: a running server checks a file this large in a child first
CHUNK = 250  # files per task: small enough to keep every process busy to the end

Parsed = LoadedZone | list[Problem]


def available_cpus() -> int:
    """The CPUs this process may run on (taskset and cgroups included where Linux says so)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_many(
    files: Sequence[tuple[Path, bytes]],
    processes: int,
    min_files: int = PARALLEL_FROM,
    chunk: Callable[[Sequence[tuple[Path, bytes]]], list[tuple[Path, Any]]] | None = None,
) -> dict[Path, Any]:
    """Each file's zone, or its problems. With `processes` > 1 and at least `min_files`
    files, the parsing is spread over that many processes; should they fail to start or
    die, the files are parsed here instead. `chunk` (a module-level function, so that a
    process can be handed it) parses a list of files instead of `parse_zone`, and says
    what each file gives."""
    parse = _parse_chunk_list if chunk is None else chunk
    if processes < 2 or len(files) < min_files:
        return dict(parse(files))
    chunks = [files[start : start + CHUNK] for start in range(0, len(files), CHUNK)]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["dynmx.zone.loader", parse.__module__])
    try:
        with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
            return dict(itertools.chain.from_iterable(pool.map(parse, chunks)))
    except (BrokenProcessPool, OSError) as error:
        log.warning("event=parallel-parse-failed error=%r files=%d fallback=serial", str(error), len(files))
        return dict(parse(files))


def check_apart(
    paths: Sequence[Path], processes: int = 1, max_size: int = DEFAULT_MAX_FILE_SIZE
) -> dict[Path, list[Problem]]:
    """Each file's problems (none: it loads), each file read and parsed by a process of its
    own (up to `processes` at once) that exits when it is done, so what parsing took goes
    back to the system. A plain child (`python -m dynmx.zone.batch`), not the fork server's
    or a pool's: nothing stays behind (a fork server and a pool's resource tracker would
    stay, one each per worker process), and its start is little beside the parse."""
    if not paths:
        return {}
    with ThreadPoolExecutor(max(1, min(processes, len(paths)))) as waiting:
        return dict(zip(paths, waiting.map(lambda path: _checked(path, max_size), paths), strict=True))


def _checked(path: Path, max_size: int) -> list[Problem]:
    """The problems a child process finds in `path`. One that cannot start, or fails on its
    own, refuses nothing: the caller parses the file itself, as it would have. One killed (out
    of memory, most likely) refuses the file: the server could not have parsed it either."""
    command = [sys.executable, "-m", "dynmx.zone.batch", "--check", str(max_size), str(path)]
    try:
        done = subprocess.run(command, capture_output=True, check=False)
    except OSError as error:
        log.warning("event=apart-check-failed file=%s error=%r fallback=here", path, str(error))
        return []
    try:
        if done.returncode == 0:
            return [Problem(str(path), int(line), str(reason)) for line, reason in json.loads(done.stdout)]
    except (ValueError, TypeError):
        pass
    if done.returncode < 0:
        how = signal.strsignal(-done.returncode) or f"signal {-done.returncode}"
        log.error("event=apart-check-killed file=%s signal=%d", path, -done.returncode)
        reason = f"not loaded: the process checking it was killed ({how}; out of memory?)"
        return [Problem(str(path), 0, reason)]
    said = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"status {done.returncode}"]
    log.warning("event=apart-check-failed file=%s error=%r fallback=here", path, said[0])
    return []


def _problems_of(path: Path, max_size: int) -> list[Problem]:
    """In the child process: the file's problems; the zone itself is thrown away."""
    try:
        parse_zone(path, read_zone_bytes(path, max_size))
    except ZoneLoadError as error:
        return error.problems
    return []


def _parse_chunk(files: Sequence[tuple[Path, bytes]]) -> Iterator[tuple[Path, Parsed]]:
    for path, data in files:
        try:
            yield path, parse_zone(path, data)
        except ZoneLoadError as error:
            yield path, error.problems


def _parse_chunk_list(files: Sequence[tuple[Path, bytes]]) -> list[tuple[Path, Parsed]]:
    """In a child process: what goes back is pickled, so a list, not a generator."""
    return list(_parse_chunk(files))


def _check_main(argv: list[str]) -> int:
    """`python -m dynmx.zone.batch --check MAX_SIZE FILE`: the file's problems as JSON
    `[[line, reason], ...]` on stdout (the file is the one named)."""
    if len(argv) != 3 or argv[0] != "--check":
        print("usage: python -m dynmx.zone.batch --check MAX_SIZE FILE", file=sys.stderr)
        return 2
    problems = _problems_of(Path(argv[2]), int(argv[1]))
    json.dump([[problem.line, problem.reason] for problem in problems], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(_check_main(sys.argv[1:]))

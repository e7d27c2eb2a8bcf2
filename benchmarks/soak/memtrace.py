"""Run a module (dynmx) with a memory watcher thread beside it; memwatch.py launches dynmx through this.

    python benchmarks/soak/memtrace.py DIR [--frames N] [--every S] -m dynmx serve ARGS...

`--frames N` (N > 0) starts tracemalloc with N frames per trace before the module is
imported; 0 (the default) leaves it off, so the other figures come without its cost.
The watcher thread polls DIR every 0.1 s for `req-<k>.json` ({"label": ..., "collect":
bool, "trim": bool}) and answers with `rep-<k>.json`, and, when tracing, the snapshot
`snap-<k>.tm` (`tracemalloc.Snapshot.load` reads it). With `--every S` it also writes a
report `auto-<n>.json` every S seconds by itself. A report holds:

* VmRSS/VmHWM from /proc/self/status, read first (before anything here allocates);
* tracemalloc's traced current bytes, the peak since the previous report (the transient
  high-water of the step in between) and its own overhead, when tracing;
* glibc `mallinfo2()`: heap arena bytes, mmapped bytes, in use, free (held, not returned);
* pymalloc's `sys._debugmallocstats()` totals (arenas, bytes in used/free blocks, pools);
  absent while tracing: tracemalloc hooks the allocator and Python prints no pymalloc table;
* `sys.getallocatedblocks()`, `gc.get_count()`, `gc.get_stats()`, thread count;
* a census of gc-tracked objects by type (module.qualname -> count);
* the bounded caches of a running dynmx, found through the gc: the slow-path LRU
  (`Engine._lru`, which also holds each zone's NXDOMAIN per qname length), the `_heads` lru_cache,
  `ClientRules._cache`, the table's entry count, and how many tables are alive.

`collect` first collects with `gc.DEBUG_SAVEALL` to report the cyclic garbage (types, and
the code of the frames and functions in it), then runs `gc.collect()` (RSS before and
after); `trim` calls
glibc `malloc_trim(0)` last and reports RSS after it: what drops then was free memory
glibc held, not live data. It looks only at its own process. Not a test.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import json
import os
import re
import runpy
import sys
import threading
import time
import tracemalloc
import weakref
from collections import Counter
from pathlib import Path

POLL = 0.1  # seconds between looks for a request
MAX_SECONDS = 4 * 3600  # the watcher gives up after this long (the benchmarks run minutes)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


LIBC = _libc()


def status_kib() -> dict[str, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "VmData"):
            found[key] = int(value.split()[0])
    return found


def mallinfo() -> dict[str, int]:
    if LIBC is None or not hasattr(LIBC, "mallinfo2"):
        return {}
    LIBC.mallinfo2.restype = _MallInfo2
    info = LIBC.mallinfo2()
    return {name: int(getattr(info, name)) for name, _ in _MallInfo2._fields_}


def pymalloc_stats(scratch: Path) -> dict[str, int]:
    """The totals of `sys._debugmallocstats()` (it writes to C stderr: fd 2 is pointed at a file)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with scratch.open("w+") as out:
            os.dup2(out.fileno(), 2)
            try:
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
            out.seek(0)
            text = out.read()
    finally:
        os.close(saved)
    found: dict[str, int] = {}
    for line in text.splitlines():
        if "event=" in line:  # a log line of another thread that came through in the window
            sys.stderr.write(line + "\n")
            continue
        match = re.match(r"^(#?\s*[A-Za-z][\w #/.()-]*?)\s*=\s*([\d,]+)\s*$", line)
        if match:
            key = match.group(1).strip("# ").strip()
            if key not in found:  # the first "Total" is pymalloc's, the second the arena map's
                found[key] = int(match.group(2).replace(",", ""))
        match = re.match(r"^(\d+) (unused pools|arenas) \* (\d+) bytes", line.strip())
        if match:
            found[f"{match.group(2)} bytes"] = int(match.group(1)) * int(match.group(3))
    return found


def caches(objects: list[object]) -> dict[str, object]:
    """Sizes of dynmx's bounded caches and of what a leak would keep: found among gc objects."""
    by_name: dict[str, list[object]] = {}
    wanted = {"Engine", "AnswerTable", "ClientRules", "HealthMonitor", "App"}
    for obj in objects:
        name = type(obj).__name__
        if name in wanted and type(obj).__module__.startswith("dynmx."):
            by_name.setdefault(name, []).append(obj)
    found: dict[str, object] = {name: len(objs) for name, objs in sorted(by_name.items())}
    engines = by_name.get("Engine", [])
    found["engine_lru"] = [len(getattr(e, "_lru", ())) for e in engines]
    found["engine_lru_size"] = [getattr(e, "lru_size", None) for e in engines]
    served = [getattr(e, "table", None) for e in engines]
    found["served_entries"] = [len(t.entries) for t in served if t is not None]
    found["client_rules_cache"] = [len(getattr(r, "_cache", ())) for r in by_name.get("ClientRules", [])]
    response = sys.modules.get("dynmx.wire.response")
    heads = getattr(response, "_heads", None)
    if heads is not None:
        found["heads_cache"] = heads.cache_info()._asdict()
    return found


def garbage() -> dict[str, object]:
    """What only a cycle kept alive: the cyclic garbage now, by type, and where its frames and
    functions come from (an exception's traceback holding a frame is the usual cycle)."""
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = list(gc.garbage)
        gc.garbage.clear()
    finally:
        gc.set_debug(flags)
    kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in found)
    frames = Counter(
        f"{o.f_code.co_filename}:{o.f_lineno} {o.f_code.co_name}"
        for o in found
        if type(o).__name__ == "frame"
    )
    functions = Counter(
        f"{o.__code__.co_filename}:{o.__code__.co_firstlineno} {o.__qualname__}"
        for o in found
        if type(o).__name__ == "function"
    )
    exceptions = Counter(repr(o)[:160] for o in found if isinstance(o, BaseException))
    del found
    return {
        "objects": sum(kinds.values()),
        "types": dict(kinds.most_common(40)),
        "frames": dict(frames.most_common(20)),
        "functions": dict(functions.most_common(20)),
        "exceptions": dict(exceptions.most_common(10)),
    }


def _owner_of(container: object, objects: list[object], depth: int = 4) -> str:
    """Where a container lives, following referrers up to `depth` levels: `module.name`,
    `Type.attribute`, or the chain of container types on the way."""
    modules = {id(getattr(m, "__dict__", None)): m.__name__ for m in list(sys.modules.values())}
    chain: list[str] = []
    current = container
    for _ in range(depth):
        referrers = [
            r for r in gc.get_referrers(current) if r is not objects and type(r).__name__ not in ("frame",)
        ]
        if not referrers:
            break
        referrer = referrers[0]
        if isinstance(referrer, dict):
            key = next((k for k, v in referrer.items() if v is current), "?")
            if id(referrer) in modules:
                return ".".join([f"{modules[id(referrer)]}.{key}", *reversed(chain)])
            owner = next(
                (o for o in gc.get_referrers(referrer) if getattr(o, "__dict__", None) is referrer), None
            )
            if owner is not None:
                return ".".join(
                    [f"{type(owner).__module__}.{type(owner).__qualname__}.{key}", *reversed(chain)]
                )
            chain.append(f"[{key!r}]")
        else:
            chain.append(
                f"<{type(referrer).__qualname__} len={len(referrer) if hasattr(referrer, '__len__') else -1}>"
            )
        current = referrer
    return " in ".join(chain) or "?"


def report(label: str, directory: Path, key: str, collect: bool, trim: bool) -> dict[str, object]:
    started = time.monotonic()
    result: dict[str, object] = {"label": label, "time": time.time(), "status_kib": status_kib()}
    if collect:
        result["garbage"] = garbage()
        traced_before = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
        result["gc_collected"] = gc.collect()
        result["status_kib_after_collect"] = status_kib()
        if tracemalloc.is_tracing():
            result["traced_freed_by_collect"] = traced_before - tracemalloc.get_traced_memory()[0]
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        result["traced"] = {
            "current": current,
            "peak": peak,  # since the previous report: it resets the peak
            "tracemalloc_overhead": tracemalloc.get_tracemalloc_memory(),
        }
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (
                tracemalloc.Filter(False, tracemalloc.__file__),
                tracemalloc.Filter(False, __file__),
            )
        )
        snapshot.dump(str(directory / f"snap-{key}.tm"))
        del snapshot
    result["mallinfo2"] = mallinfo()
    result["pymalloc"] = pymalloc_stats(directory / f"mallocstats-{key}.txt")
    result["allocated_blocks"] = sys.getallocatedblocks()
    result["gc_count"] = gc.get_count()
    result["gc_stats"] = gc.get_stats()
    result["threads"] = threading.active_count()
    objects = gc.get_objects()
    census = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)
    result["gc_objects"] = len(objects)
    result["caches"] = caches(objects)
    dead = [o for o in objects if type(o) is weakref.ref and o() is None]
    holders: Counter[str] = Counter()
    sample = dead[:200]
    for index in range(len(sample)):
        for holder in gc.get_referrers(sample[index]):
            if holder is not dead and holder is not objects and holder is not sample:
                size = len(holder) if hasattr(holder, "__len__") else -1
                holders[f"{type(holder).__qualname__} len={size} in {_owner_of(holder, objects)}"] += 1
    callbacks = Counter(
        getattr(r.__callback__, "__qualname__", repr(r.__callback__))
        + f" ({getattr(r.__callback__, '__module__', '')})"
        for r in sample
    )
    result["dead_weakref_callbacks"] = dict(callbacks.most_common(10))
    del dead, sample
    result["dead_weakref_holders"] = dict(holders.most_common(10))
    result["weakref_targets"] = dict(  # what the weak references point to (dead: NoneType)
        Counter(
            f"{type(o()).__module__}.{type(o()).__qualname__}" for o in objects if type(o) is weakref.ref
        ).most_common(30)
    )
    del objects
    result["census"] = dict(census)
    if trim and LIBC is not None:
        result["status_kib_before_trim"] = status_kib()
        LIBC.malloc_trim(0)
        result["status_kib_after_trim"] = status_kib()
        result["mallinfo2_after_trim"] = mallinfo()
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()  # the next report's peak is that of the step in between
    result["report_seconds"] = round(time.monotonic() - started, 3)
    return result


def write_json(path: Path, value: object) -> None:
    scratch = path.with_suffix(".part")
    scratch.write_text(json.dumps(value, default=str) + "\n")
    scratch.replace(path)


def watch(directory: Path, every: float) -> None:
    deadline = time.monotonic() + MAX_SECONDS
    next_auto = time.monotonic() + every if every else None
    auto = 0
    while time.monotonic() < deadline:
        time.sleep(POLL)
        for request in sorted(directory.glob("req-*.json")):
            key = request.stem[4:]
            try:
                asked = json.loads(request.read_text())
                request.unlink()
                answer = report(
                    str(asked.get("label", key)),
                    directory,
                    key,
                    bool(asked.get("collect")),
                    bool(asked.get("trim")),
                )
            except Exception as error:  # a broken request must not end the watcher
                answer = {"error": repr(error)}
                with contextlib.suppress(OSError):
                    request.unlink()
            write_json(directory / f"rep-{key}.json", answer)
        if next_auto is not None and time.monotonic() >= next_auto:
            write_json(
                directory / f"auto-{auto}.json",
                report(f"auto-{auto}", directory, f"auto-{auto}", False, False),
            )
            auto += 1
            next_auto += every


def main() -> None:
    argv = sys.argv[1:]
    if "-m" not in argv or len(argv) < 3:
        raise SystemExit(__doc__)
    split = argv.index("-m")
    own, module, rest = argv[:split], argv[split + 1], argv[split + 2 :]
    directory = Path(own[0])
    frames = int(own[own.index("--frames") + 1]) if "--frames" in own else 0
    every = float(own[own.index("--every") + 1]) if "--every" in own else 0.0
    directory.mkdir(parents=True, exist_ok=True)
    if frames > 0:
        tracemalloc.start(frames)
    sys.path[0] = ""  # as `python -m`: the working directory, not this script's folder
    threading.Thread(target=watch, args=(directory, every), name="memtrace", daemon=True).start()
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

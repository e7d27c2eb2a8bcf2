"""Where a cold start's memory goes with N small zones (issue 26): the server's own loading
path, run in this process, phase by phase.

The zones are scale.py's (10 records each). The phases are those of `dynmx serve` with an
empty state_dir: the zone scan (`zonescan.scan_zones`, files parsed on every CPU), the
lookup indexes and the staged table (`zone_data`, `build_table(staged=True)`), under the
collector settings of `app.heap.loading`; then the fill a slice at a time
(`publisher.fill_slice`, each slice's table replacing the last, as the engine's swap does)
and `gc.freeze`; then the rows the answer store would be written from (`rows_to_save`).

For each phase: VmRSS after it and the peak during it (VmHWM, reset between phases through
/proc/self/clear_refs), and bytes per zone. With `--trace`, tracemalloc snapshots after the
parse and at the end give the lines that hold most (file:line, bytes per zone); tracing
doubles the time and adds its own memory, so RSS figures come from runs without it.
With `--profile`, cProfile over the load and the fill prints the functions with most own time.

    .venv/bin/python benchmarks/scale_heap.py --zones 20000 [--trace] [--profile]

Not a test; asserts nothing. Loopback or network: none. Writes benchmarks/out/heap-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import json
import os
import pstats
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import write_zones  # noqa: E402

from dynmx.answer.compiler import staged_table  # noqa: E402
from dynmx.app.publisher import fill_slice  # noqa: E402
from dynmx.app.zonescan import scan_zones, zone_data  # noqa: E402
from dynmx.zone.batch import available_cpus  # noqa: E402


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    with contextlib.suppress(OSError):  # the kernel's peak (VmHWM) set back to now
        Path("/proc/self/clear_refs").write_text("5")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Phases:
    """VmRSS after each phase and VmHWM during it, with the seconds it took."""

    def __init__(self, zones: int) -> None:
        self.zones = zones
        self.rows: list[dict[str, object]] = []
        self.began = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        rss, hwm = status_kib("VmRSS"), status_kib("VmHWM")
        row = {
            "phase": name,
            "seconds": round(now - self.began, 2),
            "rss_mib": round(rss / 1024, 1),
            "peak_mib": round(hwm / 1024, 1),
            "rss_bytes_per_zone": rss * 1024 // self.zones,
            "loadavg": loadavg(),
        }
        self.rows.append(row)
        print(
            f"heap: {name:28} {row['seconds']:7.2f} s  RSS {row['rss_mib']:8.1f} MiB  "
            f"peak {row['peak_mib']:8.1f} MiB  {row['rss_bytes_per_zone']:6d} B/zone  load {row['loadavg']}",
            flush=True,
        )
        reset_peak()
        self.began = time.monotonic()


def top_lines(snapshot: tracemalloc.Snapshot, zones: int, count: int = 15) -> list[dict[str, object]]:
    stats = snapshot.statistics("lineno")
    rows = []
    for stat in stats[:count]:
        frame = stat.traceback[0]
        where = f"{frame.filename.split('site-packages/')[-1].replace(str(ROOT) + '/', '')}:{frame.lineno}"
        rows.append(
            {"where": where, "mib": round(stat.size / 2**20, 1), "bytes_per_zone": stat.size // zones}
        )
    return rows


def print_top(title: str, rows: list[dict[str, object]]) -> None:
    print(f"heap: {title}")
    for row in rows:
        print(f"    {row['mib']:8.1f} MiB {row['bytes_per_zone']:6d} B/zone  {row['where']}")


def run(zones: int, trace: bool, profile: bool, store: bool) -> dict[str, object]:
    out: dict[str, object] = {"zones": zones, "trace": trace, "loadavg_before": loadavg()}
    with tempfile.TemporaryDirectory(prefix="dynmx-heap-") as tmp:
        zone_dir = Path(tmp) / "zones"
        zone_dir.mkdir()
        write_zones(zone_dir, zones)
        time.sleep(2.1)  # past the racy window: files get stamps, as at a real restart
        profiler = cProfile.Profile() if profile else None
        if trace:
            tracemalloc.start(1)
        gc.collect()
        reset_peak()
        phases = Phases(zones)
        phases.mark("before")
        if profiler is not None:
            profiler.enable()
        gc.disable()  # app.heap.loading
        loaded, problems = scan_zones(zone_dir, {}, available_cpus())
        assert not problems and len(loaded) == zones, problems[:3]
        phases.mark("scanned (parsed)")
        parsed_snapshot = tracemalloc.take_snapshot() if trace else None
        data = zone_data(loaded)
        phases.mark("indexed (ZoneData)")
        table = staged_table(data)
        del data
        gc.collect()
        gc.freeze()
        gc.enable()
        phases.mark("staged table")
        slices = 0
        while table.pending:
            table = fill_slice(table)
            slices += 1
            if slices == 10:
                phases.mark("10 slices filled")
        gc.freeze()
        if profiler is not None:
            profiler.disable()
        phases.mark("filled (every zone compiled)")
        out["slices"] = slices
        out["entries"] = len(table.entries)
        out["entries_per_zone"] = round(len(table.entries) / zones, 2)
        if store:
            from dynmx.store.warm import rows_to_save

            rows, _ = rows_to_save(loaded, table, {})
            phases.mark("store rows made")
            out["store_row_bytes_per_zone"] = sum(len(r.body) + len(r.source) for r in rows) // max(
                1, len(rows)
            )
            del rows
        out["phases"] = phases.rows
        sizes = {
            "table.entries dict": sys.getsizeof(table.entries),
            "table.zones dict": sys.getsizeof(table.zones),
            "table.keys dict": sys.getsizeof(table.keys),
            "zoneset.by_key dict": sys.getsizeof(table.zoneset.by_key),
            "loaded dict": sys.getsizeof(loaded),
        }
        out["container_bytes_per_zone"] = {name: size // zones for name, size in sizes.items()}
        print("heap: containers, bytes per zone:", out["container_bytes_per_zone"])
        if trace:
            end_snapshot = tracemalloc.take_snapshot()
            assert parsed_snapshot is not None
            out["top_after_parse"] = top_lines(parsed_snapshot, zones)
            out["top_at_end"] = top_lines(end_snapshot, zones)
            print_top("held after the parse (file:line)", out["top_after_parse"])  # type: ignore[arg-type]
            print_top("held at the end (file:line)", out["top_at_end"])  # type: ignore[arg-type]
            tracemalloc.stop()
        if profiler is not None:
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(25)
        out["loadavg_after"] = loadavg()
        del table, loaded
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zones", type=int, default=20_000, help="small zones (10-100000)")
    parser.add_argument("--trace", action="store_true", help="tracemalloc: the lines that hold most")
    parser.add_argument("--profile", action="store_true", help="cProfile the load and the fill")
    parser.add_argument("--store", action="store_true", help="also make the answer store's rows")
    args = parser.parse_args()
    if not 10 <= args.zones <= 100_000:
        parser.error("--zones 10-100000")
    found = run(args.zones, args.trace, args.profile, args.store)
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"heap-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(found, indent=1) + "\n")
    print(f"written: {path.relative_to(ROOT)} (pid {os.getpid()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

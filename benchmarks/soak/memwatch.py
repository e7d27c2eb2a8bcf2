"""Where dynmx's memory goes under each kind of soak churn: RSS, Python heap and object census per step.

soak.py mixes everything and samples only VmRSS; this runs one kind of churn at a time
(or the soak's mix, faster) on soak.py's zone and config (4 SMTP-probed pool members at
real sinks, TSIG UPDATE allowed), and after every step asks dynmx itself for a report
through memtrace.py, the wrapper it is launched with (`memtrace.py DIR -m dynmx serve`):
VmRSS, glibc `mallinfo2` (in use / free but held), pymalloc totals (used, free in pools,
arenas), a census of gc-tracked objects by type, the bounded caches (slow-path LRU, which
also holds the NXDOMAIN per qname length, `_heads`), dead weak references and who holds them, and, with
`--frames N`, a tracemalloc snapshot. At the end it prints the growth per phase from its
first step (the warm-up) to its last, per operation; the cyclic garbage left (by type,
with the code of its frames and functions); the object types whose count changed; with
tracing, the source lines whose traced memory grew most (also against a fresh dynmx);
and, with `--fresh`, the same figures of a fresh dynmx started on the final files (what is
data, not history), `--fresh-reloads N` reloads later. The last report collects the cyclic
garbage and calls glibc `malloc_trim(0)`: RSS that drops then was free memory the
allocator held, not live data. Reading it: live data grows when "pymalloc used" and
"glibc in-use" after the final gc.collect exceed a fresh dynmx's on the same data; when
only "free" and the arena count grow, it is the allocators' high-water mark.

Phases (comma-separated, run in order on one dynmx, `--steps` steps each; every loop is
bounded by the step count and a per-step deadline):

    idle          nothing but the prober (4 members, interval 1 s)
    flap          member sinks stopped and started in turn; each waits for the pool answer
    query         dnsperf at `--qps` (soak.py's query mix) for `--seconds` per step
    slowfill      `--ops` class-ANY queries per step with varying qtypes: fills the slow-path LRU
    update-grow   `--ops` UPDATEs per step as soak.py sends them (add g<n>; every third, delete g<n-2>)
    update-churn  `--ops` UPDATEs per step adding and deleting one name (data unchanged)
    reload        `--ops` reloads per step, SIGHUP and POST /reload in turn, each waited for
    mixed         soak.py's updater, reloader and flapper threads (faster rates) + dnsperf steps;
                  with --mixed-churn the UPDATEs add and delete one name instead (data fixed)

    .venv/bin/python benchmarks/soak/memwatch.py update-grow --steps 6 --ops 150
    .venv/bin/python benchmarks/soak/memwatch.py update-grow,update-churn,reload --steps 4
    .venv/bin/python benchmarks/soak/memwatch.py mixed --steps 6 --seconds 30 --fresh-reloads 30
    .venv/bin/python benchmarks/soak/memwatch.py reload --steps 3 --ops 10 --gc-each
    .venv/bin/python benchmarks/soak/memwatch.py mixed --steps 4 --seconds 30 --frames 1 --no-fresh

`DYNMX_SRC=DIR` runs another dynmx tree (see harness.py), e.g. a commit unpacked with
`git archive`, to compare builds. Tracing (`--frames`) slows dynmx several times and adds
its own memory (and each snapshot's) to RSS, and pymalloc totals are not available while
it runs: compare RSS only between runs with the same setting, and read traced bytes when
tracing. The reports themselves (a census walks every gc object) add a little to RSS the
first time. Loopback only. Writes benchmarks/out/memwatch-<phases>-<time>.json. Not a
test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import SERVER_CORE, pin
from harness import OUT, ROOT, Dynmx, dnsperf_run, loadavg, source, stamp, udp_exchange, udp_socket
from soak import (
    KEY,
    MEMBERS,
    ZONE,
    Sinks,
    Tally,
    flapper,
    pool_hosts,
    reloader,
    updater,
    write_config,
    write_queries,
    write_zone,
)

MEMTRACE = Path(__file__).resolve().parent / "memtrace.py"
PHASES = ("idle", "flap", "query", "slowfill", "update-grow", "update-churn", "reload", "mixed")
DEFAULT_OPS = {"slowfill": 4000, "update-grow": 150, "update-churn": 150, "reload": 10}
STEP_DEADLINE = 150.0  # seconds: an operation-counted step stops here whatever is left
REPORT_TIMEOUT = 120.0
BEGAN = time.monotonic()


class Watched:
    """A dynmx under memtrace.py: `report(label)` asks it for a report and waits for the answer."""

    def __init__(self, config: Path, workdir: Path, reports: Path, frames: int) -> None:
        self.reports = reports
        self.frames = frames
        python_args = [str(MEMTRACE), str(reports), "--frames", str(frames)]
        self.server = Dynmx(
            ["--config", str(config)], workdir, prefix=pin(SERVER_CORE), python_args=python_args
        )
        self.count = 0

    def __enter__(self) -> Watched:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def report(self, label: str, *, collect: bool = False, trim: bool = False) -> dict[str, object]:
        key = f"{self.count:03d}"
        self.count += 1
        request = self.reports / f"req-{key}.json"
        request.with_suffix(".part").write_text(
            json.dumps({"label": label, "collect": collect, "trim": trim})
        )
        request.with_suffix(".part").replace(request)
        answer = self.reports / f"rep-{key}.json"
        deadline = time.monotonic() + REPORT_TIMEOUT
        while not answer.exists():
            if time.monotonic() > deadline or not self.server.alive():
                raise RuntimeError(f"no memory report {label!r} from dynmx")
            time.sleep(0.05)
        result = json.loads(answer.read_text())
        if "error" in result:
            raise RuntimeError(f"memory report {label!r} failed: {result['error']}")
        snap = self.reports / f"snap-{key}.tm"
        result["snapshot"] = str(snap) if snap.exists() else ""
        return result


# --- the activities -------------------------------------------------------------------------


def send_update(port: int, keyring: object, add: bool, owner: str, text: str) -> None:
    update = dns.update.UpdateMessage(f"{ZONE}.", keyring=keyring, keyname=KEY)
    if add:
        update.add(owner, 60, "TXT", f'"{text}"')
    else:
        update.delete(owner, "TXT")
    reply = dns.query.tcp(update, "127.0.0.1", port=port, timeout=30)
    if reply.rcode() != dns.rcode.NOERROR:
        raise RuntimeError(f"UPDATE answered {dns.rcode.to_text(reply.rcode())}")


def updates_grow(port: int, keyring: object, first: int, ops: int, deadline: float) -> int:
    """soak.py's pattern on names g<n>: add g<n>; with every third add, delete g<n-2>.

    `first` and the result count UPDATEs sent so far (the name follows from the count)."""
    sent = first
    while sent < first + ops and time.monotonic() < deadline:
        n = sent - sent // 4  # 4 UPDATEs per 3 names: add, add, add + delete
        if sent % 4 == 3:
            send_update(port, keyring, False, f"g{n - 3}.dyn.{ZONE}.", "")
        else:
            send_update(port, keyring, True, f"g{n}.dyn.{ZONE}.", f"soak {n}")
        sent += 1
    return sent


def updates_churn(port: int, keyring: object, first: int, ops: int, deadline: float) -> int:
    """One name added and deleted in turn (churn.py's pattern): the data does not grow."""
    n = first
    while n < first + ops and time.monotonic() < deadline:
        send_update(port, keyring, n % 2 == 0, f"churn.dyn.{ZONE}.", f"churn {n}")
        n += 1
    return n


def churn_updater(port: int, keyring: object, rate: float, stop: threading.Event, tally: Tally) -> None:
    """mixed with --mixed-churn: updates.churn's pattern at `rate`/s, so the data does not grow."""
    n = 0
    while not stop.wait(1.0 / rate) and n < 1_000_000:
        try:
            send_update(port, keyring, n % 2 == 0, f"churn.dyn.{ZONE}.", f"churn {n}")
        except Exception as error:  # reported, not fatal
            tally.updates_failed.append(repr(error))
        else:
            tally.updates_acked += 1
        n += 1


def reloads_done(http_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    match = re.search(r"^dynmx_zone_reloads_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def reloads(server: Dynmx, first: int, ops: int, deadline: float) -> int:
    """SIGHUP and POST /reload in turn; each waited for (the reload counter moves) before the next."""
    n = first
    while n < first + ops and time.monotonic() < deadline:
        before = reloads_done(server.http_port)
        if n % 2 == 0:
            server.signal(signal.SIGHUP)
            waited = time.monotonic() + 30
            while reloads_done(server.http_port) <= before and time.monotonic() < waited:
                time.sleep(0.05)
        else:
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.http_port}/reload", method="POST", headers=server.auth()
            )
            with urllib.request.urlopen(request, timeout=60):
                pass
        n += 1
    return n


def flaps(port: int, sinks: Sinks, first: int, deadline: float) -> int:
    """Stop a primary's sink, wait (10 s at most) for the pool to drop it, start it, wait for it back."""
    primaries = [h for h in MEMBERS if h != "relay"]
    n = first
    with udp_socket() as sock:
        while time.monotonic() < deadline:
            host = primaries[(n // 2) % len(primaries)]
            stopping = host in sinks.procs
            if stopping:
                sinks.stop(host)
            else:
                sinks.start(host)
            waited = time.monotonic() + 10
            while time.monotonic() < waited:
                hosts = pool_hosts(port, sock)
                if hosts is not None and (host in hosts) != stopping:
                    break
                time.sleep(0.1)
            n += 1
    return n


def slowfill(port: int, first: int, ops: int, deadline: float, hosts: int) -> int:
    """Class-ANY queries (the slow path, cached in the LRU) over the zone's names and many qtypes."""
    rng = random.Random(first)
    names = [f"h{i:03d}.{ZONE}." for i in range(hosts)]
    n = first
    with udp_socket() as sock:
        while n < first + ops and time.monotonic() < deadline:
            qtype = rng.randrange(1, 250)
            wire = dns.message.make_query(names[n % len(names)], qtype, "ANY").to_wire()
            udp_exchange(sock, wire, port, 1.0)
            n += 1
    return n


# --- the figures -------------------------------------------------------------------------------


def kib(result: dict[str, object], key: str = "VmRSS", where: str = "status_kib") -> int:
    found = result.get(where)
    return int(found.get(key, 0)) if isinstance(found, dict) else 0


def figures(result: dict[str, object]) -> dict[str, object]:
    """The numbers of one report that the table shows (MiB with one decimal, counts as they are)."""
    mall = result.get("mallinfo2") or {}
    pym = result.get("pymalloc") or {}
    traced = result.get("traced") or {}
    assert isinstance(mall, dict) and isinstance(pym, dict) and isinstance(traced, dict)
    caches = result.get("caches") or {}
    assert isinstance(caches, dict)

    def m(value: object) -> float:
        return round(float(value or 0) / 1048576, 2)

    return {
        "rss_mib": round(kib(result) / 1024, 2),
        "hwm_mib": round(kib(result, "VmHWM") / 1024, 2),
        "traced_mib": m(traced.get("current")),
        "traced_peak_mib": m(traced.get("peak")),
        "tracemalloc_overhead_mib": m(traced.get("tracemalloc_overhead")),
        "glibc_heap_mib": m(mall.get("arena")),
        "glibc_mmap_mib": m(mall.get("hblkhd")),
        "glibc_in_use_mib": m(mall.get("uordblks")),
        "glibc_free_held_mib": m(mall.get("fordblks")),
        "pymalloc_arenas": pym.get("arenas allocated current"),
        "pymalloc_used_mib": m(pym.get("bytes in allocated blocks")),
        "pymalloc_free_in_pools_mib": m(pym.get("bytes in available blocks")),
        "pymalloc_unused_pools_mib": m(pym.get("unused pools bytes")),
        "pymalloc_total_mib": m(pym.get("Total")),
        "allocated_blocks": result.get("allocated_blocks"),
        "gc_objects": result.get("gc_objects"),
        "lru": caches.get("engine_lru"),
        "tables_alive": caches.get("AnswerTable"),
        "entries": caches.get("served_entries"),
        "heads": (caches.get("heads_cache") or {}).get("currsize"),
    }


def census_growth(first: dict[str, object], last: dict[str, object], top: int) -> list[tuple[str, int, int]]:
    """Object types whose count changed most between two reports: (type, first, last)."""
    a, b = first.get("census") or {}, last.get("census") or {}
    assert isinstance(a, dict) and isinstance(b, dict)
    changed = [(name, int(a.get(name, 0)), int(b.get(name, 0))) for name in set(a) | set(b)]
    changed = [row for row in changed if row[1] != row[2]]
    changed.sort(key=lambda row: -abs(row[2] - row[1]))
    return changed[:top]


def traced_growth(first: str, last: str, top: int, frames: int) -> list[dict[str, object]]:
    """Source lines whose traced memory grew most from snapshot `first` to `last`."""
    if not first or not last:
        return []
    old = tracemalloc.Snapshot.load(first)
    new = tracemalloc.Snapshot.load(last)
    rows = []
    for stat in new.compare_to(old, "lineno")[:top]:
        frame = stat.traceback[0]
        where = f"{frame.filename.replace(str(ROOT) + '/', '')}:{frame.lineno}"
        rows.append(
            {
                "where": where,
                "size_diff_kib": round(stat.size_diff / 1024, 1),
                "size_kib": round(stat.size / 1024, 1),
                "count_diff": stat.count_diff,
                "count": stat.count,
            }
        )
    if frames > 1:  # who called the top growers
        for stat in new.compare_to(old, "traceback")[:3]:
            rows.append(
                {
                    "where": " <- ".join(
                        f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}" for f in stat.traceback
                    ),
                    "size_diff_kib": round(stat.size_diff / 1024, 1),
                    "count_diff": stat.count_diff,
                }
            )
    return rows


def print_step(label: str, ops: int, result: dict[str, object]) -> None:
    f = figures(result)
    print(
        f"memwatch: {label:>10} ops {ops:6d} t {time.monotonic() - BEGAN:6.1f}s  RSS {f['rss_mib']:6.2f}"
        f"  traced {f['traced_mib']:6.2f} peak {f['traced_peak_mib']:6.2f}"
        f"  glibc in-use/free {f['glibc_in_use_mib']:5.2f}/{f['glibc_free_held_mib']:5.2f}"
        f"  pymalloc used/free/arenas {f['pymalloc_used_mib']:5.2f}/{f['pymalloc_free_in_pools_mib']:5.2f}"
        f"/{f['pymalloc_arenas']}  objs {f['gc_objects']}  lru {f['lru']}"
        f" tables {f['tables_alive']} entries {f['entries']}",
        flush=True,
    )


def print_rows(title: str, rows: list[dict[str, object]]) -> None:
    if rows:
        print(f"\n{title}")
        for row in rows:
            extra = f" ({row['count_diff']:+d} blocks)" if "count_diff" in row else ""
            print(f"  {row['size_diff_kib']:+9.1f} KiB{extra}  {row['where']}")


# --- the run -------------------------------------------------------------------------------------


class Phases:
    """Runs the steps of one phase after another on one dynmx, keeping each activity's count."""

    def __init__(
        self, watched: Watched, sinks: Sinks, keyring: object, queries: Path, args: argparse.Namespace
    ) -> None:
        self.watched = watched
        self.sinks = sinks
        self.keyring = keyring
        self.queries = queries
        self.args = args
        self.done: dict[str, int] = dict.fromkeys(PHASES, 0)
        self.reports: list[dict[str, object]] = []
        self.ops_at: list[int] = []  # operations of the phase so far, per report
        self.summaries: list[dict[str, object]] = []

    def record(self, label: str, ops: int, *, collect: bool = False, trim: bool = False) -> None:
        collect = collect or self.args.gc_each
        self.reports.append(self.watched.report(label, collect=collect, trim=trim))
        self.ops_at.append(ops)
        print_step(label, ops, self.reports[-1])
        cycles = self.reports[-1].get("garbage")
        if self.args.gc_each and isinstance(cycles, dict):
            kinds = list(dict(cycles["types"]).items())[:8]
            print(f"memwatch:            cyclic garbage {cycles['objects']} objects: {kinds}")

    def run(self, phase: str, steps: int, ops: int) -> None:
        args = self.args
        server = self.watched.server
        port = server.port
        stop = threading.Event()
        tally = Tally()
        threads: list[threading.Thread] = []
        if phase == "mixed":
            started = time.monotonic()
            rate, every, flap = args.update_rate, args.reload_every, args.flap_every
            threads = [
                threading.Thread(target=updater, args=(port, self.keyring, rate, stop, started, tally))
                if not args.mixed_churn
                else threading.Thread(target=churn_updater, args=(port, self.keyring, rate, stop, tally)),
                threading.Thread(target=reloader, args=(server, every, stop, started, tally)),
                threading.Thread(target=flapper, args=(port, self.sinks, flap, stop, started, tally)),
            ]
            for thread in threads:
                thread.start()
        seconds = args.seconds
        first = len(self.reports)
        try:
            for step in range(1, steps + 1):
                n = self.done[phase]
                deadline = time.monotonic() + (seconds if ops == 0 else STEP_DEADLINE)
                if phase == "idle":
                    time.sleep(seconds)
                elif phase == "flap":
                    n = flaps(port, self.sinks, n, deadline)
                elif phase in ("query", "mixed"):
                    run, _ = dnsperf_run("memwatch", port, self.queries, seconds, qps=args.qps)
                    n += run.completed
                elif phase == "slowfill":
                    n = slowfill(port, n, ops, deadline, 200)
                elif phase == "update-grow":
                    n = updates_grow(port, self.keyring, n, ops, deadline)
                elif phase == "update-churn":
                    n = updates_churn(port, self.keyring, n, ops, deadline)
                elif phase == "reload":
                    n = reloads(server, n, ops, deadline)
                self.done[phase] = n
                if phase == "mixed":
                    updates = tally.updates_acked + tally.deletes_acked
                    self.record(f"{phase} {step}", updates)
                    print(
                        f"memwatch:            queries {n}, UPDATEs {updates}, reloads {len(tally.reloads)},"
                        f" flaps {len(tally.flaps)}, update failures {len(tally.updates_failed)}"
                    )
                else:
                    self.record(f"{phase} {step}", n)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        a, b = self.reports[first], self.reports[-1]
        count = self.ops_at[-1] - self.ops_at[first]
        growth = kib(b) - kib(a)
        summary = {
            "phase": phase,
            "rss_step1_mib": round(kib(a) / 1024, 2),
            "rss_last_mib": round(kib(b) / 1024, 2),
            "operations_after_step1": count,
            "rss_growth_kib": growth,
            "kib_per_operation": round(growth / count, 3) if count else None,
        }
        if phase == "mixed":
            summary |= {"reloads": len(tally.reloads), "flaps": len(tally.flaps)}
        self.summaries.append(summary)
        print(
            f"memwatch: {phase}: RSS step 1 -> {steps}: {summary['rss_step1_mib']} ->"
            f" {summary['rss_last_mib']}"
            f" MiB ({growth:+d} KiB over {count} operations after step 1: {summary['kib_per_operation']}"
            " KiB each)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phases", help=f"one or more of {', '.join(PHASES)}, comma-separated, run in order")
    parser.add_argument("--steps", type=int, default=6, help="steps per phase (1-50)")
    parser.add_argument(
        "--seconds", type=int, default=20, help="seconds per step of the timed phases (1-300)"
    )
    parser.add_argument("--ops", type=int, default=0, help="operations per step (default per phase)")
    parser.add_argument("--qps", type=int, default=3000, help="dnsperf rate in query and mixed (100-50000)")
    parser.add_argument("--frames", type=int, default=0, help="tracemalloc frames; 0 traces nothing (0-25)")
    parser.add_argument("--top", type=int, default=15, help="lines and types listed")
    parser.add_argument("--update-rate", type=float, default=5.0, help="mixed: UPDATE adds per second")
    parser.add_argument("--reload-every", type=float, default=10.0, help="mixed: seconds between reloads")
    parser.add_argument(
        "--mixed-churn", action="store_true", help="mixed: UPDATEs add and delete one name (no data growth)"
    )
    parser.add_argument("--flap-every", type=float, default=8.0, help="mixed: seconds per member stop+start")
    parser.add_argument(
        "--fresh",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="then a fresh dynmx on the final files (default: with update-grow or mixed)",
    )
    parser.add_argument(
        "--gc-each",
        action="store_true",
        help="every report collects first and lists the cyclic garbage since the previous one",
    )
    parser.add_argument(
        "--fresh-reloads",
        type=int,
        default=0,
        help="reloads the fresh dynmx then gets (0-500), in steps of 10",
    )
    args = parser.parse_args()
    phases = args.phases.split(",")
    if any(p not in PHASES for p in phases) or not 1 <= len(phases) <= 8:
        parser.error(f"phases: 1-8 of {', '.join(PHASES)}")
    if not (1 <= args.steps <= 50 and 1 <= args.seconds <= 300 and 0 <= args.ops <= 100_000):
        parser.error("--steps 1-50, --seconds 1-300, --ops 0-100000")
    if not (100 <= args.qps <= 50_000 and 0 <= args.frames <= 25 and 1 <= args.top <= 200):
        parser.error("--qps 100-50000, --frames 0-25, --top 1-200")
    fresh = args.fresh if args.fresh is not None else bool({"update-grow", "mixed"} & set(phases))
    secret = base64.b64encode(os.urandom(32)).decode()
    keyring = dns.tsigkeyring.from_text({KEY: ("hmac-sha256", secret)})
    fresh_reports: list[dict[str, object]] = []
    fresh_traced: list[dict[str, object]] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dynmx-memwatch-") as tmp:
        workdir = Path(tmp)
        (workdir / "zones").mkdir()
        write_zone(workdir / "zones" / f"{ZONE}.zone")
        queries = write_queries(workdir / "queries.txt")
        sinks = Sinks(workdir)
        config = write_config(workdir, secret, sinks.ports)
        try:
            for host in MEMBERS:
                sinks.start(host)
            with Watched(config, workdir, workdir / "reports", args.frames) as watched:
                runner = Phases(watched, sinks, keyring, queries, args)
                runner.record("baseline", 0)
                for phase in phases:
                    runner.run(phase, args.steps, args.ops or DEFAULT_OPS.get(phase, 0))
                runner.record("end (gc)", runner.ops_at[-1], collect=True, trim=True)
                log = watched.server.log_summary()
            reports = runner.reports
            if fresh:
                for host in MEMBERS:
                    if host not in sinks.procs:
                        sinks.start(host)
                with Watched(config, workdir, workdir / "reports-fresh", args.frames) as again:
                    fresh_reports.append(again.report("fresh"))
                    print_step("fresh", 0, fresh_reports[-1])
                    if {"query", "mixed"} & set(phases):
                        dnsperf_run("memwatch", again.server.port, queries, args.seconds, qps=args.qps)
                        fresh_reports.append(again.report("fresh+q"))
                        print_step("fresh+q", 0, fresh_reports[-1])
                    reloaded = 0
                    while reloaded < min(args.fresh_reloads, 500):
                        step = min(10, args.fresh_reloads - reloaded)
                        reloaded = reloads(again.server, reloaded, step, time.monotonic() + STEP_DEADLINE)
                        fresh_reports.append(again.report(f"fresh+{reloaded}r"))
                        print_step(f"fresh+{reloaded}r", reloaded, fresh_reports[-1])
                    fresh_reports.append(again.report("fresh (gc)", collect=True, trim=True))
                    print_step("fresh (gc)", 0, fresh_reports[-1])
                    fresh_traced = traced_growth(
                        str(fresh_reports[-1]["snapshot"]), str(reports[-1]["snapshot"]), args.top, 1
                    )
            first, end = reports[1], reports[-1]
            print(
                f"\nmemwatch: baseline {kib(reports[0]) / 1024:.2f} MiB, step 1 {kib(first) / 1024:.2f},"
                f" last step {kib(reports[-2]) / 1024:.2f}; at the end gc.collect found"
                f" {end.get('gc_collected')} objects,"
                f" RSS {kib(end, where='status_kib_before_trim') / 1024:.2f}"
                f" -> after malloc_trim {kib(end, where='status_kib_after_trim') / 1024:.2f} MiB"
            )
            if "traced_freed_by_collect" in end:
                print(f"memwatch: traced memory freed by that gc.collect: {end['traced_freed_by_collect']} B")
            if fresh_reports:
                fe = fresh_reports[-1]
                print(
                    f"memwatch: fresh dynmx on the final files: RSS {kib(fresh_reports[0]) / 1024:.2f} MiB at"
                    f" serving, {kib(fe, where='status_kib_before_trim') / 1024:.2f} -> after trim"
                    f" {kib(fe, where='status_kib_after_trim') / 1024:.2f} MiB"
                )
            cycles = end.get("garbage")
            if isinstance(cycles, dict) and cycles.get("objects"):
                print(f"\ncyclic garbage at the end: {cycles['objects']} objects")
                for key in ("types", "frames", "functions", "exceptions"):
                    for name, count in list(dict(cycles[key]).items())[: args.top]:
                        print(f"  {key[:-1]:9} {count:6d}  {name}")
            targets_first, targets_end = first.get("weakref_targets") or {}, end.get("weakref_targets") or {}
            assert isinstance(targets_first, dict) and isinstance(targets_end, dict)
            moved = {
                k: targets_end.get(k, 0) - targets_first.get(k, 0)
                for k in set(targets_first) | set(targets_end)
            }
            moved = {k: v for k, v in moved.items() if v}
            if moved:
                print(
                    "\nweak references by target type, step 1 -> end:",
                    dict(sorted(moved.items(), key=lambda kv: -abs(kv[1]))),
                )
                print("dead weak references are held by:", end.get("dead_weakref_holders"))
                print("their callbacks:", end.get("dead_weakref_callbacks"))
            growth = census_growth(first, end, args.top)
            if growth:
                print("\nobject types, count at step 1 -> end (after gc.collect)")
                for name, a, b in growth:
                    print(f"  {b - a:+8d}  {a:8d} -> {b:8d}  {name}")
            rows = traced_growth(str(first["snapshot"]), str(end["snapshot"]), args.top, args.frames)
            print_rows("traced memory, step 1 -> end (after gc.collect), by line", rows)
            base_rows = traced_growth(str(reports[0]["snapshot"]), str(end["snapshot"]), args.top, 1)
            print_rows("traced memory, baseline -> end, by line", base_rows)
            print_rows(
                "traced memory, fresh dynmx on the final files (after gc) -> this one at the end",
                fresh_traced,
            )
        finally:
            sinks.stop_all()
    for result in reports + fresh_reports:
        result.pop("census", None)
        result.pop("gc_stats", None)
    summary = {
        "phases": phases,
        "settings": vars(args) | {"fresh": fresh},
        "seconds": round(time.monotonic() - began, 1),
        "source": source(),
        "loadavg_at_end": loadavg(),
        "phase_summaries": runner.summaries,
        "operations_at_report": runner.ops_at,
        "figures": [figures(r) | {"label": r["label"]} for r in reports + fresh_reports],
        "census_growth_step1_to_end": growth,
        "traced_growth_step1_to_end": rows,
        "traced_growth_baseline_to_end": base_rows,
        "traced_fresh_to_end": fresh_traced,
        "reports": reports + fresh_reports,
        "log": log,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"memwatch-{'+'.join(phases)}-{stamp()}.json"
    path.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"written: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

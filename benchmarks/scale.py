"""Many zones and one huge zone: load time, peak memory, and qps with 1 zone vs 100,000 zones.

Alongside load.py (one zone of N names), this loads:

* `1`, `10k`, `100k`: 1, 10,000 and 100,000 zones of 10 records each (SOA, 2 NS, MX, TXT,
  A for ns1, ns2, www, mx and AAAA for mx), one file per zone, as a hoster's dynmx would;
* `1m`: one zone of about 1,000,000 records (load.py's shape: A on every name, MX on
  every 4th, AAAA on every 10th; 740,741 names).

For each, `python -m dynmx serve --zones DIR` is started on 127.0.0.1 and timed from
spawn to its `event=serving` log line, and (a start-up with many zones serves a staged
table and compiles behind) to its `event=compiled` line; peak resident memory is VmHWM,
read at both (the server's own: the processes that parse files for it are not counted).
The load runs on every CPU, as an operator's would (many files are parsed by several
processes); the server is pinned to core 0 only for the qps run. For
`1` and `100k` the same query mix shape is then measured with dnsperf as bench.py does
(bench.measure: server on core 0, dnsperf on core 1, 2 s warm-up): per zone the apex MX
and TXT, www A, mx A and AAAA, and one missing name (1 in 6 NXDOMAIN); for one zone
that is 6 distinct questions, for 100,000 zones 600,000, shuffled.

Targets (issue "Hardening and scale"): 100,000 zones load in < 60 s and < 2 GiB; qps
with 100,000 zones within 10% of 1 zone.

Then two reloads (SIGHUP) are timed from the server's `event=reloaded` line: one with no
file changed, one after the first zone's serial is bumped (a reload parses only changed
files and compiles only their zones, under an unchanged config).

Then one TSIG-signed UPDATE (a TXT add to the first zone) is timed, while a probe sends
50 SOA queries per second and records the slowest reply and the timeouts (1 s): an edit
recompiles the answer table, and this shows how long the server stops answering for it.

    .venv/bin/python benchmarks/scale.py [--cases 1,10k,100k,1m] [--seconds 10]
    .venv/bin/python benchmarks/scale.py --cases 100k --profile     # where load time goes
    .venv/bin/python benchmarks/scale.py --cases 10k --memory       # where the memory goes
    .venv/bin/python benchmarks/scale.py --cases 10k --split        # CPU per zone, stage by stage
    .venv/bin/python benchmarks/scale.py --start --spread            # issue 26 at 100,000 zones

`--start` and `--spread` (scale_start.py) run rounds of dynmx and NSD in turn on N zones
(`--zones`, `--rounds`): cold and warm start timed until the last zone answers, peak
memory, and the qps of a mix spread over every zone against a one-zone server.

`--profile` runs each load under cProfile and prints the functions with the most own
time (file:line); load times under the profiler are longer and not comparable.
`--memory` loads the zones in this process instead, stage by stage (dnspython zones, the
lookup indexes, the compiled table), under tracemalloc, and prints what each stage holds
and the lines that allocated most (file:line); it uses dynmx's internal functions
(`load_zone_file`, `ZoneData`, `compile_table`), so it may need updating when they move.
`--split` loads the zones in this process too and prints the CPU time per zone of each
stage (the least of 3 runs): zone text to records (`fastread`, and dnspython's reader on the
same files for comparison), the checks, the dnspython zones, the indexes, the compile.
Not a test; asserts nothing. Writes benchmarks/out/scale-<time>.json.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (
    SERVER_CORE,
    cpu_model,
    ensure_tools,
    find_nsd,
    free_port,
    measure,
    pin,
    pin_running,
    wait_for_soa,
)
from harness import (
    OUT,
    ROOT,
    Dynmx,
    loadavg,
    mib,
    print_profile,
    profile_args,
    source,
    stamp,
    top_functions,
    udp_exchange,
    udp_socket,
)
from load import vm_kib
from load import write_zone as write_big_zone

from tests.nsd import nsd_conf

RECORDS_PER_ZONE = 10
MILLION_NAMES = 740_741  # x (1 + 1/4 + 1/10) records per name = 1,000,002 records
CASES = {"1": 1, "10k": 10_000, "100k": 100_000, "1m": 0}  # zones of 10 records; 0: one big zone
QPS_CASES = ("1", "100k")
LOAD_TIMEOUT = 1800.0
KEY = "scale-key."
PROBE_RATE = 50


def write_config(workdir: Path, zone_dir: Path, zone: str, secret: str) -> Path:
    """Zones from `zone_dir`, UPDATE with TSIG allowed on `zone` only; no control listener."""
    config = workdir / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zone_dir}"\nstate_dir = "{workdir / "state"}"\n'
        f'[[key]]\nname = "{KEY}"\nalgorithm = "hmac-sha256"\nsecret = "{secret}"\n'
        f'[[zone]]\nname = "{zone}."\nallow_update = ["{KEY}"]\n'
    )
    return config


def update_stall(port: int, zone: str, secret: str) -> dict[str, object]:
    """Time one UPDATE while a probe measures how long queries go unanswered meanwhile."""
    stop = threading.Event()
    latencies: list[float | None] = []
    answered_at: list[float] = []  # when each answered probe came back

    def probe() -> None:
        wire = dns.message.make_query(f"{zone}.", "SOA").to_wire()
        with udp_socket() as sock:
            while not stop.wait(1 / PROBE_RATE):
                reply, seconds = udp_exchange(sock, wire, port, 1.0)
                latencies.append(seconds * 1000 if reply else None)
                if reply:
                    answered_at.append(time.monotonic())

    keyring = dns.tsigkeyring.from_text({KEY: ("hmac-sha256", secret)})
    update = dns.update.UpdateMessage(f"{zone}.", keyring=keyring, keyname=KEY)
    update.add(f"scale-update.{zone}.", 60, "TXT", '"scale"')
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    time.sleep(0.5)
    begun = time.perf_counter()
    try:
        reply = dns.query.tcp(update, "127.0.0.1", port=port, timeout=LOAD_TIMEOUT)
        rcode = dns.rcode.to_text(reply.rcode())
    except Exception as error:  # reported, not fatal
        rcode = repr(error)
    update_ms = (time.perf_counter() - begun) * 1000
    time.sleep(0.5)
    stop.set()
    thread.join(5)
    answered = [ms for ms in latencies if ms is not None]
    gaps = [b - a for a, b in itertools.pairwise(answered_at)]
    return {
        "longest_silence_s": round(max(gaps), 2) if gaps else None,
        "rcode": rcode,
        "update_ms": round(update_ms, 1),
        "probe_sent": len(latencies),
        "probe_timeouts": len(latencies) - len(answered),
        "probe_max_ms": round(max(answered), 1) if answered else None,
    }


def small_zone(origin: str) -> str:
    """A mail domain's zone of exactly 10 records."""
    return (
        f"$ORIGIN {origin}.\n$TTL 3600\n"
        "@ SOA ns1 hostmaster 1 7200 900 1209600 300\n"
        "@ NS ns1\n@ NS ns2\n@ MX 10 mx\n"
        '@ TXT "v=spf1 mx -all"\n'
        "ns1 A 192.0.2.53\nns2 A 192.0.2.54\n"
        "mx A 192.0.2.25\nmx AAAA 2001:db8::25\nwww A 192.0.2.80\n"
    )


def origin(index: int) -> str:
    return f"z{index}.scale.test"


def write_zones(directory: Path, count: int) -> None:
    for index in range(count):
        name = origin(index)
        (directory / f"{name}.zone").write_text(small_zone(name))


def questions(index: int) -> list[str]:
    name = origin(index)
    return [f"{name} MX", f"{name} TXT", f"www.{name} A", f"mx.{name} A", f"mx.{name} AAAA", f"nx.{name} A"]


def write_queries(path: Path, zones: int) -> Path:
    """Every zone's 6 questions, repeated to at least 60,000 lines, shuffled with a fixed seed."""
    lines = [q for index in range(zones) for q in questions(index)]
    lines *= max(1, 60_000 // len(lines))
    random.Random(4343).shuffle(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def run_case(
    case: str, workdir: Path, seconds: int, profile: bool, update: bool, with_nsd: bool, reload: bool = True
) -> dict[str, object]:
    zone_dir = workdir / "zones"
    zone_dir.mkdir()
    started = time.monotonic()
    zones = CASES[case]
    if zones:
        write_zones(zone_dir, zones)
    else:
        write_big_zone(zone_dir, MILLION_NAMES)
    files = len(list(zone_dir.iterdir()))
    records = sum(1 for f in zone_dir.iterdir() for line in f.open() if line[:1] not in ("$", ";", "\n"))
    print(
        f"scale: {case}: {files} zone files, {records} records written in {time.monotonic() - started:.1f} s"
    )
    dump = OUT / f"scale-profile-{case}.pstats"
    secret = base64.b64encode(os.urandom(32)).decode()
    first = origin(0) if zones else "big.test"
    args = ["--config", str(write_config(workdir, zone_dir, first, secret)), "--http", ""]
    python_args = profile_args(dump) if profile else []
    result: dict[str, object] = {"case": case, "zone_files": files, "records": records}
    queries = write_queries(OUT / f"queries-scale-{case}.txt", zones) if case in QPS_CASES else None
    if profile:
        queries = None
    with Dynmx(args, workdir, python_args=python_args, timeout=LOAD_TIMEOUT) as server:
        serving_rss = mib(vm_kib(server.pid, "VmHWM"))
        serving_cpu = cpu_seconds(server.pid)
        compiled = server.wait_compiled(LOAD_TIMEOUT)
        result |= {
            "load_seconds": server.load_seconds,
            "serving_cpu_seconds": serving_cpu,
            "compiled_seconds": compiled,
            "compiled_cpu_seconds": cpu_seconds(server.pid),
            "serving_peak_rss_mib": serving_rss,
            "peak_rss_mib": mib(vm_kib(server.pid, "VmHWM")),
            "rss_mib": mib(vm_kib(server.pid, "VmRSS")),
            "entries": server.entries,
        }
        print(
            f"scale: {case}: serving after {server.load_seconds} s (peak RSS {serving_rss} MiB), every zone "
            f"compiled after {compiled} s, peak RSS {result['peak_rss_mib']} MiB, {server.entries} entries; "
            f"CPU {serving_cpu} s at serving, {result['compiled_cpu_seconds']} s at compiled"
        )
        if queries is not None:
            pin_running(server.pid, SERVER_CORE)
            run = measure("dynmx", case, server.port, server.pid, queries, seconds)
            result["qps"] = asdict(run)
            result["rss_after_qps_mib"] = mib(vm_kib(server.pid, "VmRSS"))
            print(
                f"scale: {case}: {run.qps:.0f} qps, lost {run.lost}, cpu {run.server_cpu:.0%}, {run.rcodes}"
            )
        if reload and not profile:
            result["reload"] = times = reloads(server, zone_dir)
            print(
                f"scale: {case}: reload with no file changed {times['unchanged_s']:.2f} s, "
                f"with one zone file changed {times['one_changed_s']:.2f} s"
            )
        if update and not profile:
            result["update"] = stall = update_stall(server.port, first, secret)
            print(
                f"scale: {case}: one UPDATE took {stall['update_ms']} ms ({stall['rcode']}); meanwhile the "
                f"slowest answer took {stall['probe_max_ms']} ms, "
                f"{stall['probe_timeouts']} queries timed out, "
                f"longest time without an answer {stall['longest_silence_s']} s"
            )
        result["log"] = server.log_summary() | {"problem_lines": server.problems[:20]}
    if with_nsd and not profile:
        result["nsd"] = nsd_case(case, zone_dir, queries, seconds)
    if profile:
        result["profile"] = top_functions(dump, 30)
        print_profile(result["profile"], f"dynmx load hot spots, case {case}")  # type: ignore[arg-type]
    return result


def nsd_case(case: str, zone_dir: Path, queries: Path | None, seconds: int) -> dict[str, object]:
    """NSD on the same files, pinned to core 0: spawn until the last zone answers its SOA, the
    main process's VmHWM (it reads every zone before forking its server), and the same qps run."""
    origins = sorted(path.name.removesuffix(".zone") + "." for path in zone_dir.glob("*.zone"))
    last = origins[-1]
    with tempfile.TemporaryDirectory(prefix="dynmx-scale-nsd-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        conf = workdir / "nsd.conf"
        files = {o: f"{o.removesuffix('.')}.zone" for o in origins}
        conf.write_text(nsd_conf(workdir, zone_dir, port, files))
        binary = find_nsd()
        assert binary is not None
        started = time.monotonic()
        subprocess.run([*pin(SERVER_CORE), binary, "-c", str(conf)], check=True, timeout=LOAD_TIMEOUT)
        wait_for_soa("127.0.0.1", port, last, timeout=LOAD_TIMEOUT, need_data=True)
        result: dict[str, object] = {"load_seconds": round(time.monotonic() - started, 2)}
        pid = int((workdir / "nsd.pid").read_text().split()[0])
        try:
            # NSD reads the zones in a child and forks its servers: the largest of the tree.
            result["peak_rss_mib"] = max(mib(vm_kib(each, "VmHWM")) for each in process_tree(pid))
            if queries is not None:
                run = measure("nsd", case, port, pid, queries, seconds)
                result["qps"] = asdict(run)
        finally:
            os.kill(pid, signal.SIGTERM)
    qps = result.get("qps")
    print(
        f"scale: {case}: NSD serving after {result['load_seconds']} s, peak RSS {result['peak_rss_mib']} MiB"
        + (f", {qps['qps']:.0f} qps, cpu {qps['server_cpu']:.0%}" if isinstance(qps, dict) else "")
    )
    return result


def cpu_seconds(root: int) -> float:
    """CPU seconds of `root` and every process below it, those that ended included (the parse
    workers): beside wall-clock time, a figure that other work on a shared machine moves less."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return round(total / tick, 2)


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    found = [pid]
    for each in found:
        children = subprocess.run(["pgrep", "-P", str(each)], capture_output=True, text=True).stdout.split()
        found.extend(int(child) for child in children)
    return found


def reload_seconds(server: Dynmx, timeout: float = LOAD_TIMEOUT) -> float:
    """SIGHUP, then the `seconds=` of the server's next `event=reloaded` line."""
    before = server.events["reloaded"]
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while server.events["reloaded"] == before:
        if time.monotonic() > deadline or not server.alive():
            raise RuntimeError("no event=reloaded after SIGHUP")
        time.sleep(0.05)
    line = next(line for line in reversed(server.tail) if "event=reloaded" in line)
    return float(line.rsplit("seconds=", 1)[1].split()[0])


def reloads(server: Dynmx, zone_dir: Path) -> dict[str, float]:
    """A reload with no file changed, then one with one zone's serial bumped."""
    unchanged = reload_seconds(server)
    first = min(zone_dir.iterdir())
    bumped = re.sub(r"(SOA \S+ \S+ )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 1}", first.read_text(), count=1)
    first.write_text(bumped)
    return {"unchanged_s": unchanged, "one_changed_s": reload_seconds(server)}


def short(where: str, src: Path) -> str:
    """A traceback line without the long prefixes of the checkout and the venv."""
    where = where.replace(str(src) + "/", "")
    return where.split("site-packages/", 1)[-1]


def memory_profile(case: str, workdir: Path) -> dict[str, object]:
    """Load `case` in this process under tracemalloc: MiB held after each stage, top allocation lines."""
    import gc
    import tracemalloc

    from harness import SRC

    sys.path.insert(0, str(SRC))
    from dynmx.answer.compiler import compile_table
    from dynmx.answer.zoneset import ZoneData
    from dynmx.zone.loader import load_zone_file

    zone_dir = workdir / "zones"
    zone_dir.mkdir()
    if CASES[case]:
        write_zones(zone_dir, CASES[case])
    else:
        write_big_zone(zone_dir, MILLION_NAMES)
    tracemalloc.start(1)
    stages: dict[str, object] = {}
    before = tracemalloc.take_snapshot()
    loaded = [load_zone_file(path) for path in sorted(zone_dir.iterdir())]
    gc.collect()
    after_load = tracemalloc.take_snapshot()
    data = [ZoneData(z.origin, z.zone) for z in loaded]
    gc.collect()
    after_data = tracemalloc.take_snapshot()
    table = compile_table(data)
    gc.collect()
    after_table = tracemalloc.take_snapshot()
    tracemalloc.stop()
    for name, (old, new) in {
        "zone files -> dnspython zones": (before, after_load),
        "ZoneData indexes": (after_load, after_data),
        "compiled answer table": (after_data, after_table),
    }.items():
        diff = new.compare_to(old, "lineno")
        top = [
            {"where": short(str(d.traceback), SRC), "mib": round(d.size_diff / 2**20, 1)}
            for d in sorted(diff, key=lambda d: -d.size_diff)[:8]
        ]
        stages[name] = {"mib": round(sum(d.size_diff for d in diff) / 2**20, 1), "top": top}
        print(f"scale: {case}: {name}: {stages[name]['mib']} MiB")  # type: ignore[index]
        for row in top:
            print(f"    {row['mib']:8.1f} MiB  {row['where']}")
    stages["entries"] = len(table.entries)
    return {"case": case, "memory": stages}


def split_profile(case: str, workdir: Path, runs: int = 3) -> dict[str, object]:
    """CPU seconds per zone of each loading stage, in this process: the least of `runs`."""
    from harness import SRC

    sys.path.insert(0, str(SRC))
    from dynmx.answer.compiler import compile_table
    from dynmx.answer.zoneset import ZoneData
    from dynmx.zone import dnspython_read, fastread, filebytes, loader
    from dynmx.zone.origin import decide_origin
    from dynmx.zone.validate import validate

    zone_dir = workdir / "zones"
    zone_dir.mkdir()
    if CASES[case]:
        write_zones(zone_dir, CASES[case])
    else:
        write_big_zone(zone_dir, MILLION_NAMES)
    paths = sorted(zone_dir.iterdir())
    texts = [(path, filebytes.decode_text(path, filebytes.read_zone_bytes(path))) for path in paths]
    starts = [(str(path), *decide_origin(path, text), text) for path, text in texts]
    fell_back = 0
    for name, origin, start, text in starts:
        try:
            fastread.read_records(text, name, origin, start)
        except fastread.Unsupported:
            fell_back += 1
    stages = {
        "origin": lambda: [decide_origin(path, text) for path, text in texts],
        "dnspython reader": lambda: [
            dnspython_read.read_records_with_dnspython(t, n, o, s) for n, o, s, t in starts
        ],
        "records (loader)": lambda: [loader.read_records(t, n, o, s) for n, o, s, t in starts],
    }
    records = [(origin, loader.read_records(t, n, origin, s)) for n, origin, s, t in starts]
    stages["validate"] = lambda: [validate(origin, found) for origin, found in records]
    stages["build_zone"] = lambda: [loader.build_zone(origin, found) for origin, found in records]
    zones = [loader.build_zone(origin, found) for origin, found in records]
    pairs = [(origin, zone) for (origin, _), zone in zip(records, zones, strict=True)]
    stages["ZoneData"] = lambda: [ZoneData(origin, zone) for origin, zone in pairs]
    data = [ZoneData(origin, zone) for origin, zone in pairs]
    stages["compile_table"] = lambda: compile_table(data)
    best = dict.fromkeys(stages, float("inf"))
    for _ in range(runs):
        for stage, work in stages.items():  # alternating, so a busy moment hits every stage alike
            began = time.process_time()
            work()
            best[stage] = min(best[stage], time.process_time() - began)
    per_zone = {stage: round(seconds / len(paths) * 1e6, 1) for stage, seconds in best.items()}
    print(
        f"scale: {case}: {len(paths)} files, {fell_back} left to dnspython; CPU us a zone, least of {runs}:"
    )
    for stage, micros in per_zone.items():
        print(f"    {stage:20} {micros:9.1f}")
    return {"case": case, "files": len(paths), "fell_back": fell_back, "cpu_us_per_zone": per_zone}


def stall_cells(stall: object) -> str:
    if not isinstance(stall, dict):
        return f"{'-':>9} {'-':>11}"
    return f"{stall['update_ms'] / 1000:9.2f} {stall['longest_silence_s']:11.2f}"


def start_and_spread(zones: int, rounds: int, start: bool, spread: bool, seconds: int) -> int:
    """--start / --spread: rounds of dynmx and NSD, turn by turn (scale_start.py)."""
    from bench import versions
    from scale_start import print_summary, run_rounds

    ensure_tools(need_nsd=True)
    OUT.mkdir(parents=True, exist_ok=True)
    began = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    found = run_rounds(zones, rounds, start, spread, seconds, OUT)
    document = {
        "time": began,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "source": source(),
        "versions": versions(),
        "seconds": seconds,
        "loadavg_at_end": loadavg(),
        **found,
    }
    path = OUT / f"scale-start-{stamp()}.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    print_summary(found["summary"])  # type: ignore[arg-type]
    print(f"\nwritten: {path.relative_to(ROOT)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured qps run (1-300)")
    parser.add_argument("--profile", action="store_true", help="run the loads under cProfile (no qps runs)")
    parser.add_argument("--no-update", action="store_true", help="skip timing one UPDATE per case")
    parser.add_argument("--no-nsd", action="store_true", help="skip NSD on the same files")
    parser.add_argument(
        "--no-reload",
        action="store_true",
        help="skip the reload timings (the UPDATE edits the start-up version)",
    )
    parser.add_argument("--memory", action="store_true", help="tracemalloc the loading stages in-process")
    parser.add_argument("--split", action="store_true", help="CPU per zone of each loading stage, in-process")
    parser.add_argument(
        "--start", action="store_true", help="cold and warm start, peak memory, vs NSD (scale_start.py)"
    )
    parser.add_argument(
        "--spread",
        action="store_true",
        help="qps of a mix over every zone vs one zone, vs NSD (scale_start.py)",
    )
    parser.add_argument("--zones", type=int, default=100_000, help="zones for --start/--spread (10-100000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds for --start/--spread (1-10)")
    args = parser.parse_args()
    if args.start or args.spread:
        if not (10 <= args.zones <= 100_000 and 1 <= args.rounds <= 10 and 1 <= args.seconds <= 300):
            parser.error("--zones 10-100000, --rounds 1-10, --seconds 1-300")
        return start_and_spread(args.zones, args.rounds, args.start, args.spread, args.seconds)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not 1 <= args.seconds <= 300:
        parser.error(f"unknown cases {unknown}" if unknown else "--seconds must be between 1 and 300")
    ensure_tools(need_nsd=not args.no_nsd)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.split:
        found = []
        for case in cases:
            with tempfile.TemporaryDirectory(prefix=f"dynmx-scale-{case}-") as tmp:
                found.append(split_profile(case, Path(tmp)))
        path = OUT / f"scale-split-{stamp()}.json"
        path.write_text(json.dumps({"source": source(), "results": found}, indent=1) + "\n")
        print(f"\nwritten: {path.relative_to(ROOT)}")
        return 0
    if args.memory:
        found = []
        for case in cases:
            with tempfile.TemporaryDirectory(prefix=f"dynmx-scale-{case}-") as tmp:
                found.append(memory_profile(case, Path(tmp)))
        path = OUT / f"scale-memory-{stamp()}.json"
        path.write_text(json.dumps({"source": source(), "results": found}, indent=1) + "\n")
        print(f"\nwritten: {path.relative_to(ROOT)}")
        return 0
    results = []
    for case in cases:
        with tempfile.TemporaryDirectory(prefix=f"dynmx-scale-{case}-") as tmp:
            results.append(
                run_case(
                    case,
                    Path(tmp),
                    args.seconds,
                    args.profile,
                    not args.no_update,
                    not args.no_nsd,
                    not args.no_reload,
                )
            )
    head = (
        f"{'case':5} {'files':>7} {'records':>9} {'entries':>9} {'serving s':>9} {'compiled s':>10} "
        f"{'peak MiB':>9} {'qps':>9}"
    )
    print(f"\n{head} {'UPDATE s':>9} {'silence s':>11}")
    for r in results:
        qps = r.get("qps")
        cell = f"{qps['qps']:9.0f}" if isinstance(qps, dict) else f"{'-':>9}"
        print(
            f"{r['case']:5} {r['zone_files']:7d} {r['records']:9d} {r['entries']:9d} "
            f"{r['load_seconds']:9.1f} {r['compiled_seconds']:10.1f} {r['peak_rss_mib']:9.1f} {cell} "
            f"{stall_cells(r.get('update'))}"
        )
    for r in results:
        nsd = r.get("nsd")
        if isinstance(nsd, dict):
            qps = nsd.get("qps")
            cell = f"{qps['qps']:9.0f}" if isinstance(qps, dict) else f"{'-':>9}"
            label = f"NSD {r['case']}"
            print(f"{label:26} {nsd['load_seconds']:9.1f} {'':>10} {nsd['peak_rss_mib']:9.1f} {cell}")
    by = {r["case"]: r for r in results}
    ratio = nsd_ratio = None
    if all(isinstance(by.get(c, {}).get("qps"), dict) for c in QPS_CASES):
        ratio = by["100k"]["qps"]["qps"] / by["1"]["qps"]["qps"]  # type: ignore[index]
        print(f"qps 100,000 zones / 1 zone: {ratio:.3f} (target >= 0.9)")
    if all(isinstance(by.get(c, {}).get("nsd", {}).get("qps"), dict) for c in QPS_CASES):
        nsd_ratio = by["100k"]["nsd"]["qps"]["qps"] / by["1"]["nsd"]["qps"]["qps"]  # type: ignore[index]
        print(f"NSD: qps 100,000 zones / 1 zone: {nsd_ratio:.3f}")
    document = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu": cpu_model(),
        "source": source(),
        "loadavg_at_end": loadavg(),
        "profiled": args.profile,
        "results": results,
        "qps_ratio_100k_over_1": ratio,
        "nsd_qps_ratio_100k_over_1": nsd_ratio,
    }
    path = OUT / f"scale-{stamp()}.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    print("(silence: longest gap between answered probes, 50 SOA queries/s, while one UPDATE ran)")
    print(f"\nwritten: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

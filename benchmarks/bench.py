"""Throughput of dynmx next to NSD on the same zone, measured with dnsperf on 127.0.0.1.

Not a test: it asserts nothing about timings (design.md, Testing). It reports queries
per second for each server and query mix, and the ratio dynmx/NSD, which is the number
worth tracking: absolute qps depend on the machine, the ratio much less.

Method: one generated zone (~1000 names with MX, A, AAAA, TXT) is served by NSD and by
`python -m dynmx serve`, one server at a time, each pinned to core 0 with taskset;
dnsperf runs pinned to core 1 with enough outstanding queries that the server, not
dnsperf, is the bottleneck. Each run is preceded by a short warm-up that is not counted.

    .venv/bin/python benchmarks/bench.py [--seconds 10] [--rounds 5] [--only nsd|dynmx] [--base DIR]

With `--rounds N` every server is started once and the runs are interleaved: each round
measures each query file on each server in turn (the order reversed every other round),
so a neighbour's load on a shared machine falls on all of them alike; the table gives
medians over rounds, the ratio is the median of the rounds' ratios. `--base DIR` adds
another tree's dynmx ("base", e.g. `git archive` of an older commit) to the same rounds.
`--tree NAME=DIR` (repeatable) adds more, e.g. the same tree with another batch size.
The `cpu` figures: the server's CPU share of one core, and its CPU microseconds per
answered query (process CPU time / completed queries), the figure that moves least with
what else runs.

Results are printed as a table and written to benchmarks/out/bench-<time>.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
SRC = Path(os.environ.get("DYNMX_SRC") or ROOT).resolve()  # another tree's dynmx (harness.py)
sys.path.insert(0, str(ROOT))

from tests.nsd import Nsd, find_nsd, free_port, wait_for_soa  # noqa: E402

HOST = "127.0.0.1"
ZONE = "bench.test"
NAMES = 1000  # hostNNNN names; plus 20 MX targets and the apex
MX_TARGETS = 20
SERVER_CORE = "0"
DNSPERF_CORE = "1"
WARMUP_SECONDS = 2
# Four clients with up to 200 outstanding queries keep a one-core server saturated
# without dnsperf itself (on its own core) becoming the limit.
CLIENTS = 4
OUTSTANDING = 200
QPS_LIMIT = 400_000  # far above what one core serves; only guards against runaway loops


@dataclass
class Run:
    """What one dnsperf run measured."""

    server: str
    queries: str
    qps: float
    sent: int
    completed: int
    lost: int
    avg_latency_ms: float
    rcodes: str
    server_cpu: float  # share of one core the server used; well below 1: dnsperf was the limit
    cpu_us: float = 0.0  # the server's CPU microseconds per completed query
    round_number: int = 0


# --- setup --------------------------------------------------------------------------------


def ensure_tools(need_nsd: bool) -> None:
    """Install dnsperf (and NSD) from Debian when missing and we are root; else explain."""
    missing = [pkg for pkg, ok in (("dnsperf", shutil.which("dnsperf")), ("nsd", find_nsd())) if not ok]
    if not need_nsd and "nsd" in missing:
        missing.remove("nsd")
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"bench: missing {' '.join(missing)}; install with: apt-get install {' '.join(missing)}")
    print(f"bench: installing {' '.join(missing)} with apt-get", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=300)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=env,
        check=True,
        timeout=600,
    )


def write_zone(directory: Path) -> Path:
    """A zone shaped like a mail domain host: every host has MX, A, AAAA and TXT."""
    lines = [
        f"$ORIGIN {ZONE}.",
        "$TTL 3600",
        "@ SOA ns1 hostmaster 1 7200 900 1209600 300",
        "@ NS ns1",
        "@ NS ns2",
        "@ MX 10 mx01",
        "@ A 192.0.2.1",
        "ns1 A 192.0.2.53",
        "ns2 A 192.0.2.54",
    ]
    for i in range(1, MX_TARGETS + 1):
        lines += [f"mx{i:02d} A 198.51.100.{i}", f"mx{i:02d} AAAA 2001:db8:25::{i:x}"]
    for i in range(NAMES):
        first, second = i % MX_TARGETS + 1, (i + 7) % MX_TARGETS + 1
        lines += [
            f"host{i:04d} MX 10 mx{first:02d}",
            f"host{i:04d} MX 20 mx{second:02d}",
            f"host{i:04d} A 203.0.113.{i % 250 + 1}",
            f"host{i:04d} AAAA 2001:db8:{i:x}::1",
            f'host{i:04d} TXT "v=spf1 mx -all"',
        ]
    path = directory / f"{ZONE}.zone"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_query_files(directory: Path) -> dict[str, Path]:
    """dnsperf input: MX only, and a mix of A, AAAA, MX, TXT and NXDOMAIN (shuffled, fixed seed)."""
    rng = random.Random(1035)
    mx = [f"host{i:04d}.{ZONE} MX" for i in range(NAMES)]
    mixed = [f"host{i:04d}.{ZONE} {qtype}" for i in range(NAMES) for qtype in ("A", "AAAA", "MX", "TXT")]
    mixed += [f"missing{i:04d}.{ZONE} A" for i in range(NAMES)]
    rng.shuffle(mx)
    rng.shuffle(mixed)
    files = {"mx": directory / "queries-mx.txt", "mixed": directory / "queries-mixed.txt"}
    files["mx"].write_text("\n".join(mx) + "\n")
    files["mixed"].write_text("\n".join(mixed) + "\n")
    files["lone"] = files["mx"]  # the MX queries one at a time: latency, not throughput
    return files


def pin(core: str) -> list[str]:
    """taskset prefix for `core`, or nothing on a machine with a single core."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core]
    return []


def pin_running(pid: int, core: str) -> None:
    """Move a running process and all its threads to `core` (no-op where `pin` is one)."""
    if pin(core):
        subprocess.run(["taskset", "-a", "-p", "-c", core, str(pid)], check=True, capture_output=True)


# --- servers ------------------------------------------------------------------------------


@contextmanager
def nsd_server(zone_dir: Path) -> Iterator[tuple[int, int]]:
    """NSD on core 0; yields (port, pid of the daemon)."""
    with Nsd(zone_dir, {ZONE: f"{ZONE}.zone"}, prefix=pin(SERVER_CORE)) as nsd:
        assert nsd.pid is not None
        yield nsd.port, nsd.pid


@contextmanager
def dynmx_server(zone_dir: Path, src: Path = SRC) -> Iterator[tuple[int, int]]:
    """`python -m dynmx serve` on core 0 (taskset execs it: same pid); yields (port, pid)."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryDirectory(prefix="dynmx-bench-") as workdir:
        zones = shutil.copytree(zone_dir, Path(workdir) / "zones")  # its own state_dir: zones/../state
        cmd = [*pin(SERVER_CORE), sys.executable, "-m", "dynmx", "serve"]
        cmd += ["--zones", str(zones), "--listen", f"{HOST}:{port}"]
        log = Path(workdir) / "dynmx.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                wait_for_soa(HOST, port, ZONE, alive=lambda: proc.poll() is None)
            except (TimeoutError, RuntimeError) as exc:
                raise RuntimeError(f"{' '.join(cmd)}: {exc}\n{log.read_text(errors='replace')}") from None
            yield port, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


SERVERS = {"nsd": nsd_server, "dynmx": dynmx_server}


# --- measuring ----------------------------------------------------------------------------


def dnsperf(
    port: int, queries: Path, seconds: int, clients: int = CLIENTS, outstanding: int = OUTSTANDING
) -> str:
    cmd = [*pin(DNSPERF_CORE), "dnsperf", "-s", HOST, "-p", str(port), "-d", str(queries)]
    cmd += ["-l", str(seconds), "-c", str(clients), "-q", str(outstanding), "-Q", str(QPS_LIMIT)]
    cmd += ["-t", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stdout}{run.stderr}")
    return run.stdout


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by process `root` and all its descendants.

    NSD does its work in a forked child, so the daemon's own counters are not enough.
    """
    parent: dict[int, int] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parent[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid, seconds in used.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parent:
            ancestor = parent[ancestor]
        if ancestor == root:
            total += seconds
    return total


def measure(server: str, name: str, port: int, pid: int, path: Path, seconds: int) -> Run:
    """One warm-up run (not counted), then the measured run with the server's CPU share.
    `lone`: one query at a time (one client, one outstanding), for the latency at low load."""
    load = (1, 1) if name == "lone" else (CLIENTS, OUTSTANDING)
    dnsperf(port, path, WARMUP_SECONDS, *load)
    cpu = tree_cpu_seconds(pid)
    output = dnsperf(port, path, seconds, *load)
    return parse_dnsperf(server, name, output, tree_cpu_seconds(pid) - cpu)


def parse_dnsperf(server: str, queries: str, output: str, server_cpu_seconds: float) -> Run:
    """Read dnsperf's statistics block; "Queries per second:" is the number that matters.

    The server's CPU share is taken over dnsperf's "Run time", not the wall time of the
    command, which includes up to 2 s of waiting for lost queries at the end.
    """

    def number(label: str) -> float:
        match = re.search(rf"^\s*{re.escape(label)}:\s+([\d.]+)", output, re.MULTILINE)
        if not match:
            raise RuntimeError(f"dnsperf output has no {label!r} line:\n{output}")
        return float(match.group(1))

    rcodes = re.search(r"^\s*Response codes:\s+(.*)$", output, re.MULTILINE)
    completed = number("Queries completed")
    return Run(
        server=server,
        queries=queries,
        qps=number("Queries per second"),
        sent=int(number("Queries sent")),
        completed=int(number("Queries completed")),
        lost=int(number("Queries lost")),
        avg_latency_ms=round(number("Average Latency (s)") * 1000, 3),
        rcodes=rcodes.group(1).strip() if rcodes else "",
        server_cpu=round(server_cpu_seconds / number("Run time (s)"), 3),
        cpu_us=round(server_cpu_seconds / completed * 1e6, 3) if completed else 0.0,
    )


def command_output(cmd: list[str]) -> str:
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return run.stdout + run.stderr


def rcode_mix(rcodes: str) -> str:
    """dnsperf's rcode line as names and shares only, e.g. 'NOERROR 80%, NXDOMAIN 20%'.

    Both servers must answer the same mix, or a fast server may just be answering wrongly.
    """
    parts = re.findall(r"(\w+) \d+ \(([\d.]+)%\)", rcodes)
    return ", ".join(f"{rcode} {float(share):.0f}%" for rcode, share in parts)


def versions() -> dict[str, str]:
    """What produced the numbers, so results from different days can be told apart."""
    nsd = command_output([find_nsd() or "nsd", "-v"]).strip().splitlines()
    dnsperf = command_output(["dnsperf", "-h"]).splitlines()
    dynmx = command_output([sys.executable, "-c", "import dynmx; print(dynmx.__version__)"])
    return {
        "nsd": nsd[0] if nsd else "",
        "dnsperf": next((line for line in dnsperf if line.startswith("Version")), ""),
        "dynmx": dynmx.strip(),
        "python": platform.python_version(),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def median_run(runs: list[Run]) -> Run:
    """One run standing for several rounds: each figure the median of the rounds'."""
    first = runs[0]
    if len(runs) == 1:
        return first
    return Run(
        server=first.server,
        queries=first.queries,
        qps=statistics.median(r.qps for r in runs),
        sent=sum(r.sent for r in runs),
        completed=sum(r.completed for r in runs),
        lost=sum(r.lost for r in runs),
        avg_latency_ms=round(statistics.median(r.avg_latency_ms for r in runs), 3),
        rcodes=first.rcodes,
        server_cpu=round(statistics.median(r.server_cpu for r in runs), 3),
        cpu_us=round(statistics.median(r.cpu_us for r in runs), 3),
        round_number=-1,
    )


def round_ratios(runs: list[Run], server: str, name: str, figure: str = "qps") -> list[float]:
    """`server`'s figure over NSD's, one per round in which both ran `name`."""
    by_round = {(r.server, r.round_number): getattr(r, figure) for r in runs if r.queries == name}
    return [
        by_round[(server, number)] / by_round[("nsd", number)]
        for (who, number) in by_round
        if who == server and by_round.get(("nsd", number))
    ]


def print_table(runs: list[Run], names: list[str], servers: list[str] | None = None) -> dict[str, float]:
    """Per query file and server: qps, CPU share, CPU us per query and latency (medians over
    rounds), and each dynmx's qps over NSD's (the median of the rounds' ratios; returned
    for the JSON file, keyed by file, and by "file server" for a server other than dynmx)."""
    servers = servers or list(dict.fromkeys(r.server for r in runs))
    ratios: dict[str, float] = {}
    rounds = len({r.round_number for r in runs})
    print(f"\n{rounds} round(s); figures are medians over rounds")
    print(f"{'queries':8} {'server':6} {'qps':>9} {'cpu':>5} {'us/q':>6} {'ms':>6} {'x nsd':>6} {'cpu x':>6}")
    for name in names:
        for server in servers:
            mine = [r for r in runs if r.server == server and r.queries == name]
            if not mine:
                continue
            run = median_run(mine)
            ratio = cpu = "-"
            if server != "nsd" and (found := round_ratios(runs, server, name)):
                key = name if server == "dynmx" else f"{name} {server}"
                ratios[key] = round(statistics.median(found), 4)
                ratio = f"{ratios[key]:.3f}"
                # NSD's CPU per query over this server's: the qps ratio a saturated core would give
                cpu_ratio = [1 / x for x in round_ratios(runs, server, name, "cpu_us") if x]
                cpu = f"{statistics.median(cpu_ratio):.3f}" if cpu_ratio else "-"
            print(
                f"{name:8} {server:6} {run.qps:9.0f} {run.server_cpu:5.0%} {run.cpu_us:6.2f} "
                f"{run.avg_latency_ms:6.3f} {ratio:>6} {cpu:>6}"
            )
    print("(cpu: share of one core the server used; well below 100% means dnsperf was the limit;")
    print(" us/q: the server's CPU microseconds per answered query; x nsd: qps over NSD's, median of")
    print(" the rounds' ratios; cpu x: NSD's us/q over this server's; `lone` sends one query at a")
    print(" time, so its ms is the latency at low load)")
    for name in names:
        mixes = {r.server: rcode_mix(r.rcodes) for r in runs if r.queries == name}
        if len(set(mixes.values())) > 1:
            print(f"warning: {name}: the servers answered with different rcodes: {mixes}")
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run (1-300)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (1-50)")
    parser.add_argument("--only", choices=sorted(SERVERS), help="benchmark one server only")
    parser.add_argument("--queries", help="query files to run, comma-separated (mx,mixed,lone)")
    parser.add_argument(
        "--base", type=Path, help="another tree's dynmx, measured as 'base' in the same rounds"
    )
    parser.add_argument(
        "--tree", action="append", default=[], metavar="NAME=DIR", help="more trees' dynmx (repeatable)"
    )
    args = parser.parse_args()
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be between 1 and 300")
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    servers = [args.only] if args.only else ["nsd", "dynmx"]
    starters = dict(SERVERS)
    if args.base:
        base = args.base.resolve()
        starters["base"] = lambda zone_dir: dynmx_server(zone_dir, base)
        servers.append("base")
    for tree in args.tree:
        name, _, directory = tree.partition("=")
        if not directory or name in starters:
            parser.error(f"--tree {tree}: expected NAME=DIR with a new NAME")
        starters[name] = functools.partial(dynmx_server, src=Path(directory).resolve())
        servers.append(name)
    ensure_tools(need_nsd="nsd" in servers)

    OUT.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dynmx-bench-zone-") as tmp, ExitStack() as stack:
        zone_dir = Path(tmp)
        write_zone(zone_dir)
        query_files = write_query_files(OUT)
        if args.queries:
            query_files = {name: query_files[name] for name in args.queries.split(",")}
        started = {server: stack.enter_context(starters[server](zone_dir)) for server in servers}
        for number in range(args.rounds):
            order = servers if number % 2 == 0 else servers[::-1]
            for name, path in query_files.items():
                for server in order:
                    port, pid = started[server]
                    run = measure(server, name, port, pid, path, args.seconds)
                    run.round_number = number
                    runs.append(run)
                    print(
                        f"bench: round {number} {server:5} {name:5} {run.qps:10.0f} qps, lost {run.lost}, "
                        f"server cpu {run.server_cpu:.0%} {run.cpu_us:.2f} us/q, rcodes {run.rcodes}",
                        file=sys.stderr,
                    )

    ratios = print_table(runs, list(query_files), servers)
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")

    result = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "clients": CLIENTS,
        "outstanding": OUTSTANDING,
        "zone_names": NAMES + MX_TARGETS + 3,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "pinned": bool(pin(SERVER_CORE)),
        "load_average": {"before": load_before, "after": load_after},
        "versions": versions(),
        "runs": [asdict(r) for r in runs],
        "ratio_dynmx_over_nsd": ratios,
    }
    path = OUT / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""NXDOMAIN and wildcard floods next to cached answers: qps and resident memory, dynmx and NSD.

An attacker who asks for random names defeats every cache keyed by name. dynmx answers
plain missing names from the zone's shared NXDOMAIN entry (decided on bytes) and sends
everything else it has not compiled (wildcard expansions among them) through the slow
path into a bounded LRU. This measures both against ordinary positive answers, on
bench.py's zone (bench.test, 1,023 names) plus a wildcard `*.wild.bench.test`:

* `cached`: A, AAAA, MX and TXT of the 1,000 hosts (all precompiled);
* `nxdomain`: A for 1,000,000 unique random labels under bench.test (no wildcard);
* `wildcard`: A for 1,000,000 unique random labels under wild.bench.test (every one a
  slow-path lookup and an LRU insert in dynmx; NSD synthesises them too);
* `nx-any`: ANY for 1,000,000 unique random labels under bench.test (a meta type: the
  slow path and the LRU in dynmx, as for any qtype >= 251).

Per server (NSD, then `python -m dynmx serve`), on core 0 with dnsperf on core 1 as in
bench.py (whose `measure` runs each file: 2 s warm-up, then `--seconds`), the resident
memory of the server's process tree is sampled from /proc/PID/status (VmRSS) every 0.5 s.
Targets (issue "Hardening and scale"): flood qps within 2x of cached (ratio >= 0.5), and
RSS flat across the floods.

    .venv/bin/python benchmarks/flood.py [--seconds 20] [--only dynmx|nsd] [--profile wildcard]

`--profile FILE` runs dynmx under cProfile while that query file floods it and prints
the functions with the most own time (file:line); cProfile slows dynmx, so its qps in
that run are not comparable.

Not a test; asserts nothing. Writes benchmarks/out/flood-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import (
    NAMES,
    SERVER_CORE,
    ZONE,
    cpu_model,
    ensure_tools,
    measure,
    nsd_server,
    pin,
    versions,
    write_zone,
)
from harness import (
    OUT,
    ROOT,
    Dynmx,
    RssSampler,
    loadavg,
    mib,
    print_profile,
    profile_args,
    source,
    stamp,
    top_functions,
    tree_rss_kib,
)

FLOOD_NAMES = 1_000_000
WILDCARD = f"wild.{ZONE}"
ALPHABET = string.ascii_lowercase + string.digits
QUERY_FILES = ("cached", "nxdomain", "wildcard", "nx-any")


def write_flood_zone(directory: Path) -> None:
    """bench.py's zone plus a wildcard with an A and an MX."""
    path = write_zone(directory)
    with path.open("a") as out:
        out.write(f"*.wild.{ZONE}. A 192.0.2.99\n*.wild.{ZONE}. MX 10 mx01.{ZONE}.\n")


def random_labels(rng: random.Random, count: int) -> Iterator[str]:
    """`count` distinct random 12-character labels."""
    seen: set[str] = set()
    while len(seen) < count:
        label = "".join(rng.choices(ALPHABET, k=12))
        if label not in seen:
            seen.add(label)
            yield label


def write_query_files(directory: Path, flood_names: int) -> dict[str, Path]:
    rng = random.Random(8020)
    cached = [f"host{i:04d}.{ZONE} {t}" for i in range(NAMES) for t in ("A", "AAAA", "MX", "TXT")]
    rng.shuffle(cached)
    files = {name: directory / f"queries-flood-{name}.txt" for name in QUERY_FILES}
    files["cached"].write_text("\n".join(cached) + "\n")
    for name, parent, qtype in (
        ("nxdomain", ZONE, "A"),
        ("wildcard", WILDCARD, "A"),
        ("nx-any", ZONE, "ANY"),
    ):
        with files[name].open("w") as out:
            for label in random_labels(rng, flood_names):
                out.write(f"{label}.{parent} {qtype}\n")
    return files


@contextmanager
def dynmx_server(zone_dir: Path, profile: Path | None = None) -> Iterator[tuple[int, int]]:
    """dynmx with its defaults (cache_size 10000) on core 0; /metrics on an ephemeral port."""
    args = ["--zones", str(zone_dir), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    python_args = profile_args(profile) if profile else []
    with Dynmx(args, zone_dir.parent, prefix=pin(SERVER_CORE), python_args=python_args) as server:
        RUNNING["dynmx"] = server
        yield server.port, server.pid


RUNNING: dict[str, Dynmx] = {}  # the dynmx being measured, for its /metrics and log
SERVERS = {"nsd": nsd_server, "dynmx": dynmx_server}


def dynmx_metrics(names: tuple[str, ...]) -> dict[str, float]:
    """A few lines of dynmx's /metrics (the LRU size, slow-path counts), summed over labels."""
    server = RUNNING.get("dynmx")
    if server is None or not server.http_port:
        return {}
    url = f"http://127.0.0.1:{server.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        for name in names:
            if line.startswith(name) and not line.startswith("#"):
                key = line.split(" ")[0]
                found[key] = float(line.rsplit(" ", 1)[1])
    return found


METRICS = ("dynmx_answer_cache_entries", "dynmx_dns_slow_path_total", "dynmx_answer_table_entries")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of each measured run (1-300)")
    parser.add_argument("--only", choices=sorted(SERVERS), help="one server only")
    parser.add_argument("--names", type=int, default=FLOOD_NAMES, help="unique random names per flood file")
    parser.add_argument("--profile", choices=QUERY_FILES, help="profile dynmx under this flood instead")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be between 1 and 300")
    servers = [args.only] if args.only else ["nsd", "dynmx"]
    ensure_tools(need_nsd="nsd" in servers)
    OUT.mkdir(parents=True, exist_ok=True)
    files = write_query_files(OUT, args.names)
    if args.profile:
        return profile(files[args.profile], args.profile, args.seconds)
    rows: list[dict[str, object]] = []
    logs: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="dynmx-flood-") as tmp:
        zone_dir = Path(tmp) / "zones"
        zone_dir.mkdir()
        write_flood_zone(zone_dir)
        for server in servers:
            with SERVERS[server](zone_dir) as (port, pid):
                for name, path in files.items():
                    before = tree_rss_kib(pid)
                    with RssSampler(pid, 0.5) as sampler:
                        run = measure(server, name, port, pid, path, args.seconds)
                    after = tree_rss_kib(pid)
                    metrics = dynmx_metrics(METRICS) if server == "dynmx" else {}
                    row = {
                        **asdict(run),
                        "rss_before_mib": mib(before),
                        "rss_max_mib": sampler.summary()["max_mib"],
                        "rss_after_mib": mib(after),
                        "rss_samples": sampler.samples,
                        "metrics_after": metrics,
                    }
                    rows.append(row)
                    print(
                        f"flood: {server:5} {name:8} {run.qps:9.0f} qps, lost {run.lost}, "
                        f"cpu {run.server_cpu:.0%}, "
                        f"rss {mib(before)} -> max {row['rss_max_mib']} -> {mib(after)} MiB; {run.rcodes}",
                        file=sys.stderr,
                    )
                if server == "dynmx":
                    logs["dynmx"] = RUNNING["dynmx"].log_summary()
    ratios = report(rows, servers, list(files))
    result = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": args.seconds,
        "flood_names": args.names,
        "cpu": cpu_model(),
        "versions": versions(),
        "source": source(),
        "loadavg_at_end": loadavg(),
        "runs": rows,
        "ratios": ratios,
        "logs": logs,
    }
    path = OUT / f"flood-{stamp()}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwritten: {path.relative_to(ROOT)}")
    return 0


def profile(queries: Path, name: str, seconds: int) -> int:
    """dynmx under cProfile while `queries` floods it; the hot spots as file:line."""
    dump = OUT / f"flood-profile-{name}.pstats"
    with tempfile.TemporaryDirectory(prefix="dynmx-flood-") as tmp:
        zone_dir = Path(tmp) / "zones"
        zone_dir.mkdir()
        write_flood_zone(zone_dir)
        with dynmx_server(zone_dir, profile=dump) as (port, pid):
            run = measure("dynmx", name, port, pid, queries, seconds)
    print(f"flood: dynmx {name} under cProfile: {run.qps:.0f} qps (slowed by the profiler)")
    rows = top_functions(dump, 25)
    print_profile(rows, f"dynmx hot spots, {name} flood")
    path = OUT / f"flood-profile-{name}-{stamp()}.json"
    path.write_text(json.dumps({"source": source(), "run": asdict(run), "top": rows}, indent=1) + "\n")
    print(f"\nwritten: {path.relative_to(ROOT)} and {dump.relative_to(ROOT)}")
    return 0


def report(rows: list[dict[str, object]], servers: list[str], names: list[str]) -> dict[str, float]:
    by = {(r["server"], r["queries"]): r for r in rows}
    print(f"\n{'server':6} {'queries':9} {'qps':>9} {'lost':>6} {'cpu':>5} {'vs cached':>9} {'RSS MiB':>24}")
    ratios: dict[str, float] = {}
    for server in servers:
        cached = by[(server, "cached")]
        for name in names:
            row = by[(server, name)]
            ratio = float(row["qps"]) / float(cached["qps"])  # type: ignore[arg-type]
            if name != "cached":
                ratios[f"{server} {name}/cached"] = round(ratio, 3)
            rss = f"{row['rss_before_mib']} -> {row['rss_max_mib']} -> {row['rss_after_mib']}"
            print(
                f"{server:6} {name:9} {row['qps']:9.0f} {row['lost']:6d} {row['server_cpu']:5.0%} "
                f"{ratio:9.2f} {rss:>24}"
            )
    if len(servers) == 2:
        for name in names:
            ratio = float(by[("dynmx", name)]["qps"]) / float(by[("nsd", name)]["qps"])  # type: ignore[arg-type]
            ratios[f"dynmx/nsd {name}"] = round(ratio, 3)
            print(f"dynmx/nsd {name}: {ratio:.2f}")
    print("(RSS: before -> max while running -> after, VmRSS of the server's process tree)")
    return ratios


if __name__ == "__main__":
    sys.exit(main())

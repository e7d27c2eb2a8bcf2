"""Multi-core scaling: dynmx `--workers N` next to NSD with `server-count: N`, static and pool MX.

The issue's method: servers pinned to one set of cores (default 0-7), dnsperf with
`-T threads` pinned to the others (default 8-15), for N = 1, 2, 4, 8; target at least
0.85x NSD at 8. On a machine with fewer cores pass smaller sets, e.g. on 2 cores:

    .venv/bin/python benchmarks/workers.py --counts 1,2 --server-cpus 0 --dnsperf-cpus 1 --threads 1

(then the figures say how the code behaves, not how it scales). NSD answers the static
zone for both query files (it has no pools); dynmx answers the pool name from a
round-robin pool and the static name from the zone. Not a test; asserts nothing.
Writes benchmarks/out/workers-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import HOST, OUT, QPS_LIMIT, ROOT, SRC, WARMUP_SECONDS, Run, parse_dnsperf, tree_cpu_seconds
from pools import HOSTS, POOL_CONFIG, STATIC_MX, ZONE, ZONE_HEAD

from tests.nsd import Nsd, free_port, wait_for_soa

OUTSTANDING = 200  # per dnsperf client


def taskset(cpus: str) -> list[str]:
    return ["taskset", "-c", cpus] if cpus else []


def write_zone(directory: Path) -> Path:
    zones = directory / "zones"
    zones.mkdir()
    (zones / f"{ZONE}.zone").write_text(
        ZONE_HEAD + STATIC_MX.format(owner="@") + STATIC_MX.format(owner="static")
    )
    return zones


def write_queries(directory: Path) -> dict[str, Path]:
    paths = {}
    for name, line in {"static": f"static.{ZONE} MX\n", "pool": f"{ZONE} MX\n"}.items():
        path = directory / f"queries-{name}.txt"
        path.write_text(line * 1000)
        paths[name] = path
    return paths


@contextmanager
def nsd(zones: Path, count: int, cpus: str) -> Iterator[tuple[int, int]]:
    with Nsd(zones, {ZONE: f"{ZONE}.zone"}, prefix=taskset(cpus), server_count=count) as server:
        assert server.pid is not None
        yield server.port, server.pid


@contextmanager
def dynmx(zones: Path, count: int, cpus: str) -> Iterator[tuple[int, int]]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dynmx-workers-") as workdir:
        config = Path(workdir) / "dynmx.toml"
        config.write_text(POOL_CONFIG.format(host=HOST, port=port, zones=zones, zone=ZONE))
        state = Path(workdir) / "state"
        text = config.read_text().replace("[server]\n", f'[server]\nstate_dir = "{state}"\n', 1)
        config.write_text(text)
        cmd = [*taskset(cpus), sys.executable, "-m", "dynmx", "serve", "--config", str(config)]
        cmd += ["--workers", str(count)]
        log = Path(workdir) / "dynmx.log"
        with log.open("wb") as out:
            # Started outside the tree: `python -m` puts its working directory first on the path.
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(SRC), str(ROOT)]))}
            proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                wait_for_soa(HOST, port, ZONE, alive=lambda: proc.poll() is None)
            except (TimeoutError, RuntimeError) as exc:
                raise RuntimeError(f"{' '.join(cmd)}: {exc}\n{log.read_text(errors='replace')}") from None
            time.sleep(1.0)  # every worker ready (the first answer may come from the first worker)
            yield port, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def dnsperf(port: int, queries: Path, seconds: float, cpus: str, threads: int) -> str:
    clients = max(4, threads * 2)
    cmd = [*taskset(cpus), "dnsperf", "-s", HOST, "-p", str(port), "-d", str(queries), "-l", str(seconds)]
    cmd += [
        "-c",
        str(clients),
        "-T",
        str(threads),
        "-q",
        str(OUTSTANDING * clients),
        "-Q",
        str(QPS_LIMIT * 8),
    ]
    cmd += ["-t", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stdout}{run.stderr}")
    return run.stdout


def measure(server: str, name: str, port: int, pid: int, path: Path, args: argparse.Namespace) -> Run:
    dnsperf(port, path, WARMUP_SECONDS, args.dnsperf_cpus, args.threads)
    cpu = tree_cpu_seconds(pid)
    output = dnsperf(port, path, args.seconds, args.dnsperf_cpus, args.threads)
    return parse_dnsperf(server, name, output, tree_cpu_seconds(pid) - cpu)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", default="1,2,4,8", help="server processes to try (comma-separated)")
    parser.add_argument("--server-cpus", default="0-7")
    parser.add_argument("--dnsperf-cpus", default="8-15")
    parser.add_argument("--threads", type=int, default=8, help="dnsperf -T")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="dynmx-workers-bench-") as tmp:
        directory = Path(tmp)
        zones = write_zone(directory)
        queries = write_queries(directory)
        for count in counts:
            runs: dict[str, Run] = {}
            with nsd(zones, count, args.server_cpus) as (port, pid):
                runs["nsd"] = measure("nsd", "static", port, pid, queries["static"], args)
            with dynmx(zones, count, args.server_cpus) as (port, pid):
                for name, path in queries.items():
                    runs[f"dynmx-{name}"] = measure("dynmx", name, port, pid, path, args)
            nsd_qps = runs["nsd"].qps
            row: dict[str, object] = {
                "processes": count,
                "nsd_qps": nsd_qps,
                "dynmx_static_qps": runs["dynmx-static"].qps,
                "dynmx_pool_qps": runs["dynmx-pool"].qps,
                "static_ratio": round(runs["dynmx-static"].qps / nsd_qps, 3),
                "pool_ratio": round(runs["dynmx-pool"].qps / nsd_qps, 3),
                "runs": {key: asdict(run) for key, run in runs.items()},
            }
            rows.append(row)
            print(
                f"N={count}: NSD {nsd_qps:,.0f} qps; dynmx static {runs['dynmx-static'].qps:,.0f} "
                f"({row['static_ratio']}x), pool {runs['dynmx-pool'].qps:,.0f} ({row['pool_ratio']}x); "
                f"lost {sum(r.lost for r in runs.values())}; CPU us/query: NSD {runs['nsd'].cpu_us:.2f}, "
                f"static {runs['dynmx-static'].cpu_us:.2f}, pool {runs['dynmx-pool'].cpu_us:.2f}; "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"workers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    settings = {k: v for k, v in vars(args).items()}
    out.write_text(json.dumps({"settings": settings, "members": list(HOSTS), "rows": rows}, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

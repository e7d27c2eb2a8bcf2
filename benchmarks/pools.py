"""MX pool throughput: a round-robin pool next to a static MX of the same shape, and PowerDNS LUA.

Issue 3's targets: pool MX answers reach at least 0.9x the static-answer qps of the
same dynmx build, and at least 2x PowerDNS's LUA-record MX answers (pdns-server with
enable-lua-records=shared, bind backend, each answer a fresh rotation, as dynmx's).
Issue 29's: pool MX at least 0.85x NSD's rate for the same answer, static (NSD has no
pools). `DYNMX_SRC=DIR` runs another tree's dynmx, as in bench.py.
Same method as bench.py: server on core 0, dnsperf on core 1, warm-up not counted.

    .venv/bin/python benchmarks/pools.py [--seconds 10] [--rounds 5] [--base DIR] [--servers dynmx,nsd]

With `--rounds N` the servers are started once and measured in turn each round (order
reversed every other round); each ratio is the median of the rounds' ratios, and each
run also gives the server's CPU microseconds per query. `--base DIR`: another tree's dynmx
("base") in the same rounds, as in bench.py. `--tree NAME=DIR`
(repeatable) adds more, e.g. the same tree with another batch size.

Not a test; asserts nothing. Writes benchmarks/out/pools-<time>.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import HOST, OUT, ROOT, SERVER_CORE, SRC, Run, measure, pin

from tests.nsd import Nsd, NsdUnavailable, free_port, wait_for_soa

ZONE = "pool.test"
HOSTS = ("mx1", "mx2", "mx3")
ZONE_HEAD = f"""$ORIGIN {ZONE}.
$TTL 3600
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
@ NS ns1
ns1 A 127.0.0.1
mx1 A 127.0.0.2
mx2 A 127.0.0.3
mx3 A 127.0.0.4
relay A 127.0.0.5
"""
STATIC_MX = (
    "".join(f"{{owner}} MX {10 * (i + 1)} {h}\n" for i, h in enumerate(HOSTS)) + "{owner} MX 40 relay\n"
)
LUA_MX = (
    "@ LUA MX \";local h={'mx1.pool.test.','mx2.pool.test.','mx3.pool.test.'} "
    "local s=math.random(3) local r={} for i=0,2 do r[#r+1]=((i+1)*10)..' '..h[(s+i-1)%3+1] end "
    "r[#r+1]='40 relay.pool.test.' return r\"\n"
)
POOL_CONFIG = (
    """[server]
listen = ["{host}:{port}"]
zones_dir = "{zones}"
[[pool]]
name = "{zone}."
strategy = "round-robin"
ttl = 30
"""
    + "".join(
        f'[[pool.member]]\nhost = "{h}.{ZONE}."\npreference = {10 * (i + 1)}\nprobe = "none"\n'
        for i, h in enumerate(HOSTS)
    )
    + f'[[pool.member]]\nhost = "relay.{ZONE}."\npreference = 40\nrole = "relay"\nprobe = "none"\n'
)


ADDRESS_RECORDS = "".join(f"{{owner}} A 127.0.1.{i}\n" for i in (1, 2, 3))
ADDRESS_POOL = (
    f'[[pool]]\nname = "imap.{ZONE}."\nkind = "address"\nstrategy = "round-robin"\nttl = 30\n'
    + "".join(f'[[pool.member]]\nhost = "127.0.1.{i}"\nprobe = "none"\n' for i in (1, 2, 3))
)


def write_queries(directory: Path) -> dict[str, Path]:
    files = {
        "static": f"static.{ZONE} MX\n",
        "pool": f"{ZONE} MX\n",
        "a-static": f"static-imap.{ZONE} A\n",
        "a-pool": f"imap.{ZONE} A\n",
    }
    paths = {}
    for name, line in files.items():
        path = directory / f"queries-pool-{name}.txt"
        path.write_text(line * 1000)
        paths[name] = path
    return paths


@contextmanager
def dynmx_pool(workdir: Path, src: Path = SRC) -> Iterator[tuple[int, int]]:
    zones = workdir / "zones"
    zones.mkdir()
    (zones / f"{ZONE}.zone").write_text(
        ZONE_HEAD + STATIC_MX.format(owner="@") + STATIC_MX.format(owner="static")
    )
    port = free_port()
    config = workdir / "dynmx.toml"
    config.write_text(POOL_CONFIG.format(host=HOST, port=port, zones=zones, zone=ZONE) + ADDRESS_POOL)
    cmd = [*pin(SERVER_CORE), sys.executable, "-m", "dynmx", "serve", "--config", str(config)]
    with _process(cmd, port, src, cwd=workdir) as pid:
        yield port, pid


@contextmanager
def nsd_static(workdir: Path) -> Iterator[tuple[int, int]]:
    """NSD with the same zone, every MX static: the peer's rate for this answer's size."""
    (workdir / f"{ZONE}.zone").write_text(
        ZONE_HEAD + STATIC_MX.format(owner="@") + STATIC_MX.format(owner="static")
    )
    with Nsd(workdir, {ZONE: f"{ZONE}.zone"}, prefix=pin(SERVER_CORE)) as nsd:
        assert nsd.pid is not None
        yield nsd.port, nsd.pid


@contextmanager
def pdns_lua(workdir: Path) -> Iterator[tuple[int, int]]:
    (workdir / f"{ZONE}.zone").write_text(
        ZONE_HEAD + LUA_MX + STATIC_MX.format(owner="static") + ADDRESS_RECORDS.format(owner="static-imap")
    )
    (workdir / "named.conf").write_text(f'zone "{ZONE}" {{ file "{workdir}/{ZONE}.zone"; }};\n')
    port = free_port()
    (workdir / "pdns.conf").write_text(
        "launch=bind\n"
        f"bind-config={workdir}/named.conf\n"
        f"local-address={HOST}\nlocal-port={port}\n"
        "enable-lua-records=shared\n"
        f"socket-dir={workdir}\n"
        "daemon=no\nguardian=no\nsetuid=\nsetgid=\nwebserver=no\napi=no\nlog-dns-queries=no\n"
    )
    cmd = [*pin(SERVER_CORE), "pdns_server", f"--config-dir={workdir}"]
    with _process(cmd, port, cwd=workdir) as pid:
        yield port, pid


@contextmanager
def _process(cmd: list[str], port: int, src: Path = SRC, cwd: Path | None = None) -> Iterator[int]:
    """`cmd` started in `cwd`, not here: `python -m` puts its working directory first on the
    path, which would run this tree's dynmx whatever PYTHONPATH says."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(src), str(ROOT)]))}
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_soa(HOST, port, ZONE, alive=lambda: proc.poll() is None)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def ratios_of(runs: list[Run], trees: tuple[str, ...] = ()) -> dict[str, float]:
    """The ratios this benchmark reports, from one round's runs (`trees`: other dynmx trees)."""
    qps = {(r.server, r.queries): r.qps for r in runs}
    cpu = {(r.server, r.queries): r.cpu_us for r in runs}
    pairs = {
        "dynmx pool / dynmx static": (("dynmx", "pool"), ("dynmx", "static")),
        "dynmx address pool / dynmx static A": (("dynmx", "a-pool"), ("dynmx", "a-static")),
        "dynmx pool / nsd static": (("dynmx", "pool"), ("nsd", "static")),
        "dynmx static / nsd static": (("dynmx", "static"), ("nsd", "static")),
        "base pool / nsd static": (("base", "pool"), ("nsd", "static")),
        "base static / nsd static": (("base", "static"), ("nsd", "static")),
        **{
            f"{tree} {kind} / nsd static": ((tree, kind), ("nsd", "static"))
            for tree in trees
            for kind in ("static", "pool")
        },
        "dynmx pool / pdns lua": (("dynmx", "pool"), ("pdns-lua", "pool")),
    }
    found = {label: qps[a] / qps[b] for label, (a, b) in pairs.items() if qps.get(a) and qps.get(b)}
    # NSD's CPU per query over ours: the qps ratio a saturated core would give.
    for label, (a, b) in pairs.items():
        if "nsd" in label and cpu.get(a) and cpu.get(b):
            found[f"{label} (cpu)"] = cpu[b] / cpu[a]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (1-50)")
    parser.add_argument("--base", type=Path, help="another tree's dynmx, run as 'base' in the same rounds")
    parser.add_argument(
        "--tree", action="append", default=[], metavar="NAME=DIR", help="more trees' dynmx (repeatable)"
    )
    parser.add_argument("--servers", default="dynmx,nsd,pdns-lua", help="which to run, comma-separated")
    parser.add_argument("--queries", default="static,pool,a-static,a-pool", help="query files to run")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be between 1 and 50")
    wanted = args.servers.split(",")
    if "pdns-lua" in wanted and not shutil.which("pdns_server") and os.geteuid() == 0:
        subprocess.run(
            [
                "apt-get",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "pdns-server",
                "pdns-backend-bind",
            ],
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    OUT.mkdir(parents=True, exist_ok=True)
    queries = {name: path for name, path in write_queries(OUT).items() if name in args.queries.split(",")}
    runs: list[Run] = []
    servers: dict[str, Callable[[Path], AbstractContextManager[tuple[int, int]]]] = {}
    if "dynmx" in wanted:
        servers["dynmx"] = dynmx_pool
    if args.base:
        base = args.base.resolve()
        servers["base"] = lambda workdir: dynmx_pool(workdir, base)
    for tree in args.tree:
        name, _, directory = tree.partition("=")
        if not directory or name in servers:
            parser.error(f"--tree {tree}: expected NAME=DIR with a new NAME")
        servers[name] = functools.partial(dynmx_pool, src=Path(directory).resolve())
    if "nsd" in wanted:
        try:
            Nsd(Path(tempfile.gettempdir()), {})
            servers["nsd"] = nsd_static
        except NsdUnavailable:
            print("pools: nsd not installed; skipping NSD", file=sys.stderr)
    if "pdns-lua" in wanted:
        if shutil.which("pdns_server"):
            servers["pdns-lua"] = pdns_lua
        else:
            print("pools: pdns_server not installed; skipping PowerDNS", file=sys.stderr)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        started = {}
        for server, start in servers.items():
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dynmx-pools-"))
            started[server] = stack.enter_context(start(Path(tmp)))
        order = list(started)
        for number in range(args.rounds):
            for name, path in queries.items():
                for server in order if number % 2 == 0 else order[::-1]:
                    if (server in ("nsd", "pdns-lua") and name.startswith("a-")) or (
                        server == "nsd" and name != "static"
                    ):
                        continue
                    port, pid = started[server]
                    run = measure(server, name, port, pid, path, args.seconds)
                    run.round_number = number
                    runs.append(run)
                    summary = f"{run.qps:10.0f} qps, lost {run.lost}, cpu {run.server_cpu:.0%}"
                    print(f"pools: round {number} {server:8} {name:8} {summary} {run.cpu_us:.2f} us/q")
    trees = tuple(name for name in started if name not in ("dynmx", "base", "nsd", "pdns-lua"))
    rounds = [
        ratios_of([r for r in runs if r.round_number == number], trees) for number in range(args.rounds)
    ]
    ratios = {label: statistics.median(r[label] for r in rounds if label in r) for label in rounds[0]}
    print(f"\n{args.rounds} round(s); medians over rounds:")
    for server in started:
        for name in queries:
            mine = [r for r in runs if r.server == server and r.queries == name]
            if mine:
                qps = statistics.median(r.qps for r in mine)
                cpu = statistics.median(r.cpu_us for r in mine)
                print(f"  {server:8} {name:8} {qps:9.0f} qps {cpu:6.2f} us/q")
    for label, ratio in ratios.items():
        spread = [r[label] for r in rounds if label in r]
        print(f"{label}: {ratio:.2f} (rounds {min(spread):.2f}-{max(spread):.2f})")
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    result = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "load_average": {"before": load_before, "after": load_after},
        "runs": [asdict(r) for r in runs],
        "ratios": ratios,
        "round_ratios": rounds,
    }
    path = OUT / f"pools-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

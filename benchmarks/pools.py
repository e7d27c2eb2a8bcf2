"""MX pool throughput: a round-robin pool next to a static MX of the same shape, and PowerDNS LUA.

Issue 3's targets: pool MX answers reach at least 0.9x the static-answer qps of the
same dynmx build, and at least 2x PowerDNS's LUA-record MX answers (pdns-server with
enable-lua-records=shared, bind backend, each answer a fresh rotation, as dynmx's).
Issue 29's: pool MX at least 0.85x NSD's rate for the same answer, static (NSD has no
pools). `DYNMX_SRC=DIR` runs another tree's dynmx, as in bench.py.
Same method as bench.py: server on core 0, dnsperf on core 1, warm-up not counted.

    .venv/bin/python benchmarks/pools.py [--seconds 10]

Not a test; asserts nothing. Writes benchmarks/out/pools-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
def dynmx_pool(workdir: Path) -> Iterator[tuple[int, int]]:
    zones = workdir / "zones"
    zones.mkdir()
    (zones / f"{ZONE}.zone").write_text(
        ZONE_HEAD + STATIC_MX.format(owner="@") + STATIC_MX.format(owner="static")
    )
    port = free_port()
    config = workdir / "dynmx.toml"
    config.write_text(POOL_CONFIG.format(host=HOST, port=port, zones=zones, zone=ZONE) + ADDRESS_POOL)
    cmd = [*pin(SERVER_CORE), sys.executable, "-m", "dynmx", "serve", "--config", str(config)]
    with _process(cmd, port) as pid:
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
    with _process(cmd, port) as pid:
        yield port, pid


@contextmanager
def _process(cmd: list[str], port: int) -> Iterator[int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(SRC), str(ROOT)]))}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("pdns_server") and os.geteuid() == 0:
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
    queries = write_queries(OUT)
    runs: list[Run] = []
    servers = {"dynmx": dynmx_pool}
    try:
        Nsd(Path(tempfile.gettempdir()), {})
        servers["nsd"] = nsd_static
    except NsdUnavailable:
        print("pools: nsd not installed; skipping NSD", file=sys.stderr)
    if shutil.which("pdns_server"):
        servers["pdns-lua"] = pdns_lua
    else:
        print("pools: pdns_server not installed; skipping PowerDNS", file=sys.stderr)
    for server, start in servers.items():
        with tempfile.TemporaryDirectory(prefix="dynmx-pools-") as tmp, start(Path(tmp)) as (port, pid):
            for name, path in queries.items():
                if (server != "dynmx" and name.startswith("a-")) or (server == "nsd" and name != "static"):
                    continue
                run = measure(server, name, port, pid, path, args.seconds)
                runs.append(run)
                summary = f"{run.qps:10.0f} qps, lost {run.lost}, cpu {run.server_cpu:.0%}"
                print(f"pools: {server:8} {name:6} {summary}")
    qps = {(r.server, r.queries): r.qps for r in runs}
    ratios = {
        "dynmx pool / dynmx static": qps[("dynmx", "pool")] / qps[("dynmx", "static")],
        "dynmx address pool / dynmx static A": qps[("dynmx", "a-pool")] / qps[("dynmx", "a-static")],
    }
    if ("nsd", "static") in qps:
        ratios["dynmx pool / nsd static"] = qps[("dynmx", "pool")] / qps[("nsd", "static")]
        ratios["dynmx static / nsd static"] = qps[("dynmx", "static")] / qps[("nsd", "static")]
    if ("pdns-lua", "pool") in qps:
        ratios["dynmx pool / pdns lua"] = qps[("dynmx", "pool")] / qps[("pdns-lua", "pool")]
    for label, ratio in ratios.items():
        print(f"{label}: {ratio:.2f}")
    result = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": args.seconds,
        "runs": [asdict(r) for r in runs],
        "ratios": ratios,
    }
    path = OUT / f"pools-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pre-signed zones in process: what DO=1 costs on the fast path, the compile and the slow path.

A zone of N hosts (A and TXT each) is signed by ldns-signzone with NSEC and with NSEC3 (no
salt, no extra iterations) and compiled beside its unsigned text; `Engine.handle` is then
timed on ready query bytes, without sockets: a compiled name with DO=0 and DO=1, one missing
name asked again and again, and random missing names (the slow path, NXDOMAIN with proofs).
`DYNMX_SRC=DIR` runs another tree's dynmx (the fast path before and after a change).

    .venv/bin/python benchmarks/signed.py [--hosts 2000] [--repeat 100000]

Not a test; asserts nothing. Prints one line per zone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if os.environ.get("DYNMX_SRC"):
    sys.path.insert(0, os.environ["DYNMX_SRC"])

import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.zone  # noqa: E402

from dynmx.answer.compiler import compile_table  # noqa: E402
from dynmx.answer.engine import Engine  # noqa: E402
from dynmx.answer.zoneset import ZoneData  # noqa: E402
from tests.signing import sign_zone  # noqa: E402

ORIGIN = "big.test."


def zone_text(hosts: int) -> str:
    lines = [f"$ORIGIN {ORIGIN}", "$TTL 3600", "@ SOA ns1 host 1 7200 900 1209600 300", "@ NS ns1"]
    lines += ["ns1 A 192.0.2.1", "@ MX 10 mx1", "mx1 A 192.0.2.2"]
    lines += [f'h{i} A 192.0.2.{i % 250}\nh{i} TXT "host {i}"' for i in range(hosts)]
    return "\n".join(lines) + "\n"


def wire(name: str, qtype: str, do: bool) -> bytes:
    msg = dns.message.make_query(name, qtype, use_edns=0, want_dnssec=do, payload=1232)
    msg.id = 7
    return msg.to_wire()


def per_query_ns(engine: Engine, data: bytes, repeat: int) -> float:
    """Best of five runs of `repeat` calls, in nanoseconds per query."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            engine.handle(data)
        best = min(best, (time.perf_counter() - started) / repeat * 1e9)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=100000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dynmx-signed-") as tmp:
        work = Path(tmp)
        (work / "plain.zone").write_text(zone_text(args.hosts))
        files = {"unsigned": work / "plain.zone"}
        for kind, nsec3 in (("NSEC", False), ("NSEC3", True)):
            files[kind] = sign_zone(
                work / "plain.zone", ORIGIN, work / f"{kind}.zone", work / kind, nsec3=nsec3
            )
        for kind, path in files.items():
            zone = dns.zone.from_file(str(path), origin=ORIGIN, relativize=False)
            started = time.perf_counter()
            table = compile_table([ZoneData(dns.name.from_text(ORIGIN), zone)])
            compiled = time.perf_counter() - started
            engine = Engine(table)
            timings = {
                "A DO=0": per_query_ns(engine, wire("h7.big.test.", "A", False), args.repeat),
                "A DO=1": per_query_ns(engine, wire("h7.big.test.", "A", True), args.repeat),
                "one missing DO=1": per_query_ns(
                    engine, wire("nope.big.test.", "A", True), args.repeat // 10
                ),
            }
            randoms = [wire(f"r{i}x{i * 7919 % 1000}.big.test.", "A", True) for i in range(3000)]
            started = time.perf_counter()
            for data in randoms:
                engine.handle(data)
            random_us = (time.perf_counter() - started) / len(randoms) * 1e6
            shown = "; ".join(f"{label} {value:.0f} ns" for label, value in timings.items())
            print(
                f"{kind:8s} compile {compiled:.2f} s ({len(table.entries)} entries); {shown}; "
                f"random missing DO=1 {random_us:.0f} us"
            )


if __name__ == "__main__":
    main()

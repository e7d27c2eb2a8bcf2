"""CPU per query of the engine alone, for a mix spread over N zones against one zone's mix,
in one process: what scale.py --spread measures through sockets, without the sockets and
without the shared machine's noise (thread CPU time, which other work barely moves).

N of scale.py's small zones are compiled in process (`build_table`, every zone compiled);
two lists of ready query datagrams of equal length: `spread`, MX and SOA at every apex and
A at every www (3N questions), and `one`, the first zone's 3 questions repeated to 3N; both
shuffled with a fixed seed, each datagram with its own ID. `Engine.handle` is called on
whole passes of each list, the two lists taking turns, `--rounds` times; the figure is the
median of CPU µs per query. `DYNMX_SRC=DIR` measures another tree (as bench.py), so two
commits can be compared in turn on the same zones.

    .venv/bin/python benchmarks/spread_engine.py [--zones 20000] [--seconds 3] [--rounds 5]

Not a test; it checks only that the questions are answered (NOERROR). Prints one JSON
line and writes it to benchmarks/out/spread-engine-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(os.environ.get("DYNMX_SRC") or ROOT).resolve()
sys.path.insert(0, str(SRC))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.zone  # noqa: E402
from scale import origin, small_zone  # noqa: E402

from dynmx.answer.engine import Engine  # noqa: E402
from dynmx.answer.zoneset import ZoneData  # noqa: E402
from dynmx.config import from_mapping  # noqa: E402
from dynmx.policy.served import build_table, plan_all  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
PEER = ("127.0.0.1", 40000)


def wires(questions: list[tuple[str, str]]) -> list[bytes]:
    found = []
    for qid, (name, rdtype) in enumerate(questions):
        message = dns.message.make_query(name, rdtype, id=qid % 65536, use_edns=False)
        message.flags &= ~dns.flags.RD
        found.append(message.to_wire())
    return found


def questions(index: int) -> list[tuple[str, str]]:
    name = f"{origin(index)}."
    return [(name, "MX"), (f"www.{name}", "A"), (name, "SOA")]


def engine_us(engine: Engine, queries: list[bytes], seconds: float) -> float:
    """CPU µs per `Engine.handle` call over whole passes of `queries` (at least one, bounded)."""
    handle = engine.handle
    done = 0
    start = time.thread_time()
    deadline = time.perf_counter() + seconds
    for _ in range(1000):  # passes; the deadline ends it first
        for data in queries:
            handle(data, PEER, False)
        done += len(queries)
        if time.perf_counter() >= deadline:
            break
    return (time.thread_time() - start) / done * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zones", type=int, default=20_000, help="zones compiled in process (~4 ms each)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per figure and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not (1 <= args.zones <= 100_000 and 1 <= args.rounds <= 20 and 0 < args.seconds <= 60):
        parser.error("--zones 1-100000, --rounds 1-20, --seconds up to 60")
    began = time.perf_counter()
    data = [
        ZoneData(
            dns.name.from_text(origin(i)),
            dns.zone.from_text(small_zone(origin(i)), origin=f"{origin(i)}.", relativize=False),
        )
        for i in range(args.zones)
    ]
    table = build_table(from_mapping({}), data, lambda pool: plan_all(pool, {}))
    engine = Engine(table)
    built = time.perf_counter() - began
    spread = wires([q for i in range(args.zones) for q in questions(i)])
    one = wires(questions(0) * args.zones)
    random.Random(2626).shuffle(spread)
    random.Random(2626).shuffle(one)
    for data_ in (spread[:10], one[:10]):  # every question is answered (not REFUSED)
        for query in data_:
            reply = engine.handle(query, PEER, False)
            assert isinstance(reply, bytes) and reply[3] & 0x0F == 0, reply
    runs: dict[str, list[float]] = {"spread": [], "one": []}
    for rnd in range(args.rounds):
        order = ("spread", "one") if rnd % 2 == 0 else ("one", "spread")
        for mix in order:
            runs[mix].append(engine_us(engine, spread if mix == "spread" else one, args.seconds))
    median = {mix: round(statistics.median(values), 3) for mix, values in runs.items()}
    commit = SRC / "COMMIT"
    result = {
        "source": str(SRC),
        "commit": commit.read_text().strip() if commit.exists() else "working tree",
        "zones": args.zones,
        "build_s": round(built, 1),
        "us_per_query_median": median,
        "us_per_query_rounds": {mix: [round(v, 3) for v in values] for mix, values in runs.items()},
        "spread_over_one_qps": round(median["one"] / median["spread"], 3),
        "loadavg": Path("/proc/loadavg").read_text().strip(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"spread-engine-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

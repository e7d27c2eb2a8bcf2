"""CPU time per query inside one process: the engine alone, and the batched UDP loop around it.

Not a test; asserts nothing. The figure is CPU microseconds per answered query, which
(unlike qps on a shared machine) barely moves with what else runs. Three layers:

* engine: `Engine.handle` called on ready datagrams (static MX, round-robin pool MX,
  NXDOMAIN, DO=1), no sockets;
* loop: `BatchedUdp.readable` on a loopback socket with `batch` queries waiting (sent by a
  client socket in the same process, outside the timed span), replies read back and
  checked after; the span is the server's system calls plus its Python work;
* python: the loop's Python work alone: one received batch answered again and again, the
  send replaced by a stub (no system call), so what is left is the per-datagram work in
  Python between the two system calls.

    .venv/bin/python benchmarks/percore.py [--seconds 2] [--rounds 5]

Each figure is the median over rounds of thread CPU time / queries. Writes
benchmarks/out/percore-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = Path(os.environ.get("DYNMX_SRC") or ROOT).resolve()  # another tree's dynmx, as bench.py
sys.path.insert(0, str(SRC))

import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.zone  # noqa: E402

from dynmx.answer.engine import Engine  # noqa: E402
from dynmx.answer.rrl import RateLimiter, RrlSettings  # noqa: E402
from dynmx.answer.zoneset import ZoneData  # noqa: E402
from dynmx.config import from_mapping  # noqa: E402
from dynmx.policy.served import build_table, plan_all  # noqa: E402
from dynmx.server.mmsg import BatchedUdp, available  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
ORIGIN = "pool.test."
ZONE = f"""$ORIGIN {ORIGIN}
$TTL 3600
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
@ NS ns1
ns1 A 127.0.0.1
mx1 A 127.0.0.2
mx2 A 127.0.0.3
mx3 A 127.0.0.4
relay A 127.0.0.5
""" + "".join(
    f"{owner} MX {pref} {host}\n"
    for owner in ("@", "static")
    for pref, host in ((10, "mx1"), (20, "mx2"), (30, "mx3"), (40, "relay"))
)
POOL = {
    "name": ORIGIN,
    "strategy": "round-robin",
    "ttl": 30,
    "member": [
        {"host": f"mx1.{ORIGIN}", "preference": 10, "probe": "none"},
        {"host": f"mx2.{ORIGIN}", "preference": 20, "probe": "none"},
        {"host": f"mx3.{ORIGIN}", "preference": 30, "probe": "none"},
        {"host": f"relay.{ORIGIN}", "preference": 40, "role": "relay", "probe": "none"},
    ],
}
PEER = ("127.0.0.1", 40000)


def make_engine() -> Engine:
    config = from_mapping({"pool": [POOL]})
    plans = {p.name: plan_all(p, {}) for p in config.pool}
    zone = ZoneData(dns.name.from_text(ORIGIN), dns.zone.from_text(ZONE, origin=ORIGIN, relativize=False))
    table = build_table(config, [zone], lambda p: plans[p.name], rng=random.Random(7).random)
    engine = Engine(table)
    engine.rrl = RateLimiter(RrlSettings())  # on by default in the server (loopback exempt)
    return engine


def query(name: str, rdtype: str = "MX", qid: int = 1, do: bool = False) -> bytes:
    msg = dns.message.make_query(name, rdtype, id=qid, use_edns=0 if do else False, want_dnssec=do)
    msg.flags &= ~dns.flags.RD
    return msg.to_wire()


MIXES: dict[str, Callable[[int], bytes]] = {
    "static": lambda i: query(f"static.{ORIGIN}", qid=i),
    "pool": lambda i: query(ORIGIN, qid=i),
    "static-do": lambda i: query(f"static.{ORIGIN}", qid=i, do=True),
    "pool-do": lambda i: query(ORIGIN, qid=i, do=True),
    "nxdomain": lambda i: query(f"missing{i % 50}.{ORIGIN}", "A", qid=i),
}


def engine_us(engine: Engine, queries: list[bytes], seconds: float) -> float:
    """CPU µs per `Engine.handle` call, over whole passes of `queries` for about `seconds`."""
    handle = engine.handle
    done = 0
    start = time.thread_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for data in queries:
            handle(data, PEER, False)
        done += len(queries)
    return (time.thread_time() - start) / done * 1e6


def loop_us(engine: Engine, queries: list[bytes], batch: int, seconds: float) -> float:
    """CPU µs per query of `BatchedUdp.readable` with `batch` queries waiting each call."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    client.bind(("127.0.0.1", 0))
    client.connect(server.getsockname())
    client.settimeout(2)
    udp = BatchedUdp(server, engine.handle)
    spent = 0.0
    done = 0
    index = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            for _ in range(batch):
                client.send(queries[index % len(queries)])
                index += 1
            start = time.thread_time()
            udp.readable()
            spent += time.thread_time() - start
            for _ in range(batch):
                client.recv(4096)
            done += batch
    finally:
        udp.close()
        client.close()
    return spent / done * 1e6


class _NoSend:
    """The C library with sendmmsg answered by a stub: every reply counted as sent."""

    def __init__(self, libc: object) -> None:
        self.recvmmsg = libc.recvmmsg  # type: ignore[attr-defined]

    @staticmethod
    def sendmmsg(fd: int, msgs: object, count: int, flags: int) -> int:
        return count


def python_us(engine: Engine, queries: list[bytes], batch: int, seconds: float) -> float:
    """CPU µs per datagram of the loop's Python work on one batch of `batch` queries."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.connect(server.getsockname())
    udp = BatchedUdp(server, engine.handle, size=batch)
    try:
        for round_trip in range(2):  # the first batch makes the cache and learns the sender
            for data in queries[:batch]:
                client.send(data)
            deadline = time.perf_counter() + 2
            while time.perf_counter() < deadline:
                count = udp._libc.recvmmsg(udp._fd, udp.batch.recv_at, batch, socket.MSG_DONTWAIT, None)
                if count == batch:
                    break
                time.sleep(0.01)
            else:
                raise RuntimeError("the batch did not arrive")
            if round_trip == 0:
                udp._answer(udp.batch, batch)
        udp._libc = _NoSend(udp._libc)
        done = 0
        start = time.thread_time()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for _ in range(100):
                udp._answer(udp.batch, batch)
            done += 100 * batch
        return (time.thread_time() - start) / done * 1e6
    finally:
        udp.close()
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per figure and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mixes", default=",".join(MIXES))
    parser.add_argument("--batches", default="1,16,64")
    args = parser.parse_args()
    engine = make_engine()
    mixes = args.mixes.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    samples: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for mix in mixes:
            queries = [MIXES[mix](i) for i in range(1000)]
            samples.setdefault(f"engine {mix}", []).append(engine_us(engine, queries, args.seconds / 2))
            if available():
                for size in batches:
                    key = f"loop {mix} batch={size}"
                    samples.setdefault(key, []).append(loop_us(engine, queries, size, args.seconds / 2))
                    key = f"python {mix} batch={size}"
                    samples.setdefault(key, []).append(python_us(engine, queries, size, args.seconds / 4))
    medians = {key: round(statistics.median(values), 3) for key, values in samples.items()}
    load = os.getloadavg()
    for key, value in medians.items():
        spread = f"{min(samples[key]):.2f}-{max(samples[key]):.2f}"
        print(f"{key:28} {value:7.2f} us/query  (rounds {spread})")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"percore-{time.strftime('%Y%m%d-%H%M%S')}.json"
    result = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rounds": args.rounds, "load": load}
    path.write_text(json.dumps({**result, "us_per_query": medians, "samples": samples}, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

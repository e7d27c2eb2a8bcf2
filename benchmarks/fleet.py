"""Fleet propagation: from an edit's NOERROR on the primary to the same answer on every secondary.

Issue 25's figure (goal: 1 s). A dynmx primary producing the catalog, two dynmx consumers
(only `[catalog]` in their config) and Knot 3.2 as a catalog consumer, all on 127.0.0.1.
Each edit is one RFC 2136 UPDATE to the primary that replaces a TXT record; the clock
starts when the primary's NOERROR reply arrives and stops, per secondary, at the first
answer that carries the new value (each secondary is asked every `--poll` seconds, over
UDP). The lag of an edit is its slowest secondary's. Edits run one after another, each
once every secondary has the previous one (bounded by `--bound`).

    .venv/bin/python benchmarks/fleet.py [--edits 100] [--poll 0.002]

Not a test; asserts nothing. Prints median, 90th percentile and worst, per secondary and
for all, and writes benchmarks/out/fleet-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402
import dns.tsigkeyring  # noqa: E402
import dns.update  # noqa: E402

from tests.conftest import TEST_SECRET, RunningServer, start_server, wait_until  # noqa: E402
from tests.interop.test_catalog_server import CATALOG, consumer_config, knot_consumer, serves  # noqa: E402
from tests.nsd import free_port  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
ZONE = "example.test."
NAME = "edit.example.test."
ZONE_TEXT = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
edit TXT "edit-0"
"""


def primary_config(workdir: Path, port: int, targets: list[int]) -> Path:
    zones = workdir / "zones"
    zones.mkdir(parents=True)
    (zones / "example.test.zone").write_text(ZONE_TEXT)
    notify = ", ".join(f'"127.0.0.1:{p}"' for p in targets)
    config = workdir / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{port}"]\nzones_dir = "{zones}"\nstate_dir = "{workdir / "state"}"\n'
        f'[defaults]\nallow_update = ["edit-key."]\nallow_transfer = ["127.0.0.0/8"]\nnotify = [{notify}]\n'
        f'[catalog]\nname = "{CATALOG}"\nallow_transfer = ["127.0.0.0/8"]\nnotify = [{notify}]\n'
        f'[[key]]\nname = "edit-key."\nsecret = "{TEST_SECRET}"\n'
    )
    return config


def value_at(sock: socket.socket, port: int, wanted: str, timeout: float) -> bool:
    """One TXT question to 127.0.0.1:`port` on `sock`: does the answer hold `wanted`?"""
    query = dns.message.make_query(NAME, "TXT")
    sock.sendto(query.to_wire(), ("127.0.0.1", port))
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(4096)
            reply = dns.message.from_wire(data)
            if reply.id == query.id:
                break
    except (TimeoutError, OSError):
        return False
    return any(f'"{wanted}"' == rdata.to_text() for rrset in reply.answer for rdata in rrset)


def edit(primary: int, value: str) -> float:
    """Replace the TXT by `value` on the primary; the time its NOERROR came back."""
    keyring = dns.tsigkeyring.from_text({"edit-key.": TEST_SECRET})
    update = dns.update.UpdateMessage(ZONE, keyring=keyring, keyalgorithm="hmac-sha256")
    update.replace("edit", 0, "TXT", f'"{value}"')
    reply = dns.query.udp(update, "127.0.0.1", port=primary, timeout=5)
    at = time.monotonic()
    if reply.rcode() != dns.rcode.NOERROR:
        raise RuntimeError(f"UPDATE refused: {dns.rcode.to_text(reply.rcode())}")
    return at


def measure(
    primary: int, secondaries: dict[str, int], value: str, poll: float, bound: float
) -> dict[str, float]:
    """Seconds from the edit's NOERROR to the first answer with `value`, per secondary."""
    sockets = {name: socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for name in secondaries}
    try:
        start = edit(primary, value)
        lags: dict[str, float] = {}
        while len(lags) < len(secondaries) and time.monotonic() - start < bound:
            for name, port in secondaries.items():
                if name not in lags and value_at(sockets[name], port, value, 0.5):
                    lags[name] = time.monotonic() - start
            time.sleep(poll)
        for name in secondaries:
            lags.setdefault(name, float("inf"))
        return lags
    finally:
        for sock in sockets.values():
            sock.close()


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
        "worst_s": round(ordered[-1], 4),
        "best_s": round(ordered[0], 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--poll", type=float, default=0.002, help="seconds between rounds of questions")
    parser.add_argument("--bound", type=float, default=10.0, help="seconds an edit may take to arrive")
    args = parser.parse_args()
    primary_port, knot_port = free_port(), free_port()
    consumers = [free_port(), free_port()]
    started: list[RunningServer] = []
    with tempfile.TemporaryDirectory(prefix="dynmx-fleet-bench-") as tmp:
        work = Path(tmp)
        config = primary_config(work / "primary", primary_port, [*consumers, knot_port])
        (work / "knot").mkdir()
        knot = knot_consumer(primary_port, knot_port, work / "knot")
        try:
            started.append(start_server("--config", str(config)))
            for index, port in enumerate(consumers):
                (work / f"consumer{index}").mkdir()
                started.append(
                    start_server(
                        "--config", str(consumer_config(work / f"consumer{index}", port, primary_port))
                    )
                )
            with knot:
                knot.start()
                secondaries = {"dynmx-1": consumers[0], "dynmx-2": consumers[1], "knot": knot_port}
                for port in secondaries.values():
                    wait_until(lambda port=port: serves(port, ZONE), timeout=30.0)
                rows = []
                for number in range(1, args.edits + 1):
                    rows.append(measure(primary_port, secondaries, f"edit-{number}", args.poll, args.bound))
                    time.sleep(0.05)  # the NOTIFY answers and the journal settle between edits
                knot_log = knot.log().splitlines()
                primary_log = [line for line in started[0].log_text().splitlines() if "notify" in line]
        finally:
            for server in started:
                server.stop()
    result = {
        "edits": args.edits,
        "poll_s": args.poll,
        "all": summary([max(row.values()) for row in rows]),
        **{name: summary([row[name] for row in rows]) for name in secondaries},
        "missed": sum(1 for row in rows if any(v == float("inf") for v in row.values())),
    }
    OUT.mkdir(exist_ok=True)
    path = OUT / f"fleet-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {**result, "lags": rows, "knot_log": knot_log, "primary_log": primary_log}, indent=1, default=str
        )
        + "\n"
    )
    print(json.dumps(result, indent=2))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

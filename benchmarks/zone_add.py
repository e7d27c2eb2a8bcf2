"""`dynmx zone add` among many zones: how long until the new zone answers, and what it costs
the server (issue 26: adding one zone must not compile every zone, as NSD and Knot add one
beside the others).

Writes `--zones` zones of 10 records (scale.py's `small_zone`); the first one also holds
`alias CNAME added0.scale.test.`, a chain into the first zone the run adds. Starts
`python -m dynmx serve` on them (127.0.0.1, ephemeral port, control socket in its
state_dir), waits until every zone is compiled, the answer store is written and the server
is idle, then `--adds` times: `dynmx zone add addedK.scale.test --a 192.0.2.25` while a
poller asks the new zone's SOA every 20 ms, and records

* `command_s`: until the command returns (it returns once the zone is served; includes
  starting the `dynmx` command itself);
* `answered_s`: until the new zone's SOA first comes back with data;
* `settled_s`: until the server's CPU time stops growing (under 50 ms over `IDLE_WINDOW`
  s): whatever the add started behind (a background fill, the store written again) done;
* `cpu_to_answer_s`, `cpu_to_settle_s`: CPU seconds of the server (its process tree) over
  those spans;
* `chain_ok` (first add only): `alias.z0...` A answers the CNAME and the new zone's A.

`--before DIR` runs the same rounds first with the dynmx package in DIR (a second checkout,
e.g. `git worktree add /tmp/base COMMIT`), on fresh files, so the two figures come from one
run on one machine; the load average is written beside each.

    .venv/bin/python benchmarks/zone_add.py [--zones 20000] [--adds 3] [--before DIR]

Not a test; asserts nothing. Writes benchmarks/out/zone-add-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dns.message
import dns.rcode
import harness
from harness import OUT, Dynmx, loadavg, source, stamp, udp_exchange, udp_socket
from scale import cpu_seconds, origin, small_zone

TIMEOUT = 1800.0
IDLE_WINDOW = 3.0  # longer than the store's re-save delay (publisher.RESAVE_AFTER)
POLL = 0.02
DEFAULTS = '[defaults]\nns = ["ns1.z0.scale.test."]\nhostmaster = "hostmaster.z0.scale.test."\n'


def write_files(workdir: Path, zones: int) -> Path:
    zone_dir = workdir / "zones"
    zone_dir.mkdir()
    for index in range(zones):
        name = origin(index)
        text = small_zone(name) + ("alias CNAME added0.scale.test.\n" if index == 0 else "")
        (zone_dir / f"{name}.zone").write_text(text)
    config = workdir / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zone_dir}"\nstate_dir = "{workdir / "state"}"\n'
        + DEFAULTS
    )
    return config


def wait_idle(pid: int, timeout: float) -> tuple[float, float]:
    """Wait until the CPU time of `pid`'s tree grows by under 50 ms over IDLE_WINDOW seconds;
    returns (when it last grew, its CPU seconds then)."""
    deadline = time.monotonic() + timeout
    last_cpu, last_busy = cpu_seconds(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        cpu = cpu_seconds(pid)
        if cpu - last_cpu >= 0.05:
            last_cpu, last_busy = cpu, time.monotonic()
        elif time.monotonic() - last_busy >= IDLE_WINDOW:
            return last_busy, last_cpu
    raise RuntimeError(f"the server did not settle within {timeout:.0f} s")


def answers_soa(reply: bytes | None) -> bool:
    if reply is None:
        return False
    message = dns.message.from_wire(reply)
    return message.rcode() == dns.rcode.NOERROR and bool(message.answer)


def one_add(server: Dynmx, config: Path, index: int, env: dict[str, str]) -> dict[str, object]:
    name = f"added{index}.scale.test"
    wire = dns.message.make_query(f"{name}.", "SOA").to_wire()
    answered: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        with udp_socket() as sock:
            while not stop.is_set():
                reply, _ = udp_exchange(sock, wire, server.port, 1.0)
                if answers_soa(reply):
                    answered.append(time.monotonic())
                    return
                time.sleep(POLL)

    cpu0 = cpu_seconds(server.pid)
    thread = threading.Thread(target=poll, daemon=True)
    started = time.monotonic()
    thread.start()
    command = [sys.executable, "-m", "dynmx", "zone", "add", name, "--a", "192.0.2.25", "-c", str(config)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=config.parent
    )
    command_s = time.monotonic() - started
    thread.join(TIMEOUT)
    stop.set()
    if done.returncode != 0 or not answered:
        raise RuntimeError(f"zone add {name} failed: {done.stderr}")
    cpu_answer = cpu_seconds(server.pid)
    settled, cpu_settled = wait_idle(server.pid, TIMEOUT)
    result: dict[str, object] = {
        "zone": name,
        "command_s": round(command_s, 3),
        "answered_s": round(answered[0] - started, 3),
        "settled_s": round(max(settled, answered[0]) - started, 3),
        "cpu_to_answer_s": round(cpu_answer - cpu0, 2),
        "cpu_to_settle_s": round(cpu_settled - cpu0, 2),
        "loadavg": loadavg(),
    }
    if index == 0:
        query = dns.message.make_query(f"alias.{origin(0)}.", "A").to_wire()
        with udp_socket() as sock:
            reply, _ = udp_exchange(sock, query, server.port, 2.0)
        rrsets = dns.message.from_wire(reply).answer if reply else []
        result["chain_ok"] = [r.rdtype for r in rrsets] == [5, 1]
    return result


def run(src: Path, zones: int, adds: int) -> dict[str, object]:
    harness.SRC = src
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(src), str(harness.ROOT)]))}
    with tempfile.TemporaryDirectory(prefix="dynmx-zone-add-") as tmp:
        workdir = Path(tmp)
        config = write_files(workdir, zones)
        server = Dynmx(["--config", str(config)], workdir, timeout=TIMEOUT)
        with server:
            compiled_s = server.wait_compiled(TIMEOUT)
            deadline = time.monotonic() + TIMEOUT
            while not server.events.get("answer-store-written") and time.monotonic() < deadline:
                time.sleep(0.2)
            wait_idle(server.pid, TIMEOUT)
            rounds = [one_add(server, config, index, env) for index in range(adds)]
            summary = server.log_summary()
    return {"src": str(src), "zones": zones, "compiled_s": compiled_s, "adds": rounds, "log": summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zones", type=int, default=20_000)
    parser.add_argument("--adds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a dynmx checkout to run first, for the figure before")
    args = parser.parse_args()
    report: dict[str, object] = {"source": source(), "zones": args.zones, "loadavg_start": loadavg()}
    here = harness.SRC  # `run` points harness.SRC at the tree it runs
    if args.before is not None:
        report["before"] = run(args.before.resolve(), args.zones, args.adds)
    report["after"] = run(here, args.zones, args.adds)
    report["loadavg_end"] = loadavg()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"zone-add-{stamp()}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for which in ("before", "after"):
        result = report.get(which)
        if isinstance(result, dict):
            for row in result["adds"]:
                print(which, json.dumps(row))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

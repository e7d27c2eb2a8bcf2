"""One UPDATE to one name in a zone of about 1,000,000 records: where its time goes, and
how long the server takes to acknowledge it (issue 26 target: < 50 ms median, never
silent > 20 ms meanwhile).

`inproc`: the steps of one edit timed in this process, as the server does them (the
owner's commit with a write-back that writes nothing, on the event loop; the zone index
from the previous one as the UPDATE service tells it the names and the table compiled
again from the previous one, on a thread; the new table settled as the engine's swap
does it, on the loop), `--edits` times, medians reported; `--profile` prints where the
time went. `loop` is what the event loop itself spends: commit plus settle.

`wire`: `python -m dynmx serve` on 127.0.0.1 with the zone, waits for `event=compiled`,
then sends `--edits` TSIG-signed UPDATEs over TCP (each a TXT add at a new name, then a
query that must see it) while a probe sends 200 SOA queries per second over UDP; reports
the median and largest time to acknowledge and the longest gap between answered probes.

`small`: the same server with a zone of 10 records; `--clients` threads each send
`--edits` UPDATEs back to back (TXT adds at new names) while the probe runs; reports the
distribution of acknowledgement times and the longest gap between answered probes.

`--workdir DIR` keeps the zone and the state directory there, so a second run starts warm
from the stored answers instead of compiling the zone again; `--root DIR` serves another
checkout of dynmx (a base worktree) with the same script, for before/after rounds.

The zone is load.py's shape (A on every name, MX on every 4th, AAAA on every 10th:
740,741 names make 1,000,002 records). Not a test; asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import itertools
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.query  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdata  # noqa: E402
import dns.rdataclass  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.tsigkeyring  # noqa: E402
import dns.update  # noqa: E402
from load import write_zone  # noqa: E402

MILLION_NAMES = 740_741
KEY = "bench-key."
SECRET = base64.b64encode(b"bigzone-update-benchmark-secret!").decode()
PROBE_RATE = 200


def write_config(workdir: Path, zone_dir: Path) -> Path:
    config = workdir / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zone_dir}"\nstate_dir = "{workdir / "state"}"\n'
        f'[[key]]\nname = "{KEY}"\nalgorithm = "hmac-sha256"\nsecret = "{SECRET}"\n'
        f'[[zone]]\nname = "big.test."\nallow_update = ["{KEY}"]\n'
    )
    return config


def inproc(names: int, edits: int, profile: bool) -> dict[str, object]:
    from dynmx.answer.compiler import fill_table
    from dynmx.answer.zoneset import note_edit
    from dynmx.app.zonescan import zone_data
    from dynmx.config import load_config
    from dynmx.control.owner import ZoneOwner
    from dynmx.control.update import Change, Op
    from dynmx.policy.served import build_table
    from dynmx.zone.loader import load_zone_file

    work = Path(tempfile.mkdtemp(prefix="bigzone-"))
    (work / "zones").mkdir()
    path = write_zone(work / "zones", names)
    config = load_config(write_config(work, work / "zones"))
    started = time.perf_counter()
    loaded = load_zone_file(path, dns.name.from_text("big.test."))
    load_s = time.perf_counter() - started
    owner = ZoneOwner(config, "server", lambda path, zone: None)

    def plans(pool: object) -> object:
        raise AssertionError("no pools")

    started = time.perf_counter()
    table = build_table(config, zone_data({path: loaded}), plans, staged=True)  # type: ignore[arg-type]
    while table.pending:
        table = fill_table(table, list(table.pending))
    compile_s = time.perf_counter() - started
    steps: dict[str, list[float]] = {"commit": [], "index": [], "compile": [], "settle": [], "loop": []}
    profiler = cProfile.Profile() if profile else None
    for i in range(edits):
        name = dns.name.from_text(f"edit{i}.big.test.")
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, f"192.0.2.{i % 250 + 1}")
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        before = loaded.zone
        loaded = owner.commit(loaded, [Change(Op.ADD, name, 300, rdata)])
        note_edit(before, loaded.zone, [loaded.origin, name])  # as the UPDATE service tells it
        t1 = time.perf_counter()
        zones = zone_data({path: loaded})
        t2 = time.perf_counter()
        table = build_table(config, zones, plans, previous=table, changed=[loaded.origin], stage_from=20_000)  # type: ignore[arg-type]
        t3 = time.perf_counter()
        settle = getattr(table, "settle", None)  # absent before edits were laid as deltas
        if settle is not None:
            settle()
        t4 = time.perf_counter()
        if profiler is not None:
            profiler.disable()
        steps["commit"].append(t1 - t0)
        steps["index"].append(t2 - t1)
        steps["compile"].append(t3 - t2)
        steps["settle"].append(t4 - t3)
        steps["loop"].append(t1 - t0 + t4 - t3)
    owner.close()
    if profiler is not None:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(30)
    return {
        "mode": "inproc",
        "names": names,
        "load_s": round(load_s, 2),
        "first_compile_s": round(compile_s, 2),
        "pending_after_edit": len(table.pending),
        **{f"{step}_ms_median": round(statistics.median(v) * 1000, 2) for step, v in steps.items()},
        **{f"{step}_ms_max": round(max(v) * 1000, 2) for step, v in steps.items()},
    }


def _udp_exchange(sock: socket.socket, wire: bytes, port: int) -> bool:
    sock.sendto(wire, ("127.0.0.1", port))
    try:
        sock.recv(4096)
    except TimeoutError:
        return False
    return True


SMALL_ZONE = """\
$ORIGIN big.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
www  A   192.0.2.1
mail A   192.0.2.2
@    MX  10 mail
@    TXT "v=spf1 mx -all"
a    A   192.0.2.3
b    A   192.0.2.4
c    A   192.0.2.5
"""


def _workdir(workdir: str | None, names: int) -> tuple[Path, Path]:
    """The work directory and config: `workdir` reused when it holds a zone of `names` names
    (0: the 10-record zone), else a new temporary one."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bigzone-"))
    zones = work / "zones"
    marker = work / f"names-{names}"
    if not marker.exists():
        zones.mkdir(parents=True, exist_ok=True)
        if names:
            write_zone(zones, names)
        else:
            (zones / "big.test.zone").write_text(SMALL_ZONE)
        marker.touch()
    return work, write_config(work, zones)


def _start(config: Path, root: Path) -> tuple[subprocess.Popen[str], int]:
    """`dynmx serve` from `root`, once it says the zone is compiled: the process and its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dynmx", "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    port = 0
    for line in process.stderr:
        if "event=listening" in line and "proto=http" not in line and port == 0:
            port = int(line.rsplit("port=", 1)[1].split()[0])
        if "event=compiled" in line or ("event=serving" in line and "pending=0" in line):
            break  # every zone compiled (or loaded compiled from the state directory)
    return process, port


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()  # a graceful stop writes the zone file the edits left waiting
    try:
        process.wait(300)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class Probe:
    """200 SOA queries a second over UDP on a thread; `gaps` are the pairs of consecutive
    answers between two moments."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answered_at: list[float] = []
        self.timeouts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = dns.message.make_query("big.test.", "SOA").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            while not self._stop.wait(1 / PROBE_RATE):
                if _udp_exchange(sock, query, self.port):
                    self.answered_at.append(time.monotonic())
                else:
                    self.timeouts += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def gaps(self, start: float, end: float) -> list[tuple[float, float]]:
        during = [t for t in self.answered_at if start - 0.1 <= t <= end + 0.1]
        return list(itertools.pairwise(during))


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def small(edits: int, clients: int, workdir: str | None, root: Path) -> dict[str, object]:
    _, config = _workdir(workdir, 0)
    process, port = _start(config, root)
    tag = f"{int(time.time()) % 100000}"
    keyring = dns.tsigkeyring.from_text({KEY: ("hmac-sha256", SECRET)})
    acks: list[float] = []
    failed = [0]

    def client(number: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for i in range(edits):
                update = dns.update.UpdateMessage("big.test.", keyring=keyring, keyname=KEY)
                update.add(f"s{tag}-{number}-{i}.big.test.", 60, "TXT", f'"edit {i}"')
                begun = time.perf_counter()
                dns.query.send_tcp(sock, update)
                reply, _ = dns.query.receive_tcp(sock, keyring=keyring, request_mac=update.mac)
                acks.append((time.perf_counter() - begun) * 1000)
                if reply.rcode() != dns.rcode.NOERROR:
                    failed[0] += 1

    try:
        probe = Probe(port)
        time.sleep(0.5)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        ended = time.monotonic()
        time.sleep(0.2)
        probe.stop()
        gaps = probe.gaps(started, ended)
        return {
            "mode": "small",
            "records": 10,
            "clients": clients,
            "edits": len(acks),
            "failed": failed[0],
            "updates_per_s": round(len(acks) / (ended - started), 1),
            "ack_ms_p50": round(_percentile(acks, 0.5), 1),
            "ack_ms_p90": round(_percentile(acks, 0.9), 1),
            "ack_ms_p99": round(_percentile(acks, 0.99), 1),
            "ack_ms_max": round(max(acks), 1),
            "longest_silence_ms": round(max((b - a) * 1000 for a, b in gaps), 1) if gaps else None,
            "probe_timeouts": probe.timeouts,
        }
    finally:
        _stop(process)


def wire(names: int, edits: int, workdir: str | None = None, root: Path = ROOT) -> dict[str, object]:
    _, config = _workdir(workdir, names)
    tag = f"{int(time.time()) % 100000}"  # names no earlier run in the same workdir added
    started = time.monotonic()
    process, port = _start(config, root)
    try:
        compiled_s = time.monotonic() - started
        served_s: list[float] = []  # the server's own time from commit to swap, per edit

        def drain() -> None:
            for line in process.stderr:  # type: ignore[union-attr]
                if "event=edit-served" in line and "seconds=" in line:
                    served_s.append(float(line.rsplit("seconds=", 1)[1].split()[0]))

        threading.Thread(target=drain, daemon=True).start()
        stop = threading.Event()
        answered_at: list[float] = []
        timeouts = [0]

        def probe() -> None:
            query = dns.message.make_query("big.test.", "SOA").to_wire()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(1.0)
                while not stop.wait(1 / PROBE_RATE):
                    if _udp_exchange(sock, query, port):
                        answered_at.append(time.monotonic())
                    else:
                        timeouts[0] += 1

        keyring = dns.tsigkeyring.from_text({KEY: ("hmac-sha256", SECRET)})
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        time.sleep(0.5)
        acks: list[float] = []
        begun_at: list[float] = []
        seen: list[bool] = []
        edits_from = time.monotonic()
        for i in range(edits):
            update = dns.update.UpdateMessage("big.test.", keyring=keyring, keyname=KEY)
            update.add(f"edit{tag}-{i}.big.test.", 60, "TXT", f'"edit {i}"')
            begun = time.perf_counter()
            begun_at.append(time.monotonic())
            reply = dns.query.tcp(update, "127.0.0.1", port=port, timeout=60)
            acks.append((time.perf_counter() - begun) * 1000)
            answer = dns.query.udp(
                dns.message.make_query(f"edit{tag}-{i}.big.test.", "TXT"), "127.0.0.1", port=port
            )
            seen.append(reply.rcode() == dns.rcode.NOERROR and len(answer.answer) == 1)
            time.sleep(0.1)
        edits_to = time.monotonic()
        time.sleep(0.3)
        stop.set()
        thread.join(5)
        during = [t for t in answered_at if edits_from - 0.1 <= t <= edits_to + 0.1]
        gaps = [(b - a) * 1000 for a, b in itertools.pairwise(during)]
        # Each silence over 20 ms: the edit it fell in (or after), how far into it, how long.
        silences = []
        for a, b in itertools.pairwise(during):
            if (b - a) * 1000 > 20:
                edit = max((i for i, t in enumerate(begun_at) if t <= a), default=-1)
                offset = (a - begun_at[edit]) * 1000 if edit >= 0 else 0.0
                silences.append([edit, round(offset, 1), round((b - a) * 1000, 1)])
        return {
            "mode": "wire",
            "names": names,
            "compiled_s": round(compiled_s, 1),
            "edits": edits,
            "all_acknowledged_and_seen": all(seen),
            "ack_ms_median": round(statistics.median(acks), 1),
            "ack_ms_max": round(max(acks), 1),
            "longest_silence_ms": round(max(gaps), 1) if gaps else None,
            "probe_interval_ms": round(1000 / PROBE_RATE, 1),
            "probe_timeouts": timeouts[0],
            "acks_ms": [round(a, 1) for a in acks],
            "served_ms": [round(s * 1000, 1) for s in served_s],
            "silences_over_20ms": silences,
        }
    finally:
        _stop(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("inproc", "wire", "small"))
    parser.add_argument("--names", type=int, default=MILLION_NAMES)
    parser.add_argument("--edits", type=int, default=10, help="small: per client")
    parser.add_argument("--clients", type=int, default=4, help="small: clients sending at once")
    parser.add_argument("--profile", action="store_true", help="inproc: cProfile the edits")
    parser.add_argument("--workdir", help="wire, small: keep zone and state here (a rerun starts warm)")
    parser.add_argument("--root", type=Path, default=ROOT, help="wire, small: the dynmx checkout to serve")
    args = parser.parse_args()
    if args.mode == "inproc":
        result = inproc(args.names, args.edits, args.profile)
    elif args.mode == "wire":
        result = wire(args.names, args.edits, args.workdir, args.root)
    else:
        result = small(args.edits, args.clients, args.workdir, args.root)
    result["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

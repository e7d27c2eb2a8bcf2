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


def wire(names: int, edits: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bigzone-"))
    (work / "zones").mkdir()
    write_zone(work / "zones", names)
    config = write_config(work, work / "zones")
    process = subprocess.Popen(
        [sys.executable, "-m", "dynmx", "serve", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stderr is not None
    port = 0
    started = time.monotonic()
    try:
        for line in process.stderr:
            if "event=listening" in line and "proto=http" not in line and port == 0:
                port = int(line.rsplit("port=", 1)[1].split()[0])
            if "event=compiled" in line:
                break
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
            update.add(f"edit{i}.big.test.", 60, "TXT", f'"edit {i}"')
            begun = time.perf_counter()
            begun_at.append(time.monotonic())
            reply = dns.query.tcp(update, "127.0.0.1", port=port, timeout=60)
            acks.append((time.perf_counter() - begun) * 1000)
            answer = dns.query.udp(
                dns.message.make_query(f"edit{i}.big.test.", "TXT"), "127.0.0.1", port=port
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
        process.terminate()  # a graceful stop writes the zone file the edits left waiting
        try:
            process.wait(300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("inproc", "wire"))
    parser.add_argument("--names", type=int, default=MILLION_NAMES)
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="inproc: cProfile the edits")
    args = parser.parse_args()
    result = (
        inproc(args.names, args.edits, args.profile)
        if args.mode == "inproc"
        else wire(args.names, args.edits)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""UPDATE under attack (issue 23): how fast plain queries to another zone are answered while
the server is fed costly UPDATEs and options. Throwaway measurement, not a test; loopback
only; every scenario is bounded in time and count; asserts nothing.

Scenarios (each `--seconds` long, a probe asking `www.probe.test A` every 10 ms over UDP):

* `baseline`: the probe alone;
* `restricted-2700`: a key limited to `*.dyn.example.test.` and A sends, in a loop over TCP,
  signed UPDATEs of 2,700 names outside its scope (58 KB);
* `restricted-900`: the same with 900 names (under the default `max_update_records`, so
  the current code parses it and checks the key's rules; planned off the loop);
* `unsigned-58k`: 10 unsigned UPDATE datagrams of 2,700 records (58 KB) per second;
* `edns-56k`: queries carrying 56 KB of EDNS options (14,000 empty unknown options), one
  outstanding at a time, as fast as they are answered.

Reported per scenario: probe latency p50/p99/max in ms and probes lost (no answer within
2 s), the attacker's messages and their replies, and the server's log lines meanwhile.

    .venv/bin/python benchmarks/update_dos.py [--seconds 5] [--only baseline,edns-56k]

It runs the dynmx of the tree it sits in (`python -m dynmx` with that tree as the working
directory), so a copy in a worktree of an older commit measures that commit:

    git worktree add /tmp/old23 b67ebc3 && cp benchmarks/update_dos.py /tmp/old23/benchmarks/
    cd /tmp/old23 && /work/main/.venv/bin/python benchmarks/update_dos.py
"""

from __future__ import annotations

import argparse
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"  # a throwaway TSIG secret
KEYRING = dns.tsigkeyring.from_text({"dyn-key.": ("hmac-sha256", SECRET)})
PROBE_INTERVAL = 0.01
PROBE_TIMEOUT = 2.0
MAX_ATTACKS = 50_000  # messages per scenario at most, whatever the speed

TARGET = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
www  A   192.0.2.10
"""
PROBE = """\
$ORIGIN probe.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
www  A   192.0.2.20
"""


class Server:
    """`python -m dynmx serve` from ROOT on an ephemeral port; counts its log lines."""

    def __init__(self, directory: Path) -> None:
        zones = directory / "zones"
        zones.mkdir()
        (zones / "example.test.zone").write_text(TARGET)
        (zones / "probe.test.zone").write_text(PROBE)
        config = directory / "dynmx.toml"
        config.write_text(
            f'[server]\nlisten = ["{HOST}:0"]\nzones_dir = "{zones}"\nstate_dir = "{directory / "state"}"\n'
            f'[[key]]\nname = "dyn-key."\nsecret = "{SECRET}"\n'
            'names = ["*.dyn.example.test."]\ntypes = ["A"]\n'
            '[[zone]]\nname = "example.test."\nallow_update = ["dyn-key."]\n'
        )
        command = [sys.executable, "-m", "dynmx", "serve", "--config", str(config)]
        self.proc = subprocess.Popen(
            command, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.port = 0
        self.lines = 0
        self.events: Counter[str] = Counter()
        self._serving = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._serving.wait(60):
            self.stop()
            raise RuntimeError("dynmx did not start")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines += 1
            if "event=" in line:
                self.events[line.split("event=", 1)[1].split()[0]] += 1
            if "event=listening proto=udp+tcp" in line:
                self.port = int(line.rsplit("port=", 1)[1].split()[0])
            if "event=serving" in line:
                self._serving.set()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def out_of_scope(count: int, signed: bool) -> bytes:
    kwargs: dict[str, object] = {"keyring": KEYRING, "keyname": "dyn-key."} if signed else {}
    update = dns.update.UpdateMessage("example.test.", **kwargs)  # type: ignore[arg-type]
    for index in range(count):
        update.add(f"h{index}.out", 300, "A", "192.0.2.1")
    return update.to_wire()


def edns_flood_query() -> bytes:
    query = dns.message.make_query("www.example.test.", "A").to_wire()
    options = b"".join(struct.pack(">HH", 65001, 0) for _ in range(14_000))
    opt = b"\x00" + struct.pack(">HHIH", 41, 1232, 0, len(options)) + options
    return query[:10] + b"\x00\x01" + query[12:] + opt


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Probe:
    """Asks `www.probe.test A` every PROBE_INTERVAL (open loop: a slow answer does not delay the
    next question) and keeps each answer's latency; a question unanswered PROBE_TIMEOUT after
    the probe stops is lost."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent: dict[int, float] = {}
        self.latencies: list[float] = []
        self.stop_event = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.2)
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._send, self._receive)]
        self._done_sending = threading.Event()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self._done_sending.wait(5)
        deadline = time.monotonic() + PROBE_TIMEOUT
        while len(self.latencies) < len(self.sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._threads[1].join(1)
        self.sock.close()

    @property
    def lost(self) -> int:
        return len(self.sent) - len(self.latencies)

    def _send(self) -> None:
        query = bytearray(dns.message.make_query("www.probe.test.", "A").to_wire())
        ident = 0
        while not self.stop_event.is_set() and ident < 0xFFFF:
            ident += 1
            query[0:2] = ident.to_bytes(2, "big")
            self.sent[ident] = time.perf_counter()
            self.sock.sendto(bytes(query), (HOST, self.port))
            self.stop_event.wait(PROBE_INTERVAL)
        self._done_sending.set()

    def _receive(self) -> None:
        while not (self._done_sending.is_set() and len(self.latencies) >= len(self.sent)):
            try:
                reply = self.sock.recv(4096)
            except TimeoutError:
                if self._done_sending.is_set() and self.stop_event.is_set():
                    continue
                continue
            except OSError:
                return
            sent = self.sent.get(int.from_bytes(reply[:2], "big"))
            if sent is not None:
                self.latencies.append(time.perf_counter() - sent)


Attack = Callable[[int, float, Counter[str], list[float]], None]


def attack_tcp_updates(count: int) -> Attack:
    data = out_of_scope(count, signed=True)

    def run(port: int, until: float, rcodes: Counter[str], times: list[float]) -> None:
        for _ in range(MAX_ATTACKS):
            if time.monotonic() >= until:
                return
            started = time.perf_counter()
            with socket.create_connection((HOST, port), timeout=30) as sock:
                dns.query.send_tcp(sock, data)
                reply, _ = dns.query.receive_tcp(sock, keyring=False)  # type: ignore[arg-type]
            times.append(time.perf_counter() - started)
            rcodes[dns.rcode.to_text(reply.rcode())] += 1

    return run


def attack_unsigned_datagrams(port: int, until: float, rcodes: Counter[str], times: list[float]) -> None:
    data = out_of_scope(2700, signed=False)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(PROBE_TIMEOUT)
        for _ in range(MAX_ATTACKS):
            tick = time.monotonic()
            if tick >= until:
                return
            started = time.perf_counter()
            sock.sendto(data, (HOST, port))
            try:
                reply = sock.recv(65535)
                times.append(time.perf_counter() - started)
                rcodes[dns.rcode.to_text(dns.rcode.Rcode(reply[3] & 0xF))] += 1
            except TimeoutError:
                rcodes["timeout"] += 1
            time.sleep(max(0.0, tick + 0.1 - time.monotonic()))  # 10 per second


def attack_edns_options(port: int, until: float, rcodes: Counter[str], times: list[float]) -> None:
    data = edns_flood_query()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(PROBE_TIMEOUT)
        for _ in range(MAX_ATTACKS):
            if time.monotonic() >= until:
                return
            started = time.perf_counter()
            sock.sendto(data, (HOST, port))
            try:
                reply = sock.recv(65535)
                times.append(time.perf_counter() - started)
                rcodes[dns.rcode.to_text(dns.rcode.Rcode(reply[3] & 0xF))] += 1
            except TimeoutError:
                rcodes["timeout"] += 1


SCENARIOS: dict[str, Attack | None] = {
    "baseline": None,
    "restricted-2700": attack_tcp_updates(2700),
    "restricted-900": attack_tcp_updates(900),
    "unsigned-58k": attack_unsigned_datagrams,
    "edns-56k": attack_edns_options,
}


def measure(server: Server, name: str, seconds: float) -> str:
    probe = Probe(server.port)
    rcodes: Counter[str] = Counter()
    times: list[float] = []
    lines_before = server.lines
    probe.start()
    time.sleep(0.2)  # the probe runs before the attack begins
    attack = SCENARIOS[name]
    until = time.monotonic() + seconds
    if attack is None:
        time.sleep(seconds)
    else:
        attack(server.port, until, rcodes, times)
    probe.stop()
    ms = [value * 1000 for value in probe.latencies]
    attack_ms = [value * 1000 for value in times]
    replies = ",".join(f"{k}={v}" for k, v in sorted(rcodes.items())) or "-"
    return (
        f"{name:16} probe p50={percentile(ms, 0.5):7.2f} p99={percentile(ms, 0.99):7.2f} "
        f"max={max(ms, default=float('nan')):8.2f} ms n={len(ms)} lost={probe.lost:<3} "
        f"attack sent={len(times) + rcodes['timeout']} replies[{replies}] "
        f"reply p50={percentile(attack_ms, 0.5):8.2f} max={max(attack_ms, default=float('nan')):8.2f} ms "
        f"log_lines={server.lines - lines_before}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each scenario (max 60)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 0.5), 60.0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    print(f"dynmx from {ROOT} (HEAD {commit.stdout.strip()}), {seconds:g} s per scenario", flush=True)
    with tempfile.TemporaryDirectory(prefix="dynmx-update-dos-") as directory:
        server = Server(Path(directory))
        try:
            for name in args.only.split(","):
                print(measure(server, name, seconds), flush=True)
                time.sleep(1.0)  # what is queued drains before the next scenario
        finally:
            server.stop()
    print("events:", ", ".join(f"{k}={v}" for k, v in server.events.most_common(8)))


if __name__ == "__main__":
    main()

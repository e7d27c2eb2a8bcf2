"""An UPDATE's journal append does not stall the event loop (issue 26), against a running dynmx.

The journal's fsync runs on a thread of its own and the UPDATE awaits it, so queries go on
being answered while it runs; the update is still acknowledged only once its entry is
durable (RFC 2136 §3.5; BIND and Knot journal before they answer), and the UPDATEs of one
zone are still applied one after another (RFC 2136 §3.7), whoever sends them.

The slow disk is real: the server runs under `strace --seccomp-bpf`, which delays every
fsync and fdatasync of the process by 200 ms (`-e inject=...:delay_enter=`); only those two
calls are stopped, nothing else is traced.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from tests.conftest import EDITS, ROOT, TEST_SECRET, RunningServer, write_config

KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})
KEY_NAME = dns.name.from_text("ops-key.")
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
"""
FSYNC_DELAY_US = 200_000
SLOW_DISK = (
    "strace", "-f", "-qq", "--seccomp-bpf", "-o", "/dev/null", "-e", "trace=fsync,fdatasync",
    "-e", f"inject=fsync,fdatasync:delay_enter={FSYNC_DELAY_US}",
)  # fmt: skip
PROBE_EVERY = 0.005
Serve = Callable[..., RunningServer]


def _update(
    port: int, change: Callable[[dns.update.UpdateMessage], None], udp: bool = False
) -> dns.rcode.Rcode:
    """Over TCP, or UDP for many clients at once (TCP allows 20 connections per source)."""
    update = dns.update.UpdateMessage(
        "example.test.", keyring=KEYRING, keyname=dns.name.from_text("ops-key.")
    )
    change(update)
    send = dns.query.udp if udp else dns.query.tcp
    return send(update, "127.0.0.1", port=port, timeout=10).rcode()


def _adding(name: str, address: str) -> Callable[[dns.update.UpdateMessage], None]:
    def change(update: dns.update.UpdateMessage) -> None:
        update.add(name, 300, "A", address)

    return change


def _answers(port: int, name: str, rdtype: str = "A") -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=2)
    return [r.to_text() for rrset in reply.answer for r in rrset]


def _journal(tmp_path: Path) -> list[tuple[int, int, str]]:
    """The zone's journal as the file holds it: (old serial, new serial, added), in order."""
    with sqlite3.connect(tmp_path / "state" / "journal.sqlite") as db:
        rows = db.execute(
            "SELECT old_serial, new_serial, added FROM journal WHERE zone = 'example.test.' ORDER BY seq"
        ).fetchall()
    return [(int(old), int(new), str(added)) for old, new, added in rows]


class Probe:
    """SOA queries over UDP every 5 ms on a thread; the times their answers came."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answered: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = dns.message.make_query("example.test.", "SOA").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            for _ in range(20_000):  # bounded: 100 s at most
                if self._stop.wait(PROBE_EVERY):
                    return
                sock.sendto(query, ("127.0.0.1", self.port))
                try:
                    sock.recv(4096)
                except TimeoutError:
                    continue
                self.answered.append(time.monotonic())

    def longest_silence(self, start: float, end: float) -> float:
        self._stop.set()
        self._thread.join(5)
        during = [t for t in self.answered if start <= t <= end]
        return max(b - a for a, b in itertools.pairwise([start, *during, end]))


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace makes the slow disk")
def test_queries_are_answered_while_an_updates_journal_fsync_takes_200_ms(
    serve: Serve, tmp_path: Path
) -> None:
    """Every fsync takes 200 ms: before, the loop waited for the journal's, silent as long;
    now the probe is never without an answer for 50 ms, and each UPDATE is acknowledged only
    after its fsync (it takes at least the delay) and is answered from then on."""
    server = serve("--config", str(write_config(tmp_path, ZONE, EDITS)), prefix=SLOW_DISK)
    try:
        _slow_disk_updates_keep_answers(server, tmp_path)
    finally:
        _stop_under_strace(server)


def _stop_under_strace(server: RunningServer) -> None:
    """strace 6.1 (Debian 12) detaches from the server it started when it is itself stopped,
    and has no --kill-on-exit: the server is stopped first, then strace exits with it."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for child in children.read_text().split() if children.exists() else ():
        os.kill(int(child), signal.SIGTERM)
    server.stop()


def _slow_disk_updates_keep_answers(server: RunningServer, tmp_path: Path) -> None:
    probe = Probe(server.dns_port)
    time.sleep(0.2)
    started = time.monotonic()
    for index in range(3):
        sent = time.monotonic()
        assert _update(server.dns_port, _adding(f"slow{index}", "192.0.2.7")) == dns.rcode.NOERROR
        assert time.monotonic() - sent >= FSYNC_DELAY_US / 1e6  # the fault was in effect
        assert _answers(server.dns_port, f"slow{index}.example.test") == ["192.0.2.7"]
    silence = probe.longest_silence(started, time.monotonic())
    assert silence < 0.05, f"the server was silent for {silence * 1000:.0f} ms while the journal synced"
    assert [(old, new) for old, new, _ in _journal(tmp_path)] == [(1, 2), (2, 3), (3, 4)]


def test_rfc2136_3_7_concurrent_updates_to_one_zone_land_in_the_journal_in_serial_order(
    serve: Serve, tmp_path: Path
) -> None:
    """40 clients at once, each adding one name: every one acknowledged, the journal one line
    of history (each change from the serial the one before made), each name in exactly one
    change, and the zone's serial moved once per update."""
    server = serve("--config", str(write_config(tmp_path, ZONE, EDITS)))
    count = 40
    start = threading.Barrier(count)
    rcodes: dict[int, int] = {}

    def send(index: int) -> None:
        start.wait(10)
        rcodes[index] = _update(server.dns_port, _adding(f"c{index}", "192.0.2.8"), udp=True)

    threads = [threading.Thread(target=send, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert rcodes == dict.fromkeys(range(count), dns.rcode.NOERROR)
    journal = _journal(tmp_path)
    assert [(old, new) for old, new, _ in journal] == [(s, s + 1) for s in range(1, count + 1)]
    added = [sorted(line.split()[0] for line in text.splitlines() if " A " in line) for _, _, text in journal]
    assert sorted(name for names in added for name in names) == sorted(
        f"c{index}.example.test." for index in range(count)
    )
    assert all(len(names) == 1 for names in added)
    assert _answers(server.dns_port, "example.test", "SOA")[0].split()[2] == str(count + 1)


def test_rfc2136_3_2_concurrent_updates_with_one_prerequisite_see_each_other(
    serve: Serve, tmp_path: Path
) -> None:
    """20 clients race for one name ("absent, then add"): evaluated one after another, one wins
    and the others find it there (YXDOMAIN), none is turned away for having met the others."""
    server = serve("--config", str(write_config(tmp_path, ZONE, EDITS)))
    count = 20
    start = threading.Barrier(count)
    rcodes: list[int] = []

    def claim(index: int) -> None:
        def change(update: dns.update.UpdateMessage) -> None:
            update.absent("lock")
            update.add("lock", 300, "TXT", f'"holder {index}"')

        start.wait(10)
        rcodes.append(_update(server.dns_port, change, udp=True))

    threads = [threading.Thread(target=claim, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(rcodes) == [dns.rcode.NOERROR] + [dns.rcode.YXDOMAIN] * (count - 1)
    assert len(_answers(server.dns_port, "lock.example.test", "TXT")) == 1
    assert [(old, new) for old, new, _ in _journal(tmp_path)] == [(1, 2)]


def test_record_add_and_updates_that_meet_are_all_kept_in_one_line_of_history(
    serve: Serve, tmp_path: Path
) -> None:
    """`dynmx record add` (the control socket) and RFC 2136 clients on one zone at once: the
    owner applies each whole, in one line of history."""
    config = write_config(tmp_path, ZONE, EDITS)
    server = serve("--config", str(config))
    command = [sys.executable, "-m", "dynmx", "record", "add"]
    cli = [
        subprocess.Popen(
            [*command, f"cli{i}.example.test", "A", f"198.51.100.{i}", "-c", str(config)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(1, 4)
    ]
    rcodes: list[int] = []
    for index in range(30):  # over the seconds the CLI processes take to start and send
        rcodes.append(_update(server.dns_port, _adding(f"u{index}", "192.0.2.9")))
        if all(actor.poll() is not None for actor in cli):
            break
        time.sleep(0.05)
    assert [actor.wait(timeout=60) for actor in cli] == [0, 0, 0]
    assert set(rcodes) == {dns.rcode.NOERROR}
    assert all(_answers(server.dns_port, f"cli{i}.example.test") == [f"198.51.100.{i}"] for i in range(1, 4))
    assert all(_answers(server.dns_port, f"u{i}.example.test") == ["192.0.2.9"] for i in range(len(rcodes)))
    journal = _journal(tmp_path)
    assert len(journal) == 3 + len(rcodes)
    assert all(new == old + 1 for old, new, _ in journal)
    assert all(b[0] == a[1] for a, b in itertools.pairwise(journal))


DYNDNS2 = (
    '[http]\nlisten = "127.0.0.1:0"\n'
    "[dyndns2]\nenabled = true\nttl = 60\nmin_interval = 0\n"
    '[[dyndns2.host]]\nhostname = "home.example.test."\nusername = "home"\npassword = "s3cret"\n'
)


def _dyndns2(server: RunningServer, address: str) -> str:
    url = f"http://127.0.0.1:{server.http_port}/nic/update?hostname=home.example.test&myip={address}"
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"home:s3cret").decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode().strip())


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace makes the slow disk")
def test_a_dyndns2_update_that_meets_an_updates_journal_fsync_waits_its_turn(
    serve: Serve, tmp_path: Path
) -> None:
    """A router's dyndns2 update arrives while an RFC 2136 UPDATE of the same zone is in its
    200 ms journal fsync: it takes the zone's turn after it (RFC 2136 §3.7) and is applied on
    the UPDATE's version, not refused as stale ("911"); both are answered and journaled in
    one line of history."""
    server = serve("--config", str(write_config(tmp_path, ZONE, EDITS + DYNDNS2)), prefix=SLOW_DISK)
    try:
        rcodes: list[int] = []
        sender = threading.Thread(
            target=lambda: rcodes.append(_update(server.dns_port, _adding("slow", "192.0.2.7")))
        )
        sender.start()
        time.sleep(FSYNC_DELAY_US / 1e6 / 4)  # the UPDATE is in its fsync
        assert _dyndns2(server, "192.0.2.9") == "good 192.0.2.9"
        sender.join(10)
        assert rcodes == [dns.rcode.NOERROR]
        assert _answers(server.dns_port, "home.example.test") == ["192.0.2.9"]
        assert _answers(server.dns_port, "slow.example.test") == ["192.0.2.7"]
        assert [(old, new) for old, new, _ in _journal(tmp_path)] == [(1, 2), (2, 3)]
    finally:
        _stop_under_strace(server)

"""`dynmx zone status|notify|retransfer` through a running server, beside `knotc zone-status`,
`nsd-control zonestatus`, `nsd-control notify` and `knotc zone-retransfer`."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from dynmx.app.zonestatus import PeerLog, read_file_serial
from dynmx.cli.zones import status_lines
from tests.conftest import EDITS, ROOT, TEST_SECRET, RunningServer, start_server, wait_until, write_config
from tests.nsd import Nsd, NsdUnavailable, free_port

Serve = Callable[..., RunningServer]
KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 100 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mx1  A   127.0.0.2
"""


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def zone_status(config: Path, *zone: str) -> dict[str, Any]:
    result = dynmx("zone", "status", *zone, "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)["zones"]
    assert isinstance(entries, list)
    return {entry["zone"]: entry for entry in entries}


def _update(server: RunningServer, name: str, address: str) -> None:
    update = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname="ops-key.")
    update.add(name, 300, "A", address)
    assert dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=3).rcode() == dns.rcode.NOERROR


def _answers(port: int, name: str) -> list[str]:
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=1)
    except dns.exception.Timeout:
        return []
    return [r.address for r in reply.answer[0]] if reply.answer else []


def _primary(tmp_path: Path, notify: str = "") -> Path:
    tmp_path.mkdir(exist_ok=True)
    extra = 'allow_transfer = ["127.0.0.0/8"]\n' + (f'notify = ["{notify}"]\n' if notify else "")
    return write_config(tmp_path, ZONE, EDITS + extra)


@pytest.fixture(scope="module")
def quiet_primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The config of one running primary without notify targets, for the commands that only
    ask it something and are refused (nothing they do changes it)."""
    config = _primary(tmp_path_factory.mktemp("quiet-primary"))
    server = start_server("--config", str(config))
    yield config
    server.stop()


# -- plain calls ---------------------------------------------------------------------------


def test_peer_log_keeps_the_last_transfer_per_peer_and_what_an_ixfr_asked_from() -> None:
    peers = PeerLog(clock=lambda: 1000.0)
    peers.transferred("example.test.", "127.0.0.9", "AXFR", 100, None)
    peers.transferred("example.test.", "127.0.0.9", "IXFR", 101, 100)
    seen = peers.transfers["example.test."]["127.0.0.9"]
    assert (seen.kind, seen.serial, seen.asked_from) == ("IXFR", 101, 100)


def test_peer_log_an_older_notify_answering_late_does_not_overwrite_a_newer_one() -> None:
    peers = PeerLog()
    first = peers.notify_sent("example.test.", "127.0.0.9:53", 100)
    second = peers.notify_sent("example.test.", "127.0.0.9:53", 101)
    peers.notify_answered("example.test.", "127.0.0.9:53", first, acked=False)
    assert peers.notifies["example.test."]["127.0.0.9:53"].result == "pending"
    peers.notify_answered("example.test.", "127.0.0.9:53", second, acked=True)
    sent = peers.notifies["example.test."]["127.0.0.9:53"]
    assert (sent.serial, sent.result) == (101, "acked")


def test_the_file_serial_is_read_from_the_soa_wherever_it_stands(tmp_path: Path) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text("$ORIGIN example.test.\n$TTL 60\nns1 A 127.0.0.1\n" + ZONE.split("\n", 2)[2])
    assert read_file_serial(path, dns.name.from_text("example.test.")) == 100
    assert read_file_serial(tmp_path / "missing.zone", dns.name.from_text("example.test.")) is None


def test_status_text_of_a_secondary_says_its_primary_refresh_and_expiry() -> None:
    entry = {
        "zone": "example.test.",
        "role": "secondary",
        "primary": "127.0.0.1:5300",
        "serial": 101,
        "file_serial": 101,
        "file_behind": False,
        "last_change": None,
        "last_refresh": 990.0,
        "expires_in": 3600.0,
        "expired": False,
        "state": "ok",
        "problems": [],
    }
    lines = status_lines(entry, now=1000.0)
    assert lines[0].startswith("example.test.  secondary of 127.0.0.1:5300  serial 101  file 101")
    assert "refreshed 1970-01-01 00:16:30 UTC (10s ago), expires in 1h: ok" in lines[1]


# -- through a running server --------------------------------------------------------------


@pytest.mark.interop
def test_zone_status_shows_the_serial_an_nsd_secondary_took_after_notify(
    serve: Serve, tmp_path: Path
) -> None:
    """NSD follows dynmx (AXFR, then NOTIFY and IXFR after an UPDATE): zone status names the NOTIFY
    target, the serial it was NOTIFYed and answered, and the IXFR it took to that serial; `zone
    notify` then reaches it again and it answers."""
    notify_port = free_port()
    config = _primary(tmp_path, notify=f"127.0.0.1:{notify_port}")
    server = serve("--config", str(config))
    zone_dir = tmp_path / "secondary"
    zone_dir.mkdir()
    options = {
        "example.test": [f"request-xfr: 127.0.0.1@{server.dns_port} NOKEY", "allow-notify: 127.0.0.1 NOKEY"]
    }
    try:
        nsd = Nsd(zone_dir, {"example.test": "example.test.zone"}, zone_options=options, port=notify_port)
    except NsdUnavailable as error:
        pytest.skip(str(error))
    nsd.start()
    try:
        wait_until(lambda: _answers(nsd.port, "mx1.example.test") == ["127.0.0.2"], timeout=15)
        _update(server, "www", "192.0.2.10")
        wait_until(lambda: _answers(nsd.port, "www.example.test") == ["192.0.2.10"], timeout=15)

        def took_101() -> bool:
            entry = zone_status(config)["example.test."]
            return bool(entry["notify"][0]["transferred_serial"] == 101 and entry["file_serial"] == 101)

        wait_until(took_101, timeout=10)
        entry = zone_status(config, "example.test")["example.test."]
        assert (entry["role"], entry["serial"], entry["problems"]) == ("primary", 101, [])
        target = entry["notify"][0]
        assert target["target"] == f"127.0.0.1:{notify_port}"
        assert (target["notified_serial"], target["notify_result"]) == (101, "acked")
        assert target["transfer_kind"] == "IXFR"
        text = dynmx("zone", "status", "--config", str(config)).stdout
        assert "example.test.  primary  serial 101  file 101" in text
        assert f"secondary 127.0.0.1:{notify_port}: notified serial 101" in text
        assert "took IXFR to serial 101" in text

        notified = dynmx("zone", "notify", "example.test", "--config", str(config))
        assert notified.returncode == 0, notified.stderr
        assert f"example.test. serial 101: NOTIFY to 127.0.0.1:{notify_port}: answered" in notified.stdout
    finally:
        nsd.stop()


@pytest.fixture
def notify_recorder() -> Iterator[tuple[int, list[dns.message.Message]]]:
    """A UDP socket on 127.0.0.1 that answers every NOTIFY with NOERROR and keeps it: a peer that
    shows what was sent on demand, which a real secondary's log does not."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    received: list[dns.message.Message] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            message = dns.message.from_wire(data)
            received.append(message)
            reply = dns.message.make_response(message)
            reply.flags |= dns.flags.AA
            sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield sock.getsockname()[1], received
    stop.set()
    thread.join(2)
    sock.close()


def test_rfc1996_zone_notify_sends_notify_with_the_served_soa_now(
    serve: Serve, tmp_path: Path, notify_recorder: tuple[int, list[dns.message.Message]]
) -> None:
    """Nothing changed, so nothing would be sent; `zone notify` sends one NOTIFY carrying the
    served SOA (RFC 1996 §3.7) to the target, and says it was answered."""
    port, received = notify_recorder
    config = _primary(tmp_path, notify=f"127.0.0.1:{port}")
    serve("--config", str(config))
    received.clear()
    result = dynmx("zone", "notify", "example.test.", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "answered" in result.stdout
    assert len(received) == 1
    message = received[0]
    assert message.opcode() == dns.opcode.NOTIFY
    assert message.answer[0][0].serial == 100


def test_zone_notify_of_a_zone_without_targets_says_so(quiet_primary: Path) -> None:
    config = quiet_primary
    result = dynmx("zone", "notify", "example.test", "--config", str(config))
    assert result.returncode == 1 and "no notify targets" in result.stdout


def test_zone_retransfer_of_a_primary_zone_is_refused(quiet_primary: Path) -> None:
    config = quiet_primary
    result = dynmx("zone", "retransfer", "example.test", "--config", str(config))
    assert result.returncode == 2
    assert "is a primary zone here: it has no primary to transfer from" in result.stderr


def _secondary(tmp_path: Path, primary_port: int) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir(parents=True)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[zone]]\nname = "example.test."\nprimary = "127.0.0.1:{primary_port}"\n'
    )
    return config


def test_zone_retransfer_takes_a_full_axfr_now_and_status_shows_it_on_both_sides(
    serve: Serve, tmp_path: Path
) -> None:
    """dynmx follows a dynmx primary that NOTIFYs nobody: a change on the primary waits for the SOA
    REFRESH (7200 s); `zone retransfer` fetches it at once by AXFR (knotc zone-retransfer). The
    secondary's status names its primary, its last refresh and the time left before EXPIRE; the
    primary's names the AXFR it served."""
    primary_config = _primary(tmp_path / "primary")
    primary = serve("--config", str(primary_config))
    config = _secondary(tmp_path / "secondary", primary.dns_port)
    server = serve("--config", str(config))
    wait_until(lambda: _answers(server.dns_port, "mx1.example.test") == ["127.0.0.2"], timeout=10)
    _update(primary, "www", "192.0.2.10")
    assert _answers(server.dns_port, "www.example.test") == []  # not NOTIFYed: not followed yet

    result = dynmx("zone", "retransfer", "example.test", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "transferred in full (AXFR), serial 101 (held 100)" in result.stdout
    assert _answers(server.dns_port, "www.example.test") == ["192.0.2.10"]

    entry = zone_status(config)["example.test."]
    assert (entry["role"], entry["primary"], entry["serial"]) == (
        "secondary",
        f"127.0.0.1:{primary.dns_port}",
        101,
    )
    assert entry["state"] == "ok" and not entry["expired"] and entry["refreshed_ago"] < 10
    assert 1209600 - 10 < entry["expires_in"] <= 1209600
    served = zone_status(primary_config)["example.test."]["transfers"]
    assert [(t["peer"], t["kind"], t["serial"]) for t in served][-1] == ("127.0.0.1", "AXFR", 101)


def test_zone_status_reports_a_refused_reload_and_a_file_serial_not_served(
    serve: Serve, tmp_path: Path
) -> None:
    """The problems an operator must see (nsd-control zonestatus shows served and commit serial):
    a hand edit not reloaded yet, then a reload that refused the file."""
    config = _primary(tmp_path)
    serve("--config", str(config))
    zone_file = tmp_path / "zones" / "example.test.zone"
    zone_file.write_text(ZONE.replace(" 100 ", " 105 ") + "www A 192.0.2.7\n")
    problems = zone_status(config)["example.test."]["problems"]
    assert any("the file holds serial 105, 100 is served" in p for p in problems), problems

    zone_file.write_text(ZONE.replace(" 100 ", " 106 ") + "www A not-an-address\n")
    assert dynmx("reload", "--config", str(config)).returncode == 1
    entry = zone_status(config)["example.test."]
    assert entry["serial"] == 100 and entry["file_serial"] == 106
    assert any(p.startswith("last load: ") and "not-an-address" in p for p in entry["problems"])
    text = dynmx("zone", "status", "--config", str(config)).stdout
    assert "  problem: last load: " in text


def test_zone_status_reports_a_journal_set_aside_at_start(serve: Serve, tmp_path: Path) -> None:
    """A journal that does not continue the zone file is set aside (journal_quarantine) and the
    file served above it: its secondaries get an AXFR, which zone status says."""
    config = _primary(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    db = sqlite3.connect(state / "journal.sqlite")
    db.executescript(
        "CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, zone TEXT NOT NULL,"
        " old_serial INTEGER NOT NULL, new_serial INTEGER NOT NULL, removed TEXT NOT NULL,"
        " added TEXT NOT NULL, at REAL NOT NULL);"
        "INSERT INTO journal (zone, old_serial, new_serial, removed, added, at)"
        " VALUES ('example.test.', 140, 141, '', '', 0);"
    )
    db.commit()
    db.close()
    serve("--config", str(config))
    entry = zone_status(config)["example.test."]
    assert entry["serial"] == 142
    assert any(
        p.startswith("journal set aside (1 change(s)):") and p.endswith("secondaries asking IXFR get AXFR")
        for p in entry["problems"]
    ), entry["problems"]


def test_zone_status_of_an_unknown_zone_is_an_error(quiet_primary: Path) -> None:
    config = quiet_primary
    result = dynmx("zone", "status", "other.test", "--config", str(config))
    assert result.returncode == 2 and "other.test. is not served" in result.stderr


def test_zone_status_reports_a_zone_file_that_cannot_be_written(serve: Serve, tmp_path: Path) -> None:
    """Write-back failing (here: a directory stands where the file was) blocks further edits; zone
    status says so, and that the served serial is not in the file yet."""
    config = _primary(tmp_path)
    server = serve("--config", str(config))
    zone_file = tmp_path / "zones" / "example.test.zone"
    zone_file.unlink()
    zone_file.mkdir()
    _update(server, "www", "192.0.2.10")

    def blocked() -> bool:
        entry = zone_status(config)["example.test."]
        return any(p.startswith("write-back blocked:") for p in entry["problems"])

    wait_until(blocked, timeout=10)
    entry = zone_status(config)["example.test."]
    assert entry["serial"] == 101 and entry["file_behind"] and entry["file_serial"] is None
    assert "file - (write pending)" in dynmx("zone", "status", "--config", str(config)).stdout


@pytest.mark.interop
def test_zone_retransfer_from_an_nsd_primary_that_notifies_nobody(serve: Serve, tmp_path: Path) -> None:
    """NSD (the primary, no `notify:`) reloads a new serial; dynmx would wait for the SOA REFRESH
    (7200 s); `zone retransfer` takes it from NSD by AXFR at once."""
    primary_dir = tmp_path / "primary"
    primary_dir.mkdir()
    (primary_dir / "example.test.zone").write_text(ZONE)
    options = {"example.test": ["provide-xfr: 127.0.0.0/8 NOKEY"]}
    try:
        nsd = Nsd(primary_dir, {"example.test": "example.test.zone"}, zone_options=options)
    except NsdUnavailable as error:
        pytest.skip(str(error))
    nsd.start()
    try:
        config = _secondary(tmp_path / "secondary", nsd.port)
        server = serve("--config", str(config))
        wait_until(lambda: _answers(server.dns_port, "mx1.example.test") == ["127.0.0.2"], timeout=10)
        (primary_dir / "example.test.zone").write_text(ZONE.replace(" 100 ", " 101 ") + "www A 192.0.2.44\n")
        assert nsd.pid is not None
        os.kill(nsd.pid, signal.SIGHUP)
        wait_until(lambda: _answers(nsd.port, "www.example.test") == ["192.0.2.44"], timeout=10)
        assert _answers(server.dns_port, "www.example.test") == []

        result = dynmx("zone", "retransfer", "example.test", "--config", str(config))
        assert result.returncode == 0, result.stderr + nsd.log()
        assert "serial 101 (held 100)" in result.stdout
        assert _answers(server.dns_port, "www.example.test") == ["192.0.2.44"]
    finally:
        nsd.stop()


def test_zone_retransfer_from_a_primary_that_does_not_answer_names_it(serve: Serve, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: the connection is refused
    config = _secondary(tmp_path, port)
    serve("--config", str(config))
    result = dynmx("zone", "retransfer", "example.test", "--config", str(config))
    assert result.returncode == 2
    assert f"example.test.: AXFR from 127.0.0.1:{port} failed:" in result.stderr

"""One owner for zone data, through a running server: every path that changes a zone hands
the change to the server that owns the state directory, and nothing acknowledged is lost.

Each test is one case of tracker issue 22 that failed before the owner existed.
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
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import dns.zone
import pytest

from dynmx.config import load_config
from dynmx.zone.loader import load_zone_file
from tests.conftest import EDITS, ROOT, TEST_SECRET, RunningServer, wait_until, write_config

KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mx1  A   127.0.0.2
www  A   192.0.2.10
"""
DEFAULTS = '[defaults]\nns = ["ns1.example.test."]\nhostmaster = "hostmaster.example.test."\n'
Serve = Callable[..., RunningServer]


def dynmx(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def _update(server: RunningServer, change: Callable[[dns.update.UpdateMessage], None]) -> int:
    update = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname="ops-key.")
    change(update)
    return int(dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=5).rcode())


def _query(server: RunningServer, name: str, rdtype: str = "A") -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=server.dns_port, timeout=2)


def _addresses(server: RunningServer, name: str) -> list[str]:
    reply = _query(server, name)
    return sorted(r.address for r in reply.answer[0]) if reply.answer else []


def _journal(tmp_path: Path) -> list[tuple[str, int, int]]:
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    try:
        return list(db.execute("SELECT zone, old_serial, new_serial FROM journal ORDER BY seq"))
    finally:
        db.close()


def _one_line_of_history(rows: list[tuple[str, int, int]]) -> bool:
    by_zone: dict[str, list[tuple[int, int]]] = {}
    for zone, old, new in rows:
        by_zone.setdefault(zone, []).append((old, new))
    return all(
        all(later[0] == earlier[1] for earlier, later in itertools.pairwise(steps))
        for steps in by_zone.values()
    )


def _file(tmp_path: Path, name: str = "example.test") -> dns.zone.Zone:
    return load_zone_file(tmp_path / "zones" / f"{name}.zone").zone


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """No [http] listener, as in the README's minimal config: the CLI finds the control socket."""
    return write_config(tmp_path, ZONE, EDITS + 'allow_transfer = ["127.0.0.0/8"]\n' + DEFAULTS)


# --- 1. zone add and an UPDATE of the parent ------------------------------------------------


def test_zone_add_and_an_update_of_the_parent_are_both_kept(
    serve: Serve, config: Path, tmp_path: Path
) -> None:
    """Issue 22 #1: the delegation `zone add` made was lost to an UPDATE committed on the
    parent's older version; both changes now come from the one owner, in one line of history."""
    server = serve("--config", str(config))
    added = dynmx("zone", "add", "shop.example.test", "-c", str(config))
    assert added.returncode == 0, added.stderr
    assert "ok: delegation added to example.test." in added.stdout
    assert _update(server, lambda u: u.add("new", 300, "A", "192.0.2.50")) == dns.rcode.NOERROR
    axfr = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.test.", port=server.dns_port, timeout=3))
    assert axfr.get_rdataset("shop", "NS") is not None and axfr.get_rdataset("new", "A") is not None
    assert _query(server, "shop.example.test", "SOA").answer  # the child is served at once
    server.stop()
    restarted = serve("--config", str(config))
    assert _addresses(restarted, "new.example.test") == ["192.0.2.50"]
    parent = _file(tmp_path)
    assert parent.get_rdataset("shop", "NS") is not None and parent.get_rdataset("new", "A") is not None
    assert _one_line_of_history(_journal(tmp_path))


# --- 2. an offline edit while a server runs -------------------------------------------------


def test_an_offline_edit_is_refused_while_a_server_owns_the_state_dir(
    serve: Serve, config: Path, tmp_path: Path
) -> None:
    """Issue 22 #2: the offline edit and the next online edit took the same serial (a fork that
    Knot served and NSD refused). Now --offline is refused and the online edit goes through."""
    server = serve("--config", str(config))
    before = (tmp_path / "zones" / "example.test.zone").read_text()
    offline = dynmx("record", "add", "off.example.test", "A", "192.0.2.60", "--offline", "-c", str(config))
    assert offline.returncode == 2
    assert "--offline refused" in offline.stderr and f"pid {server.process.pid} (server)" in offline.stderr
    assert (tmp_path / "zones" / "example.test.zone").read_text() == before
    online = dynmx("record", "add", "on.example.test", "A", "192.0.2.61", "-c", str(config))
    assert online.returncode == 0, online.stdout + online.stderr
    assert _addresses(server, "on.example.test") == ["192.0.2.61"]
    assert _journal(tmp_path) == [("example.test.", 1, 2)]


def test_a_second_server_on_the_same_state_dir_is_refused(serve: Serve, config: Path) -> None:
    first = serve("--config", str(config))
    second = subprocess.run(
        [sys.executable, "-m", "dynmx", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert second.returncode == 1
    assert f"owned by pid {first.process.pid} (server)" in second.stderr
    assert _query(first, "example.test", "SOA").answer


def test_an_offline_edit_with_no_server_owns_the_state_dir_and_is_served_at_start(
    serve: Serve, config: Path, tmp_path: Path
) -> None:
    offline = dynmx("record", "add", "off.example.test", "A", "192.0.2.60", "--offline", "-c", str(config))
    assert offline.returncode == 0, offline.stderr
    server = serve("--config", str(config))
    assert _addresses(server, "off.example.test") == ["192.0.2.60"]
    assert _update(server, lambda u: u.add("on", 300, "A", "192.0.2.61")) == dns.rcode.NOERROR
    assert _journal(tmp_path) == [("example.test.", 1, 2), ("example.test.", 2, 3)]


# --- 4. a hand edit that keeps its serial ---------------------------------------------------


def test_a_hand_edit_without_a_new_serial_is_refused_and_the_old_data_served(
    serve: Serve, config: Path, tmp_path: Path
) -> None:
    """Issue 22 #4: it was served under the old serial, so secondaries never learned of it.
    As BIND: refused with the reason, the served version kept."""
    server = serve("--config", str(config))
    zone_file = tmp_path / "zones" / "example.test.zone"
    zone_file.write_text(ZONE + "hand A 192.0.2.70\n")
    reloaded = dynmx("reload", "-c", str(config))
    assert reloaded.returncode == 1
    assert "its SOA serial is still 1" in reloaded.stdout
    assert _addresses(server, "hand.example.test") == []
    assert "event=zone-refused" in server.log_text()
    zone_file.write_text(ZONE.replace(" 1 7200", " 2 7200") + "hand A 192.0.2.70\n")
    assert dynmx("reload", "-c", str(config)).returncode == 0
    assert _addresses(server, "hand.example.test") == ["192.0.2.70"]
    assert _journal(tmp_path) == [("example.test.", 1, 2)]  # IXFR can follow a hand edit too


def test_a_hand_edit_whose_serial_went_back_is_refused(serve: Serve, config: Path, tmp_path: Path) -> None:
    server = serve("--config", str(config))
    assert _update(server, lambda u: u.add("new", 300, "A", "192.0.2.50")) == dns.rcode.NOERROR
    wait_until(lambda: "new" in (tmp_path / "zones" / "example.test.zone").read_text())
    (tmp_path / "zones" / "example.test.zone").write_text(ZONE + "hand A 192.0.2.70\n")  # serial 1 again
    reloaded = dynmx("reload", "-c", str(config))
    assert reloaded.returncode == 1 and "older than the served 2" in reloaded.stdout
    assert _addresses(server, "new.example.test") == ["192.0.2.50"]


# --- 7. an edit that `dynmx check` would refuse ---------------------------------------------

POOL = """
[[pool]]
name = "example.test."
strategy = "round-robin"
[[pool.member]]
host = "mx1.example.test."
probe = "none"
"""


def test_an_update_leaving_a_pool_member_without_an_address_is_refused(serve: Serve, tmp_path: Path) -> None:
    """Issue 22 #7: the edit was acknowledged, `dynmx check` then failed on the same config."""
    config = write_config(tmp_path, ZONE + "@ MX 10 mx1\n", EDITS + POOL)
    server = serve("--config", str(config))
    assert _update(server, lambda u: u.delete("mx1", "A")) == dns.rcode.REFUSED
    assert _addresses(server, "mx1.example.test") == ["127.0.0.2"]
    cli = dynmx("record", "rm", "mx1.example.test", "A", "-c", str(config))
    assert cli.returncode == 1
    assert "mx1.example.test. has no A or AAAA record (`dynmx check` would refuse this)" in cli.stdout
    assert dynmx("check", "-c", str(config)).returncode == 0


class Listener:
    """A TCP listener on one loopback address that counts connections (a TCP probe's target)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def listeners() -> Iterator[Callable[[str, int], Listener]]:
    made: list[Listener] = []

    def make(host: str, port: int) -> Listener:
        made.append(Listener(host, port))
        return made[-1]

    yield make
    for listener in made:
        listener.close()


def test_a_member_whose_address_is_changed_is_probed_at_the_new_one(
    serve: Serve, tmp_path: Path, listeners: Callable[[str, int], Listener]
) -> None:
    """Issue 22 #7: the prober kept probing the address it had found at start."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    old, new = listeners("127.0.0.2", port), listeners("127.0.0.3", port)
    pool = POOL.replace('probe = "none"', f'probe = "tcp"\nport = {port}\ninterval = 1\ntimeout = 0.5')
    config = write_config(tmp_path, ZONE + "@ MX 10 mx1\n", EDITS + pool)
    server = serve("--config", str(config))
    wait_until(lambda: old.accepted > 0, timeout=10)

    def move(update: dns.update.UpdateMessage) -> None:
        update.delete("mx1", "A")
        update.add("mx1", 300, "A", "127.0.0.3")

    assert _update(server, move) == dns.rcode.NOERROR
    wait_until(lambda: new.accepted > 0, timeout=10)
    assert "event=prober-retargeted" in server.log_text()


# --- 8. dyndns2 with a parent and a child zone ----------------------------------------------


def _nic_update(server: RunningServer, query: str) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/nic/update?{query}")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"home:s3cret").decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()


def test_dyndns2_reads_and_writes_the_child_zone_served_beside_its_parent(
    serve: Serve, tmp_path: Path
) -> None:
    """Issue 22 #8: the address was read from the parent and written to the child, so the same
    address answered `good` and a new one was added beside the old."""
    config = write_config(
        tmp_path,
        ZONE + "home NS ns1\n",
        '[http]\nlisten = "127.0.0.1:0"\n'
        "[dyndns2]\nenabled = true\nttl = 60\nmin_interval = 0\n"
        '[[dyndns2.host]]\nhostname = "router.home.example.test."\nusername = "home"\npassword = "s3cret"\n',
    )
    (tmp_path / "zones" / "home.example.test.zone").write_text(
        "$ORIGIN home.example.test.\n$TTL 300\n@ SOA ns1.example.test. h 1 7200 3600 1209600 300\n"
        "@ NS ns1.example.test.\nrouter A 198.51.100.10\n"
    )
    server = serve("--config", str(config))
    assert _nic_update(server, "hostname=router.home.example.test&myip=198.51.100.10") == (
        200,
        "nochg 198.51.100.10",
    )
    assert _nic_update(server, "hostname=router.home.example.test&myip=198.51.100.11") == (
        200,
        "good 198.51.100.11",
    )
    assert _addresses(server, "router.home.example.test") == ["198.51.100.11"]


# --- 11. the CLI's way to the server --------------------------------------------------------


def test_every_cli_command_reaches_a_server_with_no_http_listener(serve: Serve, config: Path) -> None:
    """Issue 22 #11: status, reload and edits go over the control socket in state_dir."""
    serve("--config", str(config))
    status = dynmx("status", "-c", str(config))
    assert status.returncode == 0 and "zone example.test. serial 1" in status.stdout
    assert dynmx("reload", "-c", str(config)).stdout.strip() == "reloaded"


@pytest.mark.parametrize(
    ("listen", "url"),
    [("127.0.0.1", "http://127.0.0.1:9153"), ("::1", "http://[::1]:9153"), ("[::1]:80", "http://[::1]:80")],
)
def test_the_control_url_is_read_by_the_parser_the_server_binds_with(
    tmp_path: Path, listen: str, url: str
) -> None:
    from dynmx.cli.client import ControlClient

    path = tmp_path / "dynmx.toml"
    path.write_text(f'[http]\nlisten = "{listen}"\n')
    assert ControlClient(load_config(path)).url() == url


# --- 12. zone files that cannot be written --------------------------------------------------

FILE_LIMIT = 128 * 1024  # the zone file outgrows it, the state directory's databases do not


def test_edits_are_refused_not_lost_while_the_zone_file_cannot_be_written(
    serve: Serve, tmp_path: Path
) -> None:
    """Issue 22 #12: 1,100 UPDATEs answered NOERROR while no file was written, and a restart
    lost them all. Now the edit whose write failed is kept (the journal holds it, and keeps
    it), the next ones are SERVFAIL, and a restart without the fault serves the kept one."""
    hosts = "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(5000))
    config = write_config(tmp_path, ZONE + hosts, EDITS)
    config.write_text(config.read_text().replace("[server]\n", "[server]\njournal_keep = 1\n"))
    server = serve("--config", str(config), prefix=["prlimit", f"--fsize={FILE_LIMIT}"])
    assert _update(server, lambda u: u.add("kept", 300, "A", "192.0.2.99")) == dns.rcode.NOERROR
    server.wait_for_log("event=write-back-failed")
    refused = [_update(server, lambda u, i=i: u.add(f"n{i}", 300, "A", "192.0.2.98")) for i in range(5)]
    assert refused == [dns.rcode.SERVFAIL] * 5
    assert "reason=write-blocked" in server.log_text()
    from dynmx.cli.client import ControlClient  # here: a test of main before it existed fails alone

    metrics = ControlClient(load_config(config)).request("GET", "/metrics").body.decode()
    assert "dynmx_zone_write_failing_zones 1.0" in metrics  # for an alert
    server.stop(signal.SIGKILL)
    restarted = serve("--config", str(config))
    assert _addresses(restarted, "kept.example.test") == ["192.0.2.99"]
    assert _addresses(restarted, "n0.example.test") == []
    assert _file(tmp_path).get_rdataset("kept", "A") is not None  # replayed onto the file


# --- 13. a second file with a served origin -------------------------------------------------


def test_a_backup_copy_with_the_same_origin_is_refused_and_the_live_zone_kept(
    serve: Serve, config: Path, tmp_path: Path
) -> None:
    """Issue 22 #13: `0-old-backup.zone` replaced the live zone on reload (and the journal was
    replayed onto it at the next start). As NSD: the newcomer is refused, the problem names it."""
    server = serve("--config", str(config))
    assert _update(server, lambda u: u.add("new", 300, "A", "192.0.2.50")) == dns.rcode.NOERROR
    backup = tmp_path / "zones" / "0-old-backup.zone"
    backup.write_text(ZONE.replace("192.0.2.10", "192.0.2.66"))
    reloaded = dynmx("reload", "-c", str(config))
    assert reloaded.returncode == 1
    assert f"{backup}:1: zone example.test. is served from {tmp_path / 'zones' / 'example.test.zone'}" in (
        reloaded.stdout
    )
    assert _addresses(server, "www.example.test") == ["192.0.2.10"]
    server.stop()
    restarted = serve("--config", str(config))
    assert _addresses(restarted, "www.example.test") == ["192.0.2.10"]
    assert _addresses(restarted, "new.example.test") == ["192.0.2.50"]


# --- 14. zone add and the files it writes ---------------------------------------------------


def test_zone_add_never_overwrites_a_file_holding_another_zone(config: Path, tmp_path: Path) -> None:
    legacy = tmp_path / "zones" / "legacy.zone"
    text = ZONE.replace("example.test.", "other.test.")
    legacy.write_text(text)
    result = dynmx("zone", "add", "legacy", "-c", str(config))
    assert result.returncode == 2 and "exists already" in result.stderr
    assert legacy.read_text() == text


@pytest.fixture
def outside() -> Iterator[Path]:
    """A directory outside zones_dir with a path short enough to be one DNS label."""
    path = Path(tempfile.mkdtemp(prefix="dx", dir="/tmp"))
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("name", ["{outside}/escape.test", "nodir/x.test"])
def test_zone_add_of_a_name_that_is_no_file_name_is_refused_plainly(
    config: Path, tmp_path: Path, outside: Path, name: str
) -> None:
    """A '/' in a label once wrote the file outside zones_dir (an absolute path discards the
    directory), or ended in a traceback."""
    result = dynmx("zone", "add", name.format(outside=outside), "-c", str(config))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "a label may hold only letters, digits" in result.stderr
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "zones").iterdir()) == ["example.test.zone"]


def test_zone_rm_through_the_server_stops_answering_and_removes_the_delegation(
    serve: Serve, config: Path, tmp_path: Path
) -> None:
    server = serve("--config", str(config))
    assert dynmx("zone", "add", "shop.example.test", "-c", str(config)).returncode == 0
    assert _query(server, "shop.example.test", "SOA").flags & dns.flags.AA
    removed = dynmx("zone", "rm", "shop.example.test", "-c", str(config))
    assert removed.returncode == 0, removed.stderr
    assert "ok: delegation removed from example.test." in removed.stdout
    assert _query(server, "x.shop.example.test", "A").rcode() == dns.rcode.NXDOMAIN  # the parent answers
    assert (tmp_path / "zones" / "shop.example.test.zone.removed").exists()
    assert dynmx("zone", "add", "shop.example.test", "-c", str(config)).returncode == 0  # a fresh start
    assert _query(server, "shop.example.test", "SOA").flags & dns.flags.AA
    assert _one_line_of_history(_journal(tmp_path))


def test_a_journal_that_does_not_continue_the_zone_file_is_reported_at_start(
    serve: Serve, config: Path, tmp_path: Path
) -> None:
    """Issue 22 #12: reconcile found nothing linking the file to the journal and said nothing."""
    state = tmp_path / "state"
    state.mkdir()
    db = sqlite3.connect(state / "journal.sqlite")
    db.executescript(
        "CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, zone TEXT NOT NULL,"
        " old_serial INTEGER NOT NULL, new_serial INTEGER NOT NULL, removed TEXT NOT NULL,"
        " added TEXT NOT NULL, at REAL NOT NULL);"
        "INSERT INTO journal (zone, old_serial, new_serial, removed, added, at)"
        " VALUES ('example.test.', 40, 41, '', '', 0);"
    )
    db.commit()
    db.close()
    server = serve("--config", str(config))
    assert "event=journal-unlinked zone=example.test. file_serial=1 journal_serial=41" in server.log_text()
    assert _query(server, "example.test", "SOA").answer[0][0].serial == 42  # above what was handed out
    status = dynmx("status", "-c", str(config))
    assert "problem:" in status.stdout and "journal_quarantine" in status.stdout


def test_a_killed_server_leaves_no_lock_behind(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    time.sleep(0.1)
    assert serve("--config", str(config)).process.poll() is None


# --- 3. NOTIFY after a reload ----------------------------------------------------------------


@pytest.mark.interop
def test_a_reload_or_zone_add_that_changes_a_zone_notifies_its_secondaries(
    serve: Serve, tmp_path: Path
) -> None:
    """Issue 22 #3: a hand edit + reload, or the parent changed by `zone add`, left NSD behind
    until its refresh timer (a day here), though NSD and Knot send NOTIFY in both cases."""
    from tests.nsd import Nsd, NsdUnavailable, free_port

    dns_port, nsd_port = free_port(), free_port()
    zone = ZONE.replace(" 7200 3600 ", " 86400 3600 ")  # no refresh within the test
    config = write_config(
        tmp_path,
        zone,
        EDITS + f'allow_transfer = ["127.0.0.0/8"]\nnotify = ["127.0.0.1:{nsd_port}"]\n' + DEFAULTS,
    )
    config.write_text(config.read_text().replace("127.0.0.1:0", f"127.0.0.1:{dns_port}"))
    server = serve("--config", str(config))
    (tmp_path / "secondary").mkdir()
    options = {
        "example.test": [
            f"request-xfr: 127.0.0.1@{dns_port} NOKEY",
            "allow-notify: 127.0.0.1 NOKEY",
            "provide-xfr: 127.0.0.0/8 NOKEY",
        ]
    }
    try:
        nsd = Nsd(
            tmp_path / "secondary", {"example.test": "example.test.zone"}, zone_options=options, port=nsd_port
        )
    except NsdUnavailable as error:
        pytest.skip(str(error))
    nsd.start()

    def nsd_serial() -> int | None:
        reply = dns.query.udp(
            dns.message.make_query("example.test.", "SOA"), "127.0.0.1", port=nsd_port, timeout=1
        )
        return int(reply.answer[0][0].serial) if reply.answer else None

    try:
        wait_until(lambda: nsd_serial() == 1, timeout=15)
        (tmp_path / "zones" / "example.test.zone").write_text(
            zone.replace(" 1 86400", " 2 86400") + "hand A 192.0.2.7\n"
        )
        assert dynmx("reload", "-c", str(config)).returncode == 0
        wait_until(lambda: nsd_serial() == 2, timeout=15)
        assert dynmx("zone", "add", "shop.example.test", "-c", str(config)).returncode == 0
        wait_until(lambda: nsd_serial() == 3, timeout=15)
        axfr = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.test.", port=nsd_port, timeout=3))
        assert axfr.get_rdataset("shop", "NS") is not None and axfr.get_rdataset("hand", "A") is not None
        assert server.log_text().count("event=notify-acked") >= 2
    finally:
        nsd.stop()

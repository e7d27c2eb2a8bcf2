"""A reload with no zone file changed, among many zones: the same answers, nothing recompiled;
a file changed, removed or added beside them is still picked up (issue 26)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from dynmx.app.zonescan import RACY_SECONDS
from tests.conftest import ROOT, RunningServer

Serve = Callable[..., RunningServer]
ZONES = 40
OLD = time.time() - 3600  # older than the scan's racy window: stamps are trusted at start


def _zone(index: int, serial: int = 1, extra: str = "") -> str:
    return (
        f"$ORIGIN z{index}.test.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 7200 900 1209600 300\n"
        f"@ NS ns1\n@ MX 10 mx\nns1 A 192.0.2.53\nmx A 192.0.2.{index % 250 + 1}\n{extra}"
    )


@pytest.fixture
def zones(tmp_path: Path) -> Path:
    directory = tmp_path / "zones"
    directory.mkdir()
    for index in range(ZONES):
        path = directory / f"z{index}.test.zone"
        path.write_text(_zone(index))
        os.utime(path, (OLD, OLD))
    return directory


def _ask(server: RunningServer, name: str, rdtype: str = "A") -> bytes:
    """The raw reply to a query with a fixed id: two equal answers are equal bytes."""
    query = dns.message.make_query(name, rdtype)
    query.id = 4242
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query.to_wire(), server.address)
        return sock.recv(65535)


def _reload(server: RunningServer) -> str:
    """SIGHUP, and the `event=reloaded` line it led to."""
    seen = len(server.lines)
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in server.lines[seen:]:
            if "event=reloaded" in line:
                return line
        time.sleep(0.02)
    raise AssertionError(f"no event=reloaded after SIGHUP; log:\n{server.log_text()}")


QUESTIONS = [("z0.test", "MX"), ("mx.z7.test", "A"), ("nothing.z9.test", "A"), ("z39.test", "SOA")]


def test_a_reload_with_no_file_changed_keeps_the_table_and_answers_alike(serve: Serve, zones: Path) -> None:
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    before = [_ask(server, name, rdtype) for name, rdtype in QUESTIONS]
    for _ in range(2):
        line = _reload(server)
        assert f"zones={ZONES} changed=0 incremental=yes table=kept" in line
    assert [_ask(server, name, rdtype) for name, rdtype in QUESTIONS] == before
    assert "event=zone-loaded" not in server.log_text().split("event=serving", 1)[1]


def _bytes_read(server: RunningServer) -> int:
    """What the server process has read so far, files and all (Linux's `rchar`)."""
    io = Path(f"/proc/{server.process.pid}/io").read_text()
    return int(io.split("rchar:", 1)[1].split()[0])


def test_a_reload_with_no_file_changed_reads_no_zone_file(serve: Serve, zones: Path) -> None:
    """As Knot's `zone-reload` and NSD's reload: a file whose stat (mtime, ctime, size, inode)
    is the one its version was read with is not opened again."""
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    one_file = (zones / "z0.test.zone").stat().st_size
    _settle(zones)
    _reload(server)
    before = _bytes_read(server)
    line = _reload(server)
    assert f"zones={ZONES} changed=0 incremental=yes table=kept scan=skipped" in line
    assert _bytes_read(server) - before < one_file  # ZONES files would be 40 times that
    os.utime(zones / "z3.test.zone", (OLD + 60, OLD + 60))  # the check can see a file read
    before = _bytes_read(server)
    assert "scan=full" in _reload(server)
    assert _bytes_read(server) - before >= one_file


def _settle(zones: Path) -> None:
    """Wait until every file's ctime (which os.utime cannot set back) is older than the racy
    window: a file changed more recently is read again by the next reload, as it must be."""
    newest = max(path.stat().st_ctime for path in zones.iterdir())
    time.sleep(max(0.0, newest + RACY_SECONDS + 0.1 - time.time()))


def test_the_first_reload_after_a_start_on_settled_files_reads_no_zone_file(
    serve: Serve, zones: Path
) -> None:
    """The start-up's scan is remembered as a reload's would be."""
    _settle(zones)
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    server.wait_for_log("event=serving")
    time.sleep(0.2)  # the directory is glanced in a thread once serving
    before = _bytes_read(server)
    assert f"zones={ZONES} changed=0 incremental=yes table=kept scan=skipped" in _reload(server)
    assert _bytes_read(server) - before < (zones / "z0.test.zone").stat().st_size


def test_a_file_rewritten_with_its_size_and_mtime_kept_is_seen(serve: Serve, zones: Path) -> None:
    """The same length and the mtime put back (a write within the clock's tick): the ctime,
    which no write can set back, still moved; a file changed so recently that even that could
    be equal is read again at the next reload (racy-git's rule, `zonescan.RACY_SECONDS`)."""
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    path = zones / "z5.test.zone"
    info = path.stat()
    path.write_text(_zone(5, serial=2))
    assert path.stat().st_size == info.st_size
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert f"zones={ZONES} changed=1 incremental=yes table=new" in _reload(server)
    assert dns.message.from_wire(_ask(server, "z5.test", "SOA")).answer[0][0].serial == 2


def test_a_touched_file_among_unchanged_ones_changes_nothing(serve: Serve, zones: Path) -> None:
    """`touch` alone: the bytes are read and found the same; nothing is compiled."""
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    os.utime(zones / "z3.test.zone", (OLD + 60, OLD + 60))
    assert f"zones={ZONES} changed=0 incremental=yes table=kept" in _reload(server)


def test_a_changed_removed_and_new_file_beside_unchanged_ones_are_seen(serve: Serve, zones: Path) -> None:
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    unchanged = _ask(server, "mx.z7.test")
    (zones / "z5.test.zone").write_text(_zone(5, serial=2, extra="new A 192.0.2.200\n"))
    (zones / "z6.test.zone").unlink()
    (zones / f"z{ZONES}.test.zone").write_text(_zone(ZONES))
    line = _reload(server)
    assert f"zones={ZONES} changed=2 incremental=yes table=new" in line
    assert dns.message.from_wire(_ask(server, "new.z5.test")).answer[0][0].address == "192.0.2.200"
    assert dns.message.from_wire(_ask(server, "z6.test", "SOA")).rcode() == dns.rcode.REFUSED
    assert dns.message.from_wire(_ask(server, f"z{ZONES}.test", "SOA")).answer
    assert _ask(server, "mx.z7.test") == unchanged


def test_dynmx_reload_with_no_file_changed_returns_and_keeps_the_table(serve: Serve, zones: Path) -> None:
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    seen = len(server.lines)
    done = subprocess.run(
        [sys.executable, "-m", "dynmx", "reload", "--zones", str(zones)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reloaded"
    assert f"zones={ZONES} changed=0 incremental=yes table=kept" in "".join(server.lines[seen:])


def _config(tmp_path: Path, zones: Path, http: str) -> Path:
    path = tmp_path / "dynmx.toml"
    path.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        f"[http]\n{http}"
    )
    return path


def test_a_config_change_that_shapes_no_answer_keeps_the_table(
    serve: Serve, zones: Path, tmp_path: Path
) -> None:
    """A control listener's limit is applied by the reload; no zone is compiled again for it."""
    config = _config(tmp_path, zones, "max_connections = 64\n")
    server = serve("--config", str(config))
    before = _ask(server, "mx.z7.test")
    _config(tmp_path, zones, "max_connections = 32\n")
    line = _reload(server)
    assert "event=config-reloaded" in server.log_text()
    assert f"zones={ZONES} changed=0 incremental=yes table=kept" in line
    assert _ask(server, "mx.z7.test") == before

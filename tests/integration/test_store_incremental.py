"""The answer store written incrementally: after the first write, a change served (a zone
added, removed, reloaded or edited) writes only the rows of the zones compiled again and
deletes the rows of zones gone, in one transaction with the new origins (Knot keeps its zone
database current zone by zone); a kill -9 during such a write leaves every row either the
old or the new one, each checking out against its own digest."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from dynmx.store.answers import AnswerStore
from dynmx.store.codec import StoreCorrupt
from dynmx.zone.loader import read_digest
from tests.conftest import ROOT
from tests.integration.test_store import (
    assert_same_as_compile,
    compiled,
    header_of,
    later,
    rows_of,
    write_zones,
)
from tests.integration.test_store_server import ZONES, Serve, txt, update_txt, zone_text
from tests.integration.test_store_server import config as config  # the fixture

WRITTEN = re.compile(r"event=answer-store-written zones=(\d+) written=(\d+) dropped=(\d+)")


def writes(server: object) -> list[tuple[int, int, int]]:
    """Each store write's (rows held, rows written, rows deleted), from the log."""
    text = server.log_text()  # type: ignore[attr-defined]
    return [(int(a), int(b), int(c)) for a, b, c in WRITTEN.findall(text)]


def wait_writes(server: object, count: int, seconds: float = 20.0) -> list[tuple[int, int, int]]:
    deadline = time.monotonic() + seconds
    while len(writes(server)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    found = writes(server)
    assert len(found) >= count, found
    return found


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def a_of(port: int, name: str) -> tuple[int, list[str]]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=3)
    return reply.rcode(), [r.to_text() for rrset in reply.answer for r in rrset]


def test_zone_add_writes_one_row_and_the_restart_compiles_nothing(serve: Serve, config: Path) -> None:
    """`dynmx zone add`: the next write holds one row more and writes that row alone; the
    restart serves every zone from the store (changed=0)."""
    first = serve("--config", str(config))
    assert wait_writes(first, 1)[0][:2] == (ZONES + 1, ZONES + 1)
    added = dynmx(
        "zone", "add", "new.test", "--ns", "ns1.new.test=192.0.2.53", "--a", "192.0.2.77", "-c", str(config)
    )
    assert added.returncode == 0, added.stderr
    assert wait_writes(first, 2)[1] == (ZONES + 2, 1, 0)
    first.stop()
    warm = serve("--config", str(config))
    assert f"zones={ZONES + 2} changed=0" in warm.wait_for_log("event=answer-store-used")
    assert a_of(warm.dns_port, "new.test.") == (dns.rcode.NOERROR, ["192.0.2.77"])


def test_zone_add_after_a_warm_start_compiles_and_writes_one_zone(serve: Serve, config: Path) -> None:
    """The stored rows keep where each zone's CNAME chains reached (`AnswerTable.reach`): a
    zone added to a warm-started server compiles the zones it affects (here none but itself),
    not every zone, and the write after it holds that one row."""
    first = serve("--config", str(config))
    wait_writes(first, 1)
    first.stop()
    warm = serve("--config", str(config))
    assert wait_writes(warm, 1)[0] == (ZONES + 1, 0, 0)  # every row laid in from the store
    added = dynmx(
        "zone", "add", "new.test", "--ns", "ns1.new.test=192.0.2.53", "--a", "192.0.2.77", "-c", str(config)
    )
    assert added.returncode == 0, added.stderr
    assert wait_writes(warm, 2)[1] == (ZONES + 2, 1, 0)
    assert a_of(warm.dns_port, "new.test.") == (dns.rcode.NOERROR, ["192.0.2.77"])
    assert a_of(warm.dns_port, "alias.z5.test.")[1] == ["mx.z1.test.", "192.0.2.25"]


def test_a_reload_that_adds_one_zone_and_removes_another_is_written(serve: Serve, config: Path) -> None:
    """The same number of zones, other origins: written again (one row in, one out), so the
    restart finds the store's origins current."""
    first = serve("--config", str(config))
    wait_writes(first, 1)
    zones = config.parent / "zones"
    (zones / "new.test.zone").write_text(zone_text("new.test"))
    (zones / "z3.test.zone").unlink()
    first.process.send_signal(signal.SIGHUP)
    assert wait_writes(first, 2)[1] == (ZONES + 1, 1, 1)
    first.stop()
    warm = serve("--config", str(config))
    assert f"zones={ZONES + 1} changed=0" in warm.wait_for_log("event=answer-store-used")
    assert a_of(warm.dns_port, "mx.new.test.")[0] == dns.rcode.NOERROR
    assert a_of(warm.dns_port, "mx.z3.test.")[0] == dns.rcode.REFUSED


def test_a_reloaded_file_rewrites_its_row_and_the_rows_that_use_it(serve: Serve, config: Path) -> None:
    """z1 changed by hand: its row, and those of the zones whose answers reach into it (every
    zone's `alias CNAME mx.z1.test.`), are written; the restart serves the new address warm."""
    first = serve("--config", str(config))
    wait_writes(first, 1)
    zone = config.parent / "zones" / "z1.test.zone"
    new = zone_text("z1.test").replace("192.0.2.25", "198.51.100.1").replace("hostmaster 1 ", "hostmaster 2 ")
    zone.write_text(new)
    first.process.send_signal(signal.SIGHUP)
    held, written, dropped = wait_writes(first, 2)[1]
    assert (held, dropped) == (ZONES + 1, 0) and 1 <= written <= ZONES + 1
    first.stop()
    warm = serve("--config", str(config))
    warm.wait_for_log("event=answer-store-used")
    assert a_of(warm.dns_port, "alias.z5.test.")[1] == ["mx.z1.test.", "198.51.100.1"]


def test_a_served_table_without_changes_writes_nothing(serve: Serve, config: Path) -> None:
    """A reload with no file changed serves the same table: no write at all."""
    first = serve("--config", str(config))
    wait_writes(first, 1)
    first.process.send_signal(signal.SIGHUP)
    first.wait_for_log("event=reloaded")
    time.sleep(3)  # past the re-save delay
    assert len(writes(first)) == 1


def test_an_edit_drops_its_zone_row_once_and_a_second_edit_writes_nothing(serve: Serve, config: Path) -> None:
    """An UPDATE makes its zone's version one of memory (the journal replays it at start): its
    row is deleted by the next write; a second edit changes nothing the store holds, so no
    transaction is made for it."""
    first = serve("--config", str(config))
    wait_writes(first, 1)
    assert update_txt(first, "one") == dns.rcode.NOERROR
    assert wait_writes(first, 2)[1] == (ZONES, 0, 1)
    assert update_txt(first, "two") == dns.rcode.NOERROR
    assert '"two"' in txt(first)
    time.sleep(3)  # past the re-save delay
    assert len(writes(first)) == 2


def test_update_writes_only_the_changed_rows(tmp_path: Path) -> None:
    """`update` writes the rows given, deletes those neither given nor present, keeps the rest."""
    paths = write_zones(tmp_path / "zones", 6)
    loaded, table = compiled(paths)
    store = AnswerStore(tmp_path)
    rows = rows_of(loaded, table)
    store.save(header_of(loaded), rows)
    keep = {str(row.path) for row in rows[2:5]}
    assert store.update(header_of(loaded), rows[:1], keep) == 1
    assert store.dropped == 2  # rows[1] and rows[5]
    found = store.load(header_of(loaded).shaping, read_digest, now=later())
    assert set(found.zones) == {rows[0].path, *(row.path for row in rows[2:5])}


def test_update_under_another_shaping_writes_nothing(tmp_path: Path) -> None:
    """Rows not given would be lost under a new header: the caller writes them all instead."""
    loaded, table = compiled(write_zones(tmp_path / "zones", 3))
    store = AnswerStore(tmp_path)
    rows = rows_of(loaded, table)
    store.save(header_of(loaded, "config A"), rows)
    assert store.update(header_of(loaded, "config B"), rows[:1], set()) is None
    found = store.load(header_of(loaded, "config A").shaping, read_digest, now=later())
    assert len(found.zones) == 3


def test_a_write_leaves_no_log_to_replay(tmp_path: Path) -> None:
    """The write-ahead log is folded into the file after each write: the next start opens a
    file, not a log the size of the last write."""
    loaded, table = compiled(write_zones(tmp_path / "zones", 20))
    AnswerStore(tmp_path).save(header_of(loaded), rows_of(loaded, table))
    log = tmp_path / "answers.sqlite-wal"
    assert not log.exists() or log.stat().st_size == 0


def test_a_flipped_byte_in_the_kept_zone_file_is_read_from_the_file(tmp_path: Path) -> None:
    """The zone file's bytes are not read at start; when the zone is needed, kept bytes that
    do not match the file digest are not parsed: the file (with that digest) is read."""
    import sqlite3

    from dynmx.app.zonescan import scan_zones
    from dynmx.store.lazy import LazyZone
    from dynmx.store.warm import warm_zones

    loaded, table = compiled(write_zones(tmp_path / "zones", 2))
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded), rows_of(loaded, table))
    store.close()
    with sqlite3.connect(tmp_path / "answers.sqlite") as db:
        (path, source) = db.execute("SELECT path, source FROM zone LIMIT 1").fetchone()
        db.execute(
            "UPDATE zone SET source = ? WHERE path = ?", (source.replace(b"192.0.2", b"192.0.3"), path)
        )
    again = AnswerStore(tmp_path)
    found = again.load(header_of(loaded).shaping, read_digest, now=later())
    assert found.stale == {}
    assert again.source_of(Path(path), found.zones[Path(path)].digest) is None
    zones, _ = scan_zones(tmp_path / "zones", warm_zones(found.zones, again.source_of), 1)
    lazy = zones[Path(path)].zone
    assert isinstance(lazy, LazyZone) and not lazy.parsed
    assert lazy.nodes.keys() == loaded[Path(path)].zone.nodes.keys()
    assert lazy.to_text() == loaded[Path(path)].zone.to_text()


_CRASH_UPDATER = """
import sys, pickle
from pathlib import Path
from dynmx.store.answers import AnswerStore
header, rows = pickle.loads(Path(sys.argv[2]).read_bytes())
store = AnswerStore(Path(sys.argv[1]))
store.save(header, rows)
print("ready", flush=True)
half = len(rows) // 2
while True:  # one half written again with the other half's rows deleted, then the other way
    store.update(header, rows[:half], set())
    store.update(header, rows[half:], set())
    store.update(header, rows, set())
"""


@pytest.mark.parametrize("delay", [0.02, 0.1, 0.25])
def test_kill_9_during_an_incremental_write_leaves_rows_that_check_out(tmp_path: Path, delay: float) -> None:
    """Whenever the writer dies, every row a load gives is one a write committed whole: its
    answers equal a compile of its file, and the rows are one half, the other, or all."""
    import pickle

    paths = write_zones(tmp_path / "zones", 200)
    loaded, table = compiled(paths)
    header = header_of(loaded)
    job = tmp_path / "job.pickle"
    rows = rows_of(loaded, table)
    job.write_bytes(pickle.dumps((header, rows)))
    state = tmp_path / "state"
    state.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH_UPDATER, str(state), str(job)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(delay)
    finally:
        child.kill()
        child.wait(timeout=10)
    again = AnswerStore(state)
    found = again.load(header.shaping, read_digest, now=later())
    assert found.stale == {}
    half = len(rows) // 2
    halves = (
        {row.path for row in rows[:half]},
        {row.path for row in rows[half:]},
        {row.path for row in rows},
    )
    assert set(found.zones) in halves
    try:
        stored = again.decoded(found.zones.values())
    except StoreCorrupt as error:  # never: each row's answers commit with its index row
        raise AssertionError(error) from None
    assert_same_as_compile(stored, {p: z for p, z in loaded.items() if p in found.zones}, table)

"""Zone files written back behind the journal, off the event loop (`WriteBack`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest

from dynmx.control.journal import Journal
from dynmx.control.update import Change, Op
from dynmx.control.writeback import WriteBack
from dynmx.control.writer import ZoneWriter, serial_of, write_atomically
from dynmx.zone.filebytes import file_digest
from dynmx.zone.loader import load_zone_file

ZONE = "$ORIGIN example.test.\n@ 300 SOA ns1 host 7 3600 600 86400 300\n@ 300 NS ns1\nns1 300 A 192.0.2.1\n"
WAIT = 5.0


def _zone(serial: int) -> dns.zone.Zone:
    return dns.zone.from_text(ZONE.replace(" 7 ", f" {serial} "), relativize=False)


class HeldWrites:
    """Records each write; the first one waits until `release` (a slow disk, on demand)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, int]] = []
        self.started = threading.Event()
        self.released = threading.Event()
        self.fail: set[Path] = set()

    def __call__(self, path: Path, zone: dns.zone.Zone) -> None:
        self.started.set()
        self.released.wait(WAIT)
        if path in self.fail:
            raise OSError(28, "No space left on device")
        self.calls.append((path, serial_of(zone)))


@pytest.fixture
def held() -> Iterator[tuple[HeldWrites, WriteBack]]:
    writes = HeldWrites()
    yield writes, WriteBack(writes)
    writes.released.set()


def test_a_file_with_several_versions_waiting_is_written_once_at_its_newest(
    held: tuple[HeldWrites, WriteBack],
) -> None:
    writes, back = held
    back.submit(Path("a.zone"), _zone(1))
    assert writes.started.wait(WAIT)
    for serial in (2, 3, 4):
        back.submit(Path("b.zone"), _zone(serial))
    writes.released.set()
    assert back.flush(WAIT)
    assert writes.calls == [(Path("a.zone"), 1), (Path("b.zone"), 4)]


def test_flush_gives_up_after_its_timeout_while_a_write_is_slow(held: tuple[HeldWrites, WriteBack]) -> None:
    writes, back = held
    back.submit(Path("a.zone"), _zone(1))
    assert writes.started.wait(WAIT)
    assert back.flush(0.05) is False
    assert back.behind() == {Path("a.zone")}
    writes.released.set()
    assert back.flush(WAIT)
    assert back.behind() == frozenset()


def test_a_failed_write_is_logged_and_leaves_the_file_behind(
    held: tuple[HeldWrites, WriteBack], caplog: pytest.LogCaptureFixture
) -> None:
    writes, back = held
    writes.fail.add(Path("a.zone"))
    writes.released.set()
    with caplog.at_level(logging.ERROR, "dynmx.writeback"):
        back.submit(Path("a.zone"), _zone(1))
        assert back.flush(WAIT)
    assert "event=write-back-failed file=a.zone error='[Errno 28] No space left on device'" in caplog.text
    assert back.behind() == {Path("a.zone")}  # a reload keeps the version in memory
    writes.fail.clear()
    back.submit(Path("a.zone"), _zone(2))
    assert back.flush(WAIT)
    assert back.behind() == frozenset()


def test_a_file_whose_write_failed_is_blocked_with_the_reason(held: tuple[HeldWrites, WriteBack]) -> None:
    """The owner acknowledges no edit of a zone whose file cannot be written (issue 22, item 12)."""
    writes, back = held
    writes.fail.add(Path("a.zone"))
    writes.released.set()
    assert back.blocked(Path("a.zone")) is None
    back.submit(Path("a.zone"), _zone(1))
    assert back.flush(WAIT)
    reason = back.blocked(Path("a.zone"))
    assert reason == "the zone file cannot be written ([Errno 28] No space left on device)"
    assert back.blocked(Path("b.zone")) is None


def test_a_failed_write_is_tried_again_until_it_succeeds() -> None:
    """A full disk that frees up: the file gets its version without another edit."""
    writes = HeldWrites()
    writes.released.set()
    writes.fail.add(Path("a.zone"))
    back = WriteBack(writes, retry=0.05)
    back.submit(Path("a.zone"), _zone(1))
    assert back.flush(WAIT)
    assert back.blocked(Path("a.zone")) is not None
    writes.fail.clear()
    deadline = time.monotonic() + WAIT
    while back.blocked(Path("a.zone")) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert back.blocked(Path("a.zone")) is None
    assert writes.calls == [(Path("a.zone"), 1)]


def test_each_written_file_is_told_with_its_version() -> None:
    """So the journal learns which serial the file holds (and may prune up to it)."""
    told: list[tuple[Path, int]] = []
    back = WriteBack(lambda path, zone: None, lambda path, zone: told.append((path, serial_of(zone))))
    back.submit(Path("a.zone"), _zone(3))
    assert back.flush(WAIT)
    assert told == [(Path("a.zone"), 3)]


def test_a_file_changed_on_disk_since_it_was_read_is_kept_beside_not_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hand edit racing an edit through dynmx: both survive, and the log says so."""
    path = tmp_path / "example.test.zone"
    path.write_text(ZONE)
    back = WriteBack(write_atomically)
    back.expect(path, file_digest(path.read_bytes()))
    path.write_text(ZONE + "hand 300 A 192.0.2.99\n")
    with caplog.at_level(logging.ERROR, "dynmx.writeback"):
        back.submit(path, _zone(8))
        assert back.flush(WAIT)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("example.test.zone.conflict-")]
    assert len(kept) == 1 and "192.0.2.99" in kept[0].read_text()
    assert serial_of(load_zone_file(path).zone) == 8
    assert "event=zone-file-conflict" in caplog.text


def test_a_file_dynmx_wrote_itself_is_no_conflict(tmp_path: Path) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(ZONE)
    back = WriteBack(write_atomically)
    back.expect(path, file_digest(path.read_bytes()))
    back.submit(path, _zone(8))
    assert back.flush(WAIT)
    back.submit(path, _zone(9))
    assert back.flush(WAIT)
    assert not [p for p in tmp_path.iterdir() if ".conflict-" in p.name]


def test_a_commit_through_the_write_back_reaches_the_file(tmp_path: Path) -> None:
    """The journal has the edit at once; the file once the write-back is done (the real writer)."""
    path = tmp_path / "example.test.zone"
    path.write_text(ZONE)
    journal = Journal(tmp_path / "journal.sqlite")
    back = WriteBack(write_atomically)
    loaded = load_zone_file(path)
    change = Change(Op.ADD, dns.name.from_text("www.example.test."), 300, _a("192.0.2.80"))
    committed = ZoneWriter(journal, write=back.submit).commit(loaded, [change], 0.0)
    assert [entry.new_serial for entry in journal.entries("example.test.")] == [8]
    assert back.flush(WAIT)
    assert serial_of(load_zone_file(path).zone) == serial_of(committed.zone) == 8
    journal.close()


def _a(text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, text)


def test_the_digest_of_a_written_file_is_known_for_the_version_written(tmp_path: Path) -> None:
    """A reload finding those bytes keeps the version in memory instead of parsing them."""
    path = tmp_path / "example.test.zone"
    back = WriteBack(write_atomically)
    version = _zone(8)
    back.submit(path, version)
    assert back.flush(WAIT)
    assert back.digests({path: version}) == {path: file_digest(path.read_bytes())}
    assert back.digests({path: _zone(8)}) == {}  # another version, even with equal data

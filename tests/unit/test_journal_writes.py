"""The journal's writes on a thread of their own (issue 26): an UPDATE's fsync must not stall
the event loop, yet what is handed in is written in order, durable before its future is
done, and a change on its way already counts as the zone's head (no second change can be
planned from the same serial meanwhile)."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynmx.control import journal as journal_module
from dynmx.control.journal import Journal, JournalEntry
from dynmx.errors import JournalFork, JournalUnavailable

ZONE = "example.test."


def entry(old: int, new: int, added: str = "") -> JournalEntry:
    return JournalEntry(ZONE, old, new, (), (added,) if added else ())


class GatedJournal(Journal):
    """A journal whose writes wait for `gate`: a slow disk, made on demand."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()

    def _insert(self, db: sqlite3.Connection, item: JournalEntry) -> None:
        self.gate.wait(5)
        super()._insert(db, item)


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[GatedJournal]:
    journal = GatedJournal(tmp_path / "journal.sqlite")
    yield journal
    journal.gate.set()
    journal.close()


def test_appends_are_written_in_the_order_they_were_handed_in(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    futures = [
        journal.submit(entry(serial, serial + 1, f"h{serial}.example.test. 300 IN A 192.0.2.1"))
        for serial in range(1, 41)
    ]
    for future in futures:
        future.result(5)
    assert [(e.old_serial, e.new_serial) for e in journal.entries(ZONE)] == [(s, s + 1) for s in range(1, 41)]
    journal.close()


def test_an_append_is_durable_when_its_future_is_done(gated: GatedJournal, tmp_path: Path) -> None:
    """Read by another connection (a restart after kill -9 reads the file, not our memory)."""
    future = gated.submit(entry(1, 2))
    time.sleep(0.05)
    assert not future.done()
    gated.gate.set()
    future.result(5)
    with sqlite3.connect(tmp_path / "journal.sqlite") as other:
        assert other.execute("SELECT old_serial, new_serial FROM journal").fetchall() == [(1, 2)]


def test_a_change_on_its_way_is_the_zones_head(gated: GatedJournal) -> None:
    future = gated.submit(entry(1, 2))
    assert gated.head(ZONE) == 2 and gated.entries(ZONE) == []
    gated.gate.set()
    future.result(5)
    assert gated.head(ZONE) == 2 and len(gated.entries(ZONE)) == 1


def test_a_refused_change_leaves_the_head_where_the_journal_has_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.append(entry(1, 2))
    with pytest.raises(JournalFork):
        journal.submit(entry(1, 3)).result(5)  # a second change from serial 1
    assert journal.head(ZONE) == 2
    journal.close()


def test_a_change_whose_waiter_gave_up_is_written_all_the_same(gated: GatedJournal) -> None:
    """A client gone (its task cancelled) does not unmake what was handed to the journal."""
    first = gated.submit(entry(1, 2))
    second = gated.submit(entry(2, 3))
    assert second.cancel()  # still queued behind the first
    gated.gate.set()
    first.result(5)
    gated.prune(ZONE)  # a write after both: they are done when it is
    assert [e.new_serial for e in gated.entries(ZONE)] == [2, 3]
    assert gated.head(ZONE) == 3


def test_a_journal_that_cannot_be_opened_fails_the_change_not_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.append(entry(1, 2))
    journal.close()
    journal = Journal(tmp_path / "journal.sqlite")  # its thread not started yet

    def broken(path: Path) -> sqlite3.Connection:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(journal_module, "_connect", broken)
    with pytest.raises(JournalUnavailable, match="disk I/O error"):
        journal.submit(entry(2, 3)).result(5)
    assert journal.head(ZONE) == 2  # not the serial that was never written
    with pytest.raises(JournalUnavailable):
        journal.submit(entry(2, 3)).result(5)  # the thread still answers
    journal.close()


def test_the_event_loop_runs_while_an_append_waits_for_the_disk(gated: GatedJournal) -> None:
    """The fault on demand: the append's write waits 200 ms; a ticker on the loop keeps ticking."""

    async def run() -> float:
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        task = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0.02)
        threading.Timer(0.2, gated.gate.set).start()
        started = time.monotonic()
        await asyncio.wrap_future(gated.submit(entry(1, 2)))
        assert time.monotonic() - started >= 0.19  # the fault was in effect
        task.cancel()
        during = [t for t in ticks if t >= started]
        return max(b - a for a, b in itertools.pairwise(during))

    assert asyncio.run(run()) < 0.05

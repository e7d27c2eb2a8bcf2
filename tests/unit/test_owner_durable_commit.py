"""The owner's commit on the event loop (issue 26): the journal's fsync runs on the journal's
thread while the loop goes on, the zone's edits take turns in arrival order, and a commit
planned on the version an edit still on its way replaces is refused (no fork)."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from dynmx.config import load_config
from dynmx.control import owner as owner_module
from dynmx.control.journal import Journal, JournalEntry
from dynmx.control.owner import Turn, ZoneOwner
from dynmx.control.update import Change, Op
from dynmx.errors import StaleBase
from dynmx.zone.loader import LoadedZone, load_zone_file
from dynmx.zone.soa import serial_of

ORIGIN = dns.name.from_text("example.test.")
ZONE_TEXT = """\
$ORIGIN example.test.
$TTL 300
@ IN SOA ns1.example.test. hostmaster.example.test. 10 3600 600 86400 300
@ IN NS ns1.example.test.
ns1 IN A 192.0.2.1
"""
SLOW_SECONDS = 0.2


class SlowJournal(Journal):
    """A journal whose every append waits `delay` on its thread: a slow disk on demand."""

    delay = SLOW_SECONDS

    def _insert(self, db: sqlite3.Connection, entry: JournalEntry) -> None:
        time.sleep(self.delay)
        super()._insert(db, entry)


def add(name: str, address: str) -> Change:
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, address)
    return Change(Op.ADD, dns.name.from_text(name, ORIGIN), 300, rdata)


@pytest.fixture
def slow_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ZoneOwner, LoadedZone]]:
    monkeypatch.setattr(owner_module, "Journal", SlowJournal)  # the owner opens its journal by this name
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE_TEXT)
    config = tmp_path / "dynmx.toml"
    config.write_text(f'[server]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n')
    owner = ZoneOwner(load_config(config), "test")
    assert isinstance(owner.journal, SlowJournal)
    yield owner, load_zone_file(zones / "example.test.zone")
    owner.close()


def test_the_loop_is_never_silent_while_a_commit_waits_for_a_slow_journal(
    slow_owner: tuple[ZoneOwner, LoadedZone],
) -> None:
    owner, head = slow_owner

    async def run() -> tuple[float, float, LoadedZone]:
        ticks: list[float] = []

        async def ticker() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.005)

        task = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0.02)
        started = time.monotonic()
        updated = await owner.commit_durably(head, [add("new", "192.0.2.50")])
        took = time.monotonic() - started
        task.cancel()
        during = [t for t in ticks if t >= started]
        return took, max(b - a for a, b in itertools.pairwise(during)), updated

    took, silence, updated = asyncio.run(run())
    assert took >= SLOW_SECONDS  # the fault was in effect
    assert silence < 0.05
    assert serial_of(updated.zone) == 11 and owner.journal.head("example.test.") == 11
    assert [e.new_serial for e in owner.journal.entries("example.test.")] == [11]


def test_a_commit_on_the_version_an_edit_on_its_way_replaces_is_stale(
    slow_owner: tuple[ZoneOwner, LoadedZone],
) -> None:
    """The journal cannot hold two changes from one serial, and the owner says so at once."""
    owner, head = slow_owner

    async def run() -> None:
        first = asyncio.ensure_future(owner.commit_durably(head, [add("one", "192.0.2.51")]))
        await asyncio.sleep(0)  # handed to the journal, not yet durable
        with pytest.raises(StaleBase):
            owner.commit(head, [add("two", "192.0.2.52")])
        await first

    asyncio.run(run())
    assert [(e.old_serial, e.new_serial) for e in owner.journal.entries("example.test.")] == [(10, 11)]


def test_edits_in_turn_reach_the_journal_in_arrival_order(slow_owner: tuple[ZoneOwner, LoadedZone]) -> None:
    """Each holder of the zone's turn reads the newest version, commits, and leaves it newer."""
    owner, first = slow_owner
    owner.journal.delay = 0.005  # type: ignore[attr-defined]
    newest = [first]
    order: list[int] = []

    async def edit(index: int) -> None:
        async with owner.turn(ORIGIN):
            newest[0] = await owner.commit_durably(newest[0], [add(f"h{index}", "192.0.2.60")])
            order.append(index)

    async def run() -> None:
        await asyncio.gather(*(edit(index) for index in range(20)))

    asyncio.run(run())
    assert order == list(range(20))
    entries = owner.journal.entries("example.test.")
    assert [(e.old_serial, e.new_serial) for e in entries] == [(s, s + 1) for s in range(10, 30)]
    assert [[line for line in e.added if " A " in line] for e in entries] == [
        [f"h{index}.example.test. 300 IN A 192.0.2.60"] for index in range(20)
    ]


def test_a_turn_is_taken_in_arrival_order_and_handed_on_without_a_gap() -> None:
    turn = Turn()
    order: list[int] = []
    free_between: list[bool] = []

    async def hold(index: int) -> None:
        async with turn:
            order.append(index)
            await asyncio.sleep(0)
        free_between.append(not turn.busy)

    async def run() -> None:
        await asyncio.gather(*(hold(index) for index in range(5)))

    asyncio.run(run())
    assert order == [0, 1, 2, 3, 4]
    assert free_between == [False, False, False, False, True]  # busy until the last one leaves


def test_a_waiter_cancelled_does_not_keep_the_turn() -> None:
    turn = Turn()

    async def run() -> bool:
        gate = asyncio.Event()

        async def holder() -> None:
            async with turn:
                await gate.wait()

        first = asyncio.ensure_future(holder())
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(turn.__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        gate.set()
        await first
        await asyncio.gather(waiter, return_exceptions=True)
        return turn.busy

    assert asyncio.run(run()) is False

"""The zone journal in SQLite: every committed change as (old serial -> new serial, removed, added).

It is written before the zone file (design.md: one owner), so after a crash between
the two the start-up reconciliation replays what the file lacks; IXFR (RFC 1995)
reads differences from here. Records are stored as master-file lines with absolute
names, readable with sqlite3 and any DNS tool.

The journal is one line of history per zone: a unique index refuses a second change
from the same serial (a fork), and an entry whose file has not been written yet is
never pruned. A history that cannot be trusted any more is moved aside to
`journal_quarantine` (kept for inspection, never replayed).

Writes run on one thread of their own with its own connection (`submit`), in the order
they were handed in: an append waits for its fsync there, so the event loop goes on
answering meanwhile and awaits the append's future before acknowledging the change (as
BIND and Knot write their journal before they answer an UPDATE). Reads stay on the
connection of the thread that opened the journal; a change still on its way is already
the zone's `head`, so no second change can be planned from the same serial.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import TypeVar

from dynmx.errors import JournalFork, JournalUnavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    zone TEXT NOT NULL,
    old_serial INTEGER NOT NULL,
    new_serial INTEGER NOT NULL,
    removed TEXT NOT NULL,
    added TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_zone ON journal (zone, seq);
CREATE TABLE IF NOT EXISTS journal_quarantine (
    seq INTEGER NOT NULL,
    zone TEXT NOT NULL,
    old_serial INTEGER NOT NULL,
    new_serial INTEGER NOT NULL,
    removed TEXT NOT NULL,
    added TEXT NOT NULL,
    at REAL NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at REAL NOT NULL
);
"""
ONE_LINE = "CREATE UNIQUE INDEX IF NOT EXISTS journal_one_line ON journal (zone, old_serial)"
COLUMNS = "seq, zone, old_serial, new_serial, removed, added, at"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    zone: str
    old_serial: int
    new_serial: int
    removed: tuple[str, ...]
    added: tuple[str, ...]


DEFAULT_KEEP = 1000
T = TypeVar("T")
Write = Callable[[sqlite3.Connection], T]


class Journal:
    """Append-only history of zone changes; every append is one durable transaction.

    Only the newest `keep` changes of each zone are kept (Knot's journal-max-depth, BIND's
    max-journal-size), and never one the zone file does not hold yet (`flushed`): a
    secondary further behind gets an AXFR instead of an IXFR.
    """

    def __init__(self, path: Path, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ValueError(f"journal keep: expected at least 1 change, got {keep}")
        self.keep = keep
        self.path = path
        # zone -> the serial its file holds (written, or read at start-up). A plain dict:
        # the write-back thread sets it, appends and pruning read it on the loop.
        self.flushed: dict[str, int] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = _connect(path)
        self.db.executescript(SCHEMA)
        # zone -> (the serial its newest change makes, how many of its changes are on their way)
        self._pending: dict[str, tuple[int, int]] = {}
        self._pending_lock = threading.Lock()
        self._writes: SimpleQueue[tuple[Write[object], Callable[[], object], Future[object]] | None] = (
            SimpleQueue()
        )
        self._writer: threading.Thread | None = None  # started by the first write
        self.forked = self._one_line_per_zone()

    def _one_line_per_zone(self) -> list[str]:
        """Quarantine the zones a journal from an older dynmx holds two branches of, then make
        forks impossible from here on; returns those zones."""
        forked = [
            zone
            for (zone,) in self.db.execute(
                "SELECT DISTINCT zone FROM journal GROUP BY zone, old_serial HAVING COUNT(*) > 1"
            )
        ]
        for zone in forked:
            self.quarantine(zone, "two changes from one serial (a forked history)")
        self.db.execute(ONE_LINE)
        return forked

    def append(self, entry: JournalEntry) -> None:
        """Add one change and wait until it is durable (blocks: on the event loop, `submit`);
        JournalFork if the zone already has a change from its old serial."""
        self.submit(entry).result()

    def submit(self, entry: JournalEntry) -> Future[None]:
        """Hand one change to the journal's thread: the future is done once it is durable, or
        fails with JournalFork or JournalUnavailable. Changes are written in the order given."""
        with self._pending_lock:
            _, waiting = self._pending.get(entry.zone, (0, 0))
            self._pending[entry.zone] = (entry.new_serial, waiting + 1)
        return self._write(lambda db: self._insert(db, entry), lambda: self._arrived(entry.zone))

    def _arrived(self, zone: str) -> None:
        """A change of `zone` was written or refused (before its future is done): the journal
        itself says the zone's head again once none is on its way."""
        with self._pending_lock:
            serial, waiting = self._pending.pop(zone, (0, 1))
            if waiting > 1:
                self._pending[zone] = (serial, waiting - 1)

    def _insert(self, db: sqlite3.Connection, entry: JournalEntry) -> None:
        """On the journal's thread: the change and the pruning it allows, one transaction (one fsync)."""
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO journal (zone, old_serial, new_serial, removed, added, at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        entry.zone,
                        entry.old_serial,
                        entry.new_serial,
                        "\n".join(entry.removed),
                        "\n".join(entry.added),
                        time.time(),
                    ),
                )
                self._prune(db, entry.zone)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError:
            raise JournalFork(
                f"{entry.zone}: the journal already has a change from serial {entry.old_serial}"
            ) from None
        except sqlite3.Error as error:  # a full disk, an I/O error: the change is not kept
            raise JournalUnavailable(f"cannot write the journal {self.path}: {error}") from None

    def _write(self, write: Write[T], after: Callable[[], object] = lambda: None) -> Future[T]:
        """Run `write` on the journal's thread, after every write handed in before it; `after`
        runs there once it ended, however it ended, before its future is done."""
        future: Future[T] = Future()
        if self._writer is None:
            self._writer = threading.Thread(target=self._run_writes, name="dynmx-journal", daemon=True)
            self._writer.start()
        self._writes.put((write, after, future))  # type: ignore[arg-type]
        return future

    def _run_writes(self) -> None:
        """The journal's thread. A write handed in is done even if its waiter gave up (a future
        cancelled): what was handed in reaches the disk in order, or fails, never vanishes."""
        db: sqlite3.Connection | None = None
        while (item := self._writes.get()) is not None:
            write, after, future = item
            waited = future.set_running_or_notify_cancel()
            error: BaseException | None = None
            try:
                if db is None:
                    db = _connect(self.path)
                result = write(db)
            except sqlite3.Error as failed:  # the journal cannot be opened
                error = JournalUnavailable(f"cannot write the journal {self.path}: {failed}")
            except BaseException as failed:
                error = failed
            after()
            if waited and error is not None:
                future.set_exception(error)
            elif waited:
                future.set_result(result)
        if db is not None:
            db.close()

    def mark_flushed(self, zone: str, serial: int) -> None:
        """The zone file holds `serial` now: changes up to it may be pruned (any thread)."""
        self.flushed[zone] = serial

    def prune(self, zone: str) -> None:
        """Drop changes beyond the newest `keep`, but none the zone file lacks."""
        self._write(lambda db: self._prune(db, zone)).result()

    def _prune(self, db: sqlite3.Connection, zone: str) -> None:
        flushed = self.flushed.get(zone)
        if flushed is None:
            return
        db.execute(
            "DELETE FROM journal WHERE zone = ?1"
            " AND seq <= (SELECT seq FROM journal WHERE zone = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)"
            " AND seq <= (SELECT MAX(seq) FROM journal WHERE zone = ?1 AND new_serial = ?3)",
            (zone, self.keep, flushed),
        )

    def head(self, zone: str) -> int | None:
        """The serial the zone's newest change made (or makes, still on its way); None without
        changes."""
        with self._pending_lock:
            pending = self._pending.get(zone)
        if pending is not None:
            return pending[0]
        row = self.db.execute(
            "SELECT new_serial FROM journal WHERE zone = ? ORDER BY seq DESC LIMIT 1", (zone,)
        ).fetchone()
        return None if row is None else int(row[0])

    def entries(self, zone: str) -> list[JournalEntry]:
        rows = self.db.execute(
            "SELECT old_serial, new_serial, removed, added FROM journal WHERE zone = ? ORDER BY seq", (zone,)
        )
        return [
            JournalEntry(
                zone,
                old,
                new,
                tuple(filter(None, removed.split("\n"))),
                tuple(filter(None, added.split("\n"))),
            )
            for old, new, removed, added in rows
        ]

    def since(self, zone: str, serial: int) -> list[JournalEntry]:
        """The entries that lead from `serial` to the newest; empty when `serial` is unknown."""
        found: list[JournalEntry] = []
        for entry in self.entries(zone):
            if found or entry.old_serial == serial:
                found.append(entry)
        return found

    def zones(self) -> list[str]:
        return [zone for (zone,) in self.db.execute("SELECT DISTINCT zone FROM journal ORDER BY zone")]

    def quarantine(self, zone: str, reason: str) -> int:
        """Move the zone's history aside (kept in `journal_quarantine`); returns how many changes."""
        moved = self._write(lambda db: _quarantine(db, zone, reason)).result()
        self.flushed.pop(zone, None)
        return moved

    def forget(self, zone: str) -> None:
        """A removed zone's history: a zone added again under that name starts a new one."""
        self._write(lambda db: db.execute("DELETE FROM journal WHERE zone = ?", (zone,))).result()
        self.flushed.pop(zone, None)

    def close(self) -> None:
        """Ends once every change handed in is written (or refused)."""
        if self._writer is not None:
            self._writes.put(None)
            self._writer.join()
            self._writer = None
        self.db.close()


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


def _quarantine(db: sqlite3.Connection, zone: str, reason: str) -> int:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            f"INSERT INTO journal_quarantine ({COLUMNS}, reason, quarantined_at)"
            f" SELECT {COLUMNS}, ?, ? FROM journal WHERE zone = ?",
            (reason, time.time(), zone),
        )
        moved = db.execute("DELETE FROM journal WHERE zone = ?", (zone,)).rowcount
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return int(moved)

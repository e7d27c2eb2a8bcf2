"""The zone journal in SQLite: every committed change as (old serial -> new serial, removed, added).

It is written before the zone file (design.md: one owner), so after a crash between
the two the start-up reconciliation replays what the file lacks; IXFR (RFC 1995)
reads differences from here. Records are stored as master-file lines with absolute
names, readable with sqlite3 and any DNS tool.

The journal is one line of history per zone: a unique index refuses a second change
from the same serial (a fork), and an entry whose file has not been written yet is
never pruned. A history that cannot be trusted any more is moved aside to
`journal_quarantine` (kept for inspection, never replayed).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

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
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
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
        """Add one change; JournalFork if the zone already has a change from its old serial."""
        try:
            self.db.execute(
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
        except sqlite3.IntegrityError:
            raise JournalFork(
                f"{entry.zone}: the journal already has a change from serial {entry.old_serial}"
            ) from None
        except sqlite3.Error as error:  # a full disk, an I/O error: the change is not kept
            raise JournalUnavailable(f"cannot write the journal {self.path}: {error}") from None
        self.prune(entry.zone)

    def mark_flushed(self, zone: str, serial: int) -> None:
        """The zone file holds `serial` now: changes up to it may be pruned (any thread)."""
        self.flushed[zone] = serial

    def prune(self, zone: str) -> None:
        """Drop changes beyond the newest `keep`, but none the zone file lacks."""
        flushed = self.flushed.get(zone)
        if flushed is None:
            return
        self.db.execute(
            "DELETE FROM journal WHERE zone = ?1"
            " AND seq <= (SELECT seq FROM journal WHERE zone = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)"
            " AND seq <= (SELECT MAX(seq) FROM journal WHERE zone = ?1 AND new_serial = ?3)",
            (zone, self.keep, flushed),
        )

    def head(self, zone: str) -> int | None:
        """The serial the zone's newest change made; None without changes."""
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
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                f"INSERT INTO journal_quarantine ({COLUMNS}, reason, quarantined_at)"
                f" SELECT {COLUMNS}, ?, ? FROM journal WHERE zone = ?",
                (reason, time.time(), zone),
            )
            moved = self.db.execute("DELETE FROM journal WHERE zone = ?", (zone,)).rowcount
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self.flushed.pop(zone, None)
        return int(moved)

    def forget(self, zone: str) -> None:
        """A removed zone's history: a zone added again under that name starts a new one."""
        self.db.execute("DELETE FROM journal WHERE zone = ?", (zone,))
        self.flushed.pop(zone, None)

    def close(self) -> None:
        self.db.close()

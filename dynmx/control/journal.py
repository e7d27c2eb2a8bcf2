"""The zone journal in SQLite: every committed change as (old serial -> new serial, removed, added).

It is written before the zone file (design.md: one writer), so after a crash between
the two the start-up reconciliation replays what the file lacks; IXFR (RFC 1995) will
read differences from here. Records are stored as master-file lines with absolute
names, readable with sqlite3 and any DNS tool.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

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
"""


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
    max-journal-size): a secondary further behind gets an AXFR instead of an IXFR.
    """

    def __init__(self, path: Path, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ValueError(f"journal keep: expected at least 1 change, got {keep}")
        self.keep = keep
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def append(self, entry: JournalEntry) -> None:
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
        self.db.execute(
            "DELETE FROM journal WHERE zone = ? AND seq <= "
            "(SELECT seq FROM journal WHERE zone = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (entry.zone, entry.zone, self.keep),
        )

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

    def close(self) -> None:
        self.db.close()

"""Runtime state that must survive a restart, in SQLite (design.md, Data and persistence).

Today: which pool members an operator drained (admin-down). The database lives in the
state directory; every write is its own transaction, so a crash leaves the old or the
new value, never a mix.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS member_drain (
    pool TEXT NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (pool, host)
);
"""


class StateStore:
    """A small SQLite database of operator decisions; one connection, used from the event loop."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)  # autocommit: one statement, one transaction
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    @classmethod
    def in_memory(cls) -> StateStore:
        store = cls.__new__(cls)
        store.path = Path(":memory:")
        store.db = sqlite3.connect(":memory:", isolation_level=None)
        store.db.executescript(SCHEMA)
        return store

    def drained(self) -> set[tuple[str, str]]:
        return {(pool, host) for pool, host in self.db.execute("SELECT pool, host FROM member_drain")}

    def set_drained(self, pool: str, host: str, drained: bool) -> None:
        if drained:
            self.db.execute("INSERT OR IGNORE INTO member_drain (pool, host) VALUES (?, ?)", (pool, host))
        else:
            self.db.execute("DELETE FROM member_drain WHERE pool = ? AND host = ?", (pool, host))

    def close(self) -> None:
        self.db.close()

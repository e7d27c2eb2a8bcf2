"""The answer store on disk: SQLite in `state_dir`, one row per zone file.

A row is served only when everything that shaped it is unchanged: the store's header (the
codec and dynmx version, the config fingerprint, the set of served origins: a zone added or
removed changes what every CNAME or MX target may reach) and the row itself (its file's
stamp, or failing that its bytes' digest; the SOA serial the journal has; its checksum).
A stamp is trusted as the zone scan trusts it (racy-git's rule: not when the file changed
within the clock's resolution); a file whose stamp moved but whose bytes did not is read
and hashed, not parsed. Writes are SQLite transactions: a crash (kill -9, power loss)
leaves the rows of the last committed write, each consistent with its own key, so the
worst a crash costs is a cold start of the zones it did not reach.

A start reads only the index (`zone`: a row's key, what its answers use) in one query and
checks each index row against its own digest; the answers (`answers`) are read zone by zone
when first needed (`answers_of`), each checked against a digest over its index row and its
bytes then: a row that does not check out is never served, its zone is compiled from its
file instead. The zone file's bytes kept beside the index (`source_of`) are read only when
the zone itself is needed (an edit, the slow path), and checked then against the file digest
the index row holds.

After the first write, a server writes only what changed (`update`): the rows of zones
compiled again, and the removal of rows no longer served, in one transaction with the new
origins. Each write ends with the write-ahead log folded into the file and truncated, so the
next start opens a file, not a log to replay.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path

from dynmx.store.codec import Decoder, StoreCorrupt, StoredZone, name_of
from dynmx.store.rows import (
    DIGEST_MARSHAL,
    FORMAT,
    Header,
    Loaded,
    PathMaker,
    StoredIndex,
    ZoneRow,
    batches,
    checksum,
    stamp_of,
)
from dynmx.zone.filebytes import file_digest

log = logging.getLogger("dynmx.store")

STORE_FILE = "answers.sqlite"
_CHUNK = 500  # paths per `answers_of` query (SQLite's bound on parameters is larger)

_TABLES = (
    "CREATE TABLE IF NOT EXISTS header (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    """CREATE TABLE IF NOT EXISTS zone (
    path TEXT PRIMARY KEY,
    origin BLOB NOT NULL,
    spelled BLOB NOT NULL,
    stamp BLOB NOT NULL,
    digest BLOB NOT NULL,
    serial INTEGER NOT NULL,
    uses BLOB NOT NULL,
    signed INTEGER NOT NULL,
    reach BLOB NOT NULL,
    source BLOB NOT NULL,
    head BLOB NOT NULL
)""",
    "CREATE TABLE IF NOT EXISTS answers (path TEXT PRIMARY KEY, checksum BLOB NOT NULL, body BLOB NOT NULL)",
)


class AnswerStore:
    """The store file in `state_dir`. Writes use one connection, one thread at a time; the
    answers of pending zones are read through a second one, from any thread (`answers_of`)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STORE_FILE
        self._db: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._reading = threading.Lock()
        self.dropped = 0  # rows deleted by the last write

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last write, never mix it
        for statement in _TABLES:
            db.execute(statement)
        return db

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open()
        return self._db

    def close(self) -> None:
        with self._reading:
            for db in (self._db, self._reader):
                if db is not None:
                    db.close()
            self._db = self._reader = None

    def load(
        self,
        shaping: bytes,
        read_digest: Callable[[Path], bytes | None] | None,
        journal_serials: Mapping[bytes, int] | None = None,
        now: float | None = None,
    ) -> Loaded:
        """The index of every current row, when the store was written under this format and
        `shaping`; no answer is read. `read_digest` gives a file's digest (None: unreadable),
        called only for a file whose stamp moved; without it the files are not looked at here
        (the zone scan that follows keeps a row's version only while its file is unchanged).
        A zone the journal holds at another serial (its file behind the journal) is stale. A
        store that cannot be read at all, or whose format or shaping differs, yields nothing;
        it is rebuilt by the next `save`."""
        now = time.time() if now is None else now
        try:
            db = self._connect()
            stored = dict(db.execute("SELECT key, value FROM header").fetchall())
            if stored.keys() != {"format", "shaping", "origins"}:
                return Loaded({}, {}, "empty")
            if stored["format"] != FORMAT.encode() or stored["shaping"] != shaping:
                return Loaded({}, {}, "header")
            rows = db.execute(
                "SELECT path, origin, spelled, stamp, digest, serial, uses, signed, reach, head FROM zone"
            ).fetchall()
        except sqlite3.DatabaseError as error:
            log.warning("event=answer-store-unreadable path=%s reason=%s", self.path, error)
            self._discard()
            return Loaded({}, {}, "unreadable")
        zones: dict[Path, StoredIndex] = {}
        stale: dict[Path, str] = {}
        journal = journal_serials or {}
        empty: frozenset[bytes] = frozenset()
        stat = os.stat
        path_of = PathMaker()
        sha256, dumps, loads = hashlib.sha256, marshal.dumps, marshal.loads
        for name, origin, spelled, stamp_raw, digest, serial, uses, signed, reach_raw, head in rows:
            path = path_of(name)
            parts = (name, origin, spelled, stamp_raw, digest, serial, uses, signed, reach_raw)
            if sha256(dumps(parts, DIGEST_MARSHAL)).digest() != head:  # `row_digest`, inline
                stale[path] = "checksum"
                continue
            if origin in journal and journal[origin] != serial:
                stale[path] = "journal"
                continue
            stamp = loads(stamp_raw) if stamp_raw else None
            if read_digest is not None:
                try:
                    info = stat(name)
                except OSError:
                    stale[path] = "gone"
                    continue
                if (stamp is None or stamp_of(info, now) != stamp) and read_digest(path) != digest:
                    stale[path] = "changed"
                    continue
            try:
                spelled_name = name_of(spelled)
                used = frozenset(loads(uses)) or empty
                reach = (frozenset(loads(reach_raw)) or empty) if reach_raw else None
            except (StoreCorrupt, ValueError, TypeError, EOFError):
                stale[path] = "corrupt"
                continue
            if spelled.lower() != origin:
                stale[path] = "mismatch"
                continue
            zones[path] = StoredIndex(
                path, origin, spelled_name, serial, used, bool(signed), reach, digest, stamp, head
            )
        return Loaded(zones, stale, origins=bytes(stored["origins"]))

    def answers_of(self, rows: Iterable[StoredIndex]) -> dict[Path, bytes | None]:
        """The answers of these rows (`codec` bytes), each None when missing or not matching
        its checksum (never to be served: compile the zone from its file instead). Any thread."""
        wanted = {str(row.path): row for row in rows}
        found: dict[Path, bytes | None] = {row.path: None for row in wanted.values()}
        names = list(wanted)
        try:
            for at in range(0, len(names), _CHUNK):  # the lock a chunk at a time: a query's
                chunk = names[at : at + _CHUNK]  # first read waits for one chunk of a fill
                marks = ",".join("?" * len(chunk))
                query = f"SELECT path, checksum, body FROM answers WHERE path IN ({marks})"
                with self._reading:
                    if self._reader is None:
                        self._reader = self._open()
                    got = self._reader.execute(query, chunk).fetchall()
                for name, kept, body in got:
                    row = wanted.get(name)
                    if row is not None and checksum(row.head, body) == kept:
                        found[row.path] = body
        except sqlite3.Error as error:  # read from the files instead
            log.warning("event=answer-store-unreadable path=%s reason=%s", self.path, error)
        bad = [str(path) for path, body in found.items() if body is None]
        if bad:
            log.warning("event=answer-store-row-refused zones=%d first=%s", len(bad), bad[0])
        return found

    def decoded(self, rows: Iterable[StoredIndex]) -> dict[Path, StoredZone]:
        """Every answer of these rows read and decoded (tests, benchmarks); StoreCorrupt for
        any that does not check out."""
        rows = list(rows)
        decoder = Decoder()
        zones: dict[Path, StoredZone] = {}
        for path, body in self.answers_of(rows).items():
            if body is None:
                raise StoreCorrupt(f"answer store row of {path} does not match its checksum")
            zones[path] = decoder.decode(body)
        return zones

    def source_of(self, path: Path, digest: bytes) -> bytes | None:
        """The zone file's bytes kept with this row, when they still have `digest` (any thread);
        None when missing or changed (the caller reads the file instead)."""
        try:
            with self._reading:
                if self._reader is None:
                    self._reader = self._open()
                got = self._reader.execute("SELECT source FROM zone WHERE path = ?", (str(path),)).fetchone()
        except sqlite3.Error as error:
            log.warning("event=answer-store-unreadable path=%s reason=%s", self.path, error)
            return None
        if got is None or file_digest(got[0]) != digest:
            return None
        return bytes(got[0])

    def save(self, header: Header, rows: Iterable[ZoneRow], keep: Iterable[Path] = ()) -> int:
        """Make the store hold exactly `rows` (plus the rows of `keep`, already current),
        under `header`, in one transaction. Returns the rows written. `rows` may be a
        generator: they are encoded and inserted a batch at a time."""
        written = self._write(header, rows, {str(path) for path in keep}, whole=True)
        assert written is not None  # a whole write is never refused
        return written

    def update(self, header: Header, rows: Iterable[ZoneRow], present: Collection[str]) -> int | None:
        """Write `rows` and delete every row whose path is neither theirs nor in `present`
        (the rows still current; read once every row is written, so it may be filled while
        they are made), under `header`'s origins, in one transaction. None, with nothing
        written, when the store was written under another format or shaping (the rows not
        given would be lost: `save` them all instead)."""
        return self._write(header, rows, present, whole=False)

    def _write(
        self, header: Header, rows: Iterable[ZoneRow], keep: Collection[str], whole: bool
    ) -> int | None:
        db = self._connect()
        written = 0
        wanted = header.rows()
        try:
            db.execute("BEGIN IMMEDIATE")
            stored = dict(db.execute("SELECT key, value FROM header").fetchall())
            same_shape = all(stored.get(key) == wanted[key] for key in ("format", "shaping"))
            if not same_shape and not whole:
                db.execute("ROLLBACK")
                return None
            if not same_shape:
                for table in ("zone", "answers", "header"):
                    db.execute(f"DROP TABLE IF EXISTS {table}")
                for statement in _TABLES:
                    db.execute(statement)
                keep = ()
            db.executemany("INSERT OR REPLACE INTO header VALUES (?, ?)", wanted.items())
            names: set[str] = set()
            for index, answers in batches(rows):
                names.update(str(item[0]) for item in index)
                db.executemany("INSERT OR REPLACE INTO zone VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", index)
                db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", answers)
                written += len(index)
            old = [
                (name,)
                for (name,) in db.execute("SELECT path FROM zone")
                if name not in names and name not in keep
            ]
            db.executemany("DELETE FROM zone WHERE path = ?", old)
            db.executemany("DELETE FROM answers WHERE path = ?", old)
            self.dropped = len(old)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._fold_log(db)
        return written

    @staticmethod
    def _fold_log(db: sqlite3.Connection) -> None:
        """The write-ahead log folded into the file and emptied: a large write would otherwise
        leave a log of its size, which the next start's first read scans whole."""
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:  # a reader in the way: folded by a later write
            log.info("event=answer-store-log-kept reason=%s", error)

    def drop(self, paths: Iterable[Path]) -> None:
        """Forget these zones' rows (an edit made them stale: not worth a read at start)."""
        db = self._connect()
        names = [(str(path),) for path in paths]
        with db:
            db.executemany("DELETE FROM zone WHERE path = ?", names)
            db.executemany("DELETE FROM answers WHERE path = ?", names)

    def _discard(self) -> None:
        """An unreadable store is removed whole: the next `save` starts a new one."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(f"{self.path}{suffix}")
            except FileNotFoundError:
                pass
            except OSError as error:
                log.warning("event=answer-store-unremovable path=%s%s reason=%s", self.path, suffix, error)

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
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dynmx import __version__
from dynmx.store.codec import CODEC_VERSION, Decoder, StoreCorrupt, StoredZone

log = logging.getLogger("dynmx.store")

STORE_FILE = "answers.sqlite"
FORMAT = f"dynmx-answers/{CODEC_VERSION}.1/{__version__}"  # .1: rows hold the zone file's bytes
RACY_SECONDS = 2.0  # as the zone scan: a stamp this fresh may hide a second write

Stamp = tuple[int, int, int, int]  # mtime_ns, ctime_ns, size, inode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS header (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS zone (
    path TEXT PRIMARY KEY,
    origin BLOB NOT NULL,
    stamp BLOB NOT NULL,
    digest BLOB NOT NULL,
    serial INTEGER NOT NULL,
    checksum BLOB NOT NULL,
    body BLOB NOT NULL,
    source BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Header:
    """What shapes every row: a change of either makes the whole store stale. The origins are
    known only once the zone files are scanned: `load` checks the shaping and gives the
    stored origins back for the caller to compare (`Loaded.origins`)."""

    shaping: bytes  # fingerprint of the config's answer-shaping parts (`fingerprint`)
    origins: bytes  # fingerprint of the served origins (`origins_digest`)

    def rows(self) -> dict[str, bytes]:
        return {"format": FORMAT.encode(), "shaping": self.shaping, "origins": self.origins}


@dataclass(frozen=True, slots=True)
class ZoneRow:
    """One zone to keep: its file's identity and its compiled bytes (`codec.encode_zone`)."""

    path: Path
    origin: bytes
    stamp: Stamp | None
    digest: bytes
    serial: int
    body: bytes
    source: bytes  # the zone file's bytes the answers were compiled from (its digest is `digest`)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What `load` found current, and why the rest was not (for a log line)."""

    zones: dict[Path, StoredZone]
    stale: dict[Path, str]
    whole: str | None = None  # why no row at all was used, when none was
    origins: bytes = b""  # the origins the rows were compiled among (`origins_digest`)
    digests: dict[Path, bytes] = field(default_factory=dict)  # of each current row's file
    stamps: dict[Path, Stamp | None] = field(default_factory=dict)  # of each current row's file, as stored
    sources: dict[Path, bytes] = field(default_factory=dict)  # the bytes each current row was made from


def fingerprint(*parts: object) -> bytes:
    """A digest of what shapes answers (give it the config): equal reprs, equal answers."""
    return hashlib.sha256(repr(parts).encode()).digest()


def origins_digest(origins: Iterable[bytes]) -> bytes:
    return hashlib.sha256(b"".join(sorted(origins, key=bytes))).digest()  # wire names: self-delimiting


def stamp_of(info: os.stat_result, now: float) -> Stamp | None:
    """A stat that can be trusted to name the file's version, or None (too fresh)."""
    if now - max(info.st_mtime, info.st_ctime) < RACY_SECONDS:
        return None
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)


def _checksum(
    path: str, origin: bytes, stamp: bytes, digest: bytes, serial: int, body: bytes, source: bytes
) -> bytes:
    h = hashlib.sha256()
    for part in (path.encode(), origin, stamp, digest, serial.to_bytes(8, "big", signed=True), body, source):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


class AnswerStore:
    """The store file in `state_dir`; one connection, used from one thread at a time."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STORE_FILE
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # a crash may lose the last write, never mix it
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def load(
        self,
        shaping: bytes,
        read_digest: Callable[[Path], bytes | None],
        journal_serials: Mapping[bytes, int] | None = None,
        now: float | None = None,
    ) -> Loaded:
        """Every current row, decoded, when the store was written under this format and
        `shaping`. `read_digest` gives a file's digest (None: unreadable),
        called only for a file whose stamp moved. A zone the journal holds at another serial
        (its file behind the journal) is stale. A store that cannot be read at all, or whose
        format or shaping differs, yields nothing; it is rebuilt by the next `save`."""
        now = time.time() if now is None else now
        try:
            db = self._connect()
            stored = dict(db.execute("SELECT key, value FROM header").fetchall())
            if stored.keys() != {"format", "shaping", "origins"}:
                return Loaded({}, {}, "empty")
            if stored["format"] != FORMAT.encode() or stored["shaping"] != shaping:
                return Loaded({}, {}, "header")
            rows = db.execute(
                "SELECT path, origin, stamp, digest, serial, checksum, body, source FROM zone"
            ).fetchall()
        except sqlite3.DatabaseError as error:
            log.warning("event=answer-store-unreadable path=%s reason=%s", self.path, error)
            self._discard()
            return Loaded({}, {}, "unreadable")
        decoder = Decoder()
        zones: dict[Path, StoredZone] = {}
        stale: dict[Path, str] = {}
        journal = journal_serials or {}
        digests: dict[Path, bytes] = {}
        stamps: dict[Path, Stamp | None] = {}
        sources: dict[Path, bytes] = {}
        for name, origin, stamp_raw, digest, serial, checksum, body, source in rows:
            why = self._why_stale(
                name, origin, stamp_raw, digest, serial, checksum, body, source, read_digest, journal, now
            )
            path = Path(name)
            if why is None:
                try:
                    found = decoder.decode(body)
                except StoreCorrupt:
                    why = "corrupt"
                else:
                    if found.origin == origin and found.serial == serial:
                        zones[path] = found
                        digests[path] = digest
                        stamps[path] = marshal.loads(stamp_raw) if stamp_raw else None
                        sources[path] = source
                        continue
                    why = "mismatch"
            stale[path] = why
        return Loaded(
            zones, stale, origins=bytes(stored["origins"]), digests=digests, stamps=stamps, sources=sources
        )

    @staticmethod
    def _why_stale(
        path: str,
        origin: bytes,
        stamp_raw: bytes,
        digest: bytes,
        serial: int,
        checksum: bytes,
        body: bytes,
        source: bytes,
        read_digest: Callable[[Path], bytes | None],
        journal: Mapping[bytes, int],
        now: float,
    ) -> str | None:
        if _checksum(path, origin, stamp_raw, digest, serial, body, source) != checksum:
            return "checksum"
        if origin in journal and journal[origin] != serial:
            return "journal"
        try:
            info = os.stat(path)
        except OSError:
            return "gone"
        stamp = stamp_of(info, now)
        if stamp is not None and stamp_raw and marshal.loads(stamp_raw) == stamp:
            return None
        return None if read_digest(Path(path)) == digest else "changed"

    def save(self, header: Header, rows: Iterable[ZoneRow], keep: Iterable[Path] = ()) -> int:
        """Make the store hold exactly `rows` (plus the rows of `keep`, already current),
        under `header`, in one transaction. Returns the rows written."""
        db = self._connect()
        written = 0
        keep_names = {str(path) for path in keep}
        try:
            db.execute("BEGIN IMMEDIATE")
            if dict(db.execute("SELECT key, value FROM header").fetchall()) != header.rows():
                db.execute("DELETE FROM zone")
                db.execute("DELETE FROM header")
                db.executemany("INSERT INTO header VALUES (?, ?)", header.rows().items())
                keep_names = set()
            fresh: list[tuple[object, ...]] = []
            for row in rows:
                stamp_raw = marshal.dumps(row.stamp) if row.stamp is not None else b""
                name = str(row.path)
                check = _checksum(name, row.origin, stamp_raw, row.digest, row.serial, row.body, row.source)
                fresh.append(
                    (name, row.origin, stamp_raw, row.digest, row.serial, check, row.body, row.source)
                )
            names = keep_names | {str(item[0]) for item in fresh}
            old = [name for (name,) in db.execute("SELECT path FROM zone") if name not in names]
            db.executemany("DELETE FROM zone WHERE path = ?", [(name,) for name in old])
            db.executemany("INSERT OR REPLACE INTO zone VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fresh)
            written = len(fresh)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return written

    def drop(self, paths: Iterable[Path]) -> None:
        """Forget these zones' rows (an edit made them stale: not worth a read at start)."""
        db = self._connect()
        with db:
            db.executemany("DELETE FROM zone WHERE path = ?", [(str(path),) for path in paths])

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

"""The answer store's rows as Python sees them, and the digests that tie them together: what
`AnswerStore` writes and reads (`store/answers.py`), apart from how SQLite holds them."""

from __future__ import annotations

import hashlib
import marshal
import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import dns.name

from dynmx import __version__
from dynmx.store.codec import CODEC_VERSION, row_meta

# .2: the index apart from the answers, each with its own digest; .3: the zone file's bytes
# outside the index row's digest (checked against the file digest when read); .4: where
# each zone's CNAME chains reached (`AnswerTable.reach`)
FORMAT = f"dynmx-answers/{CODEC_VERSION}.4/{__version__}"
RACY_SECONDS = 2.0  # as the zone scan: a stamp this fresh may hide a second write
BATCH = 2000  # rows encoded and inserted at a time: a first write never holds them all

Stamp = tuple[int, int, int, int]  # mtime_ns, ctime_ns, size, inode
# The marshal version of an index row's digest: 2, whose bytes do not depend on how many
# references each value has (version 3 and later flag shared objects).
DIGEST_MARSHAL = 2


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
    # what the index keeps of `body` (`codec.row_meta`), when the encoder gave it already
    meta: tuple[bytes, tuple[bytes, ...], bool] | None = None
    # the names outside the zone its CNAME chains reached (`AnswerTable.reach`); None: not known
    reach: Collection[bytes] | None = None


class StoredIndex(NamedTuple):
    """A current row's index: enough to serve its zone as pending until its answers are read
    (a tuple: a start makes one per zone)."""

    path: Path
    origin: bytes  # the table key
    name: dns.name.Name  # as the zone file spells it
    serial: int
    uses: frozenset[bytes]  # zones its answers use
    signed: bool
    reach: frozenset[bytes] | None  # names outside it its chains reached; None: not known
    digest: bytes  # of the zone file's bytes (`AnswerStore.source_of`)
    stamp: Stamp | None
    head: bytes  # the index row's digest: the answers' checksum covers it


@dataclass(frozen=True, slots=True)
class Loaded:
    """What `load` found current, and why the rest was not (for a log line)."""

    zones: dict[Path, StoredIndex]
    stale: dict[Path, str]
    whole: str | None = None  # why no row at all was used, when none was
    origins: bytes = b""  # the origins the rows were compiled among (`origins_digest`)


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


def row_digest(
    path: str,
    origin: bytes,
    spelled: bytes,
    stamp: bytes,
    digest: bytes,
    serial: int,
    uses: bytes,
    signed: int,
    reach: bytes,
) -> bytes:
    """An index row's digest (marshal of the tuple: self-delimiting, one C call). The zone
    file's bytes are not in it: `digest` is theirs, checked when they are read."""
    parts = (path, origin, spelled, stamp, digest, serial, uses, signed, reach)
    return hashlib.sha256(marshal.dumps(parts, DIGEST_MARSHAL)).digest()


class PathMaker:
    """`Path`s of stored file names, made as `Path.iterdir` makes its entries (a parsed
    directory and a name: a fifth of the time of parsing each whole name)."""

    def __init__(self) -> None:
        self._dirs: dict[str, Path] = {}

    def __call__(self, name: str) -> Path:
        head, _, tail = name.rpartition("/")
        if not head or tail in ("", ".", ".."):
            return Path(name)
        base = self._dirs.get(head)
        if base is None:
            base = self._dirs[head] = Path(head)
        child = getattr(base, "_make_child_relpath", None)  # CPython's pathlib since 3.4
        return child(tail) if child is not None else base / tail


def batches(rows: Iterable[ZoneRow]) -> Iterator[tuple[list[tuple[object, ...]], list[tuple[object, ...]]]]:
    """The index and answers rows of `rows`, `BATCH` at a time."""
    index: list[tuple[object, ...]] = []
    answers: list[tuple[object, ...]] = []
    for row in rows:
        stamp_raw = marshal.dumps(row.stamp) if row.stamp is not None else b""
        name = str(row.path)
        spelled, used, presigned = row.meta if row.meta is not None else row_meta(row.body)
        uses = marshal.dumps(tuple(sorted(used)), 4)
        signed = int(presigned)  # as SQLite gives it back
        reach = marshal.dumps(tuple(sorted(row.reach)), 4) if row.reach is not None else b""
        head = row_digest(name, row.origin, spelled, stamp_raw, row.digest, row.serial, uses, signed, reach)
        index.append(
            (
                name,
                row.origin,
                spelled,
                stamp_raw,
                row.digest,
                row.serial,
                uses,
                signed,
                reach,
                row.source,
                head,
            )
        )
        answers.append((name, checksum(head, row.body), row.body))
        if len(index) >= BATCH:
            yield index, answers
            index, answers = [], []
    if index:
        yield index, answers


def checksum(head: bytes, body: bytes) -> bytes:
    """The answers' digest, over their index row's too: neither is served without the other."""
    h = hashlib.sha256(head)
    h.update(body)
    return h.digest()

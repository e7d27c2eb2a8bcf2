"""The answer store at start-up: which zones a restart serves from `state_dir` without
reading them, and writing the store back once every zone is compiled, then again after
zones change, each time only the rows of the zones compiled again (dynmx/store).

Used only where this process answers (no `server.workers`: each worker compiles its own).
Any failure of the store costs a cold start of what it could not give, never an answer:
a store that cannot be read or written is logged and left alone.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import dns.name

from dynmx.answer.compiler import AnswerTable, CompiledZone
from dynmx.answer.zoneset import name_key
from dynmx.app.zonescan import remember_indexes, remember_keys
from dynmx.config import Config, PoolConfig
from dynmx.policy.served import PoolPlans
from dynmx.store.answers import AnswerStore
from dynmx.store.lazy import LazyIndex, LazyZone
from dynmx.store.rows import Header, StoredIndex, fingerprint, origins_digest
from dynmx.store.warm import rows_to_write, warm_table, warm_zones
from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.store")


class JournalHeads(Protocol):
    """What the store asks of the journal: the zones with changes, and each one's newest serial."""

    def zones(self) -> list[str]: ...

    def head(self, zone: str) -> int | None: ...


def shaping(config: Config, extra: object = ()) -> bytes:
    """Everything in the config may shape an answer (pools, name and client actions, DNSSEC,
    limits): any change of it makes the store stale. `extra`: pools from a catalog."""
    return fingerprint(config, extra)


class AnswerKeeper:
    """The store of one server process: read once at start, written once every zone is
    compiled, then after changes: only the rows whose zone was compiled again."""

    def __init__(self, state_dir: Path) -> None:
        self.store = AnswerStore(state_dir)
        self.stored: dict[Path, StoredIndex] = {}
        self.lazies: dict[Path, LazyIndex] = {}  # the stored zones of the warm table
        self._origins = b""
        self._lock = threading.Lock()  # one save at a time (executor threads)
        # What the store holds, as this process last wrote it: per file, the compiled index
        # its row was made from (None until the first write: then every row is written).
        self._written: dict[Path, CompiledZone] | None = None
        self.writes = 0  # transactions written (tests)
        self.rows_written = 0  # rows written by the last of them (tests)

    def warm_zones(self, config: Config, journal: JournalHeads) -> dict[Path, LoadedZone]:
        """The zones the store holds current answers for, unread (`LazyZone`), for the scan to
        keep. A zone the journal has changes beyond is left to be read and replayed."""
        started = time.monotonic()
        try:
            heads = {name_key(dns.name.from_text(zone)): journal.head(zone) for zone in journal.zones()}
            # The files are not checked here: the scan that follows stats each one and keeps
            # the stored version only while its file is unchanged (`zonescan.unchanged`).
            found = self.store.load(shaping(config), None, {k: v for k, v in heads.items() if v is not None})
            self._written = None
        except (OSError, sqlite3.Error) as error:
            log.warning("event=answer-store-unreadable reason=%r", str(error))
            return {}
        self.stored, self._origins = found.zones, found.origins
        log.info(
            "event=answer-store-read zones=%d stale=%d reason=%s seconds=%.3f",
            len(found.zones),
            len(found.stale),
            found.whole or "-",
            time.monotonic() - started,
        )
        remember_keys({str(path): (row.name, row.origin) for path, row in found.zones.items()})
        return warm_zones(found.zones, self.store.source_of)

    def kept(self, zones: Mapping[Path, LoadedZone]) -> dict[Path, LoadedZone]:
        """Of the scanned zones, those served from the store (the scan kept the unread version)."""
        return {
            path: zone
            for path, zone in zones.items()
            if path in self.stored and isinstance(zone.zone, LazyZone) and not zone.zone.parsed
        }

    def table(
        self,
        config: Config,
        zones: Mapping[Path, LoadedZone],
        plan_of: Callable[[PoolConfig], PoolPlans],
        rng: Callable[[], float] | None,
        stage_from: int | None,
        kept: Mapping[Path, LoadedZone] | None = None,
    ) -> AnswerTable | None:
        """The warm table, or None when nothing stored can serve: the served origins are not
        those the store was compiled among (a zone added or removed), or no zone was kept.
        Its stored zones are pending: `warm.fill_slice` lays their answers in. `kept`: what
        `kept(zones)` gives, when the caller has it already."""
        kept = self.kept(zones) if kept is None else kept
        log.info("event=answer-store-used zones=%d changed=%d", len(kept), len(self.stored) - len(kept))
        served = (self.stored[p].origin if p in kept else name_key(z.origin) for p, z in zones.items())
        if not kept or origins_digest(served) != self._origins:
            self.stored = {}
            return None
        table, data, self.lazies = warm_table(
            config, zones, self.stored, plan_of, rng, stage_from, self.store.answers_of
        )
        remember_indexes(data)  # an edit indexes its own zone, not every unread one
        return table

    def save(self, config: Config, zones: Mapping[Path, LoadedZone], table: AnswerTable) -> None:
        """Write back what `table` serves from unchanged files (any thread; a failure is
        logged): the rows of zones compiled since the last write (every row the first time,
        but those laid in from the store), and the removal of rows no longer served, in one
        transaction. Skipped while zones are pending: their answers are not compiled yet."""
        if table.pending:
            return
        with self._lock:
            started = time.monotonic()
            try:
                done = self._write(config, zones, table)
            except Exception as error:  # the store is an optimisation: never a reason to stop serving
                self._written = None  # not known what it holds: everything written next time
                log.warning("event=answer-store-unwritable reason=%r", str(error))
                return
            if done is None:
                log.debug("event=answer-store-current zones=%d", len(zones))
                return
            written, after = done
            self._written = after
            self.writes += 1
            self.rows_written = written
            log.info(
                "event=answer-store-written zones=%d written=%d dropped=%d seconds=%.3f",
                len(after),
                written,
                self.store.dropped,
                time.monotonic() - started,
            )

    def _write(
        self, config: Config, zones: Mapping[Path, LoadedZone], table: AnswerTable
    ) -> tuple[int, dict[Path, CompiledZone]] | None:
        """Only the changed rows when the store holds what this process knows (it wrote it, or
        laid its rows in), else every row: (rows written, what the store holds then); None
        when this process wrote the store and nothing served since differs from it (no
        transaction: an edit of a zone that is not stored, a swap of pools)."""
        written = self._written
        mine = written is not None
        if written is None:  # the rows laid in from the store at a warm start are there already
            written = {path: lazy.filled for path, lazy in self.lazies.items() if lazy.filled is not None}
        after: dict[Path, CompiledZone] = {}
        if written:
            unchanged: set[str] = set()
            rows = rows_to_write(zones, table, written, after, unchanged)
            first = next(rows, None)  # the scan up to the first changed zone: all of it when none
            if first is None and mine and after.keys() == written.keys():
                return None
            header = _header(config, zones)
            count = self.store.update(header, itertools.chain([first] if first else [], rows), unchanged)
            if count is not None:
                return count, after
            after = {}  # written under another shaping: all of it again
        count = self.store.save(_header(config, zones), rows_to_write(zones, table, {}, after))
        return count, after


def _header(config: Config, zones: Mapping[Path, LoadedZone]) -> Header:
    return Header(shaping(config), origins_digest(name_key(z.origin) for z in zones.values()))

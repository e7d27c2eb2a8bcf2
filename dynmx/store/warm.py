"""A warm start: the table made from stored zones plus the zones compiled (or staged) anew.

`warm_zones` turns the store's current index rows into `LoadedZone`s of `LazyZone`s
(nothing parsed); the zone scan then keeps those whose files it finds unchanged and parses
the rest. `warm_table` makes a table in which every stored zone is pending with a
`LazyIndex` (no answer read yet: the slow path answers it, and reads its index on first
use) and hands it to `build_table` as the previous table with the other zones changed: they
(and any stored zone whose answers use one of them) are compiled or staged as after an
edit, and the policy (pools, name actions) is laid over the whole as always. `fill_slice`
then lays the stored answers in, a slice of zones at a time, behind the served table (a
zone whose row does not check out is compiled from its file instead); `rows_to_write` gives
what to write back once every zone is compiled: the rows of the zones whose compiled index
is not the one the store holds (all of them the first time), a batch at a time.
"""

from __future__ import annotations

import gc
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import dns.name

from dynmx.answer.compiler import DO_KEY, AnswerTable, CompiledZone, fill_table, index_zone, wire_key
from dynmx.answer.zoneset import ZoneData, ZoneSet, name_key
from dynmx.config import Config, PoolConfig
from dynmx.errors import ZoneLoadError
from dynmx.policy.served import PoolPlans, build_table
from dynmx.store.codec import Decoder, SpansMemo, StoreCorrupt, encode_zone, storable, zone_meta
from dynmx.store.lazy import LazyIndex, LazyZone, LazyZoneData, Source, lazy_loaded
from dynmx.store.rows import StoredIndex, ZoneRow
from dynmx.wire.response import Entry
from dynmx.zone.loader import LoadedZone, file_digest, read_zone_bytes
from dynmx.zone.soa import serial_of

log = logging.getLogger("dynmx.store")

# Stored zones laid in per `fill_slice`: decoding is some 20 times quicker than compiling,
# so a slice of this many takes about what a compile slice takes.
STORED_SLICE = 5000

AnswersOf = Callable[[Iterable[StoredIndex]], Mapping[Path, bytes | None]]


class Pending(NamedTuple):
    """What a pending stored zone is read from: its index row, where its answers are, and its
    zone (to compile it from when its row does not check out). A tuple: one per stored zone."""

    row: StoredIndex
    answers_of: AnswersOf
    data: ZoneData

    def read_index(self) -> CompiledZone:
        """The zone's index from its row, else (a row that does not check out) from its zone."""
        body = self.answers_of([self.row]).get(self.row.path)
        if body is not None:
            try:
                index = Decoder().decode_index(body)
                if index.origin == self.row.origin:
                    return index
            except StoreCorrupt:
                pass
        return index_zone(self.data, complete=False)


def _file_only(path: Path, digest: bytes) -> bytes | None:
    return None  # no bytes kept: the zone is read from its file, checked against the digest


def warm_zones(
    stored: Mapping[Path, StoredIndex], source_of: Callable[[Path, bytes], bytes | None] | None = None
) -> dict[Path, LoadedZone]:
    """Each stored zone as a `LoadedZone` read only when first needed, from the bytes the store
    kept (`source_of`, `AnswerStore.source_of`) or its file while it has them; the scan keeps
    it by its stamp (stat only) or, failing that, by its bytes' digest."""
    source: Source = source_of if source_of is not None else _file_only
    return {
        path: lazy_loaded(row.name, path, row.digest, row.stamp, row.serial, source)
        for path, row in stored.items()
    }


def warm_table(
    config: Config,
    zones: Mapping[Path, LoadedZone],
    stored: Mapping[Path, StoredIndex],
    plan_of: Callable[[PoolConfig], PoolPlans],
    rng: Callable[[], float] | None,
    stage_from: int | None,
    answers_of: AnswersOf,
) -> tuple[AnswerTable, list[ZoneData], dict[Path, LazyIndex]]:
    """The table of `zones`: pending with a `LazyIndex` where the scan kept the stored version
    (a `LazyZone` still), compiled (or staged from `stage_from` names) for the others; the
    index of each zone (lazy for the stored ones), as `zone_data` gives them; and the
    `LazyIndex` of each stored zone (`rows_to_save` knows by it which rows are still served)."""
    entries: dict[bytes, Entry] = {}
    compiled: dict[bytes, CompiledZone] = {}
    keys: dict[bytes, Sequence[bytes]] = {}
    uses: dict[bytes, frozenset[bytes]] = {}
    data: list[ZoneData] = []
    lazies: dict[Path, LazyIndex] = {}
    changed: list[dns.name.Name] = []
    # Where each stored zone's chains reached, from its index row: a zone added or removed
    # later compiles only the zones it affects (`answer.reach`). One row without it, and
    # the table does not know (every zone compiled then, as for any table without it).
    reach: dict[bytes, frozenset[bytes]] | None = {}
    for path, loaded in zones.items():
        row = stored.get(path)
        if (
            row is not None
            and isinstance(loaded.zone, LazyZone)
            and (loaded.origin is row.name or row.origin == name_key(loaded.origin))
        ):
            lazy = LazyZoneData(loaded.origin, loaded.zone, row.origin)
            data.append(lazy)
            pending = Pending(row, answers_of, lazy)
            index = lazies[path] = LazyIndex(row.origin, row.signed, pending, None)
            compiled[row.origin], keys[row.origin], uses[row.origin] = index, (), row.uses
            if row.reach is None:
                reach = None
            elif row.reach and reach is not None:
                reach[row.origin] = row.reach
            continue
        fresh = ZoneData(loaded.origin, loaded.zone)
        data.append(fresh)
        compiled[fresh.key] = index_zone(fresh, complete=False)
        changed.append(fresh.origin)
    zoneset = ZoneSet(data)
    previous = AnswerTable(
        entries, compiled, zoneset, keys=keys, uses=uses, pending=frozenset(compiled), reach=reach
    )
    table = build_table(config, data, plan_of, rng, previous=previous, changed=changed, stage_from=stage_from)
    return table, data, lazies


def fill_slice(table: AnswerTable, zones: int, names: int | None) -> AnswerTable:
    """`table` with one step of its pending zones done: up to `STORED_SLICE` stored ones laid
    in from the store, and up to `zones` others compiled (`fill_table`, `names` at most)."""
    chunk = list(itertools.islice(table.pending, max(STORED_SLICE, zones)))
    stored = [table.zones[o] for o in chunk if isinstance(table.zones.get(o), LazyIndex)]
    others = [o for o in chunk if not isinstance(table.zones.get(o), LazyIndex)][:zones]
    if others:
        table = fill_table(table, others, names)
    if stored:
        table = lay_stored(table, stored)  # type: ignore[arg-type]  # LazyIndex, checked above
    return table


def lay_stored(table: AnswerTable, lazies: Sequence[LazyIndex]) -> AnswerTable:
    """`table` with the answers of these pending stored zones read from the store and laid in;
    a zone whose row does not check out is compiled from its zone instead."""
    by_store: dict[int, tuple[AnswersOf, list[StoredIndex]]] = {}
    for lazy in lazies:
        pending: Pending = lazy.pending
        by_store.setdefault(id(pending.answers_of), (pending.answers_of, []))[1].append(pending.row)
    bodies: dict[Path, bytes | None] = {}
    for answers_of, rows in by_store.values():
        bodies.update(answers_of(rows))
    entries = dict(table.entries)
    compiled, keys, uses = dict(table.zones), dict(table.keys), dict(table.uses)
    done: set[bytes] = set()
    refused: list[bytes] = []
    # Decoding makes about a dozen tracked objects per zone and no cycle: the collector would
    # scan every entry laid in so far several times per slice (a third of the fill's time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        _decode_into(table, lazies, bodies, entries, compiled, keys, uses, done, refused)
    finally:
        if collecting:
            gc.enable()
    if table.forced:
        _drop_forced(entries, table.forced, done, keys)
    carriers = {wire_key(owner) + rdtype.to_bytes(2, "big") for owner, rdtype in table.selectors}
    carriers |= {DO_KEY + key for key in carriers}
    entries.update((key, table.entries[key]) for key in table.forced | carriers if key in table.entries)
    filled = replace(
        table, entries=entries, zones=compiled, keys=keys, uses=uses, pending=table.pending - done
    )
    if refused:
        log.warning("event=answer-store-compiled-instead zones=%d first=%s", len(refused), refused[0].hex())
        filled = fill_table(filled, refused, None)
    return filled


def _decode_into(
    table: AnswerTable,
    lazies: Sequence[LazyIndex],
    bodies: Mapping[Path, bytes | None],
    entries: dict[bytes, Entry],
    compiled: dict[bytes, CompiledZone],
    keys: dict[bytes, Sequence[bytes]],
    uses: dict[bytes, frozenset[bytes]],
    done: set[bytes],
    refused: list[bytes],
) -> None:
    """Each zone's stored answers decoded into the parts of the new table (`done`), or its
    index made from its zone when its row does not check out (`refused`, compiled after)."""
    decoder = Decoder()
    for lazy in lazies:
        row: StoredIndex = lazy.pending.row
        origin = lazy.origin
        if compiled.get(origin) is not lazy:
            continue
        body = bodies.get(row.path)
        try:
            if body is None:
                raise StoreCorrupt("no answers")
            zone = decoder.decode(body)
            if zone.origin != origin or zone.serial != row.serial or zone.uses != row.uses:
                raise StoreCorrupt("the answers are not those of the index row")
        except StoreCorrupt:
            compiled[origin] = index_zone(table.zoneset.by_key[origin], complete=False)
            refused.append(origin)
            continue
        entries.update(zip(zone.keys, zone.entries, strict=True))
        compiled[origin], keys[origin], uses[origin] = zone.index, zone.keys, zone.uses
        object.__setattr__(lazy, "filled", zone.index)
        done.add(origin)


def _drop_forced(
    entries: dict[bytes, Entry],
    forced: frozenset[bytes],
    zones: set[bytes],
    keys: dict[bytes, Sequence[bytes]],
) -> None:
    """A name action's name answers every type its way: the stored entries of such a name (its
    default, its typed ones, DO=1 ones) are not laid in."""
    for origin in zones:
        for name in forced:
            if not name.endswith(origin):
                continue
            for prefix in (name, DO_KEY + name):
                size = len(prefix)
                for key in keys.get(origin, ()):
                    if key[:size] == prefix and len(key) in (size, size + 2):
                        entries.pop(key, None)


def rows_to_save(
    zones: Mapping[Path, LoadedZone], table: AnswerTable, stored: Mapping[Path, LazyIndex]
) -> tuple[list[ZoneRow], list[Path]]:
    """New rows for the zones compiled from their files, and the paths whose stored row is
    still the one served (not encoded again): `rows_to_write` with the stored rows of
    `stored` (those laid in from the store) as what the store holds."""
    written = {path: lazy.filled for path, lazy in stored.items() if lazy.filled is not None}
    after: dict[Path, CompiledZone] = {}
    rows = list(rows_to_write(zones, table, written, after))
    changed = {row.path for row in rows}
    return rows, [path for path in after if path not in changed]


def rows_to_write(
    zones: Mapping[Path, LoadedZone],
    table: AnswerTable,
    written: Mapping[Path, CompiledZone],
    after: dict[Path, CompiledZone],
    unchanged: set[str] | None = None,
) -> Iterator[ZoneRow]:
    """The rows to write for `table`, given what the store holds (`written`: per file, the
    compiled index its row was made from), one at a time: a zone whose index is still that
    one keeps its row (nothing encoded); any other compiled from its file gets a new row.
    `after` is filled with what the store holds once they are written (a zone without a row
    is left out: its row, if any, is to be deleted), `unchanged` with the file names of the
    rows kept as they are. A zone made in memory (an edit, the
    journal replayed) has no digest: its file is not what is served, so it gets no row; nor
    does one whose file no longer has the bytes it was read from (read again here, kept in
    the row)."""
    memo: SpansMemo = {}
    for path, loaded in zones.items():
        key = name_key(loaded.origin)
        index = table.zones.get(key)
        if index is None:
            continue
        if written.get(path) is index:
            after[path] = index  # its row was made from this very compile
            if unchanged is not None:
                unchanged.add(str(path))
            continue
        if not loaded.digest or not storable(table, key):
            continue
        data = table.zoneset.by_key[key]
        if data.zone is not loaded.zone:
            continue  # the table serves another version (an edit since)
        try:
            source = read_zone_bytes(path)
        except ZoneLoadError:
            continue
        if file_digest(source) != loaded.digest:
            continue  # changed since it was read: the next reload judges it
        serial = serial_of(data.zone)  # a small zone kept as its bytes is not parsed for it
        body = encode_zone(table, key, serial, memo)
        after[path] = index
        reach = table.reach.get(key, ()) if table.reach is not None else None
        yield ZoneRow(
            path, key, loaded.stamp, loaded.digest, serial, body, source, zone_meta(table, key), reach
        )

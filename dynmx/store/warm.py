"""A warm start: the table made from stored zones plus the zones compiled (or staged) anew.

`warm_zones` turns the store's current rows into `LoadedZone`s of `LazyZone`s (nothing
parsed); the zone scan then keeps those whose files it finds unchanged and parses the
rest. `warm_table` lays the stored zones into a table whose other zones are pending and
hands it to `build_table` as the previous table with those zones changed: they (and any
stored zone whose answers use one of them) are compiled or staged as after an edit, and
the policy (pools, name actions) is laid over the whole as always. `rows_to_save` gives
what to write back once every zone is compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import dns.name

from dynmx.answer.compiler import AnswerTable, CompiledZone, index_zone
from dynmx.answer.zoneset import ZoneData, ZoneSet, name_key
from dynmx.config import Config, PoolConfig
from dynmx.errors import ZoneLoadError
from dynmx.policy.served import PoolPlans, build_table
from dynmx.store.answers import ZoneRow
from dynmx.store.codec import StoredZone, encode_zone, lay_in, storable
from dynmx.store.lazy import LazyZone, LazyZoneData, lazy_loaded
from dynmx.wire.response import Entry
from dynmx.zone.loader import LoadedZone, file_digest, read_zone_bytes


def warm_zones(
    stored: Mapping[Path, StoredZone],
    digests: Mapping[Path, bytes],
    stamps: Mapping[Path, tuple[int, int, int, int] | None],
    sources: Mapping[Path, bytes],
) -> dict[Path, LoadedZone]:
    """Each stored zone as a `LoadedZone` read from its file only when first needed; the
    scan keeps it by its stamp (stat only) or, failing that, by its bytes' digest."""
    found = {}
    for path, zone in stored.items():
        found[path] = lazy_loaded(
            zone.name, path, digests[path], stamps.get(path), zone.serial, sources[path]
        )
    return found


def warm_table(
    config: Config,
    zones: Mapping[Path, LoadedZone],
    stored: Mapping[Path, StoredZone],
    plan_of: Callable[[PoolConfig], PoolPlans],
    rng: Callable[[], float] | None,
    stage_from: int | None,
) -> tuple[AnswerTable, list[ZoneData]]:
    """The table of `zones`: from `stored` where the scan kept the stored version (a
    `LazyZone` still), compiled (or staged from `stage_from` names) for the others; and
    the index of each zone (lazy for the stored ones), as `zone_data` gives them."""
    entries: dict[bytes, Entry] = {}
    compiled: dict[bytes, CompiledZone] = {}
    keys: dict[bytes, Sequence[bytes]] = {}
    uses: dict[bytes, frozenset[bytes]] = {}
    data: list[ZoneData] = []
    kept: dict[bytes, StoredZone] = {}
    changed: list[dns.name.Name] = []
    for path, loaded in zones.items():
        row = stored.get(path)
        if row is not None and isinstance(loaded.zone, LazyZone) and row.origin == name_key(loaded.origin):
            data.append(LazyZoneData(loaded.origin, loaded.zone))
            kept[row.origin] = row
            continue
        fresh = ZoneData(loaded.origin, loaded.zone)
        data.append(fresh)
        compiled[fresh.key] = index_zone(fresh, complete=False)
        changed.append(fresh.origin)
    lay_in(kept, entries, compiled, keys, uses)
    zoneset = ZoneSet(data)
    pending = frozenset(compiled.keys() - kept.keys())
    previous = AnswerTable(entries, compiled, zoneset, keys=keys, uses=uses, pending=pending)
    table = build_table(config, data, plan_of, rng, previous=previous, changed=changed, stage_from=stage_from)
    return table, data


def rows_to_save(
    zones: Mapping[Path, LoadedZone], table: AnswerTable, stored: Mapping[Path, StoredZone]
) -> tuple[list[ZoneRow], list[Path]]:
    """New rows for the zones compiled from their files, and the paths whose stored row is
    still the one served (not encoded again). A zone made in memory (an edit, the journal
    replayed) has no digest: its file is not what is served, so it gets no row; nor does one
    whose file no longer has the bytes it was read from (read again here, kept in the row)."""
    rows: list[ZoneRow] = []
    keep: list[Path] = []
    for path, loaded in zones.items():
        key = name_key(loaded.origin)
        row = stored.get(path)
        if row is not None and table.zones.get(key) is row.index and isinstance(loaded.zone, LazyZone):
            keep.append(path)
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
        serial = int(data.soa[1][0].serial)
        body = encode_zone(table, key, serial)
        rows.append(ZoneRow(path, key, loaded.stamp, loaded.digest, serial, body, source))
    return rows, keep

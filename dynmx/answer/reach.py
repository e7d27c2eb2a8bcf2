"""Which zones a change of the served zone set affects (a zone added or removed).

A name's answers change when the zone serving it changes, so adding or removing origin O
changes: the zone that served the names at and below O before (the parent keeps its data
there, occluded while O is served), the zones whose CNAME chains reached a name at or below
O (`AnswerTable.reach`; those that reached into a removed zone also `use` it), and the zones
just below O whose DS is now answered by another zone above (RFC 4035 3.1.4.1). NSD and
Knot add a zone without touching the others; so does the compiler, save for these.
"""

from __future__ import annotations

from collections.abc import Collection

from dynmx.answer.table import AnswerTable
from dynmx.answer.zoneset import ZoneSet


def affected(
    table: AnswerTable, zoneset: ZoneSet, added: Collection[bytes], removed: Collection[bytes]
) -> set[bytes] | None:
    """The served zones of `zoneset` whose answers the origins `added` and `removed` (since
    `table`) change, the added ones included; None when `table` does not know what its
    zones' chains reached (every zone must be compiled again)."""
    reach = table.reach
    if reach is None:
        return None
    served = zoneset.by_key
    dirty = set(added)
    for origin in added:
        before = table.zoneset.find_key(origin)  # served O's names until now
        if before is not None and before.key in served:
            dirty.add(before.key)
    for origin in removed:
        after = zoneset.find_key(origin)  # serves O's names from now on
        if after is not None:
            dirty.add(after.key)
    if removed:
        gone = set(removed)
        dirty.update(zone for zone, used in table.uses.items() if not gone.isdisjoint(used))
    moved = set(added) | set(removed)
    ends = _suffixes(moved)
    for zone, names in reach.items():
        if zone not in dirty and any(name.endswith(ends) and at_or_below(name, moved) for name in names):
            dirty.add(zone)
    if added:
        new = set(added)
        news = _suffixes(new)
        for key in served:
            if key not in dirty and key.endswith(news) and _parent_zone(zoneset, key) in new:
                dirty.add(key)
    dirty &= served.keys()
    return dirty


def _suffixes(origins: Collection[bytes]) -> tuple[bytes, ...]:
    """What a name at or below one of `origins` ends with, for a quick first test in C: the
    origins themselves when few, else the root's label (every name: a catalog adding a
    thousand zones is tested label by label instead)."""
    return tuple(origins) if len(origins) <= 16 else (b"\x00",)


def at_or_below(key: bytes, origins: Collection[bytes]) -> bool:
    """Whether the name `key` (lower-case wire) is one of `origins` or below one."""
    pos = 0
    while True:
        if key[pos:] in origins:
            return True
        length = key[pos]
        if length == 0:
            return False
        pos += length + 1


def _parent_zone(zoneset: ZoneSet, key: bytes) -> bytes | None:
    """The origin of the nearest zone strictly above the origin `key`."""
    if key == b"\x00":
        return None
    parent = zoneset.find_key(key[key[0] + 1 :])
    return parent.key if parent is not None else None

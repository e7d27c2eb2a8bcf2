"""Compile zones into an immutable table of ready responses (design.md: compile, then serve bytes).

For every existing name (and empty non-terminal) the table holds a default entry,
valid for every qtype the name's lookup never looks at, plus one entry per qtype that
answers differently. Missing names cost nothing to store: a name below no cut and
without a wildcard shares its zone's NXDOMAIN entry.

An edit recompiles only the changed zone and the zones whose answers reach into it (a
CNAME chain, an MX target's addresses): the table remembers each zone's keys and which
zones each zone's answers used, so the cost of an edit follows the zone, not the server.
In a zone of `TRACK_FROM` names or more it follows the names: the table also remembers,
per name, which names' answers use it (`refs`), and shares each NODATA body among the
names it answers (`Negatives`), so an ordinary edit renders the names it touches and
those whose answers use them, and hands them over as a delta laid onto the served entries
(`incremental`). An edit it cannot judge that way (a wildcard, a cut, the apex beyond its
serial, a signed zone, an overlay, a name removed) compiles the zone.

A start-up with many zones serves a staged table first: every zone indexed, none compiled
(each answered by the slow path, from the same lookup), then fills it a slice of names at
a time, so serving does not wait for the whole compile. An edit or reload of a large zone
stages that zone the same way: it is served from its new version as soon as it is
indexed, not after minutes of compiling, and a zone may be filled over several slices.

A pre-signed zone (DNSKEY at its apex) gets a second set of entries beside the first, for
queries with DO=1: the same answers with their RRSIGs and NSEC/NSEC3 proofs (RFC 4035
3.1), keyed like the others behind `DO_KEY`. Unsigned zones get none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import dns.name

from dynmx.answer.dynamic import ServedPolicy
from dynmx.answer.entries import TRACK_FROM, Compiled, compile_names, compile_zone, tracked
from dynmx.answer.incremental import edit_plan, recompile_names
from dynmx.answer.layer import drop_name, forced_keys, with_policy
from dynmx.answer.reach import affected
from dynmx.answer.table import (
    DO_KEY,
    NO_NAMES,
    AnswerTable,
    CompiledZone,
    Negatives,
    index_zone,
    wire_key,
)
from dynmx.answer.zoneset import ZoneData, ZoneSet
from dynmx.wire.response import Entry

__all__ = [
    "DO_KEY",
    "TRACK_FROM",
    "AnswerTable",
    "CompiledZone",
    "compile_table",
    "fill_table",
    "index_zone",
    "recompile_table",
    "staged_table",
    "wire_key",
]


def compile_table(zones: Iterable[ZoneData], policy: ServedPolicy | None = None) -> AnswerTable:
    """Compile every zone, then lay the policy over it.

    CNAME chains may cross zones, so every zone sees the same ZoneSet. Dynamic RRsets
    replace their static entry with a carrier of a fresh selector; forced names (name
    actions) replace every entry of the name.
    """
    zoneset = ZoneSet.of(zones)
    entries: dict[bytes, Entry] = {}
    compiled: dict[bytes, CompiledZone] = {}
    keys: dict[bytes, Sequence[bytes]] = {}
    uses: dict[bytes, frozenset[bytes]] = {}
    refs: dict[bytes, set[bytes]] = {}
    negatives: dict[bytes, Negatives] = {}
    reach: dict[bytes, frozenset[bytes]] = {}
    shared: dict[frozenset[bytes], frozenset[bytes]] = {}  # zones made from one template reach alike
    for zone in zoneset:
        result = compile_zone(zoneset, zone, entries, refs)
        origin = result.zone.origin
        compiled[origin], keys[origin], uses[origin] = result.zone, _held(result), frozenset(result.uses)
        if result.reach:
            reached = frozenset(result.reach)
            reach[origin] = shared.setdefault(reached, reached)
        if result.negatives is not None:
            negatives[origin] = result.negatives
    table = with_policy(zoneset, entries, compiled, keys, uses, policy or ServedPolicy())
    return replace(table, refs=refs, negatives=negatives, reach=reach)


def staged_table(zones: Iterable[ZoneData], policy: ServedPolicy | None = None) -> AnswerTable:
    """Every zone indexed and pending, the policy laid over: correct answers at once, from
    the slow path, while `fill_table` compiles the zones."""
    zoneset = ZoneSet.of(zones)
    compiled = {index.origin: index for index in (index_zone(zone, complete=False) for zone in zoneset)}
    table = with_policy(zoneset, {}, compiled, {}, {}, policy or ServedPolicy())
    return replace(table, pending=frozenset(compiled), reach={})  # nothing compiled, nothing reached


def fill_table(table: AnswerTable, origins: Iterable[bytes], max_names: int | None = None) -> AnswerTable:
    """`table` with these pending zones compiled, as far as `max_names` names allow: a large
    zone may take several calls (its names compiled so far are answered from the table,
    the others by the slow path). Pool carriers and name actions stay on top as they were
    (the same selectors: a round-robin goes on where it had got to)."""
    table.settle()
    entries = dict(table.entries)
    compiled, keys, uses = dict(table.zones), dict(table.keys), dict(table.uses)
    unfilled = dict(table.unfilled)
    negatives = dict(table.negatives)
    reach = dict(table.reach) if table.reach is not None else None
    done: set[bytes] = set()
    budget = max_names
    for origin in origins:
        if origin not in table.pending or origin in done:
            continue
        if budget is not None and budget <= 0:
            break
        zone = table.zoneset.by_key[origin]
        names = unfilled.pop(origin, None)
        if names is None:  # its first slice
            names = tuple(zone.names)
            negatives.pop(origin, None)
            if tracked(zone):
                negatives[origin] = Negatives()
            if reach is not None:
                reach.pop(origin, None)
        now, rest = (names, ()) if budget is None else (names[:budget], names[budget:])
        new_keys: list[bytes] = []
        new_uses: set[bytes] = set()
        new_reach: set[bytes] = set()
        tracking = negatives.get(origin)
        compile_names(table.zoneset, zone, now, entries, new_keys, new_uses, table.refs, tracking, new_reach)
        for name in table.forced:
            drop_name(entries, new_keys, name)
        held = keys.get(origin, ())  # a tracked zone's as a list: an edit extends it in place
        keys[origin] = [*held, *new_keys] if tracking is not None else (*held, *new_keys)
        uses[origin] = uses.get(origin, NO_NAMES) | new_uses
        if reach is not None and new_reach:
            reach[origin] = reach.get(origin, NO_NAMES) | new_reach
        if budget is not None:
            budget -= len(now)
        if rest:
            unfilled[origin] = rest
        else:
            compiled[origin] = replace(compiled[origin], complete=True)  # indexed when it was staged
            done.add(origin)
    carriers = {wire_key(owner) + rdtype.to_bytes(2, "big") for owner, rdtype in table.selectors}
    carriers |= {DO_KEY + key for key in carriers}
    entries.update((key, table.entries[key]) for key in table.forced | carriers if key in table.entries)
    return replace(
        table,
        entries=entries,
        zones=compiled,
        keys=keys,
        uses=uses,
        pending=table.pending - done,
        unfilled=unfilled,
        negatives=negatives,
        reach=reach,
        live=None,  # a dict of its own: no delta of an earlier table applies to it
        generation=0,
        delta=None,
    )


def recompile_table(
    table: AnswerTable,
    zones: Iterable[ZoneData],
    changed: Iterable[dns.name.Name],
    policy: ServedPolicy,
    stage_from: int | None = None,
) -> AnswerTable:
    """A new table after `changed` zones changed: those and the zones whose answers used them
    are compiled again, the rest is copied (a zone still pending stays so, unless changed).
    One of them with at least `stage_from` names is staged instead: indexed and pending, for
    `fill_table`. `zones` is the whole new set: a zone added or removed compiles itself and
    the zones it affects (`reach.affected`: the parent, chains that reached its names, the
    zones just below it), all of them staged when they have `stage_from` names together;
    every zone when `table` does not know where its chains went (`AnswerTable.reach`).

    An ordinary edit of a tracked zone gives a table that shares `table`'s entries and
    carries its delta: it must be served (`Engine.swap` settles it) or settled before
    another table is made from `table`. `table` itself is settled first; one a later
    edit's delta has been laid over no longer holds its own entries, and everything is
    compiled again from `zones`."""
    zoneset = ZoneSet.of(zones)
    table.settle()
    if not table.current:
        return _whole(zoneset, policy, stage_from)
    served = zoneset.by_key
    added = [key for key in served if key not in table.zones]
    removed = (
        [key for key in table.zones if key not in served]
        if len(table.zones) + len(added) != len(served)
        else []
    )
    if added or removed:
        moved = affected(table, zoneset, added, removed)
        if moved is None:
            return _whole(zoneset, policy, stage_from)
        edited = {wire_key(name) for name in changed} & table.zones.keys() & served.keys()
        moved |= edited | {zone for zone, used in table.uses.items() if not edited.isdisjoint(used)}
        together = (
            stage_from is not None
            and sum(len(served[origin].names) for origin in moved & served.keys()) >= stage_from
        )
        return _rebuild(table, zoneset, moved, removed, policy, 0 if together else stage_from)
    edited = {wire_key(name) for name in changed} & served.keys()
    plans = {origin: edit_plan(table, served[origin], policy) for origin in edited}
    if plans and all(names is not None for names in plans.values()):
        made = recompile_names(table, zoneset, {o: n for o, n in plans.items() if n is not None}, policy)
        if made is not None:
            return made
    dirty = {wire_key(name) for name in changed}
    dirty |= {zone for zone, used in table.uses.items() if used & dirty}
    return _rebuild(table, zoneset, dirty, (), policy, stage_from)


def _whole(zoneset: ZoneSet, policy: ServedPolicy, stage_from: int | None) -> AnswerTable:
    """Every zone compiled, or staged when they have `stage_from` names in all."""
    if stage_from is not None and sum(len(zone.names) for zone in zoneset) >= stage_from:
        return staged_table(zoneset, policy)
    return compile_table(zoneset, policy)


def _rebuild(
    table: AnswerTable,
    zoneset: ZoneSet,
    dirty: set[bytes],
    removed: Sequence[bytes],
    policy: ServedPolicy,
    stage_from: int | None,
) -> AnswerTable:
    """`table` with the `dirty` zones compiled again (staged from `stage_from` names), the
    `removed` ones dropped, the rest copied, and `policy` laid over all of it."""
    dirty &= zoneset.by_key.keys()  # a zone already gone from both (removed by an earlier compile)
    entries = dict(table.entries)
    compiled, keys, uses = dict(table.zones), dict(table.keys), dict(table.uses)
    negatives = dict(table.negatives)
    dirty |= _policy_moved(table, zoneset, policy, entries)
    reach: dict[bytes, frozenset[bytes]] | None = None
    if table.reach is not None:
        reach = dict(table.reach)
    elif dirty >= zoneset.by_key.keys():  # every zone compiled here (a cold start's first table)
        reach = {}
    for origin in (*removed, *dirty):
        for key in keys.get(origin, ()):
            entries.pop(key, None)
    for origin in removed:
        for parts in (compiled, keys, uses, negatives, reach if reach is not None else {}):
            parts.pop(origin, None)
    staged: set[bytes] = set()
    for origin in dirty:
        zone = zoneset.by_key[origin]
        negatives.pop(origin, None)
        if reach is not None:
            reach.pop(origin, None)
        if stage_from is not None and len(zone.names) >= stage_from:
            compiled[origin], keys[origin], uses[origin] = index_zone(zone, complete=False), (), NO_NAMES
            staged.add(origin)
            continue
        result = compile_zone(zoneset, zone, entries, table.refs)
        compiled[origin], keys[origin], uses[origin] = result.zone, _held(result), frozenset(result.uses)
        if reach is not None and result.reach:
            reach[origin] = frozenset(result.reach)
        if result.negatives is not None:
            negatives[origin] = result.negatives
    gone = set(removed)
    pending = (table.pending - dirty - gone) | staged
    unfilled = {
        origin: names
        for origin, names in table.unfilled.items()
        if origin not in dirty and origin not in gone
    }
    recompiled = with_policy(zoneset, entries, compiled, keys, uses, policy)
    return replace(
        recompiled, pending=pending, unfilled=unfilled, refs=table.refs, negatives=negatives, reach=reach
    )


def _policy_moved(
    table: AnswerTable, zoneset: ZoneSet, policy: ServedPolicy, entries: dict[bytes, Entry]
) -> set[bytes]:
    """The zones holding a name that a name action or a pool's dynamic RRset left since `table`:
    that entry is dropped, and the zone is compiled again (its static entries back)."""
    before = set(table.forced)
    before |= {wire_key(owner) + rdtype.to_bytes(2, "big") for owner, rdtype in table.selectors}
    after = set(forced_keys(policy))
    after |= {wire_key(spec.owner) + spec.rdtype.to_bytes(2, "big") for spec in policy.dynamic}
    zones: set[bytes] = set()
    for key in before - after:
        entries.pop(key, None)
        entries.pop(DO_KEY + key, None)
        zone = zoneset.find_key(key if key in table.forced else key[:-2])
        if zone is not None:
            zones.add(zone.key)
    return zones


def _held(result: Compiled) -> Sequence[bytes]:
    """A compiled zone's keys: a list for a tracked zone (its edits extend it in place, no
    copy of a million keys), a tuple for the others."""
    return result.keys if result.negatives is not None else tuple(result.keys)

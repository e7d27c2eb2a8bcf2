"""An edit of a tracked zone, rendered name by name and handed over as a delta.

The names the edit touched and the names whose answers use them (`refs`, every zone) are
rendered again; untracked zones that use an edited one are compiled again whole; each
shared NODATA entry of an edited zone gets its body with the new SOA serial. None of it
is written into the table being served: it is collected in a `Delta` that the new table
lays onto the shared entries dict when it starts being served (`AnswerTable.settle`), so
the work follows the names the edit touches, never the size of the zone (no copy of a
million entries, no key repointed for the serial). An edit this cannot judge (`edit_plan`
says None) compiles its zone again (`compiler.recompile_table`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import dns.name

from dynmx.answer.dynamic import ServedPolicy
from dynmx.answer.entries import compile_names, compile_zone, tracked
from dynmx.answer.layer import force, forced_keys, lay_dynamic
from dynmx.answer.lookup import DS, SOA, Answer, lookup
from dynmx.answer.render import render
from dynmx.answer.table import (
    NO_NAMES,
    AnswerTable,
    CompiledZone,
    Delta,
    Live,
    Negatives,
    Shared,
    nxdomain_entries,
    pointers_of_one_rr,
    wire_key,
)
from dynmx.answer.zoneset import WILDCARD, ZoneData, ZoneSet
from dynmx.wire.response import Entry


def edit_plan(table: AnswerTable, zone: ZoneData, policy: ServedPolicy) -> list[dns.name.Name] | None:
    """The names of `zone` whose own data an edit from the version `table` serves changed or
    that are new, when rendering those (and the names whose answers use them) is enough;
    None when the zone must be compiled again: not made by an edit from the served version
    (`ZoneData.edited`), not tracked, or an edit that reaches beyond its names (a wildcard
    or a new name beside one, a cut or below one, an apex NS target, the apex other than
    its serial, a name action)."""
    old = table.zoneset.by_key.get(zone.key)
    edit = zone.edit
    if old is None or edit is None or edit[0]() is not old.zone or zone.key not in table.negatives:
        return None
    if zone.key in table.pending or not tracked(zone) or zone.overlay or old.overlay:
        return None
    if any(name.is_subdomain(zone.origin) for name in policy.forced):
        return None
    _, changed, added = edit
    targets = {rdata.target for ns in (old.apex_ns, zone.apex_ns) if ns is not None for rdata in ns[1]}
    for name in (*changed, *added):
        if name == zone.origin:
            if not _serial_only(old, zone):
                return None
            continue
        if WILDCARD in name.labels or name in targets:
            return None
        if old.cut_at_or_above(name) is not None or zone.cut_at_or_above(name) is not None:
            return None
    for name in added:  # below it, missing names were the wildcard's and are not now (RFC 4592 2.2.2)
        if old.node(dns.name.Name((WILDCARD, *name.parent().labels))) is not None:
            return None
    return [*changed, *added]


_SOA_FIELDS = ("mname", "rname", "refresh", "retry", "expire", "minimum")


def _serial_only(old: ZoneData, new: ZoneData) -> bool:
    """Whether the apex of `new` differs from `old`'s in its SOA serial at most."""
    before, after = old.node(old.origin), new.node(new.origin)
    if before is None or after is None:
        return False
    old_soa, new_soa = old.soa[1], new.soa[1]
    if old_soa.ttl != new_soa.ttl or len(old_soa) != 1 or len(new_soa) != 1:
        return False
    if any(getattr(old_soa[0], f) != getattr(new_soa[0], f) for f in _SOA_FIELDS):
        return False

    def rest(node: object) -> list[tuple[int, int, int, object]]:
        found = [(r.rdtype, r.covers, r.ttl, r) for r in node.rdatasets if r.rdtype != SOA]  # type: ignore[attr-defined]
        return sorted(found, key=lambda item: (item[0], item[1]))

    return rest(before) == rest(after)


def recompile_names(
    table: AnswerTable, zoneset: ZoneSet, plans: dict[bytes, list[dns.name.Name]], policy: ServedPolicy
) -> AnswerTable | None:
    """`table` after edits of tracked zones (`edit_plan`), as a table sharing its entries
    and carrying the difference (`Delta`); None when a new serial cannot be laid in place
    (the caller compiles the zones again). The shared indexes (`refs`, `keys`) only grow,
    so a table made and never served leaves nothing wrong behind."""
    old_zoneset, refs, live = table.zoneset, table.refs, table.entries
    shared, base = table.live, table.generation
    if shared is None or shared.entries is not live:  # the first edit over this dict: `table`
        shared, base = Live(live), 0  # learns that it shares it, and is stale once it moves on
        object.__setattr__(table, "live", shared)
        object.__setattr__(table, "generation", 0)
    delta = Delta(live, shared, base)
    sets = delta.sets
    compiled, keys, uses = dict(table.zones), dict(table.keys), dict(table.uses)
    reach = dict(table.reach) if table.reach is not None else None
    negatives = dict(table.negatives)
    staging: dict[bytes, Negatives] = {}  # zone -> its NODATA entries after the edit
    for origin in plans:  # first: the names rendered below find these by their new bodies
        renewed = _new_serial(negatives[origin], zoneset.by_key[origin], delta)
        if renewed is None:
            return None
        staging[origin] = renewed
    todo: dict[bytes, dns.name.Name | None] = {}
    for names in plans.values():
        todo.update((wire_key(name), name) for name in names)
    for key in list(todo):
        for user in refs.get(key, ()):
            todo.setdefault(user, None)
    whole = {zone for zone, used in table.uses.items() if used & plans.keys() and zone not in negatives}
    whole -= plans.keys()
    for origin in whole:
        _compile_whole(zoneset, zoneset.by_key[origin], policy, keys, delta, compiled, uses, reach)
    forced = forced_keys(policy)
    fresh: dict[bytes, list[bytes]] = {}  # zone -> keys new to the table
    new_refs: dict[bytes, set[bytes]] = {}
    for key, name in todo.items():
        zone = zoneset.find_key(key)
        if zone is None or zone.key in whole or key not in zone.name_keys or key in forced:
            continue  # a name action's entry stays as it is
        if zone.key in table.pending and key not in live:
            continue  # not compiled yet: the fill compiles it from this version
        if name is None:
            name = dns.name.from_wire(key, 0)[0]
        dropped = _rendered(live, old_zoneset, name, key)
        staged = None
        kept = negatives.get(zone.key)
        if kept is not None:
            staged = staging.get(zone.key)
            if staged is None:
                staged = staging[zone.key] = Negatives(dict(kept.shared))
        new_keys: list[bytes] = []
        new_uses: set[bytes] = set()
        new_reach: set[bytes] = set()
        compile_names(zoneset, zone, [name], sets, new_keys, new_uses, new_refs, staged, new_reach)
        delta.drops.extend(old for old in dropped if old not in sets)
        fresh.setdefault(zone.key, []).extend(k for k in new_keys if k not in live)
        if not new_uses <= uses.get(zone.key, NO_NAMES):
            uses[zone.key] = uses.get(zone.key, NO_NAMES) | new_uses
        if reach is not None and not new_reach <= reach.get(zone.key, NO_NAMES):
            reach[zone.key] = reach.get(zone.key, NO_NAMES) | new_reach  # grows only, as `uses`
    for origin, added in fresh.items():
        held = keys.get(origin, ())
        if isinstance(held, list):  # only grows: a key without an entry costs nothing
            held.extend(added)
        elif added:
            keys[origin] = [*held, *added]
    for origin in plans:
        compiled[origin] = _reindexed(compiled[origin], zoneset.by_key[origin])
    selectors = lay_dynamic(zoneset, policy, sets, lambda key: key in sets or key in live)
    delta.drops = [key for key in delta.drops if key not in sets]
    # Every answer is rendered: only now are the shared indexes changed.
    for target, users in new_refs.items():
        refs.setdefault(target, set()).update(users)
    negatives.update(staging)
    return replace(
        table,
        zones=compiled,
        zoneset=zoneset,
        selectors=selectors,
        forced=forced,
        keys=keys,
        uses=uses,
        reach=reach,
        pending=table.pending - whole,
        unfilled={origin: names for origin, names in table.unfilled.items() if origin not in whole},
        signed=any(zone.signed for zone in compiled.values()),
        negatives=negatives,
        live=shared,
        generation=base + 1,
        delta=delta,
    )


def _compile_whole(
    zoneset: ZoneSet,
    zone: ZoneData,
    policy: ServedPolicy,
    keys: dict[bytes, Sequence[bytes]],
    delta: Delta,
    compiled: dict[bytes, CompiledZone],
    uses: dict[bytes, frozenset[bytes]],
    reach: dict[bytes, frozenset[bytes]] | None,
) -> None:
    """An untracked zone that uses an edited one, compiled again into the delta (its name
    actions laid over it), its keys that are gone dropped."""
    origin = zone.key
    old_keys = keys.get(origin, ())
    entries: dict[bytes, Entry] = {}
    result = compile_zone(zoneset, zone, entries)
    new_keys = tuple(result.keys)
    for name, rcode in policy.forced.items():
        if zoneset.find(name) is zone:
            force(zoneset, entries, {origin: new_keys}, name, rcode)
    delta.sets.update(entries)
    delta.drops.extend(key for key in old_keys if key not in entries)
    compiled[origin], keys[origin], uses[origin] = result.zone, new_keys, frozenset(result.uses)
    if reach is not None:
        if result.reach:
            reach[origin] = frozenset(result.reach)
        else:
            reach.pop(origin, None)


def _rendered(entries: dict[bytes, Entry], old: ZoneSet, name: dns.name.Name, key: bytes) -> list[bytes]:
    """The keys of the entries `name` has (as compiled from `old`)."""
    qtypes = {int(DS)}
    zone = old.find_key(key)
    if zone is not None and key in zone.name_keys:
        qtypes.update(lookup(old, name, None).visited_types)
    return [k for k in (key, *(key + qtype.to_bytes(2, "big") for qtype in qtypes)) if k in entries]


def _reindexed(index: CompiledZone, zone: ZoneData) -> CompiledZone:
    """`index` for an edit of its zone that kept its cuts and wildcards: the names of the new
    version and its NXDOMAIN with the new SOA."""
    nxdomain, compressed = nxdomain_entries(zone)
    return replace(
        index,
        names=zone.name_keys,
        nxdomain=nxdomain,
        nx_compressed=compressed,
        nx_pointers=pointers_of_one_rr(compressed.body),
        nx_recent=[(-1, b"")],
    )


def _new_serial(negatives: Negatives, zone: ZoneData, delta: Delta) -> Negatives | None:
    """Each shared NODATA body of `zone` rendered again with its SOA, noted in `delta` to be
    laid into the entry in place; the entries found by their new bodies. None when a body
    would change length (never for a serial: the caller compiles the zone again)."""
    shared: dict[bytes, Shared] = {}
    soa = [(zone.negative_soa, True)]
    for group in negatives.shared.values():
        outcome, rcode, aa = group.meta
        body = render(Answer(outcome, rcode=rcode, authoritative=aa, authority=soa), group.name).body
        if len(body) != len(group.entry.body):
            return None
        if body != group.entry.body:
            delta.bodies.append((group.entry, body))
        shared.setdefault(body, group)
    return Negatives(shared)

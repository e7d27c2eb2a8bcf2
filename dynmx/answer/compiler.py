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
those whose answers use them, and the new SOA serial costs a few dozen renders plus one
pass over the zone's NODATA keys. An edit it cannot judge that way (a wildcard, a cut,
the apex beyond its serial, a signed zone, an overlay, a name removed) compiles the zone.

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

import itertools
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field, replace

import dns.name
import dns.rdatatype
import dns.zone

from dynmx.answer.dynamic import (
    REFUSED_ENTRY,
    Selector,
    ServedPolicy,
    SignedSelector,
    carrier,
    default_rng,
    render_state,
)
from dynmx.answer.lookup import CNAME, DS, SOA, TARGET_TYPES, Answer, ExtrasMemo, Outcome, lookup
from dynmx.answer.render import render
from dynmx.answer.zoneset import WILDCARD, ZoneData, ZoneSet, name_key
from dynmx.wire.response import RCODE_NXDOMAIN, Entry

wire_key = name_key  # the table key of a name: its uncompressed wire form, lower-cased (RFC 4343)
# Prefix of the keys of DO=1 entries: a wire name never starts with a byte over 63.
DO_KEY = b"\xfe"
# A zone with this many names records, per name, what its answers use (`refs`, `Negatives`):
# an edit then renders only the names it touches. Smaller zones are compiled again whole.
TRACK_FROM = 1000
# Keys repointed per C call by a new serial: one call over millions holds the GIL, and with
# it the event loop, for tens of milliseconds; a slice, for a few.
SLICE = 65_536


@dataclass(slots=True)
class Shared:
    """One NODATA entry of a zone, the table keys that hold it, and a name it answers (to
    render it again from)."""

    entry: Entry
    name: dns.name.Name
    meta: tuple[Outcome, int, bool]  # outcome, rcode, authoritative
    keys: dict[bytes, None]


@dataclass(slots=True)
class Negatives:
    """The NODATA entries of one zone (its SOA alone in authority), by body. Equal bodies
    are one entry (a few dozen for a million names: the body varies only with the
    compression against the question), so a new serial renders those few again and
    points their keys at them (`dict.fromkeys`, in C). With `base` (an edit being
    rendered), bodies found there are reused and the keys noted here, merged at the end."""

    shared: dict[bytes, Shared] = field(default_factory=dict)
    base: dict[bytes, Shared] | None = None


@dataclass(frozen=True, slots=True)
class CompiledZone:
    """Byte-level indexes of one zone, for answering missing names without dnspython."""

    origin: bytes
    names: Set[bytes]
    cuts: frozenset[bytes]
    wildcard_parents: frozenset[bytes]
    nxdomain: Entry  # uncompressed: valid after any question
    # The same body compressed against the zone's origin at the end of the question, as NSD
    # sends it (about 30 bytes shorter: less amplification); pointers move with the qname.
    nx_compressed: Entry | None = None
    nx_pointers: tuple[int, ...] = ()
    # False while the zone is pending in a staged table: its names have no entries yet, so a
    # miss is not an NXDOMAIN on bytes but a question for the slow path.
    complete: bool = True
    # The body for the qname length asked last: one per zone, however many lengths are asked.
    nx_recent: list[tuple[int, bytes]] = field(default_factory=lambda: [(-1, b"")])
    # Pre-signed: DO=1 questions are answered from the DO_KEY entries, or by the slow path.
    signed: bool = False

    @property
    def nx_template(self) -> Entry:
        """The NXDOMAIN entry whose header serves every question; `nx_body` gives its body."""
        return self.nx_compressed or self.nxdomain

    def nx_body(self, qname_length: int) -> bytes:
        """The NXDOMAIN body after a question whose name is `qname_length` bytes: patched when
        the length differs from the last one asked (a few microseconds), so random names
        across many zones cost one body per zone, not one per zone and length."""
        if self.nx_compressed is None:
            return self.nxdomain.body
        length, body = self.nx_recent[0]
        if length == qname_length:
            return body
        shift = qname_length - len(self.origin)
        patched = bytearray(self.nx_compressed.body)
        for at in self.nx_pointers:
            target = ((patched[at] << 8) | patched[at + 1]) & 0x3FFF
            patched[at : at + 2] = (0xC000 | (target + shift)).to_bytes(2, "big")
        body = bytes(patched)
        self.nx_recent[0] = (qname_length, body)
        return body

    def nxdomain_for(self, qname_length: int) -> Entry:
        """The whole NXDOMAIN entry after a question of this length (slow path, truncation)."""
        return replace(self.nx_template, body=self.nx_body(qname_length))

    def plain_nxdomain(self, qname: bytes) -> bool:
        """True when `qname` (lower wire, not in the table) is a plain NXDOMAIN in this zone.

        A cut above means a referral, a wildcard at the closest encloser means synthesis;
        both are left to the slow path.
        """
        closest = self._closest_encloser(qname)
        return closest is not None and closest not in self.wildcard_parents

    def wildcard_parent(self, qname: bytes) -> bytes | None:
        """The closest encloser when `qname` (lower wire, not in the zone) is synthesised from its
        wildcard with no cut on the way (RFC 4592 3.3.1): every such qname gets the same answer."""
        closest = self._closest_encloser(qname)
        return closest if closest is not None and closest in self.wildcard_parents else None

    def closest_encloser(self, qname: bytes) -> bytes | None:
        """The longest existing ancestor of a missing `qname` (lower wire), or None when a cut
        is on the way."""
        return self._closest_encloser(qname)

    def _closest_encloser(self, qname: bytes) -> bytes | None:
        """The longest existing ancestor of a missing `qname`, or None when a cut is on the way."""
        closest: bytes | None = None
        pos = qname[0] + 1
        origin_len = len(self.origin)
        while len(qname) - pos > origin_len:
            suffix = qname[pos:]
            if suffix in self.cuts:
                return None
            if closest is None and suffix in self.names:
                closest = suffix
            pos += qname[pos] + 1
        return self.origin if closest is None else closest


@dataclass(frozen=True, slots=True)
class AnswerTable:
    """One immutable snapshot of everything served; swapped whole on change."""

    entries: dict[bytes, Entry]
    zones: dict[bytes, CompiledZone]
    zoneset: ZoneSet
    selectors: dict[tuple[dns.name.Name, int], Selector] = field(default_factory=dict)
    forced: frozenset[bytes] = frozenset()  # names whose every type is NXDOMAIN or REFUSED
    keys: dict[bytes, Sequence[bytes]] = field(default_factory=dict)  # zone origin -> its entry keys
    uses: dict[bytes, frozenset[bytes]] = field(default_factory=dict)  # zone -> other zones it answers from
    pending: frozenset[bytes] = frozenset()  # zones indexed but not compiled yet (a staged table)
    # Of a pending zone compiled in part, the names still to compile; a pending zone that is
    # not here has all its names to go.
    unfilled: dict[bytes, tuple[dns.name.Name, ...]] = field(default_factory=dict)
    signed: bool = False  # some zone is pre-signed: DO=1 queries look at DO_KEY entries first
    # Of zones of TRACK_FROM names or more: name key -> keys of the names whose answers use
    # it (a CNAME, MX, NS or SRV target; a zone's apex for answers holding its SOA beside
    # other data). One dict for every table that follows: it only grows, so a stale user
    # costs one render, never a stale answer.
    refs: dict[bytes, set[bytes]] = field(default_factory=dict)
    negatives: dict[bytes, Negatives] = field(default_factory=dict)  # zone -> its NODATA entries

    def selectors_of(self, pool: str) -> list[Selector]:
        """The selectors serving one pool (its name and its hint names)."""
        return [s for s in self.selectors.values() if s.name == pool]

    def find_zone(self, qname: bytes) -> CompiledZone | None:
        """The longest served origin that `qname` (lower wire) is at or below."""
        pos = 0
        zones = self.zones
        while True:
            zone = zones.get(qname[pos:])
            if zone is not None:
                return zone
            length = qname[pos]
            if length == 0:
                return None
            pos += length + 1


_NONE: frozenset[bytes] = frozenset()  # most zones have no cut and no wildcard: one empty set for all


def _same(a: Entry, b: Entry) -> bool:
    return a.body == b.body and a.rcode == b.rcode and a.authoritative == b.authoritative


@dataclass(slots=True)
class _Compiled:
    zone: CompiledZone
    keys: list[bytes]
    uses: set[bytes]
    negatives: Negatives | None = None


def compile_zone(
    zoneset: ZoneSet, zone: ZoneData, entries: dict[bytes, Entry], refs: dict[bytes, set[bytes]] | None = None
) -> _Compiled:
    """Add one zone's entries to `entries`; return its byte-level index, keys and zones used
    (and, with `refs` for a zone of TRACK_FROM names or more, its `Negatives`)."""
    keys: list[bytes] = []
    uses: set[bytes] = set()
    negatives = Negatives() if refs is not None and tracked(zone) else None
    compile_names(zoneset, zone, zone.names, entries, keys, uses, refs, negatives)
    return _Compiled(index_zone(zone), keys, uses, negatives)


def tracked(zone: ZoneData) -> bool:
    """Whether an edit of this zone renders only the names it touches (see `Negatives`)."""
    return len(zone.names) >= TRACK_FROM and not zone.signed and zone.signer is None


def compile_names(
    zoneset: ZoneSet,
    zone: ZoneData,
    names: Iterable[dns.name.Name],
    entries: dict[bytes, Entry],
    keys: list[bytes],
    uses: set[bytes],
    refs: dict[bytes, set[bytes]] | None = None,
    negatives: Negatives | None = None,
) -> None:
    """Add the entries of these names of one zone to `entries`, their keys to `keys`, and
    the other zones their answers used to `uses`. A name that a zone below serves (occluded
    by it) is left to that zone: its entries are that zone's, whatever this one does.
    With `negatives` (a tracked zone), what each answer uses goes into `refs` and its
    NODATA entries are shared through `negatives`."""
    own = zone.key
    apex_labels = len(zone.origin.labels)  # names here are at or below the apex: cheaper than ==

    def note(answer: Answer) -> Answer:
        # A chain into another zone, or DS answered by the parent: an edit there recompiles us.
        uses.update(other for other in answer.zones if other != own)
        return answer

    memo: ExtrasMemo = {}
    for name in names:
        key = wire_key(name)
        if zoneset.find_key(key) is not zone:
            continue
        for do in (False, True) if zone.signed else (False,):
            prefix = DO_KEY if do else b""
            default = note(lookup(zoneset, name, None, memo=memo, do=do))
            default_entry = render(default, name)
            if negatives is not None and refs is not None:
                default_entry = _track(zone, name, key, key, default, default_entry, refs, negatives)
            entries[prefix + key] = default_entry
            keys.append(prefix + key)
            qtypes = set(default.visited_types)
            if len(name.labels) == apex_labels or (zone.cuts and name in zone.cuts):
                qtypes.add(DS)
            elif do and name.labels[0] == WILDCARD:
                qtypes.add(DS)  # NSD orders the NSEC3 proof of DS at a wildcard's own name apart
            qtypes.discard(dns.rdatatype.ANY)
            for qtype in sorted(qtypes):
                answer = note(lookup(zoneset, name, qtype, memo=memo, do=do))
                entry = render(answer, name)
                if not _same(entry, default_entry):
                    typed = prefix + key + qtype.to_bytes(2, "big")  # one object: table and key list
                    if negatives is not None and refs is not None:
                        entry = _track(zone, name, key, typed, answer, entry, refs, negatives)
                    entries[typed] = entry
                    keys.append(typed)


def _track(
    zone: ZoneData,
    name: dns.name.Name,
    key: bytes,
    entry_key: bytes,
    answer: Answer,
    entry: Entry,
    refs: dict[bytes, set[bytes]],
    negatives: Negatives,
) -> Entry:
    """Note what `answer` (of `name`, stored under `entry_key`) uses; a NODATA of the zone
    alone is shared through `negatives` and returned as the shared entry."""
    alone = not answer.answer and not answer.additional and len(answer.authority) == 1
    if alone and answer.authority[0][0] is zone.negative_soa and not answer.synthesized:
        body = entry.body
        found = negatives.shared.get(body)
        if found is None and negatives.base is not None and body in negatives.base:
            kept = negatives.base[body]
            found = negatives.shared[body] = Shared(kept.entry, kept.name, kept.meta, {})
        if found is None:
            meta = (answer.outcome, answer.rcode, answer.authoritative)
            found = negatives.shared[body] = Shared(entry, name, meta, {})
        elif not _same(found.entry, entry):
            return entry  # never: one body, one rcode
        found.keys[entry_key] = None
        return found.entry
    apex_ns = zone.apex_ns  # in most answers; a change of it compiles the zone again
    for ref in [*answer.answer, *(ref for ref, _ in answer.authority)]:
        owner, rdataset = ref
        rdtype = rdataset.rdtype
        if rdtype == SOA:
            refs.setdefault(wire_key(owner), set()).add(key)  # a negative answer beside other data
        elif (rdtype == CNAME or rdtype in TARGET_TYPES) and ref is not apex_ns:
            for rdata in rdataset:
                target = getattr(rdata, "exchange", None) or rdata.target
                refs.setdefault(wire_key(target), set()).add(key)
    return entry


def _nxdomain(zone: ZoneData) -> tuple[Entry, Entry]:
    """The zone's NXDOMAIN: uncompressed, and compressed against the origin as the question."""
    nxdomain = Answer(Outcome.NAME_ERROR, rcode=3, authority=[(zone.negative_soa, True)])
    return render(nxdomain, None), render(nxdomain, zone.origin)


def index_zone(zone: ZoneData, complete: bool = True) -> CompiledZone:
    """The byte-level index of one zone: what answers its missing names."""
    nxdomain, compressed = _nxdomain(zone)
    return CompiledZone(
        origin=zone.key,
        names=zone.name_keys,
        cuts=frozenset(wire_key(n) for n in zone.cuts) or _NONE,
        wildcard_parents=frozenset(
            wire_key(n.parent()) for n in zone.names if n.labels and n.labels[0] == WILDCARD
        )
        or _NONE,
        nxdomain=nxdomain,
        nx_compressed=compressed,
        nx_pointers=_pointers_of_one_rr(compressed.body),
        complete=complete,
        signed=zone.signed,
    )


def _pointers_of_one_rr(body: bytes) -> tuple[int, ...]:
    """Where the compression pointers are in a body of one SOA record (owner, MNAME, RNAME)."""
    found: list[int] = []
    pos = 0

    def skip_name() -> None:
        nonlocal pos
        while True:
            length = body[pos]
            if length & 0xC0 == 0xC0:
                found.append(pos)
                pos += 2
                return
            pos += length + 1
            if length == 0:
                return

    skip_name()
    pos += 10  # type, class, TTL, RDLENGTH
    skip_name()
    skip_name()
    return tuple(found)


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
    for zone in zoneset:
        result = compile_zone(zoneset, zone, entries, refs)
        origin = result.zone.origin
        compiled[origin], keys[origin], uses[origin] = result.zone, tuple(result.keys), frozenset(result.uses)
        if result.negatives is not None:
            negatives[origin] = result.negatives
    table = _with_policy(zoneset, entries, compiled, keys, uses, policy or ServedPolicy())
    return replace(table, refs=refs, negatives=negatives)


def staged_table(zones: Iterable[ZoneData], policy: ServedPolicy | None = None) -> AnswerTable:
    """Every zone indexed and pending, the policy laid over: correct answers at once, from
    the slow path, while `fill_table` compiles the zones."""
    zoneset = ZoneSet.of(zones)
    compiled = {index.origin: index for index in (index_zone(zone, complete=False) for zone in zoneset)}
    table = _with_policy(zoneset, {}, compiled, {}, {}, policy or ServedPolicy())
    return replace(table, pending=frozenset(compiled))


def fill_table(table: AnswerTable, origins: Iterable[bytes], max_names: int | None = None) -> AnswerTable:
    """`table` with these pending zones compiled, as far as `max_names` names allow: a large
    zone may take several calls (its names compiled so far are answered from the table,
    the others by the slow path). Pool carriers and name actions stay on top as they were
    (the same selectors: a round-robin goes on where it had got to)."""
    entries = dict(table.entries)
    compiled, keys, uses = dict(table.zones), dict(table.keys), dict(table.uses)
    unfilled = dict(table.unfilled)
    negatives = dict(table.negatives)
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
        now, rest = (names, ()) if budget is None else (names[:budget], names[budget:])
        new_keys: list[bytes] = []
        new_uses: set[bytes] = set()
        tracking = negatives.get(origin)
        compile_names(table.zoneset, zone, now, entries, new_keys, new_uses, table.refs, tracking)
        for name in table.forced:
            _drop_name(entries, new_keys, name)
        keys[origin] = (*keys.get(origin, ()), *new_keys)
        uses[origin] = uses.get(origin, _NONE) | new_uses
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
    `fill_table`. `zones` is the whole new set; a new zone or a removed one changes what
    every chain may reach, so everything is compiled again (staged, with `stage_from`
    names or more in all)."""
    zoneset = ZoneSet.of(zones)
    if len(zoneset) != len(table.zones) or any(zone.key not in table.zones for zone in zoneset):
        if stage_from is not None and sum(len(zone.names) for zone in zoneset) >= stage_from:
            return staged_table(zoneset, policy)
        return compile_table(zoneset, policy)
    edited = {wire_key(name) for name in changed} & zoneset.by_key.keys()
    plans = {origin: edit_plan(table, zoneset.by_key[origin], policy) for origin in edited}
    if plans and all(names is not None for names in plans.values()):
        return recompile_names(table, zoneset, {o: n for o, n in plans.items() if n is not None}, policy)
    dirty = {wire_key(name) for name in changed}
    dirty |= {zone for zone, used in table.uses.items() if used & dirty}
    dirty &= zoneset.by_key.keys()  # a zone already gone from both (removed by an earlier compile)
    entries = dict(table.entries)
    compiled, keys, uses = dict(table.zones), dict(table.keys), dict(table.uses)
    negatives = dict(table.negatives)
    for origin in dirty:
        for key in keys.get(origin, ()):
            entries.pop(key, None)
    staged: set[bytes] = set()
    for origin in dirty:
        zone = zoneset.by_key[origin]
        negatives.pop(origin, None)
        if stage_from is not None and len(zone.names) >= stage_from:
            compiled[origin], keys[origin], uses[origin] = index_zone(zone, complete=False), (), _NONE
            staged.add(origin)
            continue
        result = compile_zone(zoneset, zone, entries, table.refs)
        compiled[origin], keys[origin], uses[origin] = result.zone, tuple(result.keys), frozenset(result.uses)
        if result.negatives is not None:
            negatives[origin] = result.negatives
    pending = (table.pending - dirty) | staged
    unfilled = {origin: names for origin, names in table.unfilled.items() if origin not in dirty}
    recompiled = _with_policy(zoneset, entries, compiled, keys, uses, policy)
    return replace(recompiled, pending=pending, unfilled=unfilled, refs=table.refs, negatives=negatives)


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


def _serial_only(old: ZoneData, new: ZoneData) -> bool:
    """Whether the apex of `new` differs from `old`'s in its SOA serial at most."""
    before, after = old.node(old.origin), new.node(new.origin)
    if before is None or after is None:
        return False
    old_soa, new_soa = old.soa[1], new.soa[1]
    if old_soa.ttl != new_soa.ttl or len(old_soa) != 1 or len(new_soa) != 1:
        return False
    if old_soa[0].replace(serial=new_soa[0].serial) != new_soa[0]:
        return False

    def rest(node: object) -> list[tuple[int, int, int, object]]:
        found = [(r.rdtype, r.covers, r.ttl, r) for r in node.rdatasets if r.rdtype != SOA]  # type: ignore[attr-defined]
        return sorted(found, key=lambda item: (item[0], item[1]))

    return rest(before) == rest(after)


def recompile_names(
    table: AnswerTable, zoneset: ZoneSet, plans: dict[bytes, list[dns.name.Name]], policy: ServedPolicy
) -> AnswerTable:
    """`table` after edits of tracked zones (`edit_plan`): the names the edits touched, and
    the names whose answers use them (`refs`, every zone), are rendered again; zones too
    small to be tracked that use an edited one are compiled again whole; each edited zone's
    shared NODATA entries are rendered once with its new SOA. The shared indexes (`refs`,
    each zone's NODATA keys) change only once every answer is rendered."""
    old_zoneset, refs = table.zoneset, table.refs
    entries = dict(table.entries)  # one C call; fastest when no key was removed since (rare)
    compiled, keys, uses = dict(table.zones), dict(table.keys), dict(table.uses)
    negatives = dict(table.negatives)
    todo: dict[bytes, dns.name.Name | None] = {}
    for names in plans.values():
        todo.update((wire_key(name), name) for name in names)
    for key in list(todo):
        for user in refs.get(key, ()):
            todo.setdefault(user, None)
    whole = {zone for zone, used in table.uses.items() if used & plans.keys() and zone not in negatives}
    whole -= plans.keys()
    for origin in whole:
        for key in keys.get(origin, ()):
            entries.pop(key, None)
        result = compile_zone(zoneset, zoneset.by_key[origin], entries)
        compiled[origin], keys[origin], uses[origin] = result.zone, tuple(result.keys), frozenset(result.uses)
    staging: dict[bytes, Negatives] = {}  # zone -> the NODATA keys new to it, by body
    gone: dict[bytes, list[tuple[bytes, Entry]]] = {}  # zone -> entries dropped
    fresh: dict[bytes, list[bytes]] = {}  # zone -> keys new to the table
    new_refs: dict[bytes, set[bytes]] = {}
    for key, name in todo.items():
        zone = zoneset.find_key(key)
        if zone is None or zone.key in whole or key not in zone.name_keys:
            continue
        if zone.key in table.pending and key not in table.entries:
            continue  # not compiled yet: the fill compiles it from this version
        if name is None:
            name = dns.name.from_wire(key, 0)[0]
        dropped = _rendered(entries, old_zoneset, name, key)
        kept = negatives.get(zone.key)
        staged = None
        if kept is not None:
            gone.setdefault(zone.key, []).extend(dropped)
            staged = staging.get(zone.key)
            if staged is None:
                staged = staging[zone.key] = Negatives(base=kept.shared)
        new_keys: list[bytes] = []
        new_uses: set[bytes] = set()
        compile_names(zoneset, zone, [name], entries, new_keys, new_uses, new_refs, staged)
        # Written over in place, removed only when gone: a dict without removals is copied
        # by the next edit several times faster.
        for old_key, _ in dropped:
            if old_key not in new_keys:
                del entries[old_key]
        fresh.setdefault(zone.key, []).extend(k for k in new_keys if k not in table.entries)
        if not new_uses <= uses.get(zone.key, _NONE):
            uses[zone.key] = uses.get(zone.key, _NONE) | new_uses
    for origin, added in fresh.items():
        held = keys.get(origin, ())
        if isinstance(held, list):  # only grows: a key without an entry costs nothing
            held.extend(added)
        elif added:
            keys[origin] = [*held, *added]
    for origin in plans:
        compiled[origin] = _reindexed(compiled[origin], zoneset.by_key[origin])
    # Every answer is rendered: only now are the shared indexes changed.
    for target, users in new_refs.items():
        refs.setdefault(target, set()).update(users)
    for origin, staged in staging.items():
        shared = dict(negatives[origin].shared)
        for key, entry in gone.get(origin, ()):
            group = shared.get(entry.body)
            if group is not None and group.entry is entry:
                group.keys.pop(key, None)
        for body, new in staged.shared.items():
            group = shared.get(body)
            if group is not None and group.entry is new.entry:
                group.keys.update(new.keys)
            else:
                shared[body] = new
        negatives[origin] = Negatives(shared)
    for origin in plans:
        negatives[origin] = _new_serial(entries, negatives[origin], zoneset.by_key[origin])
    return replace(
        _with_policy(zoneset, entries, compiled, keys, uses, policy),
        pending=table.pending - whole,
        unfilled={origin: names for origin, names in table.unfilled.items() if origin not in whole},
        refs=refs,
        negatives=negatives,
    )


def _rendered(
    entries: dict[bytes, Entry], old: ZoneSet, name: dns.name.Name, key: bytes
) -> list[tuple[bytes, Entry]]:
    """The entries `name` has (as compiled from `old`), with their keys."""
    qtypes = {int(DS)}
    zone = old.find_key(key)
    if zone is not None and key in zone.name_keys:
        qtypes.update(lookup(old, name, None).visited_types)
    dropped = []
    for candidate in (key, *(key + qtype.to_bytes(2, "big") for qtype in qtypes)):
        entry = entries.get(candidate)
        if entry is not None:
            dropped.append((candidate, entry))
    return dropped


def _reindexed(index: CompiledZone, zone: ZoneData) -> CompiledZone:
    """`index` for an edit of its zone that kept its cuts and wildcards: the names of the new
    version and its NXDOMAIN with the new SOA."""
    nxdomain, compressed = _nxdomain(zone)
    return replace(
        index,
        names=zone.name_keys,
        nxdomain=nxdomain,
        nx_compressed=compressed,
        nx_pointers=_pointers_of_one_rr(compressed.body),
        nx_recent=[(-1, b"")],
    )


def _new_serial(entries: dict[bytes, Entry], negatives: Negatives, zone: ZoneData) -> Negatives:
    """Each shared NODATA body rendered again with `zone`'s SOA, and its keys pointed at the
    new entry. A key a pool's carrier holds is set too; the policy lays its carrier again."""
    shared: dict[bytes, Shared] = {}
    soa = [(zone.negative_soa, True)]
    for group in negatives.shared.values():
        outcome, rcode, aa = group.meta
        rendered = render(Answer(outcome, rcode=rcode, authoritative=aa, authority=soa), group.name)
        kept = shared.get(rendered.body)
        if kept is None:
            kept = shared[rendered.body] = Shared(rendered, group.name, group.meta, group.keys)
        else:
            kept.keys.update(group.keys)  # an old body and one rendered by this edit: one now
        keys = iter(group.keys)
        for _ in range(0, len(group.keys), SLICE):
            entries.update(zip(itertools.islice(keys, SLICE), itertools.repeat(kept.entry)))
    return Negatives(shared)


def _with_policy(
    zoneset: ZoneSet,
    entries: dict[bytes, Entry],
    compiled: dict[bytes, CompiledZone],
    keys: dict[bytes, Sequence[bytes]],
    uses: dict[bytes, frozenset[bytes]],
    policy: ServedPolicy,
) -> AnswerTable:
    for name, rcode in policy.forced.items():
        _force(zoneset, entries, keys, name, rcode)
    selectors: dict[tuple[dns.name.Name, int], Selector] = {}
    for spec in policy.dynamic:
        state = render_state(zoneset, spec)
        selector = Selector(spec.name, state, policy.rules, policy.rng or default_rng())
        selectors[(spec.owner, spec.rdtype)] = selector
        typed = wire_key(spec.owner) + spec.rdtype.to_bytes(2, "big")
        entries[typed] = carrier(state, selector)
        if DO_KEY + typed in entries:  # a pool's answers are its own, with DO=1 too
            signed = state.signed  # signed by dynmx: each variant with its RRSIG
            entries[DO_KEY + typed] = (
                entries[typed] if signed is None else carrier(signed, SignedSelector(selector))
            )
    forced = frozenset(wire_key(name) for name in policy.forced)
    return AnswerTable(
        entries=entries,
        zones=compiled,
        zoneset=zoneset,
        selectors=selectors,
        forced=forced,
        keys=keys,
        uses=uses,
        signed=any(zone.signed for zone in compiled.values()),
    )


def _force(
    zoneset: ZoneSet,
    entries: dict[bytes, Entry],
    keys: dict[bytes, Sequence[bytes]],
    name: dns.name.Name,
    rcode: int,
) -> None:
    """Answer every qtype at `name` with NXDOMAIN or REFUSED (a name action)."""
    key = wire_key(name)
    zone = zoneset.find(name)
    _drop_name(entries, keys.get(zone.key, ()) if zone is not None else (), key)
    if rcode == RCODE_NXDOMAIN and zone is not None:
        answer = Answer(Outcome.NAME_ERROR, rcode=rcode, authority=[(zone.negative_soa, True)])
        entries[key] = render(answer, name)
    else:
        entries[key] = REFUSED_ENTRY


def _drop_name(entries: dict[bytes, Entry], zone_keys: Iterable[bytes], key: bytes) -> None:
    """Remove the entries of one name (its default and every typed one, DO=1 ones included)
    among a zone's keys."""
    for existing in [k for k in zone_keys if k[: len(key)] == key and len(k) in (len(key), len(key) + 2)]:
        entries.pop(existing, None)
    signed = DO_KEY + key
    lengths = (len(signed), len(signed) + 2)
    for existing in [k for k in zone_keys if k[: len(signed)] == signed and len(k) in lengths]:
        entries.pop(existing, None)

"""The answer table: ready responses by question, and the byte-level index of each zone.

`AnswerTable` is what the engine serves from. A table made by an edit of a large zone
(`incremental.recompile_names`) shares its entries dict with the table it was made from
and carries the edit as a `Delta`, laid onto that dict by `settle` in one step on the
thread that answers queries (the engine's swap): nothing is copied, and a reader on that
thread sees the table before the edit or after it, never between.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass, field, replace

import dns.name

from dynmx.answer.dynamic import Selector
from dynmx.answer.lookup import Answer, Outcome
from dynmx.answer.render import render
from dynmx.answer.zoneset import WILDCARD, ZoneData, ZoneSet, name_key
from dynmx.wire.response import Entry, RRsetSpan

wire_key = name_key  # the table key of a name: its uncompressed wire form, lower-cased (RFC 4343)
# Prefix of the keys of DO=1 entries: a wire name never starts with a byte over 63.
DO_KEY = b"\xfe"


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


@dataclass(slots=True)
class Shared:
    """One NODATA entry of a tracked zone (its SOA alone in authority), held by every key
    whose answer has its body, and a name it answers (to render it again from)."""

    entry: Entry
    name: dns.name.Name
    meta: tuple[Outcome, int, bool]  # outcome, rcode, authoritative


@dataclass(slots=True)
class Negatives:
    """The NODATA entries of one tracked zone, by body. Equal bodies are one entry (a few
    dozen for a million names: the body varies only with the compression against the
    question), so a new serial renders those few again and gives each its new body in
    place (`Delta.bodies`): no key is touched."""

    shared: dict[bytes, Shared] = field(default_factory=dict)


@dataclass(slots=True)
class Live:
    """An entries dict that tables made by edits share, and how many deltas it holds."""

    entries: dict[bytes, Entry]
    generation: int = 0


@dataclass(slots=True)
class Delta:
    """What an edit changes in a shared entries dict: entries set, keys removed, and shared
    NODATA entries given a new body (the SOA serial: same length, same heads). `apply`
    does it in a few dict and attribute sets, on the thread that answers."""

    entries: dict[bytes, Entry]
    live: Live
    base: int  # the generation it was computed against
    sets: dict[bytes, Entry] = field(default_factory=dict)
    drops: list[bytes] = field(default_factory=list)
    bodies: list[tuple[Entry, bytes]] = field(default_factory=list)
    applied: bool = False

    def apply(self) -> None:
        if self.applied:
            return
        if self.live.generation != self.base:
            raise RuntimeError("an edit's delta was computed against entries that changed since")
        for entry, body in self.bodies:
            object.__setattr__(entry, "body", body)  # frozen for readers, not for the writer
        self.entries.update(self.sets)
        for key in self.drops:
            self.entries.pop(key, None)
        self.live.generation += 1
        self.applied = True


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
    # Zone -> the names outside it that its CNAME chains reached (in another zone or in none);
    # a zone not here reached none. None: not known (a table made elsewhere, the answer
    # store's): adding or removing a zone then compiles every zone (`answer.reach`).
    reach: dict[bytes, frozenset[bytes]] | None = None
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
    # Made by an edit (`incremental`): the entries dict it shares with the table it was made
    # from, and how many deltas that dict holds once this table is settled. `delta`: this
    # table's own, until `settle`. A table whose `entries` is not `live.entries` (None, or
    # entries copied since) holds a dict of its own that no delta has touched.
    live: Live | None = field(default=None, compare=False, repr=False)
    generation: int = 0
    delta: Delta | None = field(default=None, compare=False, repr=False)

    def settle(self) -> AnswerTable:
        """This table, its delta laid onto the shared entries (at most once). Called where it
        starts being served (`Engine.swap`): until then readers see the previous table whole."""
        if self.delta is not None:
            self.delta.apply()
        return self

    @property
    def current(self) -> bool:
        """Whether `entries` holds this table's answers (no later edit's delta laid over them)."""
        live = self.live
        return live is None or live.entries is not self.entries or live.generation == self.generation

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


NO_NAMES: frozenset[bytes] = frozenset()  # most zones have no cut and no wildcard: one empty set for all

# Entries by content, for `shared_entry`: cleared when full (a miss costs one more object).
_SHARED: dict[tuple[bytes, int, bool, tuple[RRsetSpan, ...], bool], Entry] = {}
SHARED_MAX = 1 << 16


def shared_entry(entry: Entry) -> Entry:
    """One entry for every equal static one. Names in a body are compressed against the
    question, so zones made from one template (a hoster's) have byte-equal answers: a
    hundred thousand such zones hold a few dozen entries, not a million. Not for an entry
    whose body an edit lays anew in place (a tracked zone's `Shared` NODATA): it is its own."""
    if entry.selector is not None:
        return entry
    key = (entry.body, entry.rcode, entry.authoritative, entry.spans, entry.partial_tc)
    found = _SHARED.get(key)
    if found is not None:
        return found
    if len(_SHARED) >= SHARED_MAX:
        _SHARED.clear()
    _SHARED[key] = entry
    return entry


def nxdomain_entries(zone: ZoneData) -> tuple[Entry, Entry]:
    """The zone's NXDOMAIN: uncompressed, and compressed against the origin as the question."""
    nxdomain = Answer(Outcome.NAME_ERROR, rcode=3, authority=[(zone.negative_soa, True)])
    return render(nxdomain, None), render(nxdomain, zone.origin)


def index_zone(zone: ZoneData, complete: bool = True) -> CompiledZone:
    """The byte-level index of one zone: what answers its missing names. A zone read with its
    index already made (`app.zonescan.CompactZoneData.staged`) is not looked at again."""
    made: CompiledZone | None = getattr(zone, "staged", None)
    if made is not None:
        return made if not complete else replace(made, complete=True)
    nxdomain, compressed = nxdomain_entries(zone)
    return CompiledZone(
        origin=zone.key,
        names=zone.name_keys,
        cuts=frozenset(wire_key(n) for n in zone.cuts) or NO_NAMES,
        wildcard_parents=frozenset(
            wire_key(n.parent()) for n in zone.names if n.labels and n.labels[0] == WILDCARD
        )
        or NO_NAMES,
        nxdomain=nxdomain,
        nx_compressed=shared_entry(compressed),
        nx_pointers=pointers_of_one_rr(compressed.body),
        complete=complete,
        signed=zone.signed,
    )


def pointers_of_one_rr(body: bytes) -> tuple[int, ...]:
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

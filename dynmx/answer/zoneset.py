"""The zones being served, indexed for lookups: existing names, empty non-terminals, cuts."""

from __future__ import annotations

import functools
import itertools
import operator
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from typing import TypeVar

import dns.name
import dns.node
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from dynmx.zone.nodes import VersionNodes

IN = dns.rdataclass.IN
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
NSEC3 = dns.rdatatype.NSEC3
RRSIG = dns.rdatatype.RRSIG
WILDCARD = b"*"


# An RRset as the lookup hands it on: the owner to write (the query name for wildcard
# synthesis, RFC 4592 2.1.1) and the zone's own rdataset, never copied.
RRsetRef = tuple[dns.name.Name, dns.rdataset.Rdataset]
# (owner, RRset, original TTL or 0) -> the RRSIG rdataset to serve with it
Signer = Callable[[dns.name.Name, dns.rdataset.Rdataset, int], dns.rdataset.Rdataset]


def with_ttl(rdataset: dns.rdataset.Rdataset, ttl: int) -> dns.rdataset.Rdataset:
    """A copy with another TTL. Copied, not built again: adding an rdata hashes its wire
    form, a third of indexing a small zone."""
    copied = dns.rdataset.Rdataset(rdataset.rdclass, rdataset.rdtype, rdataset.covers, ttl)
    copied.items.update(rdataset.items)  # a dict's own hashes are reused
    return copied


T = TypeVar("T", bound=Hashable)


class Grown(Set[T]):
    """A set made from a large one plus a few members, without copying the large one: an
    edit adds its names to a 1,000,000-name index in time that follows the edit. Merged
    into one set again once the additions are a sixty-fourth of it (rarely: amortised)."""

    __slots__ = ("added", "base")

    def __init__(self, base: Set[T], added: frozenset[T]) -> None:
        self.base = base
        self.added = added

    @classmethod
    def of(cls, before: Set[T], new: Iterable[T]) -> Set[T]:
        """`before` with `new` (none of them in it) added."""
        base, added = (before.base, before.added) if isinstance(before, Grown) else (before, frozenset())
        added = added.union(new)
        if len(added) * 64 > len(base):
            return frozenset(itertools.chain(base, added))
        return cls(base, added) if added else base

    def __contains__(self, item: object) -> bool:
        return item in self.base or item in self.added

    def __iter__(self) -> Iterator[T]:
        return itertools.chain(self.base, self.added)

    def __len__(self) -> int:
        return len(self.base) + len(self.added)


@dataclass(slots=True)
class ZoneData:
    """One zone plus the indexes the lookup needs; built once per zone version."""

    origin: dns.name.Name
    zone: dns.zone.Zone
    # Nodes the policy adds or replaces (hint names, null MX); the zone itself is untouched.
    overlay: dict[dns.name.Name, dns.node.Node] = field(default_factory=dict)
    names: Set[dns.name.Name] = field(default_factory=set)  # nodes with data and empty non-terminals
    cuts: frozenset[dns.name.Name] = frozenset()  # delegation points below the apex
    # `names` as table keys (`name_key`), shared with the compiled zone's index: an edit
    # adds its new names' keys to the previous version's instead of making all of them.
    name_keys: Set[bytes] = frozenset()
    # Signed by dynmx: signs what the compiler renders beyond the zone (pool variants).
    signer: Signer | None = field(default=None, repr=False, compare=False)
    soa: RRsetRef = field(init=False)
    negative_soa: RRsetRef = field(init=False)  # TTL min(SOA TTL, MINIMUM), RFC 2308 3
    apex_ns: RRsetRef | None = field(init=False)
    key: bytes = field(init=False)  # the origin's lower-case wire form: the compiled table's key
    # Pre-signed (a DNSKEY RRset at the apex): DO=1 answers carry its RRSIG/NSEC/NSEC3 records.
    signed: bool = field(init=False)
    dnssec: object = field(default=None, init=False, repr=False, compare=False)  # dnssec.Chain, lazily
    # Made by `edited`: the version it was made from (weakly held), the names whose nodes
    # changed and the names that are new (empty non-terminals too), for the compiler to
    # render only those again. None: indexed in full.
    edit: tuple[weakref.ref[dns.zone.Zone], tuple[dns.name.Name, ...], tuple[dns.name.Name, ...]] | None = (
        field(default=None, repr=False, compare=False)
    )

    def __post_init__(self) -> None:
        origin = self.origin
        self.key = name_key(origin)
        if not self.names:
            self.names = set()
            self._index(list(self.zone.nodes.items()) + list(self.overlay.items()))
        if not self.name_keys:
            self.name_keys = frozenset(name_key(name) for name in self.names)
        apex = self.node(origin)
        soa = apex.get_rdataset(IN, SOA) if apex is not None else None
        if soa is None:
            raise ValueError(f"zone {origin} has no SOA at its apex")
        self.soa = (origin, soa)
        minimum = soa[0].minimum
        self.negative_soa = (origin, with_ttl(soa, min(soa.ttl, minimum)))
        ns = apex.get_rdataset(IN, NS) if apex is not None else None
        self.apex_ns = (origin, ns) if ns is not None else None
        self.signed = apex is not None and apex.get_rdataset(IN, dns.rdatatype.DNSKEY) is not None

    def _index(
        self, nodes: Iterable[tuple[dns.name.Name, dns.node.Node]], in_place: bool = True
    ) -> list[dns.name.Name]:
        """Add these nodes' names (and their empty non-terminals) to `names`, and set whether
        each is a cut; returns the names added. Not `in_place`: `names` (the previous
        version's) is left as it is, the names are only returned."""
        origin = self.origin
        # Every name here is at or below the origin, so its label count tells the apex apart:
        # cheaper than dnspython's name comparison, a third of indexing a small zone.
        apex_labels = len(origin.labels)
        cuts = set(self.cuts)
        known = self.names
        into = known if in_place and isinstance(known, set) else set()
        added = []
        for name, node in nodes:
            if not node.rdatasets or _nsec3_only(node):
                continue
            absolute = name if name.is_absolute() else name.derelativize(origin)
            walk = absolute
            while walk not in known and walk not in into:
                into.add(walk)
                added.append(walk)
                if len(walk.labels) <= apex_labels:
                    break
                walk = walk.parent()
            if len(absolute.labels) > apex_labels and node.get_rdataset(IN, NS) is not None:
                cuts.add(absolute)
            else:
                cuts.discard(absolute)
        if cuts or self.cuts:  # most zones have none: they share the empty default
            self.cuts = frozenset(cuts)
        return added

    def edited(self, zone: dns.zone.Zone) -> ZoneData:
        """The index of `zone`, made by an edit from this version (its node dict copied or
        shared, `VersionNodes`, the changed nodes replaced, new ones added): only the changed
        names are looked at, not the 1,000,000 others. Any other version is indexed in full."""
        if self.overlay or zone.origin != self.origin:
            return ZoneData(self.origin, zone)
        changed = _told_nodes(self.zone, zone)
        if changed is None:
            changed = _changed_nodes(self.zone.nodes, zone.nodes)
        if changed is None or not all(node.rdatasets for _, node in changed):
            return ZoneData(self.origin, zone)  # a name may be gone, and empty non-terminals with it
        data = ZoneData(self.origin, zone, names=self.names, cuts=self.cuts, name_keys=self.name_keys)
        added = data._index(changed, in_place=False)
        if added:
            data.names = Grown.of(self.names, added)
            data.name_keys = Grown.of(self.name_keys, [name_key(name) for name in added])
        data.edit = (weakref.ref(self.zone), tuple(name for name, _ in changed), tuple(added))
        return data

    def node(self, name: dns.name.Name) -> dns.node.Node | None:
        node = self.overlay.get(name) if self.overlay else None
        if node is None:
            node = self.zone.nodes.get(name)
        if node is None or not node.rdatasets:
            return None
        return node

    def cut_at_or_above(self, name: dns.name.Name) -> dns.name.Name | None:
        """The delegation point nearest the apex that is `name` or one of its ancestors."""
        if not self.cuts:
            return None
        found: dns.name.Name | None = None
        walk = name
        while walk != self.origin and len(walk) > len(self.origin):
            if walk in self.cuts:
                found = walk
            walk = walk.parent()
        return found

    def closest_encloser(self, name: dns.name.Name) -> dns.name.Name:
        """The longest existing ancestor of a name that does not exist (RFC 4592 3.3.1)."""
        walk = name.parent()
        while walk not in self.names and walk != self.origin:
            walk = walk.parent()
        return walk

    def address_rrsets(self, target: dns.name.Name) -> Iterator[RRsetRef]:
        """A and AAAA of a name in this zone, for the additional section."""
        node = self.node(target)
        owner = target
        if node is None and target not in self.names and target.is_subdomain(self.origin):
            source = dns.name.Name((WILDCARD, *self.closest_encloser(target).labels))
            node = self.node(source)
        if node is None:
            return
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rds = node.get_rdataset(IN, rdtype)
            if rds is not None:
                yield (owner, rds)


def _nsec3_only(node: dns.node.Node) -> bool:
    """A node of a signer's NSEC3 chain alone: its hashed owner is no name of the zone (as
    NSD answers it: NXDOMAIN, RFC 5155 7.2.9)."""
    rdtypes = {rds.rdtype for rds in node.rdatasets}
    return NSEC3 in rdtypes and rdtypes <= {NSEC3, RRSIG}


# What an edit's writer said it touched, by the id of the version it made: (that version and
# the one it was made from, weakly held; the names). Gone with the version.
_TOLD: dict[
    int, tuple[weakref.ref[dns.zone.Zone], weakref.ref[dns.zone.Zone], tuple[dns.name.Name, ...]]
] = {}


def note_edit(before: dns.zone.Zone, after: dns.zone.Zone, names: Iterable[dns.name.Name]) -> None:
    """`after` was made from `before` by changing the nodes of `names` (absolute) and no other:
    `ZoneData.edited` then looks at those alone instead of comparing every node."""
    key = id(after)
    _TOLD[key] = (weakref.ref(after, lambda _: _TOLD.pop(key, None)), weakref.ref(before), tuple(names))


def _told_nodes(
    before: dns.zone.Zone, after: dns.zone.Zone
) -> list[tuple[dns.name.Name, dns.node.Node]] | None:
    """The changed nodes `note_edit` gave for `after` made from `before`, if it did and they
    add up (every name there, the node count grown by the new ones); else None."""
    told = _TOLD.get(id(after))
    if told is None or told[0]() is not after or told[1]() is not before:
        return None
    old, new = before.nodes, after.nodes
    names = list(dict.fromkeys(told[2]))
    changed = [(name, new[name]) for name in names if name in new]
    added = sum(1 for name in names if name not in old)
    if len(changed) != len(names) or len(new) != len(old) + added:
        return None  # a name gone: indexed in full by the caller's comparison
    return changed


def _changed_nodes(
    before: Mapping[dns.name.Name, dns.node.Node], after: Mapping[dns.name.Name, dns.node.Node]
) -> list[tuple[dns.name.Name, dns.node.Node]] | None:
    """The nodes of `after` that are not `before`'s, when `after` is `before` copied with
    nodes replaced and added (same key objects, in the same order); else None. Compares
    identities, not names (hashing a million dnspython names costs seconds), in C loops.
    Versions sharing one node dict (`VersionNodes`) are compared by the names they hold
    over it alone."""
    if isinstance(after, VersionNodes) and after.shares_base_with(before):
        return _changed_over_base(before, after)
    count = len(before)
    if len(after) < count or not isinstance(before, dict) or not isinstance(after, dict):
        return None
    if not all(map(operator.is_, before.keys(), after.keys())):  # stops at the end of `before`
        return None
    changed = list(itertools.compress(after.items(), map(operator.is_not, before.values(), after.values())))
    added = list(itertools.islice(reversed(after.items()), len(after) - count))  # new names come last
    changed.extend(reversed(added))
    return changed


def _changed_over_base(
    before: Mapping[dns.name.Name, dns.node.Node], after: VersionNodes
) -> list[tuple[dns.name.Name, dns.node.Node]] | None:
    """The nodes of `after` that are not `before`'s, both over one base; None when a name
    is gone."""
    names = dict.fromkeys(after.changed())
    if isinstance(before, VersionNodes):
        names.update(dict.fromkeys(before.changed()))
    changed: list[tuple[dns.name.Name, dns.node.Node]] = []
    added: list[tuple[dns.name.Name, dns.node.Node]] = []
    for name in names:
        old, new = before.get(name), after.get(name)
        if new is None:
            if old is not None:
                return None
        elif new is not old:
            (changed if old is not None else added).append((name, new))
    return changed + added


class ZoneSet:
    """All served zones; finds the zone responsible for a name (longest origin wins).

    Keyed by wire bytes, not by `dns.name.Name`: dnspython's name hash collides for names
    that differ only in digits (`z10` and `z09` hash alike), so 100,000 numbered zones made
    every lookup a chain of name comparisons.
    """

    def __init__(self, zones: Iterable[ZoneData]) -> None:
        self.by_key: dict[bytes, ZoneData] = {z.key: z for z in zones}

    @classmethod
    def of(cls, zones: Iterable[ZoneData]) -> ZoneSet:
        """`zones` as a ZoneSet, built only when it is not one already (100,000 origins cost)."""
        return zones if isinstance(zones, ZoneSet) else cls(zones)

    def __iter__(self) -> Iterator[ZoneData]:
        return iter(self.by_key.values())

    def __len__(self) -> int:
        return len(self.by_key)

    def find(self, name: dns.name.Name, qtype: int | None = None) -> ZoneData | None:
        """The zone for `name`; DS at a child apex goes to the parent when we serve it (RFC 4035 3.1.4.1)."""
        key = name_key(name)
        zone = self._closest(key, 0)
        if zone is not None and qtype == dns.rdatatype.DS and zone.key == key and key != b"\x00":
            parent = self._closest(key, key[0] + 1)
            if parent is not None:
                return parent
        return zone

    def find_key(self, key: bytes) -> ZoneData | None:
        """The zone for a lower-case wire name."""
        return self._closest(key, 0)

    def _closest(self, key: bytes, pos: int) -> ZoneData | None:
        """The zone with the longest origin that `key[pos:]` (a lower-case wire name) is at or below."""
        by_key = self.by_key
        while True:
            zone = by_key.get(key[pos:])
            if zone is not None:
                return zone
            length = key[pos]
            if length == 0:
                return None
            pos += length + 1


_LENGTH = [bytes((length,)) for length in range(256)]


def name_wire(name: dns.name.Name) -> bytes:
    """Uncompressed wire form of an absolute name."""
    return _labels_wire(name.labels)


@functools.lru_cache(maxsize=4096)
def _labels_wire(labels: tuple[bytes, ...]) -> bytes:
    """Compiling a zone writes each of its names dozens of times (owners, targets, lookups);
    a tuple of bytes hashes in C, a dnspython name in Python."""
    return b"".join([_LENGTH[len(label)] + label for label in labels])


def name_key(name: dns.name.Name) -> bytes:
    """The lower-case wire form of an absolute name (RFC 4343): the key of every table. One
    `lower()` of the whole: length bytes are below 64, never an ASCII letter."""
    return name_wire(name).lower()

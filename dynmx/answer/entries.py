"""A zone's names rendered into table entries: a default entry per name, valid for every
qtype its lookup never looks at, plus one entry per qtype that answers differently.

A zone of `TRACK_FROM` names or more is tracked: what each answer uses goes into `refs`
(name key -> the names whose answers use it) and its NODATA entries are shared by body
(`Negatives`), so that an edit renders only the names it touches (`incremental`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.name
import dns.rdatatype

from dynmx.answer.lookup import CNAME, DS, SOA, TARGET_TYPES, Answer, ExtrasMemo, Outcome, lookup
from dynmx.answer.render import render
from dynmx.answer.table import DO_KEY, CompiledZone, Negatives, Shared, index_zone, shared_entry, wire_key
from dynmx.answer.zoneset import WILDCARD, ZoneData, ZoneSet
from dynmx.wire.response import Entry

# A zone with this many names records, per name, what its answers use (`refs`, `Negatives`):
# an edit then renders only the names it touches. Smaller zones are compiled again whole.
TRACK_FROM = 1000


def same(a: Entry, b: Entry) -> bool:
    return a.body == b.body and a.rcode == b.rcode and a.authoritative == b.authoritative


@dataclass(slots=True)
class Compiled:
    zone: CompiledZone
    keys: list[bytes]
    uses: set[bytes]
    negatives: Negatives | None = None
    reach: set[bytes] = field(default_factory=set)


def compile_zone(
    zoneset: ZoneSet, zone: ZoneData, entries: dict[bytes, Entry], refs: dict[bytes, set[bytes]] | None = None
) -> Compiled:
    """Add one zone's entries to `entries`; return its byte-level index, keys, zones used and
    names reached outside it (and, with `refs` for a zone of TRACK_FROM names or more, its
    `Negatives`)."""
    keys: list[bytes] = []
    uses: set[bytes] = set()
    reach: set[bytes] = set()
    negatives = Negatives() if refs is not None and tracked(zone) else None
    compile_names(zoneset, zone, zone.names, entries, keys, uses, refs, negatives, reach)
    return Compiled(index_zone(zone), keys, uses, negatives, reach)


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
    reach: set[bytes] | None = None,
) -> None:
    """Add the entries of these names of one zone to `entries`, their keys to `keys`, the
    other zones their answers used to `uses`, and (with `reach`) the names outside this
    zone their CNAME chains reached, served by another zone or by none: a zone added at or
    above one of those changes this zone's answers (`answer.reach`). A name that a zone
    below serves (occluded by it) is left to that zone: its entries are that zone's,
    whatever this one does. With `negatives` (a tracked zone), what each answer uses goes
    into `refs` and its NODATA entries are shared through `negatives`."""
    own = zone.key
    apex_labels = len(zone.origin.labels)  # names here are at or below the apex: cheaper than ==
    tracking = negatives is not None and refs is not None

    def note(answer: Answer) -> Answer:
        # A chain into another zone, or DS answered by the parent: an edit there recompiles us.
        uses.update(other for other in answer.zones if other != own)
        if reach is not None and (len(answer.zones) > 1 or answer.outcome is Outcome.CHAIN_END):
            _reached(zoneset, zone, answer, reach)  # the chain left this zone
        return answer

    memo: ExtrasMemo = {}
    for name in names:
        key = wire_key(name)
        if zoneset.find_key(key) is not zone:
            continue
        for do in (False, True) if zone.signed else (False,):
            prefix = DO_KEY if do else b""
            default = note(lookup(zoneset, name, None, memo=memo, do=do))
            rendered = render(default, name)  # compared as rendered: a shared entry may await its body
            default_entry = rendered if tracking else shared_entry(rendered)  # zones alike: one entry
            if tracking:
                default_entry = _track(zone, name, key, default, rendered, refs, negatives)  # type: ignore[arg-type]
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
                if not same(entry, rendered):
                    typed = prefix + key + qtype.to_bytes(2, "big")  # one object: table and key list
                    if tracking:
                        entry = _track(zone, name, key, answer, entry, refs, negatives)  # type: ignore[arg-type]
                    else:
                        entry = shared_entry(entry)
                    entries[typed] = entry
                    keys.append(typed)


def _reached(zoneset: ZoneSet, zone: ZoneData, answer: Answer, reach: set[bytes]) -> None:
    """Add to `reach` the CNAME targets of `answer` that `zone` does not serve (the names the
    chain went to, or stopped at, outside it)."""
    for _, rdataset in answer.answer:
        if rdataset.rdtype == CNAME:
            key = wire_key(rdataset[0].target)
            if zoneset.find_key(key) is not zone:
                reach.add(key)


def _track(
    zone: ZoneData,
    name: dns.name.Name,
    key: bytes,
    answer: Answer,
    entry: Entry,
    refs: dict[bytes, set[bytes]],
    negatives: Negatives,
) -> Entry:
    """Note what `answer` (of `name`) uses; a NODATA of the zone alone is shared through
    `negatives` and returned as the shared entry (which may be one whose new body an edit
    has yet to lay: it is found by that body)."""
    alone = not answer.answer and not answer.additional and len(answer.authority) == 1
    if alone and answer.authority[0][0] is zone.negative_soa and not answer.synthesized:
        found = negatives.shared.get(entry.body)
        if found is None:
            meta = (answer.outcome, answer.rcode, answer.authoritative)
            negatives.shared[entry.body] = Shared(entry, name, meta)
            return entry
        if found.entry.rcode != entry.rcode or found.entry.authoritative != entry.authoritative:
            return entry  # never: one body, one rcode
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

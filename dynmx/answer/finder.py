"""The entry for any question, computed once: the table's, else a lookup kept in an LRU.

The slow path's memory: misses of the table are looked up (RFC 1034 4.3.2, the same
lookup the compiler uses), rendered, and remembered in a bounded LRU; missing names of a
plain zone share its NXDOMAIN, a wildcard's names share one body, and a signed zone's
NXDOMAIN replies are patched from one template per proof.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import dns.name

from dynmx.answer import denial
from dynmx.answer.compiler import DO_KEY, AnswerTable, CompiledZone
from dynmx.answer.lookup import Answer, lookup
from dynmx.answer.render import render
from dynmx.wire.response import RCODE_NXDOMAIN, Entry

META_QTYPE_MIN = 251  # IXFR, AXFR, MAILB, MAILA, ANY: never served from a default entry
# A slow-path cache key that is no name's: a wire name never starts with a byte over 63, so
# no query can hit it (a "*" prefix could: 42 is a label length).
WILDCARD_KEY = b"\xff"  # + wildcard parent + qtype: the answer every name below it shares


class EntryFinder:
    """`find_entry` and the slow path's LRU; a base of `Engine`, which sets the attributes."""

    table: AnswerTable
    lru_size: int
    _lru: OrderedDict[bytes, Entry]
    _proofs: OrderedDict[bytes, tuple[Entry, tuple[int, ...]]]

    def _cached(self, key: bytes) -> Entry | None:
        """A slow-path result, marked as used."""
        entry = self._lru.get(key)
        if entry is not None:
            self._lru.move_to_end(key)
        return entry

    def _remember(self, key: bytes, entry: Entry) -> Entry:
        """Keep a slow-path result; the least recently used goes once `lru_size` is reached."""
        self._lru[key] = entry
        if len(self._lru) > self.lru_size:
            self._lru.popitem(last=False)
        return entry

    def find_entry(self, qname: bytes, qtype: int, class_any: bool = False, do: bool = False) -> Entry | None:
        """The entry for a lower-case wire name and qtype, computing and caching misses;
        `do`: the query's DO bit, which a pre-signed zone answers with its DNSSEC records."""
        table = self.table
        if do and table.signed:
            zone = table.find_zone(qname)
            if zone is not None and zone.signed:
                return self._find_signed(qname, qtype, class_any, zone)
        key = qname + qtype.to_bytes(2, "big") + (b"*" if class_any else b"")
        if qtype < META_QTYPE_MIN and not class_any:
            entry = table.entries.get(key) or table.entries.get(qname)
            if entry is not None:
                return entry
        if qname in table.forced:
            return table.entries[qname]  # a name action answers every type, ANY included
        entry = self._cached(key)
        if entry is not None:
            return entry
        zone = table.find_zone(qname)
        if zone is None:
            return None
        shared = False
        if not class_any and qname not in zone.names:
            if zone.plain_nxdomain(qname):
                return zone.nxdomain_for(len(qname))  # every qtype, ANY too: no lookup per name
            parent = zone.wildcard_parent(qname) if qtype < META_QTYPE_MIN else None
            if parent is not None:
                # Wildcard synthesis: one body for every name the wildcard covers, so a
                # random-name flood under a wildcard hits one cached entry, not the lookup.
                key = WILDCARD_KEY + parent + qtype.to_bytes(2, "big")
                entry = self._cached(key)
                if entry is not None:
                    return entry
                shared = True
        owner = dns.name.from_wire(qname, 0)[0]
        answer = _class_any(lookup(table.zoneset, owner, qtype), class_any)
        return self._remember(key, render(answer, owner, shared))

    def _find_signed(self, qname: bytes, qtype: int, class_any: bool, zone: CompiledZone) -> Entry:
        """`find_entry` with DO=1 in a pre-signed zone: the DO=1 entries, else a lookup with
        the proofs for this very name (NXDOMAIN and wildcard proofs name it: no sharing)."""
        table = self.table
        key = DO_KEY + qname + qtype.to_bytes(2, "big") + (b"*" if class_any else b"")
        if qtype < META_QTYPE_MIN and not class_any and zone.complete:
            entry = table.entries.get(key) or table.entries.get(DO_KEY + qname)
            if entry is not None:
                return entry
        if qname in table.forced:
            return table.entries[qname]
        if not class_any and qname not in zone.names and zone.plain_nxdomain(qname):
            entry = self._signed_nxdomain(qname, qtype, zone)
            if entry is not None:
                return entry
        entry = self._cached(key)
        if entry is not None:
            return entry
        owner = dns.name.from_wire(qname, 0)[0]
        answer = _class_any(lookup(table.zoneset, owner, qtype, do=True), class_any)
        return self._remember(key, render(answer, owner))

    def _signed_nxdomain(self, qname: bytes, qtype: int, zone: CompiledZone) -> Entry | None:
        """The NXDOMAIN of a missing name in a signed zone, from the reply of its proof
        (`denial`): rendered for the first name with that proof, patched for the others."""
        encloser = zone.closest_encloser(qname)
        data = self.table.zoneset.by_key.get(zone.origin)
        if encloser is None or data is None:
            return None
        proof = denial.proof_key(data, qname, encloser)
        if proof is None:
            return None
        found = self._proofs.get(proof)
        if found is None:
            answer = lookup(self.table.zoneset, dns.name.from_wire(qname, 0)[0], qtype, do=True)
            if answer.rcode != RCODE_NXDOMAIN:
                return None
            template = render(answer, data.origin)  # compressed against the origin as the question
            found = (template, denial.pointer_offsets(template.body, sum(template.counts)))
            self._proofs[proof] = found
            if len(self._proofs) > self.lru_size:
                self._proofs.popitem(last=False)
        template, pointers = found
        return replace(
            template, body=denial.shift_pointers(template.body, pointers, len(qname) - len(zone.origin))
        )


def _class_any(answer: Answer, class_any: bool) -> Answer:
    """As NSD: data for class ANY with AA clear and nothing beyond the answer."""
    if class_any:
        answer.authoritative = False
        if answer.answer:
            answer.authority.clear()
            answer.additional.clear()
    return answer

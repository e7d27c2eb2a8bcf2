"""The DNSSEC records of a pre-signed zone that a DO=1 answer carries (RFC 4035 3.1).

A zone is signed when its apex holds a DNSKEY RRset; its RRSIG, NSEC and NSEC3 records
come from the signer (dnssec-signzone, ldns-signzone, Knot) and are served as they are,
never made here. This module only picks them: the RRSIG covering an RRset, and the
NSEC (RFC 4035 3.1.3) or NSEC3 (RFC 5155 7.2) records that prove a name or type absent.

Pure: zones in, lists of (owner, rdataset) out, each NSEC/NSEC3 followed by its RRSIG.
The chain index of a zone is built once per zone version, when first asked for.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import dns.dnssec
import dns.name
import dns.node
import dns.rdataset
import dns.rdatatype

from dynmx.answer.zoneset import IN, WILDCARD, RRsetRef, ZoneData, with_ttl

RRSIG = dns.rdatatype.RRSIG
NSEC = dns.rdatatype.NSEC
NSEC3 = dns.rdatatype.NSEC3
NSEC3PARAM = dns.rdatatype.NSEC3PARAM
DS = dns.rdatatype.DS
OPT_OUT = 0x01


@dataclass(frozen=True, slots=True)
class Chain:
    """A zone's NSEC chain (owners in canonical order) or NSEC3 chain (hashes in order)."""

    nsec_owners: tuple[dns.name.Name, ...]
    nsec_keys: tuple[tuple[bytes, ...], ...]  # `canonical_key` of each owner, for bisect
    nsec3_hashes: tuple[bytes, ...]  # lower-case base32hex first labels
    nsec3_owner: dict[bytes, dns.name.Name]
    salt: bytes
    iterations: int
    algorithm: int
    # Enclosers (lower wire) known to have an NSEC3 of their own, or not (denial.proof_key).
    provable: dict[bytes, bool] = field(default_factory=dict, compare=False)

    @property
    def nsec3(self) -> bool:
        return bool(self.nsec3_hashes)


def chain(zone: ZoneData) -> Chain:
    """The NSEC/NSEC3 index of a signed zone, built on first use and kept on the ZoneData."""
    found = zone.dnssec
    if isinstance(found, Chain):
        return found
    nsec_owners: list[dns.name.Name] = []
    nsec3_owner: dict[bytes, dns.name.Name] = {}
    for name, node in zone.zone.nodes.items():
        absolute = name if name.is_absolute() else name.derelativize(zone.origin)
        if node.get_rdataset(IN, NSEC) is not None:
            nsec_owners.append(absolute)
        if node.get_rdataset(IN, NSEC3) is not None:
            nsec3_owner[absolute.labels[0].lower()] = absolute
    apex = zone.zone.nodes.get(zone.origin)
    param = apex.get_rdataset(IN, NSEC3PARAM) if apex is not None else None
    salt, iterations, algorithm = b"", 0, 1
    if param is not None and nsec3_owner:
        salt, iterations, algorithm = param[0].salt, param[0].iterations, param[0].algorithm
    else:
        nsec3_owner = {}
    ordered = sorted(nsec_owners, key=canonical_key)
    built = Chain(
        nsec_owners=tuple(ordered),
        nsec_keys=tuple(canonical_key(owner) for owner in ordered),
        nsec3_hashes=tuple(sorted(nsec3_owner)),
        nsec3_owner=nsec3_owner,
        salt=salt,
        iterations=iterations,
        algorithm=algorithm,
    )
    zone.dnssec = built
    return built


def canonical_key(name: dns.name.Name) -> tuple[bytes, ...]:
    """A sort key in the canonical order of RFC 4034 6.1: labels from the right, each
    lower-cased and compared as octets (a tuple compares in C; dnspython names do not)."""
    return tuple(label.lower() for label in reversed(name.labels))


def rrsig(
    zone: ZoneData, node: dns.node.Node | None, owner: dns.name.Name, rdtype: int, ttl: int | None = None
) -> list[RRsetRef]:
    """The RRSIG RRset covering `rdtype` at `node`, written at `owner` (the query name for a
    wildcard answer, RFC 4035 3.1.3.3); empty when the node has none (glue, a cut's NS)."""
    if node is None:
        return []
    sigs = node.get_rdataset(IN, RRSIG, dns.rdatatype.RdataType.make(rdtype))
    if sigs is None:
        return []
    return [(owner, sigs if ttl is None else with_ttl(sigs, ttl))]


def _with_sig(zone: ZoneData, owner: dns.name.Name, rdtype: int) -> list[RRsetRef]:
    node = zone.zone.nodes.get(owner)
    if node is None:
        return []
    rds = node.get_rdataset(IN, dns.rdatatype.RdataType.make(rdtype))
    if rds is None:
        return []
    return [(owner, rds), *rrsig(zone, node, owner, rdtype)]


# --- NSEC (RFC 4035 3.1.3) ----------------------------------------------------------------


def _nsec_covering(zone: ZoneData, name: dns.name.Name) -> list[RRsetRef]:
    """The NSEC whose owner is `name` or the last one before it in canonical order."""
    index = chain(zone)
    if not index.nsec_owners:
        return []
    at = bisect.bisect_right(index.nsec_keys, canonical_key(name)) - 1
    return _with_sig(zone, index.nsec_owners[at], NSEC)


# --- NSEC3 (RFC 5155 7.2) -----------------------------------------------------------------


def _hash(zone: ZoneData, name: dns.name.Name) -> bytes:
    index = chain(zone)
    return dns.dnssec.nsec3_hash(name, index.salt, index.iterations, index.algorithm).lower().encode()


def _nsec3_matching(zone: ZoneData, name: dns.name.Name) -> list[RRsetRef]:
    owner = chain(zone).nsec3_owner.get(_hash(zone, name))
    return [] if owner is None else _with_sig(zone, owner, NSEC3)


def _nsec3_covering(zone: ZoneData, name: dns.name.Name) -> list[RRsetRef]:
    """The NSEC3 whose hash range holds `name`'s hash (wrapping round past the last)."""
    index = chain(zone)
    hashes = index.nsec3_hashes
    at = bisect.bisect_right(hashes, _hash(zone, name)) - 1
    return _with_sig(zone, index.nsec3_owner[hashes[at]], NSEC3)


def _closest_provable(zone: ZoneData, name: dns.name.Name) -> tuple[dns.name.Name, dns.name.Name]:
    """(closest provable encloser, next closer name) of `name` (RFC 5155 7.2.1)."""
    hashes = chain(zone).nsec3_owner
    next_closer = name
    walk = name.parent()
    while walk != zone.origin and len(walk) > len(zone.origin) and _hash(zone, walk) not in hashes:
        next_closer, walk = walk, walk.parent()
    return walk, next_closer


def _nsec3_encloser_proof(zone: ZoneData, name: dns.name.Name) -> list[RRsetRef]:
    """Closest (provable) encloser proof (RFC 5155 7.2.1, 7.2.7) of a name without its own
    NSEC3: the encloser's NSEC3, then the one covering the next closer name."""
    encloser, next_closer = _closest_provable(zone, name)
    return _nsec3_matching(zone, encloser) + _nsec3_covering(zone, next_closer)


# --- what each kind of answer carries -----------------------------------------------------


def _dedup(refs: list[RRsetRef]) -> list[RRsetRef]:
    seen: set[tuple[dns.name.Name, int, int]] = set()
    out: list[RRsetRef] = []
    for owner, rds in refs:
        key = (owner, int(rds.rdtype), int(rds.covers))
        if key not in seen:
            seen.add(key)
            out.append((owner, rds))
    return out


def name_error(zone: ZoneData, name: dns.name.Name) -> list[RRsetRef]:
    """NXDOMAIN: no such name, and no wildcard at its closest encloser (RFC 4035 3.1.3.2;
    RFC 5155 7.2.2), in NSD's order: the name's denial first."""
    if chain(zone).nsec3:
        encloser, next_closer = _closest_provable(zone, name)
        wildcard = dns.name.Name((WILDCARD, *encloser.labels))
        return _dedup(
            _nsec3_covering(zone, next_closer)
            + _nsec3_matching(zone, encloser)
            + _nsec3_covering(zone, wildcard)
        )
    encloser = zone.closest_encloser(name)
    wildcard = dns.name.Name((WILDCARD, *encloser.labels))
    return _dedup(_nsec_covering(zone, name) + _nsec_covering(zone, wildcard))


def no_data(
    zone: ZoneData, name: dns.name.Name, wildcard: dns.name.Name | None, qtype: int | None = None
) -> tuple[list[RRsetRef], list[RRsetRef]]:
    """NODATA at `name`, or at the wildcard `wildcard` that `name` matched (RFC 4035
    3.1.3.1 and 3.1.3.4; RFC 5155 7.2.3 to 7.2.5): the proofs that go before the SOA and
    those after it, in NSD's order (a wildcard's denial of `name` comes first)."""
    if chain(zone).nsec3:
        if wildcard is not None:
            before = _nsec3_covering(zone, _next_closer(name, wildcard.parent()))
            return before, _dedup(_nsec3_matching(zone, wildcard.parent()) + _nsec3_matching(zone, wildcard))
        matching = _nsec3_matching(zone, name)
        if matching:
            if name.labels[0] == WILDCARD:  # the wildcard asked for by its own name
                parent = _nsec3_matching(zone, name.parent())
                return [], _dedup(matching + parent if qtype == DS else parent + matching)
            return [], matching
        return [], _nsec3_encloser_proof(zone, name)  # opt-out: DS at an unsigned delegation (7.2.4)
    if wildcard is not None:
        return _nsec_covering(zone, name), _nsec_covering(zone, wildcard)
    return [], _nsec_covering(zone, name)


def _next_closer(name: dns.name.Name, encloser: dns.name.Name) -> dns.name.Name:
    """The ancestor of `name` one label longer than `encloser` (RFC 5155 1.3)."""
    return dns.name.Name(name.labels[-(len(encloser.labels) + 1) :])


def wildcard_answer(zone: ZoneData, name: dns.name.Name, wildcard: dns.name.Name) -> list[RRsetRef]:
    """A wildcard expansion: proof that `name` itself does not exist (RFC 4035 3.1.3.3;
    RFC 5155 7.2.6, the next closer name covered)."""
    if chain(zone).nsec3:
        return _nsec3_covering(zone, _next_closer(name, wildcard.parent()))
    return _nsec_covering(zone, name)


def referral(zone: ZoneData, cut: dns.name.Name) -> list[RRsetRef]:
    """A referral's DS with its RRSIG, or the proof that the cut has no DS (RFC 4035
    3.1.4; RFC 5155 7.2.7, opt-out included)."""
    ds = _with_sig(zone, cut, DS)
    if ds:
        return ds
    return no_data(zone, cut, None)[1]

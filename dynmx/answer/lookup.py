"""The authoritative lookup of RFC 1034 4.3.2 with RFC 4592 wildcards, as NSD answers.

Pure: zones in, an `Answer` out. The compiler calls it for every name it
precompiles and the slow path for everything else, so both agree by construction.

Shape of the answers (measured against NSD 4.6):
* positive: the RRset, the apex NS in authority (optional), addresses of NS/MX/SRV
  targets in additional (optional);
* CNAME: followed through every zone we serve, a loop or an external target ends the
  chain without authority; a missing target gives NXDOMAIN with the chain (RFC 6604);
* NODATA and NXDOMAIN: the SOA with TTL min(TTL, MINIMUM) in authority (RFC 2308 3);
* at or below a cut: referral, AA clear unless a CNAME led there, glue required when
  in-domain (RFC 9471); DS at the cut is answered by the parent (RFC 4035 3.1.4.1);
* ANY: one RRset, the SOA where there is one, else the lowest type (RFC 8482 4.1);
* DO=1 in a pre-signed zone: every RRset with its RRSIG, negative answers, wildcard
  expansions and referrals with the NSEC/NSEC3 records that prove them (`dnssec`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import dns.name
import dns.node
import dns.rdataset
import dns.rdatatype

from dynmx.answer import dnssec
from dynmx.answer.zoneset import IN, WILDCARD, RRsetRef, ZoneData, ZoneSet

CNAME = dns.rdatatype.CNAME
NS = dns.rdatatype.NS
DS = dns.rdatatype.DS
DNSKEY = dns.rdatatype.DNSKEY
RRSIG = dns.rdatatype.RRSIG
SIGNER_TYPES = {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3}
ANY = dns.rdatatype.ANY
SOA = dns.rdatatype.SOA
MAX_CNAME_CHAIN = 16
TARGET_TYPES = {dns.rdatatype.MX, dns.rdatatype.NS, dns.rdatatype.SRV}

NOERROR = 0
NXDOMAIN = 3
REFUSED = 5


class Outcome(enum.Enum):
    """What a lookup found (after CoreDNS file/lookup.go)."""

    SUCCESS = "success"
    NODATA = "nodata"
    NAME_ERROR = "nxdomain"
    DELEGATION = "delegation"
    REFUSED = "refused"
    CHAIN_END = "chain-end"  # CNAME loop, overlong chain or target outside our zones


@dataclass(slots=True)
class Answer:
    """Sections of a response before rendering; (rrset, required) for truncation."""

    outcome: Outcome
    rcode: int = NOERROR
    authoritative: bool = True
    answer: list[RRsetRef] = field(default_factory=list)
    authority: list[tuple[RRsetRef, bool]] = field(default_factory=list)
    additional: list[tuple[RRsetRef, bool]] = field(default_factory=list)
    # Every rdtype present at a node the lookup visited: qtypes outside this set all get
    # the same answer, which lets the compiler store one default entry per name.
    visited_types: set[int] = field(default_factory=set)
    # Zones (their keys) whose data this answer used, so an edit knows what to recompile.
    zones: set[bytes] = field(default_factory=set)
    # Wildcard synthesis or a chain through one: the answer depends on the query name.
    synthesized: bool = False
    # DNSSEC records in it (DO=1, a signed zone): rendered and truncated as NSD does (each
    # RRset once, with its RRSIG as one unit; a cut keeps what fits before it, with TC).
    dnssec: bool = False


def refused() -> Answer:
    return Answer(Outcome.REFUSED, rcode=REFUSED, authoritative=False)


# The additional section most positive answers of a zone get (its apex NS targets'
# addresses), by zone key: a compile works it out once per zone, not once per answer (it
# was a quarter of compiling a small zone), and drops it after (50 MB for 100,000 zones).
ExtrasMemo = dict[bytes, list[tuple[RRsetRef, bool]]]


def lookup(
    zones: ZoneSet,
    qname: dns.name.Name,
    qtype: int | None,
    override: RRsetRef | None = None,
    memo: ExtrasMemo | None = None,
    do: bool = False,
    override_sig: dns.rdataset.Rdataset | None = None,
) -> Answer:
    """Answer `qname`/`qtype` from `zones`; qtype None stands for a type present nowhere.

    `override` serves one rdataset in place of the zone's at its owner (a pool variant);
    `override_sig` is its RRSIG, served with it when `do` in a signed zone.
    `memo` keeps what answers share while the zones stay the same (one compile).
    `do`: the query's DO bit (RFC 3225); signed zones then add their DNSSEC records.
    """
    zone = zones.find(qname, qtype)
    if zone is None:
        return refused()
    result = Answer(Outcome.SUCCESS)
    in_chain: set[dns.name.Name] = set()
    sname = qname
    while True:
        result.zones.add(zone.key)
        signed = do and zone.signed
        result.dnssec |= signed
        cut = zone.cut_at_or_above(sname)
        if cut is not None and not (cut == sname and qtype == DS):
            _referral(result, zone, cut, signed)
            return result
        node, source = _find_node(zone, sname)
        result.synthesized |= source is not None
        if node is None:
            outcome = Outcome.NODATA if sname in zone.names else Outcome.NAME_ERROR
            _negative(result, zone, outcome, sname if signed else None, None, qtype)
            return result
        result.visited_types.update(rds.rdtype for rds in node.rdatasets)
        if qtype == ANY:
            chosen = _any_choice(node)
            result.answer.append((sname, chosen))
            if signed:
                result.answer.extend(dnssec.rrsig(zone, node, sname, chosen.rdtype))
                _wildcard_proof(result, zone, sname, source)
            return result
        if qtype == RRSIG:  # every signature at the name, as NSD keeps them: one RRset
            sigs = [rds for rds in node.rdatasets if rds.rdtype == RRSIG]
            if sigs:
                result.answer.extend((sname, rds) for rds in sigs)
                if signed:
                    _wildcard_proof(result, zone, sname, source)
                _positive_extras(result, zone, qtype, memo, signed)
                return result
        rds = node.get_rdataset(IN, dns.rdatatype.RdataType.make(qtype)) if qtype is not None else None
        own: list[RRsetRef] | None = None  # a variant's RRSIG; None: the zone's
        if override is not None and sname == override[0] and qtype == override[1].rdtype:
            rds = override[1]
            own = [(sname, override_sig)] if override_sig is not None else []
        if rds is not None and qtype is not None:
            result.answer.append((sname, rds))
            if signed:
                result.answer.extend(dnssec.rrsig(zone, node, sname, qtype) if own is None else own)
                _wildcard_proof(result, zone, sname, source)
            _positive_extras(result, zone, qtype, memo, signed)
            return result
        cname = node.get_rdataset(IN, CNAME)
        if cname is None:
            _negative(result, zone, Outcome.NODATA, sname if signed else None, source, qtype)
            return result
        if sname in in_chain or len(in_chain) >= MAX_CNAME_CHAIN:
            result.outcome = Outcome.CHAIN_END
            return result
        in_chain.add(sname)
        result.answer.append((sname, cname))
        if signed:
            result.answer.extend(dnssec.rrsig(zone, node, sname, CNAME))
            _wildcard_proof(result, zone, sname, source)
        target: dns.name.Name = cname[0].target
        next_zone = zones.find(target)
        if next_zone is None or target in in_chain:
            result.outcome = Outcome.CHAIN_END
            return result
        zone, sname = next_zone, target


def _find_node(zone: ZoneData, name: dns.name.Name) -> tuple[dns.node.Node | None, dns.name.Name | None]:
    """The node holding `name`'s data: its own, or the wildcard's at the closest encloser
    (then also the wildcard's name)."""
    if name in zone.names:
        return zone.node(name), None
    source = dns.name.Name((WILDCARD, *zone.closest_encloser(name).labels))
    node = zone.node(source)
    return node, source if node is not None else None


def _wildcard_proof(
    result: Answer, zone: ZoneData, name: dns.name.Name, source: dns.name.Name | None
) -> None:
    """A signed wildcard expansion carries the proof that `name` itself does not exist."""
    if source is not None:
        result.authority.extend((ref, True) for ref in dnssec.wildcard_answer(zone, name, source))


def _any_choice(node: dns.node.Node) -> dns.rdataset.Rdataset:
    """The SOA, else the lowest type that is not a signer's (RRSIG, NSEC, NSEC3), if any."""
    soa = node.get_rdataset(IN, SOA)
    if soa is not None:
        return soa
    data = [rds for rds in node.rdatasets if rds.rdtype not in SIGNER_TYPES] or node.rdatasets
    lowest: dns.rdataset.Rdataset = min(data, key=lambda rds: int(rds.rdtype))
    return lowest


def _negative(
    result: Answer,
    zone: ZoneData,
    outcome: Outcome,
    signed_name: dns.name.Name | None = None,
    wildcard: dns.name.Name | None = None,
    qtype: int | None = None,
) -> None:
    """NXDOMAIN or NODATA; with `signed_name` (DO=1, signed zone) the SOA's RRSIG and the
    NSEC/NSEC3 proof for that name (and the `wildcard` it matched)."""
    result.outcome = outcome
    if outcome is Outcome.NAME_ERROR:
        result.rcode = NXDOMAIN
    if signed_name is None:
        result.authority.append((zone.negative_soa, True))
        return
    soa_owner, soa = zone.negative_soa
    node = zone.zone.nodes.get(soa_owner)
    # The SOA's RRSIG with the SOA's TTL, as NSD writes it.
    soa_refs = [zone.negative_soa, *dnssec.rrsig(zone, node, soa_owner, SOA, soa.ttl)]
    after: list[RRsetRef] = []
    if outcome is Outcome.NAME_ERROR:
        before = dnssec.name_error(zone, signed_name)
    else:
        before, after = dnssec.no_data(zone, signed_name, wildcard, qtype)
    result.authority.extend((ref, True) for ref in [*before, *soa_refs, *after])


def _referral(result: Answer, zone: ZoneData, cut: dns.name.Name, signed: bool = False) -> None:
    result.outcome = Outcome.DELEGATION
    result.authoritative = bool(result.answer)
    node = zone.zone.nodes[cut]
    ns = node.get_rdataset(IN, NS)
    assert ns is not None
    result.visited_types.update(rds.rdtype for rds in node.rdatasets)
    result.authority.append(((cut, ns), True))
    if signed:
        result.authority.extend((ref, True) for ref in dnssec.referral(zone, cut))
    glue: list[tuple[RRsetRef, bool]] = []
    for rdata in ns:
        target: dns.name.Name = rdata.target
        holder = zone.zone.nodes.get(target)
        if holder is None:
            continue
        in_domain = target.is_subdomain(cut)
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rds = holder.get_rdataset(IN, rdtype)
            if rds is not None:
                glue.append(((target, rds), in_domain))
    # In-domain glue first: it must fit (RFC 9471), sibling glue only may.
    result.additional.extend(sorted(glue, key=lambda item: not item[1]))


def _positive_extras(
    result: Answer, zone: ZoneData, qtype: int, memo: ExtrasMemo | None, signed: bool = False
) -> None:
    """Apex NS in authority and target addresses in additional, both optional (as NSD);
    `signed`: each with its RRSIG."""
    targets: list[dns.name.Name] = []
    for _, rdataset in result.answer:
        if rdataset.rdtype in TARGET_TYPES:
            targets.extend(_target(rdata) for rdata in rdataset)
    owner = result.answer[-1][0]
    apex_ns_in_answer = qtype == NS and owner == zone.origin
    # NSD adds no NS beside DS or DNSKEY ("their RRsets are quite large").
    big_keys = qtype in (DS, DNSKEY)
    if zone.apex_ns is not None and not apex_ns_in_answer and not big_keys:
        result.authority.append((zone.apex_ns, False))
        if signed:
            apex = zone.zone.nodes.get(zone.origin)
            result.authority.extend((ref, False) for ref in dnssec.rrsig(zone, apex, zone.origin, NS))
        if not targets and memo is not None:
            memo_key = zone.key + (b"d" if signed else b"")
            shared = memo.get(memo_key)
            if shared is None:
                apex_targets = [_target(rdata) for rdata in zone.apex_ns[1]]
                shared = memo[memo_key] = _addresses(zone, apex_targets, signed)
            result.additional.extend(shared)
            return
        targets.extend(_target(rdata) for rdata in zone.apex_ns[1])
    result.additional.extend(_addresses(zone, targets, signed))


def _addresses(
    zone: ZoneData, targets: list[dns.name.Name], signed: bool = False
) -> list[tuple[RRsetRef, bool]]:
    """The A and AAAA RRsets of these names that this zone holds authoritatively, each once
    (`signed`: each followed by its RRSIG)."""
    found: list[tuple[RRsetRef, bool]] = []
    seen: set[dns.name.Name] = set()
    for target in targets:
        if target in seen or not target.is_subdomain(zone.origin):
            continue
        seen.add(target)
        if zone.cut_at_or_above(target) is not None:
            continue
        for rrset in zone.address_rrsets(target):
            found.append((rrset, False))
            if signed:
                node = zone.zone.nodes.get(rrset[0])
                found.extend((ref, False) for ref in dnssec.rrsig(zone, node, rrset[0], rrset[1].rdtype))
    return found


def _target(rdata: object) -> dns.name.Name:
    name = getattr(rdata, "exchange", None) or getattr(rdata, "target", None)
    assert isinstance(name, dns.name.Name)
    return name

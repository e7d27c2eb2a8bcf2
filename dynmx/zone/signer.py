"""Signing a zone dynmx signs (`[[zone]] dnssec = true`) before its answers are compiled.

The operator's zone stays unsigned; the copy handed to the compiler gets the zone's keys at
the apex (DNSKEY, and CDS/CDNSKEY per RFC 7344), RRSIGs and an NSEC chain (dnspython's
`dns.dnssec.sign_zone`). Which key does what follows its rollover state (`keys.ROLES`): the
DNSKEY, CDS and CDNSKEY RRsets are signed by every key in the KSK role, every other RRset by
the active key alone. NSEC and NSEC3 records take min(SOA TTL, SOA MINIMUM) (RFC 9077 3.1.1).

Signatures are cached by the canonical RRset, its TTL and the validity window, so signing an
edited zone again, or a pool variant that comes back, reuses the signatures of what did not
change.

The validity window is fixed per day (inception an hour before the day starts, expiry 14
days after it), so every signature made in one day shares it and the cache hits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import dns.dnssec
import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.RRSIG
import dns.rrset
import dns.transaction
import dns.zone

from dynmx.zone.keys import ZoneKey

DAY = 86400
BACKDATE = 3600
LIFETIME = 14 * DAY
CACHE_SIZE = 200_000
IN = dns.rdataclass.IN
KEY_TYPES = (dns.rdatatype.DNSKEY, dns.rdatatype.CDS, dns.rdatatype.CDNSKEY)


@dataclass(frozen=True, slots=True)
class Window:
    inception: int
    expiration: int


def window(now: float | None = None) -> Window:
    """The validity window of signatures made at `now`."""
    day = int(time.time() if now is None else now) // DAY * DAY
    return Window(day - BACKDATE, day + LIFETIME)


class SignatureCache:
    """RRSIGs by (key tag, owner, type, TTL, canonical rdata, window); the least recently used
    go first past `size` entries. `fit` keeps room for twice what is served: signing a zone
    walks it in the same order every time, so a cache smaller than the zone would evict each
    signature just before it is asked for again and never hit."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.floor = self.size = size
        self._sigs: OrderedDict[tuple[object, ...], dns.rdtypes.ANY.RRSIG.RRSIG] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.calls = 0  # hits + misses: what one signing used, as a difference of two readings

    def fit(self, served: int) -> None:
        """Room for twice the `served` signatures (and never less than the size made with)."""
        self.size = max(self.floor, 2 * served)

    def sign(
        self, key: ZoneKey, owner: dns.name.Name, rdataset: dns.rdataset.Rdataset, valid: Window
    ) -> dns.rdtypes.ANY.RRSIG.RRSIG:
        """The RRSIG of the RRset `owner`/`rdataset` (absolute owner) by `key`."""
        origin = key.origin
        wires = sorted(rd.to_digestable(origin) for rd in rdataset)
        entry = (
            key.tag,
            owner.canonicalize().to_wire(),
            int(rdataset.rdtype),
            rdataset.ttl,
            tuple(wires),
            valid.inception,
            valid.expiration,
        )
        self.calls += 1
        found = self._sigs.get(entry)
        if found is not None:
            self._sigs.move_to_end(entry)
            self.hits += 1
            return found
        self.misses += 1
        rrsig = dns.dnssec.sign(
            (owner, rdataset),
            key.private,
            signer=origin,
            dnskey=key.dnskey,
            inception=valid.inception,
            expiration=valid.expiration,
            origin=origin,
        )
        self._sigs[entry] = rrsig
        if len(self._sigs) > self.size:
            self._sigs.popitem(last=False)
        return rrsig

    def rrsig_rdataset(
        self,
        key: ZoneKey,
        owner: dns.name.Name,
        rdataset: dns.rdataset.Rdataset,
        valid: Window,
        original_ttl: int = 0,
    ) -> dns.rdataset.Rdataset:
        """The RRSIG rdataset to serve with `rdataset`: the RRSIG's TTL is the RRset's, and an
        `original_ttl` above it is what is signed (RFC 4035 5.3.3: a lowered TTL keeps its
        Original TTL, and its signature)."""
        signed = rdataset
        if original_ttl > rdataset.ttl:
            signed = dns.rdataset.Rdataset(rdataset.rdclass, rdataset.rdtype, rdataset.covers, original_ttl)
            signed.items.update(rdataset.items)
        sig = self.sign(key, owner, signed, valid)
        out = dns.rdataset.Rdataset(IN, dns.rdatatype.RRSIG, rdataset.rdtype, rdataset.ttl)
        out.add(sig)
        return out


CACHE = SignatureCache()


def _keys(key: ZoneKey | Sequence[ZoneKey]) -> tuple[ZoneKey, ...]:
    return (key,) if isinstance(key, ZoneKey) else tuple(key)


class ZoneSigner:
    """Signs RRsets of one zone with its zone-signing (active) keys in one validity window:
    the compiler's way to sign what it renders beyond the zone (pool variants)."""

    def __init__(
        self, key: ZoneKey | Sequence[ZoneKey], valid: Window, cache: SignatureCache = CACHE
    ) -> None:
        self.keys = tuple(k for k in _keys(key) if k.role.signs_zone)
        assert self.keys, "a signed zone needs an active key"
        self.valid = valid
        self.cache = cache

    def __call__(
        self, owner: dns.name.Name, rdataset: dns.rdataset.Rdataset, original_ttl: int = 0
    ) -> dns.rdataset.Rdataset:
        first, *more = self.keys
        out = self.cache.rrsig_rdataset(first, owner, rdataset, self.valid, original_ttl)
        for key in more:
            for sig in self.cache.rrsig_rdataset(key, owner, rdataset, self.valid, original_ttl):
                out.add(sig)
        return out


def signed_zone(
    zone: dns.zone.Zone,
    key: ZoneKey | Sequence[ZoneKey],
    now: float | None = None,
    cache: SignatureCache = CACHE,
    overlay: Mapping[dns.name.Name, dns.node.Node] | None = None,
    valid: Window | None = None,
    nsec3: bool = False,
) -> dns.zone.Zone:
    """A signed copy of `zone` (which is left as it is), with the `overlay` nodes (absolute
    names: what the policy adds or replaces) laid over it first, so that they are signed
    and in the NSEC chain too; `nsec3`: an NSEC3 chain instead (RFC 9276 parameters). `key`:
    the zone's key, or its keys in their rollover states."""
    keys = _keys(key)
    shown = [k for k in keys if k.role.in_dnskey]
    key_signers = [k for k in keys if k.role.signs_keys]
    zone_signers = [k for k in keys if k.role.signs_zone]
    assert zone_signers, "a signed zone needs an active key"
    origin = zone.origin
    assert origin is not None
    copy = dns.zone.Zone(origin, rdclass=zone.rdclass, relativize=zone.relativize)
    copy.nodes = dict(zone.nodes)  # the writer copies each node before changing it
    for name, node in (overlay or {}).items():
        copy.nodes[name.relativize(origin) if zone.relativize else name] = node
    valid = valid or window(now)
    apex_name = dns.name.empty if zone.relativize else origin
    soa = zone.get_rdataset(apex_name, dns.rdatatype.SOA)
    assert soa is not None
    ttl = soa.ttl
    negative = min(ttl, soa[0].minimum)  # RFC 9077 3.1.1: the TTL of NSEC and NSEC3 records

    def signer(txn: dns.transaction.Transaction, rrset: dns.rrset.RRset) -> None:
        owner = rrset.name.derelativize(origin)
        if rrset.rdtype == dns.rdatatype.NSEC and rrset.ttl != negative:  # dnspython gives MINIMUM
            rrset = dns.rrset.from_rdata_list(rrset.name, negative, list(rrset))
            txn.replace(rrset.name, rrset)
        for by in key_signers if rrset.rdtype in KEY_TYPES else zone_signers:
            txn.add(rrset.name, rrset.ttl, cache.sign(by, owner, rrset, valid))

    with copy.writer() as txn:
        for each in shown:
            wire = each.dnskey.to_wire()
            assert wire is not None
            txn.add(apex_name, ttl, each.dnskey)
            if each.role.in_cds:
                txn.add(apex_name, ttl, dns.dnssec.make_cds(origin, each.dnskey, "SHA256"))
                txn.add(apex_name, ttl, dns.rdata.from_wire(IN, dns.rdatatype.CDNSKEY, wire, 0, len(wire)))
        if nsec3:
            assert not zone.relativize, "NSEC3 signing takes a zone of absolute names"
            _sign_nsec3(txn, origin, signer, negative)
        else:
            dns.dnssec.sign_zone(copy, txn=txn, add_dnskey=False, rrset_signer=signer)
    return copy


def _authoritative(
    txn: dns.transaction.Transaction, origin: dns.name.Name
) -> tuple[list[dns.name.Name], set[dns.name.Name]]:
    """The names with data this zone is authoritative for (cuts included, what lies below
    them not), and the cuts."""
    names = sorted(txn.iterate_names())
    cuts = {n for n in names if n != origin and txn.get(n, dns.rdatatype.NS) is not None}
    kept = []
    for name in names:
        walk = name.parent() if name != origin else name
        occluded = False
        while walk != origin and len(walk) > len(origin):
            if walk in cuts:
                occluded = True
                break
            walk = walk.parent()
        if not occluded:
            kept.append(name)
    return kept, cuts


def _sign_nsec3(
    txn: dns.transaction.Transaction,
    origin: dns.name.Name,
    signer: Callable[[dns.transaction.Transaction, dns.rrset.RRset], None],
    ttl: int,
) -> None:
    """RRSIGs over every authoritative RRset (a cut's DS only) and an NSEC3 chain with the
    parameters of RFC 9276 3.1: SHA-1, no extra iterations, no salt, no opt-out. Empty
    non-terminals get an NSEC3 of their own (RFC 5155 7.1); the NSEC3 TTL is the negative
    TTL (RFC 9077)."""
    names, cuts = _authoritative(txn, origin)
    txn.add(origin, ttl, dns.rdata.from_text(IN, dns.rdatatype.NSEC3PARAM, "1 0 0 -"))
    types: dict[dns.name.Name, set[int]] = {}
    for name in names:
        node = txn.get_node(name)
        assert node is not None
        present = {int(rds.rdtype) for rds in node.rdatasets}
        signed = [rds for rds in node.rdatasets if rds.rdtype != dns.rdatatype.RRSIG]
        if name in cuts:
            signed = [rds for rds in signed if rds.rdtype == dns.rdatatype.DS]
        for rds in signed:
            signer(txn, dns.rrset.from_rdata_list(name, rds.ttl, list(rds)))
        if signed:
            present.add(dns.rdatatype.RRSIG)
        types[name] = present
        walk = name
        while walk != origin and len(walk) > len(origin):
            walk = walk.parent()
            types.setdefault(walk, set())  # an empty non-terminal, unless it has data
    hashed = sorted((dns.dnssec.nsec3_hash(name, b"", 0, 1).lower(), name) for name in types)
    for index, (digest, name) in enumerate(hashed):
        following = hashed[(index + 1) % len(hashed)][0]
        bitmap = " ".join(dns.rdatatype.to_text(dns.rdatatype.RdataType.make(t)) for t in sorted(types[name]))
        rdata = dns.rdata.from_text(IN, dns.rdatatype.NSEC3, f"1 0 0 - {following.upper()} {bitmap}")
        owner = dns.name.Name((digest.encode(), *origin.labels))
        txn.add(owner, ttl, rdata)
        signer(txn, dns.rrset.from_rdata(owner, ttl, rdata))

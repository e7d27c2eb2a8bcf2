"""Signing a zone dynmx signs (`[[zone]] dnssec = true`) before its answers are compiled.

The operator's zone stays unsigned; the copy handed to the compiler gets the CSK's DNSKEY,
CDS and CDNSKEY at the apex (RFC 7344), an RRSIG over every authoritative RRset and an NSEC
chain (dnspython's `dns.dnssec.sign_zone`). Signatures are cached by the canonical RRset,
its TTL and the validity window, so signing an edited zone again, or a pool variant that
comes back, reuses the signatures of what did not change.

The validity window is fixed per day (inception an hour before the day starts, expiry 14
days after it), so every signature made in one day shares it and the cache hits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
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
    """RRSIGs by (key tag, owner, type, TTL, canonical rdata, window); the oldest go first
    past `size` entries."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._sigs: OrderedDict[tuple[object, ...], dns.rdtypes.ANY.RRSIG.RRSIG] = OrderedDict()
        self.hits = 0
        self.misses = 0

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
        found = self._sigs.get(entry)
        if found is not None:
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


class ZoneSigner:
    """Signs RRsets of one zone with its key in one validity window: the compiler's way to
    sign what it renders beyond the zone (pool variants)."""

    def __init__(self, key: ZoneKey, valid: Window, cache: SignatureCache = CACHE) -> None:
        self.key = key
        self.valid = valid
        self.cache = cache

    def __call__(
        self, owner: dns.name.Name, rdataset: dns.rdataset.Rdataset, original_ttl: int = 0
    ) -> dns.rdataset.Rdataset:
        return self.cache.rrsig_rdataset(self.key, owner, rdataset, self.valid, original_ttl)


def signed_zone(
    zone: dns.zone.Zone,
    key: ZoneKey,
    now: float | None = None,
    cache: SignatureCache = CACHE,
    overlay: Mapping[dns.name.Name, dns.node.Node] | None = None,
    valid: Window | None = None,
) -> dns.zone.Zone:
    """A signed copy of `zone` (which is left as it is), with the `overlay` nodes (absolute
    names: what the policy adds or replaces) laid over it first, so that they are signed
    and in the NSEC chain too."""
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

    def signer(txn: dns.transaction.Transaction, rrset: dns.rrset.RRset) -> None:
        owner = rrset.name.derelativize(origin)
        txn.add(rrset.name, rrset.ttl, cache.sign(key, owner, rrset, valid))

    with copy.writer() as txn:
        cds = dns.dnssec.make_cds(origin, key.dnskey, "SHA256")
        wire = key.dnskey.to_wire()
        assert wire is not None
        cdnskey = dns.rdata.from_wire(IN, dns.rdatatype.CDNSKEY, wire, 0, len(wire))
        txn.add(apex_name, ttl, key.dnskey)
        txn.add(apex_name, ttl, cds)
        txn.add(apex_name, ttl, cdnskey)
        dns.dnssec.sign_zone(copy, txn=txn, add_dnskey=False, rrset_signer=signer)
    return copy

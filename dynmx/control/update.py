"""RFC 2136 UPDATE semantics as plain functions over a zone snapshot.

No I/O and no TSIG here (the caller has verified the signature): a message in, an
rcode and a list of record changes out. The prerequisite checks of §3.2 are a table
from (class, type) to the test and the rcode that a failed test answers; the update
section is prescanned (§3.4.1) before anything is applied (§3.4.2), so a bad update
changes nothing: all or nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.update
import dns.zone

IN = dns.rdataclass.IN
ANY = dns.rdataclass.ANY
NONE = dns.rdataclass.NONE
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
CNAME = dns.rdatatype.CNAME
TYPE_ANY = dns.rdatatype.ANY
META_TYPES = {dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.MAILA, dns.rdatatype.MAILB, 250, 249}


class Op(enum.Enum):
    ADD = "add"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One record added to or deleted from the zone."""

    op: Op
    name: dns.name.Name
    ttl: int
    rdata: dns.rdata.Rdata


class UpdateRefused(Exception):
    """The update cannot be applied: answer `rcode`, change nothing."""

    def __init__(self, rcode: dns.rcode.Rcode, reason: str) -> None:
        super().__init__(reason)
        self.rcode = rcode


def _rrset(zone: dns.zone.Zone, name: dns.name.Name, rdtype: int) -> dns.rdataset.Rdataset | None:
    node = zone.nodes.get(name)
    return node.get_rdataset(IN, dns.rdatatype.RdataType.make(rdtype)) if node is not None else None


def rrclass(rrset: dns.rrset.RRset) -> int:
    """The CLASS field as sent: dnspython keeps ANY/NONE of updates in `deleting`."""
    return int(rrset.deleting) if rrset.deleting is not None else int(rrset.rdclass)


def _name_in_use(zone: dns.zone.Zone, name: dns.name.Name) -> bool:
    node = zone.nodes.get(name)
    return node is not None and bool(node.rdatasets)


# (prerequisite class, is type ANY) -> (test, rcode when the test fails); RFC 2136 §2.4, §3.2.
Test = Callable[[dns.zone.Zone, dns.rrset.RRset], bool]
PREREQUISITES: dict[tuple[int, bool], tuple[Test, dns.rcode.Rcode]] = {
    (ANY, True): (lambda z, r: _name_in_use(z, r.name), dns.rcode.NXDOMAIN),  # name is in use
    (ANY, False): (lambda z, r: _rrset(z, r.name, r.rdtype) is not None, dns.rcode.NXRRSET),  # RRset exists
    (NONE, True): (lambda z, r: not _name_in_use(z, r.name), dns.rcode.YXDOMAIN),  # name not in use
    (NONE, False): (lambda z, r: _rrset(z, r.name, r.rdtype) is None, dns.rcode.YXRRSET),  # RRset absent
}


def check_prerequisites(
    zone: dns.zone.Zone, origin: dns.name.Name, message: dns.update.UpdateMessage
) -> None:
    """RFC 2136 §3.2: every prerequisite holds, else UpdateRefused with its rcode."""
    value_dependent: dict[tuple[dns.name.Name, int], set[dns.rdata.Rdata]] = {}
    for rrset in message.prerequisite:
        if rrset.ttl != 0:
            raise UpdateRefused(dns.rcode.FORMERR, "prerequisite TTL must be 0")
        if not rrset.name.is_subdomain(origin):
            raise UpdateRefused(dns.rcode.NOTZONE, f"{rrset.name} is outside {origin}")
        if rrclass(rrset) == IN:
            value_dependent.setdefault((rrset.name, rrset.rdtype), set()).update(rrset)
            continue
        rule = PREREQUISITES.get((rrclass(rrset), rrset.rdtype == TYPE_ANY))
        if rule is None or len(rrset):
            raise UpdateRefused(dns.rcode.FORMERR, "malformed prerequisite")
        test, rcode = rule
        if not test(zone, rrset):
            raise UpdateRefused(rcode, f"prerequisite on {rrset.name} not met")
    for (name, rdtype), wanted in value_dependent.items():
        existing = _rrset(zone, name, rdtype)
        if existing is None or set(existing) != wanted:
            raise UpdateRefused(dns.rcode.NXRRSET, f"RRset {name} type {rdtype} differs")


def prescan(origin: dns.name.Name, message: dns.update.UpdateMessage) -> None:
    """RFC 2136 §3.4.1: refuse the whole update before applying any of it."""
    for rrset in message.update:
        if not rrset.name.is_subdomain(origin):
            raise UpdateRefused(dns.rcode.NOTZONE, f"{rrset.name} is outside {origin}")
        cls = rrclass(rrset)
        if cls == IN:
            if rrset.rdtype in META_TYPES or rrset.rdtype == TYPE_ANY:
                raise UpdateRefused(dns.rcode.FORMERR, "meta type in an add")
            for rdata in rrset:
                if not _reads_back(rdata):
                    raise UpdateRefused(dns.rcode.FORMERR, f"{rrset.name}: record has no zone-file form")
        elif cls == ANY:
            if rrset.ttl != 0 or len(rrset) or rrset.rdtype in META_TYPES:
                raise UpdateRefused(dns.rcode.FORMERR, "malformed delete")
        elif cls == NONE:
            if rrset.ttl != 0 or rrset.rdtype in META_TYPES or rrset.rdtype == TYPE_ANY:
                raise UpdateRefused(dns.rcode.FORMERR, "malformed delete of a record")
        else:
            raise UpdateRefused(dns.rcode.FORMERR, f"class {cls} in the update section")


def _reads_back(rdata: dns.rdata.Rdata) -> bool:
    """The zone file and the journal hold records as text: an add must read back as itself.

    dnspython decodes RDATA it cannot write as readable text (a DS with no digest, a
    DNSKEY with no key); stored, such a record would make the zone file unloadable and
    IXFR fail (found by fuzzing, tests/test_fuzz_engine.py).
    """
    try:
        return bool(dns.rdata.from_text(IN, rdata.rdtype, rdata.to_text()) == rdata)
    except Exception:  # any failure to read it back means it cannot be stored
        return False


def plan_changes(
    zone: dns.zone.Zone, origin: dns.name.Name, message: dns.update.UpdateMessage
) -> list[Change]:
    """RFC 2136 §3.4.2 applied to a scratch view; returns the record changes, in order."""
    scratch: dict[tuple[dns.name.Name, int], dict[dns.rdata.Rdata, int]] = {}

    def current(name: dns.name.Name, rdtype: int) -> dict[dns.rdata.Rdata, int]:
        key = (name, rdtype)
        if key not in scratch:
            rds = _rrset(zone, name, rdtype)
            scratch[key] = {rd: rds.ttl for rd in rds} if rds is not None else {}
        return scratch[key]

    def types_at(name: dns.name.Name) -> set[int]:
        node = zone.nodes.get(name)
        found = {int(rds.rdtype) for rds in node.rdatasets} if node is not None else set()
        found |= {t for (n, t) in scratch if n == name}
        return {t for t in found if current(name, t)}

    changes: list[Change] = []
    for rrset in message.update:
        name, rdtype = rrset.name, rrset.rdtype
        cls = rrclass(rrset)
        if cls == IN:
            present = types_at(name)
            if rdtype == CNAME and present - {CNAME, dns.rdatatype.RRSIG, dns.rdatatype.NSEC}:
                continue  # §3.4.2.2: a CNAME beside other data is ignored
            if rdtype != CNAME and CNAME in present:
                continue
            records = current(name, rdtype)
            for rdata in rrset:
                if rdtype == SOA:
                    if name != origin:
                        continue
                    old = next(iter(records), None)
                    if old is not None and not serial_newer(rdata.serial, old.serial):  # type: ignore[attr-defined]
                        continue
                    for existing, ttl in list(records.items()):
                        changes.append(Change(Op.DELETE, name, ttl, existing))
                        del records[existing]
                if rdata not in records:
                    records[rdata] = rrset.ttl
                    changes.append(Change(Op.ADD, name, rrset.ttl, rdata))
        elif cls == ANY:
            targets = types_at(name) if rdtype == TYPE_ANY else {rdtype}
            for target in targets:
                if name == origin and target in (SOA, NS):
                    continue  # §3.4.2.3: the apex SOA and NS stay
                records = current(name, target)
                for existing, ttl in list(records.items()):
                    changes.append(Change(Op.DELETE, name, ttl, existing))
                    del records[existing]
        else:  # NONE: delete one record
            if rdtype == SOA:
                continue
            records = current(name, rdtype)
            for rdata in rrset:
                if rdata not in records:
                    continue
                if name == origin and rdtype == NS and len(records) == 1:
                    continue  # §3.4.2.4: never the last apex NS
                changes.append(Change(Op.DELETE, name, records.pop(rdata), rdata))
    return changes


def serial_newer(new: int, old: int) -> bool:
    """RFC 1982 serial number arithmetic: is `new` after `old`?"""
    return new != old and ((new - old) % 2**32) < 2**31


def evaluate(zone: dns.zone.Zone, origin: dns.name.Name, message: dns.update.UpdateMessage) -> list[Change]:
    """The whole of RFC 2136 §3 for one verified message; raises UpdateRefused."""
    if len(message.zone) != 1 or message.zone[0].rdtype != SOA:
        raise UpdateRefused(dns.rcode.FORMERR, "the zone section must hold one SOA question")
    if message.zone[0].name != origin or message.zone[0].rdclass != IN:
        raise UpdateRefused(dns.rcode.NOTAUTH, f"not authoritative for {message.zone[0].name}")
    check_prerequisites(zone, origin, message)
    prescan(origin, message)
    return plan_changes(zone, origin, message)

"""RFC 2136 UPDATE semantics as plain functions over a zone snapshot.

No I/O and no TSIG here (the caller has verified the signature): a message in, an
rcode and a list of record changes out. The prerequisite checks of §3.2 are a table
from (class, type) to the test and the rcode that a failed test answers; the key's
rules (§3.3) are checked record by record before anything is planned; the update
section is prescanned (§3.4.1) before anything is applied (§3.4.2), so a bad update
changes nothing: all or nothing.

Every step is linear in the size of the update: a message of 1,000 records costs ten
times one of 100 (the scratch view of the planner is indexed by name, so asking what a
name holds never walks the names touched before).
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

from dynmx.errors import DynmxError

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


class UpdateRefused(DynmxError):
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
    IXFR fail (found by fuzzing, tests/integration/test_fuzz_engine.py).
    """
    try:
        return bool(dns.rdata.from_text(IN, rdata.rdtype, rdata.to_text()) == rdata)
    except Exception:  # any failure to read it back means it cannot be stored
        return False


def plan_changes(
    zone: dns.zone.Zone, origin: dns.name.Name, message: dns.update.UpdateMessage
) -> list[Change]:
    """RFC 2136 §3.4.2 applied to a scratch view; returns the record changes, in order."""
    # name -> type -> the records (rdata -> TTL) as planned so far; a name's entry is all
    # this update touched at it, so what a name holds is found without walking other names.
    scratch: dict[dns.name.Name, dict[int, dict[dns.rdata.Rdata, int]]] = {}

    def current(name: dns.name.Name, rdtype: int) -> dict[dns.rdata.Rdata, int]:
        at = scratch.get(name)
        if at is None:
            at = scratch[name] = {}
        records = at.get(rdtype)
        if records is None:
            rds = _rrset(zone, name, rdtype)
            records = at[rdtype] = {rd: rds.ttl for rd in rds} if rds is not None else {}
        return records

    def types_at(name: dns.name.Name) -> set[int]:
        node = zone.nodes.get(name)
        found = {int(rds.rdtype) for rds in node.rdatasets} if node is not None else set()
        found.update(scratch.get(name, ()))
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


def evaluate(
    zone: dns.zone.Zone,
    origin: dns.name.Name,
    message: dns.update.UpdateMessage,
    rules: KeyRules | None = None,
) -> list[Change]:
    """The whole of RFC 2136 §3 for one verified message, sent with a key limited by `rules`
    (None: unrestricted); raises UpdateRefused (KeyRefused for what the key may not do)."""
    if len(message.zone) != 1 or message.zone[0].rdtype != SOA:
        raise UpdateRefused(dns.rcode.FORMERR, "the zone section must hold one SOA question")
    if message.zone[0].name != origin or message.zone[0].rdclass != IN:
        raise UpdateRefused(dns.rcode.NOTAUTH, f"not authoritative for {message.zone[0].name}")
    check_prerequisites(zone, origin, message)
    if rules is not None:
        forbidden = rules.refusal(zone, origin, message)
        if forbidden is not None:
            raise KeyRefused(forbidden)
    prescan(origin, message)
    return plan_changes(zone, origin, message)


def _type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))


class KeyRefused(UpdateRefused):
    """RFC 2136 §3.3: the key may not make this change (REFUSED); `record` names the record."""

    def __init__(self, record: str) -> None:
        super().__init__(dns.rcode.REFUSED, f"the key may not change {record}")
        self.record = record


class KeyRules:
    """Which names and types a TSIG key may change (empty: any, in the zones that allow it).

    `names` are exact names or `*.parent.` for every name strictly below `parent`. Nothing is
    granted implicitly, as in BIND's update-policy: a key limited to A and AAAA may not send
    an SOA (the serial bump the server makes after an edit is not the client's change). The
    rules are checked per record of the update section, before anything is planned: a
    delete of every RRset at a name (type ANY) needs every type the name holds, as BIND
    checks it (the apex SOA and NS excepted, which such a delete keeps, §3.4.2.3).
    """

    def __init__(self, names: tuple[str, ...] = (), types: tuple[str, ...] = ()) -> None:
        self.exact = {dns.name.from_text(n) for n in names if not n.startswith("*.")}
        self.below = [dns.name.from_text(n[2:]) for n in names if n.startswith("*.")]
        self.types = {int(dns.rdatatype.from_text(t)) for t in types}

    @property
    def unrestricted(self) -> bool:
        return not (self.exact or self.below or self.types)

    def name_allowed(self, name: dns.name.Name) -> bool:
        if not (self.exact or self.below):
            return True
        return name in self.exact or any(name.is_subdomain(p) and name != p for p in self.below)

    def type_allowed(self, rdtype: int) -> bool:
        return not self.types or rdtype in self.types

    def refusal(
        self, zone: dns.zone.Zone, origin: dns.name.Name, message: dns.update.UpdateMessage
    ) -> str | None:
        """The first record of the update section the key may not send, as `NAME TYPE`; None
        when it may send them all. Costs one look per record (and per type at a name for a
        delete of all its RRsets)."""
        if self.unrestricted:
            return None
        for rrset in message.update:
            name, rdtype = rrset.name, int(rrset.rdtype)
            if not self.name_allowed(name):
                return f"{name} {_type_text(rdtype)}"
            if rdtype == TYPE_ANY and rrclass(rrset) == ANY and self.types:
                node = zone.nodes.get(name)
                held = {int(rds.rdtype) for rds in node.rdatasets} if node is not None else set()
                if name == origin:
                    held -= {SOA, NS}
                for other in sorted(held):
                    if not self.type_allowed(other):
                        return f"{name} {_type_text(other)}"
            elif not self.type_allowed(rdtype):
                return f"{name} {_type_text(rdtype)}"
        return None

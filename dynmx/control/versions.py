"""Zone versions: a new version with changes applied, and the SOA serial rules.

The old version is never touched (nodes not changed are shared, changed ones copied
once; a large zone's node dict itself is shared, `zone.nodes.VersionNodes`), so readers
and a failed edit see no mix; serials move forward by the zone's policy in RFC 1982
arithmetic.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import dns.name
import dns.node
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.zone

from dynmx.control.update import Change, Op
from dynmx.zone.nodes import next_version

IN = dns.rdataclass.IN
SOA = dns.rdatatype.SOA
SERIAL_POLICIES = ("unixtime", "dateserial", "increment")


def next_serial(old: int, policy: str, now: float) -> int:
    """The serial after `old` under a policy, always newer than `old` in RFC 1982 terms."""
    bumped = (old + 1) % 2**32
    if policy == "unixtime":
        candidate = int(now)
    elif policy == "dateserial":
        candidate = int(datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y%m%d")) * 100
    else:
        candidate = bumped
    # Take the policy's value only when it moves forward; else count on from the old one.
    return candidate if 0 < (candidate - old) % 2**32 < 2**31 else bumped


def _copy_node(node: dns.node.Node | None) -> dns.node.Node:
    copy = dns.node.Node()  # type: ignore[no-untyped-call]
    if node is not None:
        for rdataset in node.rdatasets:
            copy.rdatasets.append(dns.rdataset.from_rdata_list(rdataset.ttl, list(rdataset)))
    return copy


def apply_changes(zone: dns.zone.Zone, changes: Iterable[Change]) -> dns.zone.Zone:
    """A new zone version with `changes` applied; nodes not touched are shared, not copied."""
    new = _new_version(zone)
    _apply(new, zone, changes, set())
    return new


def _new_version(zone: dns.zone.Zone) -> dns.zone.Zone:
    new = dns.zone.Zone(zone.origin, zone.rdclass, relativize=False)
    new.nodes = next_version(zone.nodes)  # shared, not copied, for a large zone
    return new


def _apply(
    new: dns.zone.Zone, zone: dns.zone.Zone, changes: Iterable[Change], copied: set[dns.name.Name]
) -> None:
    """Apply `changes` to `new`, a version made from `zone`; a node is copied from `zone` the
    first time it is touched (`copied` names those already private to `new`)."""
    for change in changes:
        if change.name not in copied:
            new.nodes[change.name] = _copy_node(zone.nodes.get(change.name))
            copied.add(change.name)
        node = new.nodes.setdefault(change.name, _copy_node(None))
        rdtype = change.rdata.rdtype
        if change.op is Op.ADD:
            rdataset = node.get_rdataset(IN, rdtype)
            if rdataset is None:
                # Appended directly: dnspython's find_rdataset would quietly drop a CNAME (or
                # the data beside it); validation must see the conflict and refuse the edit.
                rdataset = dns.rdataset.Rdataset(IN, rdtype)
                node.rdatasets.append(rdataset)
            rdataset.add(change.rdata, change.ttl)
        else:
            existing = node.get_rdataset(IN, rdtype)
            if existing is not None:
                existing.discard(change.rdata)  # type: ignore[no-untyped-call]
                if not existing:
                    node.delete_rdataset(IN, rdtype)
        if not node.rdatasets:
            del new.nodes[change.name]


def _origin(zone: dns.zone.Zone) -> dns.name.Name:
    assert zone.origin is not None
    return zone.origin


def soa_change(zone: dns.zone.Zone, policy: str, now: float) -> list[Change]:
    """The two changes that bump the SOA serial."""
    origin = _origin(zone)
    soa = zone.nodes[origin].get_rdataset(IN, SOA)
    assert soa is not None
    old = soa[0]
    new = with_soa_serial(old, next_serial(old.serial, policy, now))
    return [Change(Op.DELETE, origin, soa.ttl, old), Change(Op.ADD, origin, soa.ttl, new)]


def with_soa_serial(soa: dns.rdtypes.ANY.SOA.SOA, serial: int) -> dns.rdtypes.ANY.SOA.SOA:
    """`soa` with another serial. Built directly: dnspython's `replace` inspects the class's
    signature on every call, milliseconds each."""
    return dns.rdtypes.ANY.SOA.SOA(  # type: ignore[no-untyped-call]
        soa.rdclass, soa.rdtype, soa.mname, soa.rname, serial, soa.refresh, soa.retry, soa.expire, soa.minimum
    )


def with_serial(zone: dns.zone.Zone, serial: int) -> dns.zone.Zone:
    """A new version of `zone` whose SOA has `serial`."""
    origin = _origin(zone)
    soa = zone.nodes[origin].get_rdataset(IN, SOA)
    assert soa is not None
    old = soa[0]
    changes = [
        Change(Op.DELETE, origin, soa.ttl, old),
        Change(Op.ADD, origin, soa.ttl, with_soa_serial(old, serial)),
    ]
    return apply_changes(zone, changes)

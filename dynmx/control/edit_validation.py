"""Is a zone still valid after an edit? `validate`, at the cost of the edit rather than the zone."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from dynmx.control.update import Change, Op
from dynmx.errors import Problem
from dynmx.zone.validate import Record, validate

IN = dns.rdataclass.IN
NS = dns.rdatatype.NS


def records_of(zone: dns.zone.Zone, file: str, names: Iterable[dns.name.Name] | None = None) -> list[Record]:
    """The zone's records as `validate` takes them: all, or those at `names`."""
    nodes = zone.nodes.items() if names is None else ((n, zone.nodes.get(n)) for n in names)
    return [
        Record(name, rdataset.ttl, rdata, file, 0)
        for name, node in nodes
        if node is not None
        for rdataset in node.rdatasets
        for rdata in rdataset
    ]


_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)


def edit_problems(
    origin: dns.name.Name, zone: dns.zone.Zone, changes: list[Change], file: str
) -> list[Problem]:
    """`validate` of the zone after an edit, at the cost of the edit rather than the zone.

    The zone before was valid, so only records the edit can affect are checked: those at the
    changed names and the apex, the NS records above them (is a name a cut, or occluded?),
    and for every NS record among them its target's addresses and the cuts above the target.
    An edit that removes a cut's NS record or the last address of a name may break an NS
    record anywhere in the zone; the whole zone is checked then.
    """
    if any(_may_break_others(zone, origin, change) for change in changes):
        return validate(origin, records_of(zone, file), file=file)
    names = {origin, *(change.name for change in changes)}
    todo = list(names)
    while todo:
        name = todo.pop()
        node = zone.nodes.get(name)
        targets = [rdata.target for rdata in node.get_rdataset(IN, NS) or ()] if node is not None else []
        for near in [*_ancestors(name, origin), *targets]:
            if near not in names and near.is_subdomain(origin):
                names.add(near)
                todo.append(near)
    return validate(origin, records_of(zone, file, names), file=file)


def _may_break_others(zone: dns.zone.Zone, origin: dns.name.Name, change: Change) -> bool:
    if change.op is not Op.DELETE:
        return False
    rdtype = change.rdata.rdtype
    if rdtype == NS:
        return bool(change.name != origin)
    if rdtype in _ADDRESS_TYPES:
        node = zone.nodes.get(change.name)
        return node is None or all(node.get_rdataset(IN, t) is None for t in _ADDRESS_TYPES)
    return False


def _ancestors(name: dns.name.Name, origin: dns.name.Name) -> Iterator[dns.name.Name]:
    while name != origin and len(name) > len(origin):
        name = name.parent()
        yield name

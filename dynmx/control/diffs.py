"""Zone differences as journal lines and back: diff two versions, make an entry, replay one.

Replay is strict: a change that does not apply to the zone (a record to remove that is not
there, one to add that already is) means the journal and the file are not one history,
and `JournalMismatch` says so rather than apply part of it.
"""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone

from dynmx.control.journal import JournalEntry
from dynmx.control.update import Change, Op
from dynmx.control.versions import _origin, apply_changes
from dynmx.errors import DynmxError
from dynmx.zone.soa import serial_of

IN = dns.rdataclass.IN


class JournalMismatch(DynmxError):
    """The journal's changes do not apply to the zone file: the two are not one history."""


def _line(change: Change) -> str:
    return (
        f"{change.name} {change.ttl} IN {dns.rdatatype.to_text(change.rdata.rdtype)} {change.rdata.to_text()}"
    )


def journal_entry(
    name: str, before: dns.zone.Zone, after: dns.zone.Zone, changes: list[Change]
) -> JournalEntry:
    return JournalEntry(
        name,
        serial_of(before),
        serial_of(after),
        tuple(_line(c) for c in changes if c.op is Op.DELETE),
        tuple(_line(c) for c in changes if c.op is Op.ADD),
    )


def diff_zones(old: dns.zone.Zone, new: dns.zone.Zone) -> list[Change]:
    """The changes that make `new` from `old`, deletions first; an RRset whose TTL changed is
    deleted and added whole (IXFR carries TTLs per record, RFC 1995). Nodes the two versions
    share are skipped without looking inside."""
    deleted: list[Change] = []
    added: list[Change] = []
    for name in old.nodes.keys() | new.nodes.keys():
        before, after = old.nodes.get(name), new.nodes.get(name)
        if before is after:
            continue
        was = {(r.rdtype, r.covers): r for r in before.rdatasets} if before is not None else {}
        now = {(r.rdtype, r.covers): r for r in after.rdatasets} if after is not None else {}
        for key in was.keys() | now.keys():
            a, b = was.get(key), now.get(key)
            if a is not None and b is not None and a.ttl == b.ttl and a == b:
                continue
            same_ttl = a is not None and b is not None and a.ttl == b.ttl
            gone = [rd for rd in a or () if not (same_ttl and b is not None and rd in b)]
            came = [rd for rd in b or () if not (same_ttl and a is not None and rd in a)]
            deleted += [Change(Op.DELETE, name, a.ttl, rd) for rd in gone if a is not None]
            added += [Change(Op.ADD, name, b.ttl, rd) for rd in came if b is not None]
    return deleted + added


def _present(zone: dns.zone.Zone, change: Change) -> bool:
    node = zone.nodes.get(change.name)
    rdataset = node.get_rdataset(IN, change.rdata.rdtype) if node is not None else None
    return rdataset is not None and change.rdata in rdataset


def _changes_of(entry: JournalEntry) -> list[Change]:
    return [_parse(line, Op.DELETE) for line in entry.removed] + [
        _parse(line, Op.ADD) for line in entry.added
    ]


def _holds(zone: dns.zone.Zone, entry: JournalEntry) -> bool:
    """Whether `zone` looks like the result of `entry`: what it added is there, what it only
    removed is not."""
    changes = _changes_of(entry)
    added = {(c.name, c.rdata) for c in changes if c.op is Op.ADD}
    return all(
        _present(zone, c) if c.op is Op.ADD else (c.name, c.rdata) in added or not _present(zone, c)
        for c in changes
    )


def replay(zone: dns.zone.Zone, entry: JournalEntry) -> dns.zone.Zone:
    """`zone` with one journal entry applied; JournalMismatch unless the entry starts from this
    zone's serial, every record it removes is there and every record it adds is not."""
    name = _origin(zone).to_text()
    if serial_of(zone) != entry.old_serial:
        raise JournalMismatch(
            f"{name}: a change from serial {entry.old_serial} cannot follow {serial_of(zone)}"
        )
    changes = _changes_of(entry)
    removed = {(c.name, c.rdata) for c in changes if c.op is Op.DELETE}
    for change in changes:
        there = _present(zone, change)
        if change.op is Op.DELETE and not there:
            raise JournalMismatch(
                f"{name}: the change {entry.old_serial} -> {entry.new_serial} removes {_line(change)},"
                " which the zone file does not have"
            )
        if change.op is Op.ADD and there and (change.name, change.rdata) not in removed:
            raise JournalMismatch(
                f"{name}: the change {entry.old_serial} -> {entry.new_serial} adds {_line(change)},"
                " which the zone file already has"
            )
    return apply_changes(zone, changes)


def _parse(line: str, op: Op) -> Change:
    name, ttl, _, rdtype, text = line.split(" ", 4)
    rdata = dns.rdata.from_text(IN, dns.rdatatype.from_text(rdtype), text)
    return Change(op, dns.name.from_text(name), int(ttl), rdata)

"""Zone versions and their commit: the mechanics under the one owner (`dynmx.control.owner`).

Order of a commit (design.md, Data and persistence): apply the changes to a new zone
version (the old one is untouched, so readers and a failed edit see no mix), bump the
SOA serial by the zone's policy (RFC 1982 arithmetic), validate what the edit can
affect, append the difference to the journal, write the zone file atomically (temp
file, fsync, rename, fsync of the directory; in the running server on a background
thread, `WriteBack`). The caller then swaps the answer table. A crash before the
journal append loses an unacknowledged edit; after it, start-up replays the journal
onto the file (`reconcile`), strictly: a change that does not apply to the file (a
record to remove that is not there) means the two are not one history, and nothing
is replayed.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from dynmx.control.journal import Journal, JournalEntry
from dynmx.control.update import Change, Op
from dynmx.errors import DynmxError, Problem, StaleBase, ZoneLoadError
from dynmx.filemode import keep_mode
from dynmx.zone.loader import LoadedZone, new_digest
from dynmx.zone.soa import serial_of as serial_of  # its home is zone/; control imports it from here
from dynmx.zone.validate import Record, validate

IN = dns.rdataclass.IN
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
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
    new.nodes = dict(zone.nodes)  # the one copy of a commit: with 1,000,000 names, tenths of a second
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
    new = old.replace(serial=next_serial(old.serial, policy, now))
    return [Change(Op.DELETE, origin, soa.ttl, old), Change(Op.ADD, origin, soa.ttl, new)]


def with_serial(zone: dns.zone.Zone, serial: int) -> dns.zone.Zone:
    """A new version of `zone` whose SOA has `serial`."""
    origin = _origin(zone)
    soa = zone.nodes[origin].get_rdataset(IN, SOA)
    assert soa is not None
    old = soa[0]
    changes = [
        Change(Op.DELETE, origin, soa.ttl, old),
        Change(Op.ADD, origin, soa.ttl, old.replace(serial=serial)),
    ]
    return apply_changes(zone, changes)


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


def _line(change: Change) -> str:
    return (
        f"{change.name} {change.ttl} IN {dns.rdatatype.to_text(change.rdata.rdtype)} {change.rdata.to_text()}"
    )


class _HashingFile:
    """The file `Zone.to_file` writes to (it writes bytes when it can), hashing as it goes:
    the digest costs no second pass and no copy of a large zone's text."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = new_digest()

    def write(self, data: bytes | str) -> int:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        self.digest.update(raw)
        return self.out.write(raw)


def write_atomically(path: Path, zone: dns.zone.Zone, *, exclusive: bool = False) -> bytes:
    """Temp file in the same directory, fsync, rename, fsync the directory: old or new, never half.
    `exclusive`: FileExistsError rather than replace a file that is there (a hard link, not a
    rename, puts it in place: the check and the creation are one step).

    Returns the digest of the bytes written (`file_digest`): a reload that reads them back
    knows them for this version and does not parse them again."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        keep_mode(handle, path)
        with os.fdopen(handle, "wb") as out:
            hashing = _HashingFile(out)
            hashing.write(f"; written by dynmx; serial {serial_of(zone)}\n")
            hashing.write(f"$ORIGIN {zone.origin}\n")
            zone.to_file(cast(BinaryIO, hashing), sorted=True, relativize=False, want_origin=False)
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            os.link(temp, path)
            os.unlink(temp)
        else:
            os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return hashing.digest.digest()


class JournalMismatch(DynmxError):
    """The journal's changes do not apply to the zone file: the two are not one history."""


# (origin, version before, version after, names changed) -> problems the change brings in
EditCheck = Callable[[dns.name.Name, dns.zone.Zone, dns.zone.Zone, set[dns.name.Name]], list[str]]


class ZoneWriter:
    """Commits changes: new version, serial, validation, journal, zone file.

    Without `write`, files are written at once and the journal learns at once that they
    hold the new serial; the running server passes `WriteBack.submit` instead, whose
    thread tells the journal when each file is written (`Journal.mark_flushed`).
    """

    def __init__(
        self,
        journal: Journal,
        policies: dict[str, str] | None = None,
        write: Callable[[Path, dns.zone.Zone], object] | None = None,
        check: EditCheck | None = None,
    ) -> None:
        self.journal = journal
        self.policies = policies or {}
        self.write = write or self._write_now
        self.check = check

    def _write_now(self, path: Path, zone: dns.zone.Zone) -> None:
        write_atomically(path, zone)
        self.journal.mark_flushed(_origin(zone).to_text(), serial_of(zone))

    def commit(self, loaded: LoadedZone, changes: list[Change], now: float) -> LoadedZone:
        """Apply `changes` to `loaded` durably; raises ZoneLoadError (nothing written) if invalid,
        StaleBase if `loaded` is not the zone's newest version in the journal."""
        name = loaded.origin.to_text()
        head = self.journal.head(name)
        if head is not None and head != serial_of(loaded.zone):
            planned = serial_of(loaded.zone)
            raise StaleBase(f"{name}: the change was planned on serial {planned}, but serial {head} is newer")
        policy = self.policies.get(name, "increment")
        zone = _new_version(loaded.zone)
        copied: set[dns.name.Name] = set()
        _apply(zone, loaded.zone, changes, copied)
        serial = soa_change(zone, policy, now)
        _apply(zone, loaded.zone, serial, copied)  # onto the same new version: no second copy
        problems = edit_problems(loaded.origin, zone, [*changes, *serial], str(loaded.path))
        if not problems and self.check is not None:
            names = {change.name for change in changes}
            reasons = self.check(loaded.origin, loaded.zone, zone, names)
            problems = [Problem(str(loaded.path), 0, reason) for reason in reasons]
        if problems:
            raise ZoneLoadError([Problem(str(loaded.path), 0, p.reason) for p in problems])
        self.journal.append(journal_entry(name, loaded.zone, zone, [*changes, *serial]))
        self.write(loaded.path, zone)
        return LoadedZone(loaded.origin, zone, loaded.path)

    def record(self, before: LoadedZone, after: LoadedZone) -> list[Change]:
        """Journal a version made elsewhere (a zone file edited by hand, a transfer) as the
        difference from `before`; returns that difference (empty: nothing journaled)."""
        changes = diff_zones(before.zone, after.zone)
        if changes:
            name = before.origin.to_text()
            self.journal.append(journal_entry(name, before.zone, after.zone, changes))
        return changes

    def reconcile(self, loaded: LoadedZone) -> LoadedZone:
        """Bring a zone file read at start-up up to the journal: replay the changes it lacks
        (a crash after the journal, before the file). JournalMismatch when the journal does
        not continue this file: nothing is replayed then."""
        name = loaded.origin.to_text()
        entries = self.journal.entries(name)
        serial = serial_of(loaded.zone)
        if not entries:
            self.journal.mark_flushed(name, serial)
            return loaded
        first, last = entries[0], entries[-1]
        if last.new_serial == serial:
            if not _holds(loaded.zone, last):
                raise JournalMismatch(
                    f"{name}: the zone file has serial {serial} but not the content the journal's"
                    " change to that serial made"
                )
            self.journal.mark_flushed(name, serial)
            return loaded
        pending = self.journal.since(name, serial)
        if not pending:
            raise JournalMismatch(
                f"{name}: the zone file has serial {serial}, which the journal"
                f" ({first.old_serial} to {last.new_serial}) does not lead on from"
            )
        zone = loaded.zone
        for entry in pending:
            zone = replay(zone, entry)
        self.write(loaded.path, zone)
        return LoadedZone(loaded.origin, zone, loaded.path)


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

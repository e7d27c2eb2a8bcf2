"""The one writer: every zone change goes through `ZoneWriter.commit`.

Order of a commit (design.md, Data and persistence): apply the changes to a new zone
version (the old one is untouched, so readers and a failed edit see no mix), bump the
SOA serial by the zone's policy (RFC 1982 arithmetic), validate what the edit can
affect, append the difference to the journal, write the zone file atomically (temp
file, fsync, rename, fsync of the directory; in the running server on a background
thread, `WriteBack`). The caller then swaps the answer table. A crash before the
journal append loses an unacknowledged edit; after it, start-up replays the journal
onto the file (`reconcile`).
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
from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.loader import LoadedZone, new_digest
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


def serial_of(zone: dns.zone.Zone) -> int:
    soa = zone.nodes[_origin(zone)].get_rdataset(IN, SOA)
    assert soa is not None
    return int(soa[0].serial)


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


def write_atomically(path: Path, zone: dns.zone.Zone) -> bytes:
    """Temp file in the same directory, fsync, rename, fsync the directory: old or new, never half.

    Returns the digest of the bytes written (`file_digest`): a reload that reads them back
    knows them for this version and does not parse them again."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            hashing = _HashingFile(out)
            hashing.write(f"; written by dynmx; serial {serial_of(zone)}\n")
            hashing.write(f"$ORIGIN {zone.origin}\n")
            zone.to_file(cast(BinaryIO, hashing), sorted=True, relativize=False, want_origin=False)
            out.flush()
            os.fsync(out.fileno())
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


class ZoneWriter:
    """Commits changes: new version, serial, validation, journal, atomic file."""

    def __init__(
        self,
        journal: Journal,
        policies: dict[str, str] | None = None,
        write: Callable[[Path, dns.zone.Zone], object] = write_atomically,
    ) -> None:
        self.journal = journal
        self.policies = policies or {}
        self.write = write  # the running server's `WriteBack.submit`: after the journal, off the loop

    def commit(self, loaded: LoadedZone, changes: list[Change], now: float) -> LoadedZone:
        """Apply `changes` to `loaded` durably; raises ZoneLoadError (nothing written) if invalid."""
        name = loaded.origin.to_text()
        policy = self.policies.get(name, "increment")
        zone = _new_version(loaded.zone)
        copied: set[dns.name.Name] = set()
        _apply(zone, loaded.zone, changes, copied)
        serial = soa_change(zone, policy, now)
        _apply(zone, loaded.zone, serial, copied)  # onto the same new version: no second copy
        problems = edit_problems(loaded.origin, zone, [*changes, *serial], str(loaded.path))
        if problems:
            raise ZoneLoadError([Problem(str(loaded.path), 0, p.reason) for p in problems])
        entry = JournalEntry(
            name,
            serial_of(loaded.zone),
            serial_of(zone),
            tuple(_line(c) for c in [*changes, *serial] if c.op is Op.DELETE),
            tuple(_line(c) for c in [*changes, *serial] if c.op is Op.ADD),
        )
        self.journal.append(entry)
        self.write(loaded.path, zone)
        return LoadedZone(loaded.origin, zone, loaded.path)

    def reconcile(self, loaded: LoadedZone) -> LoadedZone:
        """Replay journal entries newer than the file (a crash after the journal, before the rename)."""
        pending = self.journal.since(loaded.origin.to_text(), serial_of(loaded.zone))
        if not pending:
            return loaded
        zone = loaded.zone
        for entry in pending:
            changes = [_parse(line, Op.DELETE) for line in entry.removed]
            changes += [_parse(line, Op.ADD) for line in entry.added]
            zone = apply_changes(zone, changes)
        write_atomically(loaded.path, zone)
        return LoadedZone(loaded.origin, zone, loaded.path)


def _parse(line: str, op: Op) -> Change:
    name, ttl, _, rdtype, text = line.split(" ", 4)
    rdata = dns.rdata.from_text(IN, dns.rdatatype.from_text(rdtype), text)
    return Change(op, dns.name.from_text(name), int(ttl), rdata)

"""Adding and removing whole zones, by the owner: the child's file and the parent's delegation.

The running server and an offline edit run the very same steps. Adding writes the new
zone's file first (never over an existing one), then commits the delegation to a served
parent; removing commits the parent's change first, then moves the file aside. So a
crash between the two steps leaves a zone without a delegation, never a delegation to
nothing.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype

from dynmx.control.owner import ZoneOwner
from dynmx.control.update import Change, Op
from dynmx.control.writer import serial_of, write_atomically
from dynmx.errors import DynmxError, ZoneLoadError
from dynmx.zone.loader import LoadedZone, parse_zone
from dynmx.zone.origin import ZONE_SUFFIX

IN = dns.rdataclass.IN
SAFE_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")  # a file name made of these stays in zones_dir


class ZoneEditRefused(DynmxError):
    """A zone cannot be added or removed as asked; nothing was changed."""


def zone_file(zones_dir: Path, origin: dns.name.Name) -> Path:
    """The file a new zone gets: `zones_dir/<name>.zone`, for names whose labels are letters,
    digits, '-' and '_' only (so the name can never be a path out of `zones_dir`)."""
    labels = origin.to_text(omit_final_dot=True).split(".")
    bad = next((label for label in labels if not SAFE_LABEL.fullmatch(label)), None)
    if bad is not None or origin == dns.name.root:
        raise ZoneEditRefused(
            f"zone name {origin}: a label may hold only letters, digits, '-' and '_' (got {bad!r})"
        )
    return zones_dir / f"{'.'.join(labels).lower()}{ZONE_SUFFIX}"


def parent_of(zones: dict[dns.name.Name, LoadedZone], origin: dns.name.Name) -> LoadedZone | None:
    """The closest served zone above `origin`, which holds its delegation."""
    above = [name for name in zones if origin.is_subdomain(name) and name != origin]
    return zones[max(above, key=len)] if above else None


def delegation(child: LoadedZone) -> list[Change]:
    """NS records of the child at the cut, plus glue for name servers inside the child."""
    changes: list[Change] = []
    ns = child.zone.nodes[child.origin].get_rdataset(IN, dns.rdatatype.NS)
    assert ns is not None
    for rdata in ns:
        changes.append(Change(Op.ADD, child.origin, ns.ttl, rdata))
        target: dns.name.Name = rdata.target
        glue = child.zone.nodes.get(target) if target.is_subdomain(child.origin) else None
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rdataset = glue.get_rdataset(IN, rdtype) if glue is not None else None
            if rdataset is not None:
                changes += [Change(Op.ADD, target, rdataset.ttl, address) for address in rdataset]
    return changes


def undelegation(parent: LoadedZone, origin: dns.name.Name) -> list[Change]:
    """Everything the parent holds at and below the cut (NS, DS, glue)."""
    return [
        Change(Op.DELETE, name, rdataset.ttl, rdata)
        for name, node in parent.zone.nodes.items()
        if name.is_subdomain(origin)
        for rdataset in node.rdatasets
        for rdata in rdataset
    ]


def add_zone(
    owner: ZoneOwner,
    zones: dict[dns.name.Name, LoadedZone],
    zones_dir: Path,
    origin: dns.name.Name,
    text: str,
) -> tuple[LoadedZone, LoadedZone | None]:
    """Create the zone `origin` from master-file `text`: (the new zone, the parent's new version
    or None). ZoneEditRefused, with nothing changed, when anything is wrong."""
    if origin in zones:
        raise ZoneEditRefused(f"zone {origin} already exists ({zones[origin].path})")
    path = zone_file(zones_dir, origin)
    data = text.encode()
    try:
        child = parse_zone(path, data, origin)
    except ZoneLoadError as error:
        raise ZoneEditRefused(f"the new zone would be invalid:\n{error}") from None
    try:
        digest = write_atomically(path, child.zone, exclusive=True)
    except FileExistsError:
        raise ZoneEditRefused(
            f"{path} exists already; zone add never overwrites a file: move it away first"
        ) from None
    except OSError as error:
        raise ZoneEditRefused(f"cannot write {path}: {error.strerror or error}") from None
    child = LoadedZone(origin, child.zone, path, digest)
    parent = parent_of(zones, origin)
    updated = None
    name = origin.to_text()
    if owner.journal.head(name) is not None:  # an earlier zone of this name: its history is not ours
        owner.journal.quarantine(name, "a new zone of this name was added")
    owner.journal.mark_flushed(name, serial_of(child.zone))
    if parent is not None:
        try:
            updated = owner.commit(parent, delegation(child))
        except DynmxError as error:
            path.unlink(missing_ok=True)
            raise ZoneEditRefused(f"the delegation in {parent.origin} was refused:\n{error}") from None
    return child, updated


def remove_zone(
    owner: ZoneOwner, zones: dict[dns.name.Name, LoadedZone], origin: dns.name.Name
) -> tuple[LoadedZone, LoadedZone | None, Path]:
    """Remove the zone `origin`: (the zone removed, the parent's new version or None, where its
    file was kept). The file is kept as `NAME.zone.removed`; its journal is forgotten."""
    zone = zones.get(origin)
    if zone is None:
        raise ZoneEditRefused(f"unknown zone {origin}")
    parent = parent_of(zones, origin)
    updated = None
    if parent is not None:
        changes = undelegation(parent, origin)
        if changes:
            try:
                updated = owner.commit(parent, changes)
            except DynmxError as error:
                raise ZoneEditRefused(
                    f"removing the delegation from {parent.origin} was refused:\n{error}"
                ) from None
    kept = zone.path.with_name(zone.path.name + ".removed")
    with contextlib.suppress(FileNotFoundError):
        zone.path.replace(kept)
    owner.forget(origin)
    return zone, updated, kept

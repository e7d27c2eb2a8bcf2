"""Catalog zones (RFC 9432, schema version 2), sans-IO: build one from a zone list, read one.

A catalog zone is an ordinary zone whose data says which zones exist (§4):

    catalog.invalid.                 0 SOA invalid. invalid. SERIAL 3600 600 2147483646 0
    catalog.invalid.                 0 NS  invalid.
    version.catalog.invalid.         0 TXT "2"
    <id>.zones.catalog.invalid.      0 PTR example.test.

The unique ID of a member is a hash of its name (as Knot's `catalog-role: generate` makes
them), so it is the same across restarts and on every producer. Custom properties live
under `ext` (§4.4), where consumers that do not know them ignore them; dynmx puts the
operator's pool decisions there (`Shared`), one TXT record per fact:

    <id>.pools.ext.CATZ   TXT  "<pool definition as JSON, in 255-octet pieces>"
    <id>.drains.ext.CATZ  TXT  "<pool>" "<host>"
    <id>.loads.ext.CATZ   TXT  "<pool>" "<host>" "<load>"

Reading follows §5: a catalog whose version is not "2" is not processed at all; a member ID
with other than exactly one PTR is ignored, and so is a second ID naming the same zone
(the smallest ID keeps it); everything else (group, coo, unknown properties) is ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.zone

IN = dns.rdataclass.IN
VERSION = b"2"
TXT_PIECE = 255  # octets per character-string (RFC 1035 §3.3)

Record = tuple[dns.name.Name, dns.rdata.Rdata]


class CatalogRefused(ValueError):
    """A catalog zone that must not be processed (RFC 9432 §5.1: no version "2")."""


@dataclass(frozen=True)
class Shared:
    """The operator's pool decisions carried in a catalog: pool definitions (name -> JSON),
    drained members (pool, host), manual load readings ((pool, host) -> load)."""

    pools: dict[str, str] = field(default_factory=dict)
    drains: frozenset[tuple[str, str]] = frozenset()
    loads: dict[tuple[str, str], float] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    """What a catalog zone says: its members (zone -> unique ID) and the shared pool state."""

    members: dict[dns.name.Name, str]
    shared: Shared
    ignored: list[str] = field(default_factory=list)  # why some records were not taken


def member_id(name: dns.name.Name | str) -> str:
    """The unique-ID label of a member: stable for its name, whatever the case."""
    if isinstance(name, str):
        name = dns.name.from_text(name)
    return hashlib.sha1(name.canonicalize().to_wire() or b"", usedforsecurity=False).hexdigest()


def _hash(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).lower().encode(), usedforsecurity=False).hexdigest()


def catalog_text(origin: dns.name.Name, serial: int = 1) -> str:
    """The master file of a new, empty catalog (§4.1-4.2: SOA, NS `invalid.`, version "2")."""
    name = origin.to_text()
    return (
        f"{name} 0 IN SOA invalid. invalid. {serial} 3600 600 2147483646 0\n"
        f"{name} 0 IN NS invalid.\n"
        f'version.{name} 0 IN TXT "2"\n'
    )


def _txt(*strings: str) -> dns.rdata.Rdata:
    return dns.rdtypes.ANY.TXT.TXT(IN, dns.rdatatype.TXT, [s.encode() for s in strings])


def _pieces(text: str) -> list[str]:
    data = text.encode()
    return [data[i : i + TXT_PIECE].decode("ascii") for i in range(0, len(data), TXT_PIECE)] or [""]


def records(origin: dns.name.Name, members: Iterable[dns.name.Name], shared: Shared) -> set[Record]:
    """The records a catalog of `members` carrying `shared` holds below its apex (the PTRs
    under `zones` and the properties under `ext`); SOA, NS and version are the file's."""
    zones = dns.name.from_text("zones", origin)
    ext = dns.name.from_text("ext", origin)
    found: set[Record] = set()
    for member in members:
        ptr = dns.rdata.from_text(IN, dns.rdatatype.PTR, member.to_text())
        found.add((dns.name.from_text(member_id(member), zones), ptr))
    for pool, definition in shared.pools.items():
        owner = dns.name.from_text(f"{_hash(pool)}.pools", ext)
        found.add((owner, _txt(*_pieces(definition))))
    for pool, host in shared.drains:
        found.add((dns.name.from_text(f"{_hash(pool, host)}.drains", ext), _txt(pool, host)))
    for (pool, host), load in shared.loads.items():
        found.add((dns.name.from_text(f"{_hash(pool, host)}.loads", ext), _txt(pool, host, repr(load))))
    return found


def held(zone: dns.zone.Zone) -> set[Record]:
    """The records `zone` holds under `zones` and `ext` (what `records` builds), as they are."""
    assert zone.origin is not None
    below = (dns.name.from_text("zones", zone.origin), dns.name.from_text("ext", zone.origin))
    found: set[Record] = set()
    for name, node in zone.nodes.items():
        if any(name.is_subdomain(b) for b in below):
            for rdataset in node.rdatasets:
                found.update((name, rdata) for rdata in rdataset)
    return found


def parse_catalog(zone: dns.zone.Zone) -> Catalog:
    """Members and shared state of a catalog zone; CatalogRefused when its version is not 2."""
    origin = zone.origin
    assert origin is not None
    version = zone.get_rdataset(dns.name.from_text("version", origin), dns.rdatatype.TXT)
    if version is None or [b"".join(r.strings) for r in version] != [VERSION]:
        raise CatalogRefused(f'catalog {origin}: no version TXT "2" (RFC 9432 §4.2.1); not processed')
    zones = dns.name.from_text("zones", origin)
    ext = dns.name.from_text("ext", origin)
    members: dict[dns.name.Name, str] = {}
    ignored: list[str] = []
    pools: dict[str, str] = {}
    drains: set[tuple[str, str]] = set()
    loads: dict[tuple[str, str], float] = {}
    for name in sorted(zone.nodes):
        node = zone.nodes[name]
        if len(name) == len(zones) + 1 and name.is_subdomain(zones):
            unique = name.labels[0].decode("ascii", "replace").lower()
            ptr = node.get_rdataset(IN, dns.rdatatype.PTR)
            if ptr is None:
                continue  # properties of a member live below its ID
            if len(ptr) != 1:
                ignored.append(f"{name}: {len(ptr)} PTR records (RFC 9432 §4.3: exactly one)")
                continue
            member = next(iter(ptr)).target
            if member in members:
                ignored.append(f"{name}: {member} is already member {members[member]}")
                continue
            members[member] = unique
        elif name.is_subdomain(ext) and len(name) == len(ext) + 2:
            _shared(name.labels[1], node, pools, drains, loads)
    return Catalog(members, Shared(pools, frozenset(drains), loads), ignored)


def _shared(
    kind: bytes,
    node: dns.node.Node,
    pools: dict[str, str],
    drains: set[tuple[str, str]],
    loads: dict[tuple[str, str], float],
) -> None:
    txt = node.get_rdataset(IN, dns.rdatatype.TXT)
    if txt is None:
        return
    for rdata in txt:
        strings = [s.decode("utf-8", "replace") for s in rdata.strings]
        if kind == b"pools":
            text = "".join(strings)
            pools[_pool_name(text)] = text
        elif kind == b"drains" and len(strings) == 2:
            drains.add((strings[0], strings[1]))
        elif kind == b"loads" and len(strings) == 3:
            try:
                loads[(strings[0], strings[1])] = float(strings[2])
            except ValueError:
                continue


def _pool_name(text: str) -> str:
    """The pool a JSON definition is of (its "name"), or the text itself when it has none:
    a definition the app cannot read is refused there, by name."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) else text

"""The zone directory as files to serve: load each, keep the previous version of one that fails."""

from __future__ import annotations

import weakref
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from dynmx.answer.zoneset import ZoneData
from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.loader import LoadedZone, load_zone_file


def scan_zones(
    directory: Path, previous: dict[Path, LoadedZone]
) -> tuple[dict[Path, LoadedZone], list[Problem]]:
    """Load every `*.zone`; a file that fails keeps its previous version (if any)."""
    loaded: dict[Path, LoadedZone] = {}
    problems: list[Problem] = []
    try:
        files = sorted(p for p in directory.glob("*.zone") if p.is_file())
    except OSError as error:
        return dict(previous), [Problem(str(directory), 0, f"cannot read directory: {error}")]
    if not directory.is_dir():
        return dict(previous), [Problem(str(directory), 0, "not a directory")]
    origins: dict[dns.name.Name, Path] = {}
    for path in files:
        try:
            zone = load_zone_file(path)
        except ZoneLoadError as error:
            problems.extend(error.problems)
            if path in previous:
                loaded[path] = previous[path]
                origins[previous[path].origin] = path
            continue
        if zone.origin in origins:
            problems.append(
                Problem(str(path), 1, f"zone {zone.origin} is also loaded from {origins[zone.origin]}")
            )
            continue
        origins[zone.origin] = path
        loaded[path] = zone
    return loaded, problems


# The lookup indexes of a zone version, built once: an edit rebuilds only its own zone's.
# Keyed by identity (a dnspython Zone is not hashable); a weak reference tells a reused id.
_indexed: dict[int, tuple[weakref.ref[dns.zone.Zone], ZoneData]] = {}


def zone_data(zones: dict[Path, LoadedZone]) -> list[ZoneData]:
    found = []
    for loaded in zones.values():
        cached = _indexed.get(id(loaded.zone))
        if cached is not None and cached[0]() is loaded.zone and cached[1].origin == loaded.origin:
            found.append(cached[1])
            continue
        data = ZoneData(loaded.origin, loaded.zone)
        _indexed[id(loaded.zone)] = (weakref.ref(loaded.zone), data)
        found.append(data)
    if len(_indexed) > 2 * len(zones) + 64:  # versions no longer served
        for key in [key for key, (ref, _) in list(_indexed.items()) if ref() is None]:
            _indexed.pop(key, None)
    return found


def soa_serial(zone: LoadedZone) -> int:
    node = zone.zone.get_node(zone.origin)
    assert node is not None
    soa = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
    assert soa is not None
    return int(soa[0].serial)

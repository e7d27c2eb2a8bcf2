"""The zone directory as files to serve: load each, keep the previous version of one that fails."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype

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


def zone_data(zones: dict[Path, LoadedZone]) -> list[ZoneData]:
    return [ZoneData(z.origin, z.zone) for z in zones.values()]


def soa_serial(zone: LoadedZone) -> int:
    node = zone.zone.get_node(zone.origin)
    assert node is not None
    soa = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
    assert soa is not None
    return int(soa[0].serial)

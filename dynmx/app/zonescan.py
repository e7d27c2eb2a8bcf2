"""The zone directory as files to serve: load each, keep the previous version of one that fails."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from dynmx.answer.zoneset import ZoneData
from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.batch import Parsed, parse_many
from dynmx.zone.loader import LoadedZone, file_digest, read_zone_bytes


def scan_zones(
    directory: Path, previous: dict[Path, LoadedZone], processes: int = 1
) -> tuple[dict[Path, LoadedZone], list[Problem]]:
    """Load every `*.zone`; a file that fails keeps its previous version (if any).

    A file whose bytes are those its previous version was read from keeps that version
    (the same object), so a reload of many zones parses only the files that changed.
    Many files to parse are spread over up to `processes` processes (`parse_many`).
    """
    loaded: dict[Path, LoadedZone] = {}
    problems: list[Problem] = []
    try:
        files = sorted(p for p in directory.glob("*.zone") if p.is_file())
    except OSError as error:
        return dict(previous), [Problem(str(directory), 0, f"cannot read directory: {error}")]
    if not directory.is_dir():
        return dict(previous), [Problem(str(directory), 0, "not a directory")]
    results: dict[Path, Parsed] = {}
    to_parse: list[tuple[Path, bytes]] = []
    for path in files:
        try:
            data = read_zone_bytes(path)
        except ZoneLoadError as error:
            results[path] = error.problems
            continue
        kept = previous.get(path)
        if kept is not None and kept.digest and kept.digest == file_digest(data):
            results[path] = kept
        else:
            to_parse.append((path, data))
    results.update(parse_many(to_parse, processes))
    origins: dict[dns.name.Name, Path] = {}
    for path in files:
        zone = results[path]
        if isinstance(zone, list):
            problems.extend(zone)
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


def changed_origins(before: dict[Path, LoadedZone], after: dict[Path, LoadedZone]) -> list[dns.name.Name]:
    """Origins of the zones in `after` that are not the very version `before` had."""
    return [zone.origin for path, zone in after.items() if before.get(path) is not zone]


# The lookup indexes of the zone versions served now, built once per version: an edit
# rebuilds only its own zone's. Only the versions of the last call are kept (a dnspython
# Zone is not hashable: keyed by identity, and holding the zone keeps the identity unique).
_indexed: dict[int, tuple[dns.zone.Zone, ZoneData]] = {}


def zone_data(zones: dict[Path, LoadedZone]) -> list[ZoneData]:
    global _indexed
    current: dict[int, tuple[dns.zone.Zone, ZoneData]] = {}
    previous = _indexed
    for loaded in zones.values():
        cached = previous.get(id(loaded.zone))
        if cached is None or cached[0] is not loaded.zone or cached[1].origin != loaded.origin:
            cached = (loaded.zone, ZoneData(loaded.origin, loaded.zone))
        current[id(loaded.zone)] = cached
    _indexed = current
    return [data for _, data in current.values()]


def soa_serial(zone: LoadedZone) -> int:
    node = zone.zone.get_node(zone.origin)
    assert node is not None
    soa = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
    assert soa is not None
    return int(soa[0].serial)

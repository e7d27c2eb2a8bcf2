"""Read zone files into dnspython zones, reporting every problem as `file:line: reason`.

A file's bytes (`filebytes`) and origin (`origin`) are read first; its records are read by
`fastread` where it can and by dnspython's reader (`dnspython_read`) everywhere else, each
with its line; `validate` then checks the whole list (all problems at once, like
`nsd-checkzone`), and only a clean list becomes a `dns.zone.Zone`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone import fastread
from dynmx.zone.dnspython_read import read_records_with_dnspython
from dynmx.zone.filebytes import check_size as check_size
from dynmx.zone.filebytes import decode_text
from dynmx.zone.filebytes import file_digest as file_digest
from dynmx.zone.filebytes import read_digest as read_digest
from dynmx.zone.filebytes import read_zone_bytes as read_zone_bytes
from dynmx.zone.origin import ZONE_SUFFIX, decide_origin
from dynmx.zone.validate import Record, validate

log = logging.getLogger("dynmx.zone")

MAX_PROBLEMS = 100  # problems reported per file; a file with more ends with a line counting them


@dataclass(frozen=True, slots=True)
class LoadedZone:
    """A zone that passed every check: what the answer layer serves, and where it came from."""

    origin: dns.name.Name
    zone: dns.zone.Zone
    path: Path
    # Of the file's bytes as read; empty for a version made in memory (an edit, a transfer).
    # A reload keeps the zone of a file whose bytes are unchanged instead of parsing it again.
    digest: bytes = b""
    # The file's (mtime_ns, ctime_ns, size, inode) taken before it was read, when old enough
    # to trust: a reload keeps the zone of a file that still has it without reading it.
    stamp: tuple[int, int, int, int] | None = None


def load_zone_file(path: Path, origin: dns.name.Name | None = None) -> LoadedZone:
    """Read, check and build one zone; raise ZoneLoadError listing every problem found.

    The origin, unless given, is that of a `$ORIGIN` line before the first record (only
    blank, comment and `$TTL` lines may precede it; a relative one is relative to the file
    name), else the file name without ".zone": `zones/example.test.zone` is `example.test.`.
    A syntax error stops the reading, so it is reported alone. `$INCLUDE` and `$GENERATE`
    are refused.
    """
    return parse_zone(path, read_zone_bytes(path), origin)


def parse_zone(path: Path, data: bytes, origin: dns.name.Name | None = None) -> LoadedZone:
    """`load_zone_file` for bytes already read from `path`."""
    filename = str(path)
    text = decode_text(path, data)
    if origin is not None:
        zone_origin = start = origin.derelativize(dns.name.root)
    else:
        zone_origin, start = decide_origin(path, text)
    records = read_records(text, filename, zone_origin, start)
    problems = validate(zone_origin, records, file=filename)
    if problems:
        raise ZoneLoadError(_at_most(problems, MAX_PROBLEMS))
    return LoadedZone(zone_origin, build_zone(zone_origin, records), path, file_digest(data))


def _at_most(problems: list[Problem], limit: int) -> list[Problem]:
    """The first `limit` problems, and one counting the rest (on the line of the first left
    out): a file of a million bad records costs a reload a hundred log lines, not a million."""
    if len(problems) <= limit:
        return problems
    rest = problems[limit]
    return [*problems[:limit], Problem(rest.file, rest.line, f"and {len(problems) - limit} more problems")]


def load_zones_dir(directory: Path) -> tuple[dict[dns.name.Name, LoadedZone], list[Problem]]:
    """Load every `*.zone` file (sorted by name): the good zones by origin, and the problems.

    A zone whose origin an earlier file already has is refused, so one file wins every time.
    """
    try:
        paths = sorted(p for p in directory.iterdir() if p.name.endswith(ZONE_SUFFIX) and _is_file(p))
    except OSError as error:
        return {}, [Problem(str(directory), 0, f"cannot read zone directory: {error.strerror or error}")]
    zones: dict[dns.name.Name, LoadedZone] = {}
    problems: list[Problem] = []
    for path in paths:
        try:
            loaded = load_zone_file(path)
        except ZoneLoadError as error:
            problems.extend(error.problems)
            continue
        first = zones.get(loaded.origin)
        if first is not None:
            problems.append(Problem(str(path), 1, f"zone {loaded.origin} is also loaded from {first.path}"))
            continue
        zones[loaded.origin] = loaded
    return zones, problems


def _is_file(path: Path) -> bool:
    """Directories are skipped; anything that can't be examined is tried, so its error is reported."""
    try:
        return not path.is_dir()
    except OSError:
        return True


def read_records(text: str, filename: str, origin: dns.name.Name, start: dns.name.Name) -> list[Record]:
    """Every record in the file, or ZoneLoadError with the one syntax error that stopped reading.

    `fastread` reads the files most people write; whatever it leaves (anything unusual, and
    every error) dnspython reads, from the start, so its messages are the ones reported.
    """
    try:
        return fastread.read_records(text, filename, origin, start)
    except fastread.Unsupported as why:
        log.debug("event=zone-read-by-dnspython file=%s reason=%r", filename, str(why))
    return read_records_with_dnspython(text, filename, origin, start)


def build_zone(origin: dns.name.Name, records: list[Record]) -> dns.zone.Zone:
    """A zone of absolute names; records of one RRset with different TTLs get the smallest.

    Built on the zone's node dict and each rdataset's item dict, not through `find_node` and
    `Rdataset.add`: their checks (in zone, matching type) are `validate`'s and this loop's,
    and `add` hashes each rdata's wire form twice, a large share of reading a small zone.
    """
    zone = dns.zone.Zone(origin, rdclass=dns.rdataclass.IN, relativize=False)
    nodes = zone.nodes
    for record in records:
        rdata = record.rdata
        node = nodes.get(record.name)
        if node is None:
            node = nodes[record.name] = zone.node_factory()
        rdataset = node.find_rdataset(dns.rdataclass.IN, rdata.rdtype, rdata.covers(), create=True)
        rdataset.update_ttl(record.ttl)
        if rdataset.items and dns.rdatatype.is_singleton(rdata.rdtype):
            rdataset.items.clear()  # as `add`: a second DNAME replaces the first (SOA, CNAME are refused)
        rdataset.items.setdefault(rdata)
    return zone

"""`dynmx record batch FILE`: many record changes as one update, as knotc's zone-begin,
zone-set/zone-unset and zone-commit make one transaction.

Every line is read and checked before anything is sent; the changes then travel as one
RFC 2136 UPDATE message by the path `record add` takes (control socket, `--server`,
`--offline`), so the owner commits them together: one serial bump, all or nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dns.name

from dynmx.cli.edits import BatchLine, RecordEdit, parse_batch
from dynmx.cli.records import _zone_of, _zones, apply_edits
from dynmx.config import Config
from dynmx.errors import CommandError
from dynmx.zone.loader import LoadedZone

MAX_BATCH_BYTES = 16 * 1024 * 1024  # a batch is one message; the server caps its records anyway


def read_batch(source: str) -> str:
    """The batch text from a file, or stdin for `-`."""
    try:
        if source == "-":
            text = sys.stdin.read(MAX_BATCH_BYTES + 1)
        else:
            with Path(source).open(encoding="utf-8") as handle:
                text = handle.read(MAX_BATCH_BYTES + 1)
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"cannot read the batch {source}: {error}") from None
    if len(text) > MAX_BATCH_BYTES:
        raise CommandError(f"{source}: larger than {MAX_BATCH_BYTES} bytes")
    return text


def run_batch(args: argparse.Namespace, config: Config) -> int:
    label = "<stdin>" if args.file == "-" else args.file
    lines = parse_batch(read_batch(args.file), label)
    zones = _zones(config)
    zone = _zone_of_line(lines[0], zones, args.zone)
    edits: list[RecordEdit] = []
    for line in lines:
        other = _zone_of_line(line, zones, args.zone)
        if other.origin != zone.origin:
            raise CommandError(
                f"{line.where}: {line.name} is in zone {other.origin}, the batch edits {zone.origin}:"
                " one batch is one update of one zone"
            )
        edits.append(line.edit(zone.origin, args.ttl))
    return apply_edits(args, config, zone, edits, f"{len(edits)} change(s) from {label} in {zone.origin}")


def _zone_of_line(
    line: BatchLine, zones: dict[dns.name.Name, LoadedZone], explicit: str | None
) -> LoadedZone:
    try:
        zone = _zone_of(line.name, zones, explicit)
    except CommandError as error:
        raise CommandError(f"{line.where}: {error}") from None
    if not line.name.is_subdomain(zone.origin):
        raise CommandError(f"{line.where}: {line.name} is outside the zone {zone.origin}")
    return zone

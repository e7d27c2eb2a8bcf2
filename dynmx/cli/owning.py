"""Edits from the CLI go to the one owner of the state directory (design.md, One owner).

While a server runs, it owns the zone files and the journal, and the CLI hands it the edit
over the control socket. When none runs, the command itself becomes the owner for its
duration: it takes the same lock (a server starting meanwhile waits for nothing: it is
refused until the edit ends), reads the zones, brings them up to the journal, and edits.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import dns.name

from dynmx.app.zonescan import scan_zones
from dynmx.config import Config
from dynmx.control.lock import StateLock
from dynmx.control.owner import ZoneOwner
from dynmx.errors import CommandError
from dynmx.zone.loader import LoadedZone


@dataclass
class OfflineEdit:
    owner: ZoneOwner
    zones: dict[dns.name.Name, LoadedZone]


def server_holder(config: Config) -> str | None:
    """Who owns the state directory now (`pid N (server)`), or None."""
    return StateLock(config.path(config.server.state_dir)).holder()


@contextlib.contextmanager
def offline_owner(config: Config, role: str) -> Iterator[OfflineEdit]:
    """Own the state directory for one edit; StateDirBusy when a server (or edit) owns it."""
    owner = ZoneOwner(config, role)
    try:
        zones, problems = scan_zones(config.path(config.server.zones_dir), {})
        if problems:
            raise CommandError("zones do not load cleanly:\n" + "\n".join(str(p) for p in problems))
        zones, found = owner.reconcile(zones)
        for problem in found:
            print(f"warning: {problem}", file=sys.stderr)
        yield OfflineEdit(owner, {zone.origin: zone for zone in zones.values()})
    finally:
        owner.close()

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

The pieces live beside it: `versions` (new versions, serials), `edit_validation`,
`diffs` (journal lines, strict replay) and `zonefile` (the atomic write).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dns.name
import dns.zone

from dynmx.control.diffs import JournalMismatch, _holds, diff_zones, journal_entry, replay
from dynmx.control.edit_validation import edit_problems, records_of
from dynmx.control.journal import Journal, JournalEntry
from dynmx.control.update import Change
from dynmx.control.versions import _apply, _new_version, _origin, apply_changes, soa_change
from dynmx.control.zonefile import write_atomically
from dynmx.errors import Problem, StaleBase, ZoneLoadError
from dynmx.zone.loader import LoadedZone
from dynmx.zone.soa import serial_of as serial_of  # its home is zone/; control imports it from here

# The writer as app/ knows it (app may reach the writer's pieces only through this module).
__all__ = [
    "EditCheck",
    "JournalMismatch",
    "ZoneWriter",
    "apply_changes",
    "diff_zones",
    "records_of",
    "serial_of",
    "write_atomically",
]

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
        updated, entry = self.stage(loaded, changes, now)
        self.journal.append(entry)
        self.write(updated.path, updated.zone)
        return updated

    def stage(self, loaded: LoadedZone, changes: list[Change], now: float) -> tuple[LoadedZone, JournalEntry]:
        """The new version and its journal entry, nothing written yet: the caller appends the
        entry (`Journal.append`, or `submit` and wait), then hands the version to `write`.
        Raises ZoneLoadError and StaleBase as `commit`."""
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
        entry = journal_entry(name, loaded.zone, zone, [*changes, *serial])
        return LoadedZone(loaded.origin, zone, loaded.path), entry

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

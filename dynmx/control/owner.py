"""The one owner of zone data (design.md, One owner).

One process at a time owns a state directory (`StateLock`): a running server for its
lifetime, an offline edit for its duration. Only the owner writes zone files and the
journal; every other actor hands it a change. A change is a transaction on the zone's
newest version: `commit` refuses one planned on an older version (`StaleBase`), one the
journal already has a change from (`JournalFork`), one whose result `dynmx check` would
refuse, and any while the zone's file cannot be written (`WriteBlocked`: what cannot be
kept is not acknowledged). A version made outside (a file edited by hand, a transfer)
is judged before it is served (`judge`) and its difference journaled (`record`), so
every serial served is one line of history that IXFR can follow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import dns.name
import dns.zone

from dynmx.config import Config
from dynmx.control.diffs import JournalMismatch, diff_zones, journal_entry
from dynmx.control.journal import Journal
from dynmx.control.lock import StateLock
from dynmx.control.update import Change, serial_newer
from dynmx.control.versions import next_serial, with_serial
from dynmx.control.writer import ZoneWriter, serial_of
from dynmx.errors import DynmxError, Problem, StaleBase
from dynmx.policy.checks import check_edit
from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.owner")

WriteFile = Callable[[Path, dns.zone.Zone], object]


class WriteBlocked(DynmxError):
    """The zone's file cannot be written now: no edit of it is acknowledged until it can."""


def policies(config: Config) -> dict[str, str]:
    return {zone.name: zone.serial for zone in config.zone}


def judge(before: LoadedZone, after: LoadedZone) -> list[Change] | Problem:
    """Whether a new version of a served zone, made outside the owner, may be served: the
    changes it makes, or the problem that refuses it (as BIND: a changed zone keeps its old
    version when the serial did not move forward, since secondaries would never see it)."""
    old, new = serial_of(before.zone), serial_of(after.zone)
    if new != old and not serial_newer(new, old):
        return Problem(
            str(after.path),
            0,
            f"SOA serial {new} is older than the served {old} (RFC 1982): secondaries would not follow;"
            f" use a serial newer than {old}",
        )
    changes = diff_zones(before.zone, after.zone)
    if changes and new == old:
        return Problem(
            str(after.path),
            0,
            f"the zone changed but its SOA serial is still {old}: secondaries would never see the"
            " change; increase the serial (edits through dynmx or nsupdate do it for you) and reload",
        )
    return changes


class ZoneOwner:
    """Owns the zone files and journal of one state directory while it lives."""

    def __init__(self, config: Config, role: str, write: WriteFile | None = None) -> None:
        state_dir = config.path(config.server.state_dir)
        self.lock = StateLock(state_dir)
        self.lock.acquire(role)
        try:
            self.journal = Journal(state_dir / "journal.sqlite", config.server.journal_keep)
        except BaseException:
            self.lock.release()
            raise
        self.config = config
        self.writer = ZoneWriter(self.journal, policies(config), write, self._check)
        # The reason a file cannot be written now, or None (the server's write-back says).
        self.blocked: Callable[[Path], str | None] = lambda path: None

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self.writer.policies = policies(config)

    def _check(
        self, origin: dns.name.Name, before: dns.zone.Zone, after: dns.zone.Zone, names: set[dns.name.Name]
    ) -> list[str]:
        found = check_edit(self.config, origin, before, after, names)
        return [f"{reason} (`dynmx check` would refuse this)" for reason in found]

    def commit(self, head: LoadedZone, changes: list[Change], now: float | None = None) -> LoadedZone:
        """One edit of the zone whose newest version is `head`: the new version, durable in the
        journal. Raises ZoneLoadError (invalid result), StaleBase, JournalFork, WriteBlocked."""
        reason = self.blocked(head.path)
        if reason is not None:
            raise WriteBlocked(f"{head.origin}: edits are not acknowledged while {reason}")
        return self.writer.commit(head, changes, time.time() if now is None else now)

    def record(self, before: LoadedZone, after: LoadedZone, changes: list[Change]) -> None:
        """Journal a version `judge` accepted; StaleBase when the journal moved on meanwhile."""
        if changes:
            name = before.origin.to_text()
            head = self.journal.head(name)
            if head is not None and head != serial_of(before.zone):
                raise StaleBase(f"{name}: serial {head} was committed while the file was read")
            self.journal.append(journal_entry(name, before.zone, after.zone, changes))

    def reconcile(self, zones: dict[Path, LoadedZone]) -> tuple[dict[Path, LoadedZone], list[Problem]]:
        """Zone files as read at start-up, brought up to the journal. A journal that does not
        continue its file is reported and moved aside, never replayed; the file is served,
        under a serial newer than any the journal handed out (secondaries that took one
        follow with a full transfer)."""
        problems = [
            Problem(str(self.journal.path), 0, f"journal of {zone} held two branches of history; quarantined")
            for zone in self.journal.forked
        ]
        for zone in self.journal.forked:
            log.error(
                "event=journal-forked zone=%s action=quarantined table=journal_quarantine file=%s",
                zone,
                self.journal.path,
            )
        fixed: dict[Path, LoadedZone] = {}
        for path, loaded in zones.items():
            try:
                fixed[path] = self.writer.reconcile(loaded)
            except JournalMismatch as error:
                fixed[path], problem = self._unlinked(loaded, str(error))
                problems.append(problem)
        return fixed, problems

    def _unlinked(self, loaded: LoadedZone, reason: str) -> tuple[LoadedZone, Problem]:
        name = loaded.origin.to_text()
        head = self.journal.head(name)
        moved = self.journal.quarantine(name, reason)
        serial = serial_of(loaded.zone)
        served = loaded
        if head is not None and not serial_newer(serial, head):
            bumped = next_serial(head, self.writer.policies.get(name, "increment"), time.time())
            served = LoadedZone(loaded.origin, with_serial(loaded.zone, bumped), loaded.path)
            self.writer.write(loaded.path, served.zone)
        log.error(
            "event=journal-unlinked zone=%s file_serial=%d journal_serial=%s served_serial=%d"
            " quarantined=%d reason=%r action=%r",
            name,
            serial,
            head,
            serial_of(served.zone),
            moved,
            reason,
            "serving the zone file; the journal's changes are in journal_quarantine",
        )
        text = (
            f"{reason}; serving the file as serial {serial_of(served.zone)}, the journal's {moved} change(s)"
            f" kept in {self.journal.path.name} table journal_quarantine (not replayed)"
        )
        return served, Problem(str(loaded.path), 0, text)

    def forget(self, origin: dns.name.Name) -> None:
        """A zone removed for good: its history goes with it."""
        self.journal.forget(origin.to_text())

    def close(self) -> None:
        self.journal.close()
        self.lock.release()

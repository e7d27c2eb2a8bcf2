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

On the event loop an edit is committed with `commit_durably`: the journal's fsync runs on
the journal's thread while queries go on being answered, and the new version is returned
once its entry is durable. Edits of one zone take their turn (`turn`): the holder reads
the zone's newest version, plans on it, commits and publishes before the next one reads it,
so the zone's edits reach the journal in the order they are answered (RFC 2136 §3.7).
"""

from __future__ import annotations

import asyncio
import collections
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


class Turn:
    """Whose turn it is to edit one zone: `async with turn:` waits for it, first come first
    served, and hands it straight to the next waiter when left (so `busy` never lies between
    two holders: a version read while the turn is not busy is the zone's newest)."""

    def __init__(self) -> None:
        self._held = False
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def busy(self) -> bool:
        return self._held

    async def __aenter__(self) -> None:
        if not self._held:
            self._held = True
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(handed)
        try:
            await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                self._leave()  # handed over just as the waiter went: pass it on
            else:
                self._waiting.remove(handed)
            raise

    async def __aexit__(self, *_: object) -> None:
        self._leave()

    def _leave(self) -> None:
        while self._waiting:
            handed = self._waiting.popleft()
            if not handed.done():
                handed.set_result(None)  # still held: now by that waiter
                return
        self._held = False


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
        self._turns: dict[dns.name.Name, Turn] = {}

    def turn(self, origin: dns.name.Name) -> Turn:
        """The zone's turn: held from reading its newest version until the edit is published."""
        turn = self._turns.get(origin)
        if turn is None:
            turn = self._turns[origin] = Turn()
        return turn

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

    async def commit_durably(
        self, head: LoadedZone, changes: list[Change], now: float | None = None
    ) -> LoadedZone:
        """`commit` for the event loop: the journal entry is written on the journal's thread and
        awaited, the loop answers queries meanwhile. The entry is handed over before this first
        waits, so it is written even if the caller is cancelled (the caller then publishes
        nothing: hold the zone's turn in a task that is not cancelled)."""
        reason = self.blocked(head.path)
        if reason is not None:
            raise WriteBlocked(f"{head.origin}: edits are not acknowledged while {reason}")
        updated, entry = self.writer.stage(head, changes, time.time() if now is None else now)
        await asyncio.wrap_future(self.journal.submit(entry))
        self.writer.write(updated.path, updated.zone)
        return updated

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
        self._turns.pop(origin, None)

    def close(self) -> None:
        self.journal.close()
        self.lock.release()

"""The one owner of the served answer table: compiles, stages, fills, publishes edits, swaps.

Every table queries are answered from passes through `TablePublisher.swap`, and every
decision about what to compile next is asked of the lifecycle tables in
`dynmx.app.tablestate` (staged, filling, compiled; edits published during a compile; the
store written once), so the hardest state of the server has one owner and one drawing.

One table is built at a time: an edit round, a reload, a catalog's pools and each slice of
the fill hold `lock` while they build on the served table, so none is lost to another's
swap. Readers never lock: a swap is one assignment (`Engine.swap`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dns.name

from dynmx.answer.compiler import AnswerTable
from dynmx.answer.engine import Engine
from dynmx.app.answerstore import AnswerKeeper
from dynmx.app.listeners import zone_gate
from dynmx.app.tablestate import TableLifecycle
from dynmx.app.zonescan import release_compiled, soa_serial, zone_data
from dynmx.config import Config, PoolConfig
from dynmx.errors import Problem
from dynmx.policy.served import PoolPlans, build_table
from dynmx.store import warm
from dynmx.zone.loader import LoadedZone

if TYPE_CHECKING:
    from dynmx.app.workers.pool import WorkerPool

log = logging.getLogger("dynmx.app")

# At start-up, this many zones or more are served from a staged table (slow path) while
# they compile a slice at a time: a few zones are simpler to serve compiled from the first query.
STAGE_FROM_ZONES = 1000
# A zone with this many names is staged when an edit or reload changes it, and a start-up
# with this many in all is staged: compiling that many names takes seconds.
STAGE_FROM_NAMES = 20_000
# One compile step: an edit or reload waits for at most one, so a step is kept to about a
# second of an idle core.
FILL_SLICE = 1000  # zones
FILL_NAMES = 5_000
RESAVE_AFTER = 2.0  # seconds from a change served to the store written again (one write per burst)

Zones = dict[Path, LoadedZone]
Batch = dict[dns.name.Name, LoadedZone | None]  # origin -> version published (None: removed)


def fill_slice(table: AnswerTable) -> AnswerTable:
    """`table` with one step of its pending zones done (any thread): zones of the answer store
    laid in from it (`store.warm`), the others compiled."""
    filled = warm.fill_slice(table, FILL_SLICE, FILL_NAMES)
    release_compiled(table, filled)  # small zones kept as their bytes: parsed nodes let go
    return filled


def worth_staging(zones: Zones) -> bool:
    """Whether compiling all of these zones should be done behind a staged table."""
    if len(zones) >= STAGE_FROM_ZONES:
        return True  # without counting nodes: a zone kept as its bytes is not parsed for it
    return sum(len(zone.zone.nodes) for zone in zones.values()) >= STAGE_FROM_NAMES


@dataclass
class ZoneState:
    """What is being served, file by file, so a bad edit keeps the previous version."""

    by_file: Zones = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    serial_of: dict[str, int] = field(default_factory=dict)
    edits: int = 0  # commits published so far; a reload keeps a zone committed while it read
    edited: dict[Path, int] = field(default_factory=dict)  # file -> `edits` at its last commit


class TablePublisher:
    """The served zones and the table made of them, and how a change reaches the answers.

    `config` and `plans_for` are asked at each use: a reload replaces both. `on_served` is
    told of each edit batch once queries are answered from it (the health monitor and
    NOTIFY follow), `on_unavailable` of the number of secondary zones answering SERVFAIL.
    With `answers_here` false (`--workers`), this process answers nothing: its table is only
    indexed (for the prober, UPDATE and transfers) and each worker compiles its own.
    """

    def __init__(
        self,
        config: Callable[[], Config],
        plans_for: Callable[[PoolConfig], PoolPlans],
        rng: Callable[[], float] | None,
        answers: AnswerKeeper,
        answers_here: bool,
        on_served: Callable[[AnswerTable, Batch], None],
        on_unavailable: Callable[[int], None],
    ) -> None:
        self.config = config
        self.plans_for = plans_for
        self.rng = rng
        self.answers = answers  # compiled answers kept for a warm start
        self.answers_here = answers_here
        self.on_served = on_served
        self.on_unavailable = on_unavailable
        self.state = ZoneState()
        self.engine: Engine | None = None
        self.workers: WorkerPool | None = None  # the answer processes, with `--workers`
        self.lock = asyncio.Lock()  # one table built at a time (the reload lock)
        self.life: TableLifecycle[dns.name.Name, LoadedZone | None, asyncio.Future[None]] = TableLifecycle()
        self.unavailable: frozenset[dns.name.Name] = frozenset()  # secondary zones answering SERVFAIL
        self._compiling: asyncio.Task[None] | None = None  # serving published edits
        self._filling: asyncio.Task[None] | None = None  # compiling pending zones
        self._stored = False  # the store was handed a write since start
        self._saving: asyncio.Future[None] | None = None  # that write, while in its thread
        self._resave: asyncio.TimerHandle | None = None  # the store written again once changes pause

    # -- the served zones ------------------------------------------------------------------

    def zones_by_origin(self) -> dict[dns.name.Name, LoadedZone]:
        return {zone.origin: zone for zone in self.state.by_file.values()}

    def zone_of(self, name: dns.name.Name) -> LoadedZone | None:
        """The served zone `name` belongs to: the closest enclosing one (a child zone served
        beside its parent holds its own names)."""
        zones = self.zones_by_origin()
        candidates = [origin for origin in zones if name.is_subdomain(origin)]
        return zones[max(candidates, key=len)] if candidates else None

    @property
    def filling(self) -> bool:
        """Whether staged zones are being compiled behind now."""
        return self._filling is not None and not self._filling.done()

    # -- building tables -------------------------------------------------------------------

    def compile(
        self, zones: Zones, previous: AnswerTable | None, changed: list[dns.name.Name], staged: bool = False
    ) -> AnswerTable:
        """`previous` with the `changed` zones (and those using them) compiled again; without
        `previous`, everything (or, `staged`, nothing yet). Runs in an executor thread, or at
        start-up. Without `answers_here` the table is only ever staged: indexed, no answer
        compiled."""
        indexed_only = not self.answers_here
        return build_table(
            self.config(),
            zone_data(zones),
            self.plans_for,
            self.rng,
            previous=previous,
            changed=changed,
            staged=staged or indexed_only,
            stage_from=0 if indexed_only else STAGE_FROM_NAMES,
        )

    def warm_table(self, zones: Zones, kept: Zones | None = None) -> AnswerTable | None:
        """The start-up table from the answer store (None: compile as usual): the zones it does
        not hold are compiled, or staged when they are many, as at a cold start. `kept`:
        `AnswerKeeper.kept(zones)`, when the caller has it."""
        kept = self.answers.kept(zones) if kept is None else kept
        cold = {p: z for p, z in zones.items() if p not in kept}
        stage_from = 0 if worth_staging(cold) else STAGE_FROM_NAMES
        return self.answers.table(self.config(), zones, self.plans_for, self.rng, stage_from, kept)

    def first(self, engine: Engine) -> None:
        """The engine of the first table: queries are answered from it once listeners open."""
        self.engine = engine
        self.life.served(bool(engine.table.pending))

    def swap(self, table: AnswerTable) -> None:
        """Answer from `table` from now on, and compile behind what it still has staged."""
        assert self.engine is not None
        changed = table is not self.engine.table
        self.engine.swap(table)
        self.life.served(bool(table.pending))
        self.keep_filling()
        if changed and self._stored and self._resave is None:
            # Zones added, removed or compiled again: the store is written again once changes
            # pause (only the rows of the zones compiled since, and the origins), or the next
            # start would find the origins changed and compile every zone. What changed is
            # found in the write's thread, not here: a swap stays cheap.
            self.life.zones_changed()
            self._resave = asyncio.get_running_loop().call_later(RESAVE_AFTER, self._save_again)

    def _save_again(self) -> None:
        self._resave = None
        self.save_answers()  # at once, or at the end of the fill while zones are pending

    def keep_filling(self) -> None:
        """Start compiling the served table's pending zones, unless that is under way (or
        the workers answer: theirs compile, this one stays staged)."""
        if not self.answers_here or not self.life.fill_due:
            return
        self.life.fill_started()
        self._filling = asyncio.get_running_loop().create_task(self._fill_pending())

    async def _fill_pending(self) -> None:
        """Compile the served table's pending zones a slice at a time, off the loop. Each slice
        holds the lock, so an edit or a reload waits for one slice, not the whole compile,
        and builds on what is compiled so far (a zone it changes is compiled or staged by it)."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        assert self.engine is not None
        try:
            while self.engine.table.pending:
                async with self.lock:
                    table = self.engine.table
                    if table.pending:
                        table = await loop.run_in_executor(None, fill_slice, table)
                        self.engine.swap(table)
                        self.life.served(bool(table.pending))
        finally:
            self.life.fill_ended(bool(self.engine.table.pending))
        table = self.engine.table
        log.info(
            "event=compiled zones=%d entries=%d seconds=%.3f",
            len(table.zones),
            len(table.entries),
            time.monotonic() - started,
        )
        # The compiled entries live as long as the table: later full collections skip them
        # (over a million-record zone's entries, one holds the GIL, and every answer, for
        # most of a second). Frozen without collecting first, which would be that pause
        # once; little of what a fill leaves is cyclic garbage.
        gc.freeze()
        self.save_answers()

    def save_answers(self) -> None:
        """When every zone is compiled, once per start and again after changes were served:
        the store written off the loop, one write at a time (a change served meanwhile is
        written by the next)."""
        assert self.engine is not None
        if not self.answers_here or not self.life.store_due(bool(self.engine.table.pending)):
            return
        loop = asyncio.get_running_loop()
        if self._saving is not None and not self._saving.done():
            if self._resave is None:  # after this write: it holds an older table
                self._resave = loop.call_later(RESAVE_AFTER, self._save_again)
            return
        self.life.stored()
        self._stored = True
        zones, table = dict(self.state.by_file), self.engine.table
        self._saving = loop.run_in_executor(None, self.answers.save, self.config(), zones, table)

    # -- edits -----------------------------------------------------------------------------

    def publish(self, zone: LoadedZone) -> asyncio.Future[None]:
        """A committed edit: the next edit and any reload build on it at once; it is compiled
        off the loop, and the future is done when queries are answered from it. Its file is
        written behind (the journal, appended before, is what makes it durable).

        Only this zone and the zones whose answers use it are compiled again; queries go on
        being answered from the previous table meanwhile. Edits published during a compile
        share the next one. With workers, the future is done when every worker answers from
        it too."""
        self.state.by_file[zone.path] = zone
        self.state.edits += 1
        self.state.edited[zone.path] = self.state.edits
        sent = self.workers.broadcast("zone", zone) if self.workers is not None else None
        serial = soa_serial(zone)
        self.state.serial_of[zone.origin.to_text()] = serial
        log.info("event=zone-published zone=%s serial=%d", zone.origin, serial)
        return self._serve_change(zone.origin, zone, sent)

    def serve(self, zone: LoadedZone) -> asyncio.Future[None]:
        """Compile `zone` (as published) again, here and in every worker."""
        sent = self.workers.broadcast("zone", zone) if self.workers is not None else None
        return self._serve_change(zone.origin, zone, sent)

    def unpublish(self, zone: LoadedZone) -> asyncio.Future[None]:
        """A zone removed (`dynmx zone rm`): no longer answered once the future is done."""
        self.state.by_file.pop(zone.path, None)
        self.state.edits += 1
        self.state.edited.pop(zone.path, None)
        self.state.serial_of.pop(zone.origin.to_text(), None)
        sent = self.workers.broadcast("drop", zone.path) if self.workers is not None else None
        log.info("event=zone-removed zone=%s", zone.origin)
        return self._serve_change(zone.origin, None, sent)

    def _serve_change(
        self, origin: dns.name.Name, zone: LoadedZone | None, sent: int | None
    ) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        served = loop.create_future()
        if self.life.publish(origin, zone, served):
            self._compiling = loop.create_task(self._serve_published())
        if sent is None:
            return served
        return asyncio.ensure_future(self._served_by_workers(served, sent))

    async def _served_by_workers(self, served: asyncio.Future[None], sent: int) -> None:
        """With workers, an edit is answered from once each of them has it, not only this process:
        a client that reads its write right after the reply (an ACME DNS-01 check after an
        RFC 2136 UPDATE) may reach any worker."""
        await served
        assert self.workers is not None
        await self.workers.applied(sent)

    async def _serve_published(self) -> None:
        """Serve what was published, one batch at a time under the lock, until none waits."""
        async with self.lock:
            while self.life.waiting:
                zones, waiters = self.life.take()
                try:
                    await self._serve_batch(zones)
                except Exception:  # after the swap (a follower failed): the edits behind still get served
                    log.exception("event=edit-serve-failed zones=%s", ",".join(map(str, zones)))
                finally:  # committed and journaled: a reload serves it; never leave a waiter
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                    self.life.round_ended()

    async def _serve_batch(self, zones: Batch) -> None:
        """Compile one batch off the loop and answer from it."""
        assert self.engine is not None
        snapshot = dict(self.state.by_file)
        compile_changed = functools.partial(self.compile, snapshot, self.engine.table, list(zones))
        started = time.monotonic()
        try:
            table = await asyncio.get_running_loop().run_in_executor(None, compile_changed)
        except Exception:
            log.exception("event=compile-failed zones=%s", ",".join(map(str, zones)))
            return
        self.swap(table)
        log.info(  # pending: zones answered by the slow path until compiled behind
            "event=edit-served zones=%s pending=%d seconds=%.3f",
            ",".join(map(str, zones)),
            len(table.pending),
            time.monotonic() - started,
        )
        self.on_served(table, zones)

    # -- secondary zones without a copy --------------------------------------------------

    def set_unavailable(self, origins: frozenset[dns.name.Name]) -> None:
        """The secondary zones without a current copy changed: from now on they answer SERVFAIL."""
        if origins == self.unavailable:
            return  # a reload's new secondary service says what the old one did
        self.unavailable = origins
        self.on_unavailable(len(origins))
        self.apply_gate()
        if self.workers is not None:
            self.workers.broadcast("unavailable", origins)

    def apply_gate(self) -> None:
        """The engine's gate (allow_query, unavailable zones) as the config and copies say now."""
        if self.engine is not None:
            served = self.zones_by_origin() if self.unavailable else {}
            self.engine.gate = zone_gate(self.config(), self.unavailable, served)

    def stop(self) -> None:
        """Stop compiling behind; a slice already in its thread ends within about a second."""
        if self._filling is not None:
            self._filling.cancel()
        if self._resave is not None:
            self._resave.cancel()

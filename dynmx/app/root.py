"""The composition root of `serve`: config -> zones -> publisher -> engine -> listeners, services.

`App` builds the parts and holds them; what each part does lives beside it:
`publisher` (the answer table's lifecycle, `tablestate` its drawing), `loading` and `reload`
(reading the zone directory, SIGHUP), `lifecycle` (start, serve, stop), `services` (UPDATE,
transfers, secondaries, self-check, DS push), `http_listeners`, `catalog_role`, `status`,
`dyndns2_service`, `zone_ops`, and `workers/` for `--workers N`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from pathlib import Path

import dns.name
import dns.zone

from dynmx.answer.compiler import AnswerTable
from dynmx.answer.engine import Engine
from dynmx.app import lifecycle, reload
from dynmx.app.answerstore import AnswerKeeper
from dynmx.app.catalog_role import CatalogRole
from dynmx.app.dspush import DsPushService
from dynmx.app.dyndns2_service import Dyndns2Service
from dynmx.app.health_monitor import HealthMonitor
from dynmx.app.http_listeners import HttpListeners
from dynmx.app.listeners import HotStats, Listeners
from dynmx.app.publisher import Batch, TablePublisher, ZoneState
from dynmx.app.secondary import SecondaryService
from dynmx.app.selfcheck_service import SelfCheckService
from dynmx.app.services import notify_secondaries
from dynmx.app.status import StatusPages
from dynmx.app.transfer_service import TransferService
from dynmx.app.update_service import UpdateService
from dynmx.app.workers.pool import WorkerPool
from dynmx.app.zonescan import scan_zones, soa_serial, zone_data
from dynmx.app.zonestatus import PeerLog
from dynmx.config import Config
from dynmx.control.owner import ZoneOwner
from dynmx.control.ratelog import REFUSALS
from dynmx.control.store import StateStore
from dynmx.control.writeback import WriteBack
from dynmx.control.writer import write_atomically
from dynmx.errors import Problem
from dynmx.metrics import Metrics
from dynmx.policy.served import PoolPlans, refresh_pool
from dynmx.zone.loader import LoadedZone
from dynmx.zone.soa import serial_of

__all__ = ["App", "ZoneState", "scan_zones", "soa_serial", "zone_data"]

FACT_TIMEOUT = 5.0  # seconds a drain or load waits for the workers (they take milliseconds)


class App:
    """One running dynmx: the parts of the server and the state they share."""

    # Made by `services.start_services`, at start-up and anew by each reload of the config.
    updates: UpdateService
    transfers: TransferService
    secondary: SecondaryService
    selfcheck: SelfCheckService
    dspush: DsPushService

    def __init__(self, config: Config, config_loader: Callable[[], Config] | None = None) -> None:
        self.config = config
        self.config_loader = config_loader
        self.zones_dir = config.path(config.server.zones_dir)
        self.metrics = Metrics(refusals=lambda: REFUSALS.counts)
        self.listeners: Listeners | None = None  # answering in this process
        self.workers: WorkerPool | None = None  # or in `server.workers` answer processes
        self.answers_here = not config.server.workers  # as started: a reload does not change it
        self.started = time.time()
        self.should_exit = asyncio.Event()
        state_dir = config.path(config.server.state_dir)
        self.writeback = WriteBack(write_atomically, self._written)
        # The one owner of the zone files and journal: holds state_dir's lock until `stop`.
        self.owner = ZoneOwner(config, "server", self.writeback.submit)
        self.owner.blocked = self.writeback.blocked
        self.metrics.write_failing.set_function(self.writeback.failing)
        self.journal = self.owner.journal
        self.store = StateStore(state_dir / "dynmx.sqlite")
        self.answers = AnswerKeeper(state_dir)  # compiled answers kept for a warm start
        self.health = HealthMonitor(config, self.store, self.apply_plans, self.metrics)
        seed = config.server.random_seed
        self.rng = random.Random(seed).random if seed else None
        self.publisher = TablePublisher(
            lambda: self.config,
            lambda pool: self.health.plans_for(pool),  # a reload replaces the monitor
            self.rng,
            self.answers,
            self.answers_here,
            self._edit_served,
            self.metrics.unavailable.set,
        )
        self.bound: list[tuple[str, int]] = []
        self.background: set[asyncio.Task[bool]] = set()
        self.resigning: asyncio.Task[None] | None = None  # daily re-sign of the zones dynmx signs
        self.held = contextlib.ExitStack()  # what lives until the server stops (the handover file)
        self.pid_path: Path | None = None  # written once serving, removed at the stop
        self.listening = HttpListeners(self)
        self.catalog = CatalogRole(self)
        self.dyndns2 = Dyndns2Service(self)
        self.pages = StatusPages(self)
        self.peers = PeerLog()  # NOTIFYs sent and transfers served, per zone: `dynmx zone status`

    @property
    def state(self) -> ZoneState:
        return self.publisher.state

    @property
    def engine(self) -> Engine | None:
        return self.publisher.engine

    @property
    def unavailable(self) -> frozenset[dns.name.Name]:
        return self.publisher.unavailable

    def zones_by_origin(self) -> dict[dns.name.Name, LoadedZone]:
        return self.publisher.zones_by_origin()

    def zone_of(self, name: dns.name.Name) -> LoadedZone | None:
        return self.publisher.zone_of(name)

    def publish_zone(self, zone: LoadedZone) -> asyncio.Future[None]:
        """A committed edit, served as `TablePublisher.publish` says; a catalog consumer also
        follows the members of a catalog zone that changed."""
        served = self.publisher.publish(zone)
        consumer = self.catalog.consumer
        if consumer is not None and zone.origin == consumer.origin:
            self.catalog.consume(zone)
        return served

    def unpublish_zone(self, zone: LoadedZone) -> asyncio.Future[None]:
        return self.publisher.unpublish(zone)

    def _written(self, path: Path, zone: dns.zone.Zone) -> None:
        """A zone file now holds this version (write-back thread): the journal may prune up to it."""
        assert zone.origin is not None
        self.journal.mark_flushed(zone.origin.to_text(), serial_of(zone))

    def _edit_served(self, table: AnswerTable, zones: Batch) -> None:
        """Edits are answered from: probes follow the table, secondaries are told (RFC 1996)."""
        self.health.reapply()
        self.health.retarget(table.zoneset)  # a member's address may have changed
        for zone in zones.values():
            if zone is not None:  # None: removed
                notify_secondaries(self, zone)

    def apply_plans(self, plans: PoolPlans) -> None:
        """A pool's facts changed: re-render its answers now (no query after sees the old order)."""
        if self.engine is not None:
            refresh_pool(self.engine.table, plans)
        if self.workers is not None:
            self.workers.broadcast("plans", plans)
        if self.catalog.producer is not None:  # a drain, a load, a verdict: carried if the operator's
            self.catalog.producer.request(members=False)

    def pool_plans(self) -> list[PoolPlans]:
        return [self.health.plans_for(pool) for pool in self.config.pool]

    def file_state(self) -> tuple[frozenset[Path], dict[Path, bytes]]:
        """What a worker rescanning the files must know of them, and cannot see (`scan_zones`'s
        `keep` and `written`): the files behind the version in memory, which it keeps, and
        the digests of those written from it, which it need not parse again. The worker's
        versions are this process's: every edit reached it before this is sent."""
        versions = {path: zone.zone for path, zone in self.state.by_file.items()}
        return self.writeback.behind(), self.writeback.digests(versions)

    def hot_stats(self) -> HotStats:
        """The hot path's counters: this process's, or the sum of the workers' reports."""
        if self.workers is not None:
            return self.workers.hot_stats()
        assert self.engine is not None
        return HotStats.read(self.engine, self.listeners)

    async def workers_caught_up(self, timeout: float = FACT_TIMEOUT) -> None:
        """Every worker has every change sent so far: an operator's drain or load is then in
        every answer when the command returns, as in one process."""
        if self.workers is not None:
            await self.workers.applied(self.workers.seq, timeout)

    async def reload(self, reread_config: bool = True) -> list[Problem]:
        return await reload.reload(self, reread_config)

    async def start(self) -> None:
        await lifecycle.startup(self)

    async def serve_forever(self) -> None:
        await lifecycle.serve(self)

    def request_stop(self) -> None:
        self.should_exit.set()

    async def stop(self) -> None:
        await lifecycle.shutdown(self)

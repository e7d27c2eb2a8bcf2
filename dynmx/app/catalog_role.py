"""This server's part in a catalog (RFC 9432, `[catalog]`): its producer, or its consumer with
the member zones it follows as secondaries and the pool decisions the primary shares.

The producer and consumer themselves are `dynmx.app.catalog`; this module connects them to
the running server (its zones, secondary service, health monitor and table).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import dns.name

from dynmx.app.catalog import CatalogConsumer, CatalogProducer, pool_from_json, pool_json
from dynmx.app.health_monitor import HealthMonitor
from dynmx.app.update_service import load_keyring
from dynmx.config import Config, PoolConfig, parse_hostport
from dynmx.errors import ConfigError
from dynmx.zone.catalog import Shared
from dynmx.zone.loader import LoadedZone

if TYPE_CHECKING:
    from dynmx.app.root import App

log = logging.getLogger("dynmx.app")


class CatalogRole:
    """Produce or follow the catalog of `[catalog]`; nothing when it names none."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.producer: CatalogProducer | None = None  # `[catalog]` without `primary`
        self.consumer: CatalogConsumer | None = None  # `[catalog]` with `primary`
        self.tasks: set[asyncio.Task[None]] = set()
        self._pools_from_catalog: tuple[PoolConfig, ...] = ()  # a consumer's pools its config lacks

    def start(self) -> None:
        """Produce or follow the catalog of `[catalog]` (at start, and anew after a reload)."""
        settings = self.app.config.catalog
        if not settings.name:
            return
        origin = dns.name.from_text(settings.name)
        if settings.primary:
            self.consumer = CatalogConsumer(
                origin, self.app.zones_dir, self._follow_member, self._drop_member, self._apply_shared
            )
            held = self.app.zones_by_origin().get(origin)
            if held is not None:  # its members are secondaries from the first query on
                self.consumer.follow_members(held)
            self.consume(held)  # then: members gone meanwhile, shared decisions
        else:
            self.producer = CatalogProducer(
                origin,
                self.app.owner,
                self.app.zones_by_origin,
                self.app.secondary.is_secondary,
                self._shared,
                self.app.publish_zone,
            )
            self.producer.start()

    async def ready(self) -> None:
        """The producer's first look done, so the catalog lists every zone from the first query
        on (its edit takes the catalog zone's turn and is journaled off the loop)."""
        if self.producer is not None:
            await self.producer.looked.wait()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        for task in list(self.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.producer = self.consumer = None

    def consume(self, zone: LoadedZone | None) -> None:
        consumer = self.consumer
        if consumer is None or zone is None:
            return
        blocks = {z.name.lower() for z in self.app.config.zone}
        held = {o for o in self.app.zones_by_origin() if o.to_text().lower() not in blocks}
        task = asyncio.get_running_loop().create_task(consumer.consume(zone, held))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=catalog-error error=%r", task.exception(), exc_info=task.exception())

    def _follow_member(self, origin: dns.name.Name, path: Path) -> None:
        """A catalog member: a secondary zone of the catalog's primary, with its key and NOTIFY senders."""
        settings = self.app.config.catalog
        key = (
            load_keyring(self.app.config)[dns.name.from_text(settings.primary_key)]
            if settings.primary_key
            else None
        )
        notifiers = [ipaddress.ip_network(p) for p in settings.allow_notify]
        self.app.secondary.follow(origin, parse_hostport(settings.primary), path, key, notifiers)

    async def _drop_member(self, origin: dns.name.Name) -> None:
        """A zone that left the catalog: no longer followed nor served; its file kept aside
        (`NAME.zone.removed`, as `zone rm` keeps one) and its journal forgotten."""
        await self.app.secondary.unfollow(origin)
        zone = self.app.zones_by_origin().get(origin)
        if zone is None:
            return
        unserved = self.app.unpublish_zone(zone)  # at once: a compile started meanwhile sees it gone
        await asyncio.get_running_loop().run_in_executor(None, self.app.writeback.forget, zone.path)
        with contextlib.suppress(FileNotFoundError):
            zone.path.replace(zone.path.with_name(zone.path.name + ".removed"))
        self.app.owner.forget(origin)
        await unserved

    def _shared(self) -> Shared:
        """The operator's pool decisions a producer's catalog carries: every pool's definition,
        the drained members, the manual load readings."""
        pools = {pool.name: pool_json(pool) for pool in self.app.config.pool}
        drains = frozenset(d for d in self.app.health.drained if d[0] in self.app.health.pools)
        loads = {
            (name, host): value
            for name, state in self.app.health.pools.items()
            for host, value in state.loads.items()
        }
        return Shared(pools, drains, loads)

    async def _apply_shared(self, shared: Shared) -> None:
        """A consumer: the primary's pool definitions (those its config lacks), drains and load
        readings apply here beside this node's own probe verdicts (and its own drains, kept
        in its state store)."""
        await self._adopt_pools(shared.pools)
        drained = self.app.store.drained() | set(shared.drains)
        changed = {pool for pool, _ in drained ^ self.app.health.drained}
        self.app.health.drained = drained
        for (pool, host), value in shared.loads.items():
            state = self.app.health.pools.get(pool)
            if (
                state is not None
                and host in {m.host for m in state.config.member}
                and state.loads.get(host) != value
            ):
                state.loads[host] = value
                changed.add(pool)
        for pool in sorted(changed & self.app.health.pools.keys()):
            log.info("event=catalog-shared-applied pool=%s", pool)
            self.app.health.evaluate(pool)

    def with_pools(self, config: Config) -> Config:
        """`config` (as read from the file) with the catalog's pools it does not define itself."""
        own = {pool.name for pool in config.pool}
        extra = tuple(pool for pool in self._pools_from_catalog if pool.name not in own)
        return dataclasses.replace(config, pool=(*config.pool, *extra)) if extra else config

    async def _adopt_pools(self, definitions: dict[str, str]) -> None:
        """The pools a catalog defines and this config does not: served here (probed from here)
        as if configured, until the catalog drops them. A definition that does not check is
        logged and skipped. Changing them recompiles every zone, as a config reload does."""
        wanted: list[PoolConfig] = []
        for name, text in sorted(definitions.items()):
            try:
                wanted.append(pool_from_json(text))
            except ConfigError as error:
                log.warning("event=catalog-pool-refused pool=%s error=%r", name, str(error))
        if tuple(wanted) == self._pools_from_catalog:
            return
        async with self.app.publisher.lock:
            added = {pool.name for pool in self._pools_from_catalog}
            own = dataclasses.replace(
                self.app.config, pool=tuple(p for p in self.app.config.pool if p.name not in added)
            )
            self._pools_from_catalog = tuple(wanted)
            new = self.with_pools(own)
            names = ",".join(p.name for p in new.pool if p.name not in {q.name for q in own.pool})
            log.info("event=catalog-pools-applied pools=%s", names or "none")
            await self.app.health.stop()
            previous = self.app.health
            self.app.config = new
            self.app.health = HealthMonitor(new, self.app.store, self.app.apply_plans, self.app.metrics)
            self.app.health.adopt(previous)
            assert self.app.engine is not None
            compile_all = functools.partial(
                self.app.publisher.compile, dict(self.app.state.by_file), None, []
            )
            table = await asyncio.get_running_loop().run_in_executor(None, compile_all)
            self.app.publisher.swap(table)
            if self.app.workers is not None:
                self.app.workers.broadcast(
                    "reload", self.app.config, self.app.pool_plans(), *self.app.file_state()
                )
            self.app.health.start(table.zoneset)
            self.app.health.reapply()

"""The catalog zone of `[catalog]` (RFC 9432): kept up to date here (producer) or followed (consumer).

A producer keeps one catalog: its members are every zone this server is primary for, and
under `ext` it carries the operator's pool decisions (`dynmx.zone.catalog.Shared`). Every
change is an edit committed by the one owner (journaled, so secondaries follow by IXFR,
then written and NOTIFYed like any edit): a zone added, removed or reloaded, a drain, a
load reading, a pool defined.

A consumer follows the catalog from `primary` as a secondary zone; each version it receives
makes every member a secondary zone of the same primary (a member that left is no longer
served and its file is kept as `NAME.zone.removed`, as `zone rm` keeps it), and hands the
shared pool decisions to the server (`apply_shared`), which applies them beside its own
probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import dns.name

from dynmx.app.turns import commit_in_turn
from dynmx.config import Config, PoolConfig, pool_from_mapping
from dynmx.control.owner import ZoneOwner
from dynmx.control.update import Change, Op
from dynmx.control.writer import write_atomically
from dynmx.control.zones import ZoneEditRefused, zone_file
from dynmx.errors import ConfigError, DynmxError
from dynmx.zone.catalog import Catalog, CatalogRefused, Shared, catalog_text, held, parse_catalog, records
from dynmx.zone.loader import LoadedZone, parse_zone
from dynmx.zone.soa import serial_of

log = logging.getLogger("dynmx.catalog")

CATALOG_TTL = 0  # RFC 9432 §4: the catalog is not meant for resolvers
SHARED_POLL = 1.0  # seconds between looks at the pool decisions to carry (a producer)


NODE_LOCAL = ("on_promote", "on_promote_url")  # a promotion hook runs where it is configured


def pool_json(pool: PoolConfig) -> str:
    """A pool definition as the catalog carries it: the [[pool]] table as JSON, less the
    promotion hooks (a command or URL for this node, perhaps holding a token: never copied)."""
    table = {k: v for k, v in dataclasses.asdict(pool).items() if k not in NODE_LOCAL}
    return json.dumps(table, sort_keys=True, separators=(",", ":"))


def pool_from_json(text: str) -> PoolConfig:
    """A pool definition a catalog carried, checked as the config file's; ConfigError if bad."""
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"pool: not JSON ({error})") from None
    return pool_from_mapping(raw)


def ensure_catalog_file(config: Config, zones_dir: Path) -> Path | None:
    """A producer's catalog file, made empty (serial 1) when there is none: it is then loaded,
    journaled and served like every zone file. None without a producer catalog."""
    settings = config.catalog
    if not settings.name or settings.primary:
        return None
    origin = dns.name.from_text(settings.name)
    path = zone_file(zones_dir, origin)
    if not path.exists():
        zone = parse_zone(path, catalog_text(origin).encode(), origin)
        with contextlib.suppress(FileExistsError):
            write_atomically(path, zone.zone, exclusive=True)
            log.info("event=catalog-created zone=%s file=%s", origin, path)
    return path


class CatalogProducer:
    """Keeps the catalog zone equal to the zones served as primary and the shared decisions."""

    def __init__(
        self,
        origin: dns.name.Name,
        owner: ZoneOwner,
        zones: Callable[[], dict[dns.name.Name, LoadedZone]],
        is_secondary: Callable[[dns.name.Name], bool],
        shared: Callable[[], Shared],
        publish: Callable[[LoadedZone], Awaitable[None]],
    ) -> None:
        self.origin = origin
        self.owner = owner
        self.zones = zones
        self.is_secondary = is_secondary
        self.shared = shared
        self.publish = publish
        self._lock = asyncio.Lock()
        self._carried: Shared | None = None
        self._watch: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.looked = asyncio.Event()  # the first look is done (served, or refused and logged)

    def start(self) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._watch_shared(), name="catalog")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    def members(self, zones: dict[dns.name.Name, LoadedZone]) -> list[dns.name.Name]:
        return [o for o in zones if o != self.origin and not self.is_secondary(o)]

    async def sync(self) -> None:
        """Commit what the catalog lacks or holds too much (one edit, one serial), and serve it."""
        async with self._lock:
            made: list[Change] = []

            def changes_of(catalog: LoadedZone) -> list[Change] | None:
                shared = self.shared()
                wanted = records(self.origin, self.members(self.zones()), shared)
                have = held(catalog.zone)
                changes = [Change(Op.DELETE, name, CATALOG_TTL, rdata) for name, rdata in have - wanted]
                changes += [Change(Op.ADD, name, CATALOG_TTL, rdata) for name, rdata in wanted - have]
                self._carried = shared
                made.extend(changes)
                return sorted(changes, key=_order) if changes else None

            try:
                updated = await commit_in_turn(
                    self.owner, self.origin, lambda: self.zones().get(self.origin), changes_of, self.publish
                )
            except DynmxError as error:
                log.error("event=catalog-refused zone=%s error=%r", self.origin, str(error))
                self._carried = None  # tried again at the next look
                return
            if updated is not None:  # None: nothing to change, or its file failed to load (the scan says)
                log.info(
                    "event=catalog-updated zone=%s serial=%d changes=%d",
                    self.origin,
                    serial_of(updated.zone),
                    len(made),
                )

    def request(self, members: bool = True) -> None:
        """A look soon (from code on the loop that cannot wait for it): a full sync when zones
        may have come or gone (`members`: a reload), else only when the shared decisions
        changed (a pool's plans changed: a drain, a load, or only a probe verdict)."""
        if members:
            self._carried = None
        self._wake.set()

    async def _watch_shared(self) -> None:
        """Drains, loads and pool definitions change in many places: look when asked
        (`request`) and every second."""
        while True:
            try:
                if self._carried is None or self.shared() != self._carried:
                    await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours must not end the loop
                log.exception("event=catalog-error zone=%s", self.origin)
            self.looked.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SHARED_POLL)
            self._wake.clear()


def _order(change: Change) -> tuple[int, str]:
    return (0 if change.op == Op.DELETE else 1, change.name.to_text())


class CatalogConsumer:
    """Serves every member of a followed catalog as a secondary of the catalog's primary."""

    def __init__(
        self,
        origin: dns.name.Name,
        zones_dir: Path,
        follow: Callable[[dns.name.Name, Path], None],
        unfollow: Callable[[dns.name.Name], Awaitable[None]],
        apply_shared: Callable[[Shared], Awaitable[None]],
    ) -> None:
        self.origin = origin
        self.zones_dir = zones_dir
        self.follow = follow
        self.unfollow = unfollow
        self.apply_shared = apply_shared
        self.members: set[dns.name.Name] = set()
        self._lock = asyncio.Lock()

    def follow_members(self, catalog: LoadedZone) -> Catalog | None:
        """Follow every member `catalog` lists and is not followed yet (no await: at start it
        runs before any query is answered, so a member's file held from before is served as
        a secondary from the first query); None for a catalog that must not be processed."""
        try:
            parsed = parse_catalog(catalog.zone)
        except CatalogRefused as error:
            log.error("event=catalog-refused zone=%s error=%r", self.origin, str(error))
            return None
        for member in sorted(set(parsed.members) - self.members - {self.origin}):
            try:
                path = zone_file(self.zones_dir, member)
            except ZoneEditRefused as error:
                fields = "zone=%s member=%s reason=%r"
                log.warning("event=catalog-member-ignored " + fields, self.origin, member, str(error))
                continue
            self.follow(member, path)
            self.members.add(member)
            log.info("event=catalog-member-added zone=%s member=%s", self.origin, member)
        return parsed

    async def consume(self, catalog: LoadedZone | None, held_zones: set[dns.name.Name]) -> None:
        """A version of the catalog (or the copy held at start): follow its members, drop the
        zones that left it (of those held, only the ones that came from a catalog: `held_zones`
        are the zones served without a [[zone]] block), apply its shared decisions."""
        if catalog is None:
            return
        async with self._lock:
            parsed = self.follow_members(catalog)
            if parsed is None:
                return
            for reason in parsed.ignored:
                log.warning("event=catalog-member-ignored zone=%s reason=%r", self.origin, reason)
            gone = (self.members | held_zones) - set(parsed.members) - {self.origin}
            for member in sorted(gone):
                await self.unfollow(member)
                self.members.discard(member)
                log.info("event=catalog-member-removed zone=%s member=%s", self.origin, member)
            await self.apply_shared(parsed.shared)

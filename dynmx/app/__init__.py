"""Wires `serve`: config -> zones -> compiled table -> engine -> UDP/TCP/HTTP listeners.

Lifecycle as uvicorn's Config/Server: start, serve until a signal, reload on SIGHUP
(or POST /reload), drain TCP and stop on SIGTERM/SIGINT within a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import ipaddress
import logging
import os
import random
import signal
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from dynmx.answer.compiler import AnswerTable
from dynmx.answer.engine import Engine
from dynmx.app import heap, pages
from dynmx.app.answerconfig import answers_alike
from dynmx.app.answerstore import AnswerKeeper
from dynmx.app.catalog import CatalogConsumer, CatalogProducer, ensure_catalog_file, pool_from_json, pool_json
from dynmx.app.dnssec_metrics import DnssecSampler
from dynmx.app.dspush import DsPushService
from dynmx.app.explain import explain_query
from dynmx.app.health_monitor import HealthMonitor
from dynmx.app.listeners import HotStats, Listeners, bind_all, make_engine
from dynmx.app.publisher import Batch, TablePublisher, ZoneState, worth_staging
from dynmx.app.resign import resign_daily
from dynmx.app.routes import DYNDNS2_PORT, control_guard, control_routes, dyndns2_routes, local_routes
from dynmx.app.secondary import SecondaryService
from dynmx.app.selfcheck_service import SelfCheckService
from dynmx.app.update_service import TransferService, UpdateService, key_secrets, load_keyring
from dynmx.app.workers.handover import handed_over
from dynmx.app.workers.pool import WorkerPool
from dynmx.app.zonescan import changed_origins, scan_zones, soa_serial, zone_data
from dynmx.app.zonestatus import PeerLog, send_notify

__all__ = ["App", "ZoneState", "scan_zones", "soa_serial", "zone_data"]
from dynmx.config import Config, PoolConfig, absolute_name, parse_hostport, readable_secrets
from dynmx.control import dyndns2
from dynmx.control.lock import CONTROL_SOCKET
from dynmx.control.owner import ZoneOwner, judge
from dynmx.control.ratelog import REFUSALS
from dynmx.control.store import StateStore
from dynmx.control.token import ensure_token
from dynmx.control.tsig import Signer
from dynmx.control.update import Change
from dynmx.control.writeback import WriteBack
from dynmx.control.writer import write_atomically
from dynmx.control.zones import ZoneEditRefused, add_zone, remove_zone
from dynmx.errors import ConfigError, ControlError, DynmxError, JournalFork, Problem, StaleBase
from dynmx.metrics import Metrics
from dynmx.policy.route_log import RouteLog
from dynmx.policy.served import PoolPlans, refresh_pool
from dynmx.policy.signing_check import config_problems, refuse_unsignable
from dynmx.selfcheck.samples import selfcheck_samples
from dynmx.server import sdnotify
from dynmx.server.http import ControlHttp, Limits
from dynmx.zone.batch import available_cpus
from dynmx.zone.catalog import Shared
from dynmx.zone.loader import LoadedZone
from dynmx.zone.soa import serial_of

log = logging.getLogger("dynmx.app")

SHUTDOWN_GRACE = 4.0  # seconds for in-flight TCP replies; the whole stop stays under 5 s
FACT_TIMEOUT = 5.0  # seconds a drain or load waits for the workers (they take milliseconds)


@dataclass
class Loaded:
    """What a scan of the zone directory gives: the zones, the problems, their table, and the
    changes of the served zones whose files were edited by hand (to journal)."""

    zones: dict[Path, LoadedZone]
    problems: list[Problem]
    table: AnswerTable
    accepted: dict[Path, list[Change]]


def _zone_name(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(absolute_name(text))
    except ValueError as error:
        raise ZoneEditRefused(str(error)) from None


class App:
    """One running dynmx: owns the engine, the listeners and the reload logic."""

    def __init__(self, config: Config, config_loader: Callable[[], Config] | None = None) -> None:
        self.config = config
        self.config_loader = config_loader
        self.zones_dir = config.path(config.server.zones_dir)
        self.metrics = Metrics(refusals=lambda: REFUSALS.counts)
        self.listeners: Listeners | None = None  # answering in this process
        self.workers: WorkerPool | None = None  # or in `server.workers` answer processes
        self._answers_here = not config.server.workers  # as started: a reload does not change it
        self.http: ControlHttp | None = None
        self.control_socket: ControlHttp | None = None
        self.dyndns2_http: ControlHttp | None = None  # `[dyndns2] listen`
        self.dyndns2_address = ""  # where it listens, as configured
        self._dyndns2_was = ""  # the address it was last opened at (to open it again)
        self.dyndns2_logins = dyndns2.Logins()  # failed logins per source, and their waits
        self.control_token = ""  # STATE_DIR/control.token, read when the control listener opens
        self._pages = ThreadPoolExecutor(1, "dynmx-pages")  # /routes, /status: off the event loop
        self._pages_lock = asyncio.Lock()
        self._routes_page: pages.RoutesPage | None = None
        self._zone_list: pages.ZoneList | None = None
        self.started = time.time()
        self._stop = asyncio.Event()
        state_dir = config.path(config.server.state_dir)
        self.writeback = WriteBack(write_atomically, self._written)
        # The one owner of the zone files and journal: holds state_dir's lock until `stop`.
        self.owner = ZoneOwner(config, "server", self.writeback.submit)
        self.owner.blocked = self.writeback.blocked
        self.metrics.write_failing.set_function(self.writeback.failing)
        self.journal = self.owner.journal
        self.store = StateStore(state_dir / "dynmx.sqlite")
        self.answers = AnswerKeeper(state_dir)  # compiled answers kept for a warm start
        self.health = HealthMonitor(config, self.store, self._apply_plans, self.metrics)
        seed = config.server.random_seed
        self.rng = random.Random(seed).random if seed else None
        self.publisher = TablePublisher(
            lambda: self.config,
            lambda pool: self.health.plans_for(pool),  # a reload replaces the monitor
            self.rng,
            self.answers,
            self._answers_here,
            self._edit_served,
            self.metrics.unavailable.set,
        )
        self.bound: list[tuple[str, int]] = []
        self.background: set[asyncio.Task[bool]] = set()
        self._resigning: asyncio.Task[None] | None = None  # daily re-sign of the zones dynmx signs
        self.dyndns2_state = dyndns2.DynState()
        self._held = contextlib.ExitStack()  # what lives until the server stops (the handover file)
        self.route_log = RouteLog(os.urandom(6).hex())  # `routes --since`; a new boot id each start
        self.catalog_producer: CatalogProducer | None = None  # `[catalog]` without `primary`
        self.catalog_consumer: CatalogConsumer | None = None  # `[catalog]` with `primary`
        self._catalog_tasks: set[asyncio.Task[None]] = set()
        self._pools_from_catalog: tuple[PoolConfig, ...] = ()  # a consumer's pools its config lacks
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

    # -- zones ---------------------------------------------------------------------------

    def _written(self, path: Path, zone: dns.zone.Zone) -> None:
        """A zone file now holds this version (write-back thread): the journal may prune up to it."""
        assert zone.origin is not None
        self.journal.mark_flushed(zone.origin.to_text(), serial_of(zone))

    def _load(
        self,
        reconcile: bool = False,
        previous: AnswerTable | None = None,
    ) -> Loaded:
        """Scan and compile; with `previous` (a reload under the same config) only the zones
        whose files changed, and those whose answers use them, are compiled again. An edit's
        zone stays as it is in memory while its file is behind it, or holds what was written
        from it. A served zone whose file changed is judged first (`owner.judge`): refused,
        it keeps its version; accepted, its changes come back to be journaled on the loop.
        Compiling everything (at start-up, or under a changed config) gives a staged table
        from many zones or names on, and a large changed zone is staged: `_fill_pending`
        compiles them."""
        before = self.state.by_file
        behind = self.writeback.behind()
        written = self.writeback.digests({path: zone.zone for path, zone in before.items()})
        limit = self.config.server.max_zone_file_size
        # At start-up, the zones whose answers the store holds: kept by the scan unread.
        warm = self.answers.warm_zones(self.config, self.journal) if reconcile and self._answers_here else {}
        zones, problems = scan_zones(
            self.zones_dir, warm or before, available_cpus(), behind, written, limit, serving=not reconcile
        )
        if reconcile:  # at start-up, on the loop's thread (the journal's connection lives there)
            kept = self.answers.kept(zones)  # the journal agreed with their serials: nothing to replay
            fixed, found = self.owner.reconcile({p: z for p, z in zones.items() if p not in kept})
            zones = {p: kept[p] if p in kept else fixed[p] for p in zones}
            for zone in kept.values():
                self.journal.mark_flushed(zone.origin.to_text(), soa_serial(zone))
            problems += found
        accepted: dict[Path, list[Change]] = {}
        for path, zone in zones.items():
            old = before.get(path)
            if old is None or old is zone or old.origin != zone.origin:
                continue
            verdict = judge(old, zone)
            if isinstance(verdict, Problem):
                problems.append(verdict)
                zones[path] = old
            elif verdict:
                accepted[path] = verdict
        problems += refuse_unsignable(self.config, zones, before)  # dnssec = true it cannot honour
        changed = changed_origins(before, zones)
        if previous is not None and not changed and zones.keys() == before.keys():
            return Loaded(zones, problems, previous, accepted)  # the same zones, config: the same table
        if previous is None:
            table = self.publisher.warm_table(zones) if warm else None
            if table is None:
                table = self.publisher.compile(zones, None, [], staged=worth_staging(zones))
        else:
            table = self.publisher.compile(zones, previous, changed)
        return Loaded(zones, problems, table, accepted)

    def zones_by_origin(self) -> dict[dns.name.Name, LoadedZone]:
        return self.publisher.zones_by_origin()

    def zone_of(self, name: dns.name.Name) -> LoadedZone | None:
        return self.publisher.zone_of(name)

    def publish_zone(self, zone: LoadedZone) -> asyncio.Future[None]:
        """A committed edit, served as `TablePublisher.publish` says; a catalog consumer also
        follows the members of a catalog zone that changed."""
        served = self.publisher.publish(zone)
        if self.catalog_consumer is not None and zone.origin == self.catalog_consumer.origin:
            self._consume_catalog(zone)
        return served

    def unpublish_zone(self, zone: LoadedZone) -> asyncio.Future[None]:
        return self.publisher.unpublish(zone)

    def _edit_served(self, table: AnswerTable, zones: Batch) -> None:
        """Edits are answered from: probes follow the table, secondaries are told (RFC 1996)."""
        self.health.reapply()
        self.health.retarget(table.zoneset)  # a member's address may have changed
        for zone in zones.values():
            if zone is not None:  # None: removed
                self._notify_secondaries(zone)

    def _notify_secondaries(self, zone: LoadedZone) -> None:
        """RFC 1996: once the new serial is served, so a secondary's SOA query sees it."""
        targets = self.config.zone_settings(zone.origin.to_text()).notify
        for target in targets:
            task = asyncio.get_running_loop().create_task(send_notify(self.peers, zone, target))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    def _record_transfer(self, before: LoadedZone, after: LoadedZone, changes: list[Change]) -> None:
        """Journal what a transfer in changed, so our own secondaries can follow by IXFR. A
        journal that does not lead to the copy we held is set aside: they get an AXFR."""
        try:
            self.owner.record(before, after, changes)
        except (StaleBase, JournalFork) as error:
            name = before.origin.to_text()
            moved = self.journal.quarantine(name, str(error))
            log.warning("event=journal-unlinked zone=%s quarantined=%d reason=%r", name, moved, str(error))

    def _start_services(self) -> None:
        """The parts that follow the config: edits, transfers, secondary zones, CH TXT status."""
        assert self.engine is not None
        self.engine.chaos_status = self.health.status_text if self.config.server.chaos_status else None
        self.updates = UpdateService(self.config, self.owner, self.zones_by_origin, self.publish_zone)
        self.engine.control = self.updates.handle
        self.engine.tsig = Signer(self.updates.keyring)  # keys changed by a reload sign answers too
        self.transfers = TransferService(self.config, self.journal, self.zones_by_origin)
        self.engine.transfer = self.transfers.handle
        self.transfers.on_transfer = self.peers.served
        self.secondary = SecondaryService(
            self.config,
            self.zones_dir,
            self.zones_by_origin,
            self.publish_zone,
            self.writeback.submit,
            self.publisher.set_unavailable,
            self._record_transfer,
        )
        self.updates.secondaries = self.secondary.notified
        self.updates.is_secondary = self.secondary.is_secondary
        self.secondary.start()
        self._start_catalog()
        self.selfcheck = SelfCheckService(
            self.config,
            key_secrets(self.config),
            self.config.path(self.config.server.state_dir) / "selfcheck.sqlite",
            self.zones_by_origin,
            self.owner,
            self.publish_zone,
            lambda report, pushes: self.metrics.observe_selfcheck(selfcheck_samples(report, pushes)),
        )
        if self.bound:  # at start-up, rounds begin once the listeners are there to see the probes
            self.selfcheck.start()
        state_dir = self.config.path(self.config.server.state_dir)
        self.dspush = DsPushService(
            self.config,
            key_secrets(self.config),
            state_dir / "dspush.sqlite",
            observe=self.metrics.observe_ds_pushes,
        )
        if self.bound:  # at start-up, once the zones are signed and served (the first key is made)
            self.dspush.start()

    async def _reconfigure(self) -> Problem | None:
        """Re-read the config file (reload): pools, probes, keys, zone settings change in place.

        A config that does not load is refused and the running one stays, as with zones.
        The keys the schema marks `restart` (sockets, the answer engine's settings, rate
        limiting, logging: `dynmx.config.reload_decisions`) keep their running values, and the
        log names those that changed; every other key takes effect, the control listener
        (`[http] listen`) and the dyndns2 endpoint (`[dyndns2] enabled`) included.
        """
        from dynmx.config import keep_running, restart_keys

        if self.config_loader is None:
            return None
        try:
            new = self.config_loader()
        except (ConfigError, ValueError) as error:
            log.error("event=config-refused error=%r", str(error))
            return Problem("config", 0, str(error))
        unsignable = config_problems(new, self.state.by_file.values())  # dnssec = true it cannot honour
        if unsignable:
            log.error("event=config-refused error=%r", str(unsignable[0]))
            return unsignable[0]
        old = self.config
        new = self._with_catalog_pools(new)  # a consumer keeps serving the catalog's pools
        changed = restart_keys(old, new)
        if changed:
            log.warning("event=config-restart-needed keys=%s", ",".join(changed))
            new = keep_running(old, new)
        await self.health.stop()
        await self._stop_catalog()
        await self.secondary.stop()
        await self.selfcheck.stop()
        await self.dspush.stop()
        previous = self.health
        self.config = new
        self.zones_dir = new.path(new.server.zones_dir)
        self.owner.reconfigure(new)
        self.publisher.apply_gate()
        self.health = HealthMonitor(new, self.store, self._apply_plans, self.metrics)
        self.health.adopt(previous)
        await self._apply_http_listener(old.http.listen)
        if new.dyndns2.enabled != old.dyndns2.enabled:
            log.info("event=dyndns2-%s", "enabled" if new.dyndns2.enabled else "disabled")
        log.info(
            "event=config-reloaded pools=%d zones=%d keys=%d http=%s dyndns2=%s",
            len(new.pool),
            len(new.zone),
            len(new.key),
            self.config.http.listen or "off",
            "on" if new.dyndns2.enabled else "off",
        )
        return None

    async def _apply_http_listener(self, running: str) -> None:
        """A reload: the control listener's limits apply to its next connection and its token
        is read again (removed, a new one is made: how it is rotated); the dyndns2 listener
        follows `[dyndns2]`. When `[http] listen` changed from `running`: close that listener,
        open the new one ("" leaves it closed). A request being answered, the POST /reload
        that asked for this among them, still gets its reply. An address that cannot be
        bound is logged and the previous listener opened again, so the server stays
        reachable; the next reload tries again."""
        await self._apply_dyndns2_listener()
        settings = self.config.http
        limits = Limits(settings.max_connections, settings.timeout, settings.max_per_source)
        if self.control_socket is not None:
            self.control_socket.limits = limits
        if self.http is not None:
            self.http.limits = limits
            try:
                self.control_token = ensure_token(self.config.path(self.config.server.state_dir))
            except OSError as error:  # the token in use stays
                log.error("event=control-token-failed error=%r action=kept", str(error))
        wanted = settings.listen
        if wanted == running:
            return
        previous, self.http = self.http, None
        was = parse_hostport(running, 9153)[0] if running else ""
        if previous is not None:  # waits for its accept loop to end, off the event loop
            await asyncio.get_running_loop().run_in_executor(None, previous.close)
            log.info("event=listener-closed proto=http address=%s port=%d", was, previous.port)
        if not wanted:
            return
        host, port = parse_hostport(wanted, 9153)
        try:
            self._open_http(host, port)
        except OSError as error:
            log.error("event=listen-failed proto=http address=%s port=%d error=%r", host, port, str(error))
            kept = dataclasses.replace(self.config.http, listen=running)
            self.config = dataclasses.replace(self.config, http=kept)
            if previous is not None:
                try:
                    self._open_http(was, previous.port)
                except OSError as again:  # taken meanwhile: the control listener stays closed
                    log.error(
                        "event=listen-failed proto=http address=%s port=%d error=%r",
                        was,
                        previous.port,
                        str(again),
                    )

    def _open_control_socket(self, loop: asyncio.AbstractEventLoop) -> None:
        """The local control channel in `state_dir`: every route, edits included; the CLI's way
        to the one owner (its file mode, 0600, is the authorization: no token, no guard)."""
        path = self.config.path(self.config.server.state_dir) / CONTROL_SOCKET
        routes = {**control_routes(self, loop), **local_routes(self, loop)}
        settings = self.config.http
        limits = Limits(settings.max_connections, settings.timeout, settings.max_per_source)
        self.control_socket = ControlHttp.unix(path, routes, limits)
        self.control_socket.start()
        log.info("event=listening proto=control path=%s", path)

    def _open_http(self, host: str, port: int) -> None:
        """Open the control HTTP listener (/status, /metrics, POST /reload, ...), guarded by the
        token of `state_dir` (made at its first start), Host and Origin checks."""
        self.control_token = ensure_token(self.config.path(self.config.server.state_dir))
        settings = self.config.http
        self.http = ControlHttp(
            host,
            port,
            control_routes(self, asyncio.get_running_loop()),
            limits=Limits(settings.max_connections, settings.timeout, settings.max_per_source),
            guard=control_guard(self),
        )
        self.http.start()
        log.info("event=listening proto=http address=%s port=%d", host, self.http.port)

    async def _apply_dyndns2_listener(self, starting: bool = False) -> None:
        """Open, move, close or re-certify the dyndns2 listener as `[dyndns2]` says: it runs
        while `enabled` and `listen` are set; its limits apply to the next connection, and
        its certificate files are read again (a renewed certificate needs only a reload).
        At start a failure stops the server; on reload it is logged and what runs is kept
        (a listener moving is opened at its new address before the old one closes, or after
        when they overlap; failing both, the old one is opened again), and the next reload
        tries again."""
        settings = self.config.dyndns2
        wanted = settings.listen if settings.enabled else ""
        limits = Limits(settings.max_connections, settings.timeout, settings.max_per_source)
        running = self.dyndns2_http
        try:
            context = self._dyndns2_tls() if wanted else None
        except OSError as error:  # ssl.SSLError among them
            if starting:
                raise
            log.error("event=dyndns2-tls-failed cert=%s error=%r action=kept", settings.tls_cert, str(error))
            if running is not None:
                running.limits = limits
            return
        if running is not None and wanted == self.dyndns2_address:
            running.limits, running.tls = limits, context
            return
        if starting:  # nothing runs yet: a failure stops the server
            if wanted:
                self._start_dyndns2(self._dyndns2_listener(wanted, limits, context), wanted)
            return
        fresh = self._try_dyndns2(wanted, limits, context, quiet=running is not None) if wanted else None
        if running is not None:
            self.dyndns2_http, self.dyndns2_address = None, ""
            await asyncio.get_running_loop().run_in_executor(None, running.close)
            log.info("event=listener-closed proto=dyndns2 port=%d", running.port)
            if wanted and fresh is None:  # the two addresses overlap: the new one is free now
                fresh = self._try_dyndns2(wanted, limits, context)
                if fresh is None:  # back where it was, unless that was taken meanwhile
                    was = self._dyndns2_was
                    wanted = was.rsplit(":", 1)[0] + f":{running.port}" if was.count(":") else was
                    fresh = self._try_dyndns2(wanted, running.limits, running.tls)
        if fresh is not None:
            self._start_dyndns2(fresh, wanted)

    def _dyndns2_listener(self, address: str, limits: Limits, context: ssl.SSLContext | None) -> ControlHttp:
        """The dyndns2 listener bound at `address` (not started): /nic/update and nothing else."""
        host, port = parse_hostport(address, DYNDNS2_PORT)
        routes = dyndns2_routes(self, asyncio.get_running_loop())
        return ControlHttp(host, port, routes, name="dyndns2", limits=limits, tls=context)

    def _try_dyndns2(
        self, address: str, limits: Limits, context: ssl.SSLContext | None, quiet: bool = False
    ) -> ControlHttp | None:
        try:
            return self._dyndns2_listener(address, limits, context)
        except OSError as error:
            if not quiet:
                log.error("event=listen-failed proto=dyndns2 address=%s error=%r", address, str(error))
            return None

    def _start_dyndns2(self, listener: ControlHttp, address: str) -> None:
        listener.start()
        self.dyndns2_http, self.dyndns2_address, self._dyndns2_was = listener, address, address
        host = parse_hostport(address, DYNDNS2_PORT)[0]
        scheme = "https" if listener.tls is not None else "http"
        log.info("event=listening proto=dyndns2 address=%s port=%d scheme=%s", host, listener.port, scheme)
        if listener.tls is None and not ipaddress.ip_address(host).is_loopback:
            log.warning(
                "event=dyndns2-plaintext address=%s port=%d"
                " reason='basic-auth passwords cross the network readable: set tls_cert and tls_key'",
                host,
                listener.port,
            )

    def _dyndns2_tls(self) -> ssl.SSLContext | None:
        """The dyndns2 listener's TLS context from `tls_cert`/`tls_key` (read now), or None."""
        settings = self.config.dyndns2
        if not settings.tls_cert:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.config.path(settings.tls_cert), self.config.path(settings.tls_key))
        return context

    # -- catalog (RFC 9432): `dynmx.app.catalog` -------------------------------------------

    def _start_catalog(self) -> None:
        """Produce or follow the catalog of `[catalog]` (at start, and anew after a reload)."""
        settings = self.config.catalog
        if not settings.name:
            return
        origin = dns.name.from_text(settings.name)
        if settings.primary:
            self.catalog_consumer = CatalogConsumer(
                origin, self.zones_dir, self._follow_member, self._drop_member, self._apply_shared
            )
            held = self.zones_by_origin().get(origin)
            if held is not None:  # its members are secondaries from the first query on
                self.catalog_consumer.follow_members(held)
            self._consume_catalog(held)  # then: members gone meanwhile, shared decisions
        else:
            self.catalog_producer = CatalogProducer(
                origin,
                self.owner,
                self.zones_by_origin,
                self.secondary.is_secondary,
                self._shared,
                self.publish_zone,
            )
            self.catalog_producer.start()

    async def _stop_catalog(self) -> None:
        if self.catalog_producer is not None:
            await self.catalog_producer.stop()
        for task in list(self._catalog_tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.catalog_producer = self.catalog_consumer = None

    def _consume_catalog(self, zone: LoadedZone | None) -> None:
        consumer = self.catalog_consumer
        if consumer is None or zone is None:
            return
        blocks = {z.name.lower() for z in self.config.zone}
        held = {o for o in self.zones_by_origin() if o.to_text().lower() not in blocks}
        task = asyncio.get_running_loop().create_task(consumer.consume(zone, held))
        self._catalog_tasks.add(task)
        task.add_done_callback(self._catalog_done)

    def _catalog_done(self, task: asyncio.Task[None]) -> None:
        self._catalog_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event=catalog-error error=%r", task.exception(), exc_info=task.exception())

    def _follow_member(self, origin: dns.name.Name, path: Path) -> None:
        """A catalog member: a secondary zone of the catalog's primary, with its key and NOTIFY senders."""
        settings = self.config.catalog
        key = (
            load_keyring(self.config)[dns.name.from_text(settings.primary_key)]
            if settings.primary_key
            else None
        )
        notifiers = [ipaddress.ip_network(p) for p in settings.allow_notify]
        self.secondary.follow(origin, parse_hostport(settings.primary), path, key, notifiers)

    async def _drop_member(self, origin: dns.name.Name) -> None:
        """A zone that left the catalog: no longer followed nor served; its file kept aside
        (`NAME.zone.removed`, as `zone rm` keeps one) and its journal forgotten."""
        await self.secondary.unfollow(origin)
        zone = self.zones_by_origin().get(origin)
        if zone is None:
            return
        unserved = self.unpublish_zone(zone)  # at once: a compile started meanwhile sees it gone
        await asyncio.get_running_loop().run_in_executor(None, self.writeback.forget, zone.path)
        with contextlib.suppress(FileNotFoundError):
            zone.path.replace(zone.path.with_name(zone.path.name + ".removed"))
        self.owner.forget(origin)
        await unserved

    def _shared(self) -> Shared:
        """The operator's pool decisions a producer's catalog carries: every pool's definition,
        the drained members, the manual load readings."""
        pools = {pool.name: pool_json(pool) for pool in self.config.pool}
        drains = frozenset(d for d in self.health.drained if d[0] in self.health.pools)
        loads = {
            (name, host): value
            for name, state in self.health.pools.items()
            for host, value in state.loads.items()
        }
        return Shared(pools, drains, loads)

    async def _apply_shared(self, shared: Shared) -> None:
        """A consumer: the primary's pool definitions (those its config lacks), drains and load
        readings apply here beside this node's own probe verdicts (and its own drains, kept
        in its state store)."""
        await self._adopt_pools(shared.pools)
        drained = self.store.drained() | set(shared.drains)
        changed = {pool for pool, _ in drained ^ self.health.drained}
        self.health.drained = drained
        for (pool, host), value in shared.loads.items():
            state = self.health.pools.get(pool)
            if (
                state is not None
                and host in {m.host for m in state.config.member}
                and state.loads.get(host) != value
            ):
                state.loads[host] = value
                changed.add(pool)
        for pool in sorted(changed & self.health.pools.keys()):
            log.info("event=catalog-shared-applied pool=%s", pool)
            self.health.evaluate(pool)

    def _with_catalog_pools(self, config: Config) -> Config:
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
        async with self.publisher.lock:
            added = {pool.name for pool in self._pools_from_catalog}
            own = dataclasses.replace(
                self.config, pool=tuple(p for p in self.config.pool if p.name not in added)
            )
            self._pools_from_catalog = tuple(wanted)
            new = self._with_catalog_pools(own)
            names = ",".join(p.name for p in new.pool if p.name not in {q.name for q in own.pool})
            log.info("event=catalog-pools-applied pools=%s", names or "none")
            await self.health.stop()
            previous = self.health
            self.config = new
            self.health = HealthMonitor(new, self.store, self._apply_plans, self.metrics)
            self.health.adopt(previous)
            assert self.engine is not None
            compile_all = functools.partial(self.publisher.compile, dict(self.state.by_file), None, [])
            table = await asyncio.get_running_loop().run_in_executor(None, compile_all)
            self.publisher.swap(table)
            if self.workers is not None:
                self.workers.broadcast("reload", self.config, self._pool_plans(), *self._file_state())
            self.health.start(table.zoneset)
            self.health.reapply()

    def _apply_plans(self, plans: PoolPlans) -> None:
        """A pool's facts changed: re-render its answers now (no query after sees the old order)."""
        if self.engine is not None:
            refresh_pool(self.engine.table, plans)
        if self.workers is not None:
            self.workers.broadcast("plans", plans)
        if self.catalog_producer is not None:  # a drain, a load, a verdict: carried if the operator's
            self.catalog_producer.request(members=False)

    async def workers_caught_up(self, timeout: float = FACT_TIMEOUT) -> None:
        """Every worker has every change sent so far: an operator's drain or load is then in
        every answer when the command returns, as in one process."""
        if self.workers is not None:
            await self.workers.applied(self.workers.seq, timeout)

    def member(self, pool: str, host: str) -> tuple[str, str]:
        """Normalise and check a (pool, host) named by an operator."""
        pool, host = absolute_name(pool), absolute_name(host)
        config = next((p for p in self.config.pool if p.name == pool), None)
        if config is None:
            raise ControlError(f"no pool {pool}")
        if host not in {m.host for m in config.member}:
            raise ControlError(f"{host} is not a member of pool {pool}")
        return pool, host

    async def reload(self, reread_config: bool = True) -> list[Problem]:
        """Re-read the zone directory; compile off the loop; swap in one assignment. It ends
        when every worker answers from it too (waited for outside the lock, so edits go on).
        A supervisor is told of the reload and that it ended, however it ended."""
        sdnotify.reloading()
        try:
            async with self.publisher.lock:
                problems, sent = await self._reload(reread_config)
            if sent is not None and self.workers is not None:
                await self.workers.applied(sent)
            return problems
        finally:
            sdnotify.ready(f"serving {len(self.state.by_file)} zones")

    async def _reload(self, reread_config: bool = True) -> tuple[list[Problem], int | None]:
        """The reload itself, under the reload lock: its problems, and the change sent to the
        workers (if any). Every zone whose serial it changes is journaled and NOTIFYed."""
        started = time.monotonic()
        config = self.config
        config_problem = await self._reconfigure() if reread_config else None
        loop = asyncio.get_running_loop()
        mark = self.state.edits
        before = self.state.by_file
        assert self.engine is not None
        previous = self.engine.table if answers_alike(config, self.config) else None
        loaded = await loop.run_in_executor(None, functools.partial(self._load, previous=previous))
        zones, problems, table = loaded.zones, loaded.problems, loaded.table
        # Committed while the files were read: the version in memory is the newer one (a hand
        # edit of its file is kept beside it when the edit is written: `WriteBack`).
        newer = [path for path, edit in self.state.edited.items() if edit > mark and path in zones]
        redo = list(newer)
        for path, changes in loaded.accepted.items():
            if path in newer:
                continue
            try:
                self.owner.record(before[path], zones[path], changes)
            except (StaleBase, JournalFork) as error:
                problems.append(Problem(str(path), 0, f"not taken: {error}"))
                redo.append(path)
        arrived = {  # a kept version (the very object) arrived before: its names are not compared
            p: z
            for p, z in zones.items()
            if (old := before.get(p)) is not z and (old is None or old.origin != z.origin)
        }
        if arrived:  # a journal left from an earlier zone of that name must not be replayed blindly
            fixed, found = self.owner.reconcile(arrived)
            problems += found
            for path, zone in fixed.items():
                if zone is not zones[path]:
                    zones[path] = zone
                    redo.append(path)
        if redo:
            for path in redo:
                if path in newer or path in loaded.accepted:
                    zones[path] = self.state.by_file[path]
            table = self.publisher.compile(zones, table, [zones[path].origin for path in redo])
        self._expect_files(zones, before)
        self.publisher.swap(table)
        sent = None
        if self.workers is not None:
            sent = self.workers.broadcast("reload", self.config, self._pool_plans(), *self._file_state())
        if config_problem is None and self.config_loader is not None and reread_config:
            self.health.start(table.zoneset)
            self._start_services()
        self.health.reapply()  # verdicts that came in while the table compiled
        self._after_load(zones, problems, time.monotonic() - started)
        for path, zone in zones.items():
            old = before.get(path)
            if path not in newer and old is not zone and (old is None or soa_serial(old) != soa_serial(zone)):
                self._notify_secondaries(zone)
        log.info(
            "event=reloaded zones=%d changed=%d incremental=%s table=%s seconds=%.3f",
            len(zones),
            len(changed_origins(before, zones)),
            "yes" if previous is not None else "no",
            "kept" if table is previous else "new",
            time.monotonic() - started,
        )
        if self.catalog_producer is not None:  # zones may have come or gone with their files
            self.catalog_producer.request()
        return (problems if config_problem is None else [config_problem, *problems]), sent

    def _expect_files(self, zones: dict[Path, LoadedZone], before: dict[Path, LoadedZone]) -> None:
        """Tell the write-back what each file newly read holds, so it knows a hand edit later."""
        for path, zone in zones.items():
            if zone.digest and before.get(path) is not zone:
                self.writeback.expect(path, zone.digest)

    def _after_load(self, zones: dict[Path, LoadedZone], problems: list[Problem], seconds: float) -> None:
        """Serials and log lines for the zone versions that are new; an unchanged one costs
        nothing (a reload of 100,000 unchanged zones spent 7 s here naming every zone)."""
        previous = self.state.by_file
        self.state.by_file = zones
        self.state.problems = problems
        for problem in problems:
            log.error("event=zone-refused problem=%r", str(problem))
        arrived = [zone for path, zone in zones.items() if previous.get(path) is not zone]
        left = [zone for path, zone in previous.items() if zones.get(path) is not zone]
        names = set()
        for zone in arrived:
            serial = soa_serial(zone)
            name = zone.origin.to_text()
            names.add(name)
            if self.state.serial_of.get(name) != serial:
                log.info("event=zone-loaded zone=%s serial=%d file=%s", name, serial, zone.path)
            self.state.serial_of[name] = serial
        for gone in {zone.origin.to_text() for zone in left} - names:
            log.info("event=zone-removed zone=%s", gone)
            self.state.serial_of.pop(gone, None)
        self.metrics.observe_load(len(zones), len(problems), seconds)

    # -- listeners -----------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config.server
        started = time.monotonic()
        for path, mode in readable_secrets(self.config):  # TSIG secrets, passwords, tokens
            log.warning("event=config-readable-secrets file=%s mode=%04o", path, mode)
        sdnotify.notify("STATUS=loading zones")
        ensure_catalog_file(self.config, self.zones_dir)
        with heap.loading():
            loaded = self._load(reconcile=True)
        zones, problems, table = loaded.zones, loaded.problems, loaded.table
        self._expect_files(zones, {})
        self.publisher.first(make_engine(self.config, table))
        assert self.engine is not None
        self.engine.on_selfcheck = self._selfcheck_seen
        self._after_load(zones, problems, time.monotonic() - started)
        self.metrics.attach(
            self.hot_stats,
            lambda: self.engine is not None,
            lambda: [("http", self.http), ("dyndns2", self.dyndns2_http), ("control", self.control_socket)],
            self.dyndns2_logins,
        )
        self.metrics.attach_dnssec(DnssecSampler(lambda: self.config))
        self.health.start(table.zoneset)
        self._start_services()
        loop = asyncio.get_running_loop()
        if cfg.workers:
            self.workers = WorkerPool(
                cfg.workers, self._answer_forwarded, self._selfcheck_seen, self._worker_start
            )
            self.publisher.workers = self.workers
            self.bound = self.workers.bind(self.config)
            handover = self._held.enter_context(handed_over(self.config.path(cfg.state_dir), zones))
            try:
                await self.workers.start(handover)
            except BaseException:
                self._held.close()
                raise
        else:
            self.listeners = Listeners.for_engine(self.config, self.engine)
            sockets = bind_all(self.config, 1)[0]
            await self.listeners.serve(self.engine.handle, sockets)
            self.bound = [(pair.host, pair.port) for pair in sockets]
        for host, port in self.bound:
            log.info("event=listening proto=udp+tcp address=%s port=%d workers=%d", host, port, cfg.workers)
        self.selfcheck.start()
        self.dspush.start()
        if self.config.http.listen:
            self._open_http(*parse_hostport(self.config.http.listen, 9153))
        await self._apply_dyndns2_listener(starting=True)
        self._open_control_socket(loop)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        if cfg.pid_file:
            Path(self.config.path(cfg.pid_file)).write_text(f"{os.getpid()}\n")
        log.info(
            "event=serving zones=%d entries=%d pending=%d",
            len(zones),
            len(self.engine.table.entries),
            len(self.engine.table.pending),
        )
        sdnotify.ready(f"serving {len(zones)} zones")
        self.publisher.keep_filling()
        self.publisher.save_answers()
        self._resigning = loop.create_task(resign_daily(self._dnssec_zones, self._resign))

    def _dnssec_zones(self) -> list[LoadedZone]:
        """The served zones configured `dnssec = true`."""
        wanted = {dns.name.from_text(z.name) for z in self.config.zone if z.dnssec}
        return [zone for zone in self.state.by_file.values() if zone.origin in wanted]

    def _resign(self, zone: LoadedZone) -> None:
        """Compile `zone` again (here and in every worker), signed in the current window, under
        a new serial committed like an edit with no change (journal, serial policy, write-back,
        NOTIFY): a secondary transfers the renewed signatures only when the serial moves, as
        Knot and BIND bump it when they re-sign. When the owner refuses the commit now (the file
        cannot be written), the zone is still re-signed under its old serial."""
        try:
            renewed = self.owner.commit(zone, [])
        except DynmxError as error:
            log.warning("event=dnssec-resign-serial-kept zone=%s reason=%r", zone.origin, str(error))
            self.publisher.serve(zone)
        else:
            self.publish_zone(renewed)

    def _worker_start(
        self,
    ) -> tuple[Config, list[PoolPlans], dict[Path, LoadedZone], frozenset[dns.name.Name]]:
        """What a worker starts from: the config, every pool's current plans, the versions of
        the zones whose files are behind them (reading those files would undo edits), and the
        secondary zones that answer SERVFAIL."""
        behind = self.writeback.behind()
        versions = {path: zone for path, zone in self.state.by_file.items() if path in behind}
        return self.config, self._pool_plans(), versions, self.unavailable

    def _pool_plans(self) -> list[PoolPlans]:
        return [self.health.plans_for(pool) for pool in self.config.pool]

    def _file_state(self) -> tuple[frozenset[Path], dict[Path, bytes]]:
        """What a worker rescanning the files must know of them, and cannot see (`scan_zones`'s
        `keep` and `written`): the files behind the version in memory, which it keeps, and
        the digests of those written from it, which it need not parse again. The worker's
        versions are this process's: every edit reached it before this is sent."""
        versions = {path: zone.zone for path, zone in self.state.by_file.items()}
        return self.writeback.behind(), self.writeback.digests(versions)

    def _answer_forwarded(self, data: bytes, peer: object, tcp: bool) -> object:
        """A message a worker passed on (UPDATE, NOTIFY, transfer): answered here, by the one writer."""
        assert self.engine is not None
        return self.engine.handle_tcp(data, peer) if tcp else self.engine.handle(data, peer, False)

    def _selfcheck_seen(self, qname: bytes) -> None:
        """A self-check probe arrived on a listener (here or in a worker)."""
        self.selfcheck.arrived(qname)

    def hot_stats(self) -> HotStats:
        """The hot path's counters: this process's, or the sum of the workers' reports."""
        if self.workers is not None:
            return self.workers.hot_stats()
        assert self.engine is not None
        return HotStats.read(self.engine, self.listeners)

    async def serve_forever(self) -> None:
        await self.start()
        await self._stop.wait()
        await self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        """Close listeners, let TCP replies drain, then exit (SIGTERM drains, design.md)."""
        log.info("event=stopping")
        sdnotify.stopping()
        self.publisher.stop()
        if self._resigning is not None:
            self._resigning.cancel()
        if self.listeners is not None:
            self.listeners.close()
        written_back = asyncio.get_running_loop().run_in_executor(None, self.writeback.flush, SHUTDOWN_GRACE)
        stopping_workers = asyncio.ensure_future(self.workers.stop() if self.workers else asyncio.sleep(0))
        await self.health.stop()
        await self._stop_catalog()
        await self.secondary.stop()
        await self.selfcheck.stop()
        await self.dspush.stop()
        if self.listeners is not None:
            await self.listeners.tcp.drain(SHUTDOWN_GRACE)
        await stopping_workers
        self._held.close()
        if self.http is not None:
            self.http.close()
        if self.dyndns2_http is not None:
            self.dyndns2_http.close()
        self._pages.shutdown(wait=False)
        if self.control_socket is not None:
            self.control_socket.close()
            (self.config.path(self.config.server.state_dir) / CONTROL_SOCKET).unlink(missing_ok=True)
        if not await written_back:
            files = ",".join(sorted(map(str, self.writeback.behind())))
            log.warning("event=write-back-unfinished files=%s replayed=at-next-start", files)
        self.store.close()
        self.owner.close()
        pid_file = self.config.server.pid_file
        if pid_file:
            Path(self.config.path(pid_file)).unlink(missing_ok=True)
        log.info("event=stopped")

    def explain(self, name: str, source: str = "", hint: str = "") -> dict[str, object]:
        """What a query for `name` MX would get now, and why (`dynmx explain`)."""
        try:
            owner = absolute_name(name)
        except ValueError as error:
            raise ControlError(str(error)) from None
        pool = next((p for p in self.config.pool if p.name == owner), None)
        hint_label = hint
        if pool is None:
            for candidate in self.config.pool:
                suffix = f"._hint.{candidate.name}"
                if owner.endswith(suffix):
                    pool, hint_label = candidate, owner[: -len(suffix)]
        selector = None
        if pool is not None and self.engine is not None:
            selector = self.engine.table.selectors.get((dns.name.from_text(pool.name), dns.rdatatype.MX))
        return explain_query(
            self.config,
            owner,
            pool,
            self.health.pool_status(pool.name, self._first_counts(pool.name)) if pool else None,
            self.health.plans_for(pool) if pool else None,
            selector.counter if selector is not None else 0,
            source,
            hint_label,
        )

    async def dyndns2(self, query: str, authorization: str | None, client: str) -> dyndns2.DynResult:
        """One `GET /nic/update`: decide with the protocol module, commit through the one writer."""
        settings = self.config.dyndns2
        hosts = [dyndns2.DynHost(h.hostname, h.username, h.password) for h in settings.host]

        def current(hostname: str, rdtype: int) -> list[str]:
            name = dns.name.from_text(hostname)
            zone = self.zone_of(name)  # the one the change will go to
            node = zone.zone.nodes.get(name) if zone is not None else None
            rdataset = (
                node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype)) if node else None
            )
            return [rdata.to_text() for rdata in rdataset] if rdataset is not None else []

        result = dyndns2.handle(
            query,
            authorization,
            client,
            hosts,
            current,
            self.dyndns2_state,
            time.time(),
            settings.min_interval,
        )
        for hostname, swaps in result.changes.items():  # a dual-stack host's A and AAAA in one commit
            zone = self.zone_of(dns.name.from_text(hostname))
            if zone is None:
                return dyndns2.DynResult(200, "nohost")
            try:
                updated = self.owner.commit(zone, dyndns2.to_changes(hostname, swaps, settings.ttl))
            except DynmxError as error:  # invalid, or not durable now (the owner says why)
                log.warning("event=dyndns2-refused host=%s reason=%r", hostname, str(error))
                self.dyndns2_state.forget(hostname, swaps)
                return dyndns2.DynResult(200, "911")
            await self.publish_zone(updated)
            log.info("event=dyndns2-update host=%s address=%s", hostname, ",".join(s.new for s in swaps))
        return result

    async def add_zone(self, name: str, text: str) -> dict[str, object]:
        """`dynmx zone add` through the running server: the new zone's file and the parent's
        delegation, both served (and NOTIFYed) when this returns."""
        origin = _zone_name(name)
        child, parent = add_zone(self.owner, self.zones_by_origin(), self.zones_dir, origin, text)
        self.writeback.expect(child.path, child.digest)
        log.info("event=zone-added zone=%s file=%s parent=%s", origin, child.path, parent and parent.origin)
        await asyncio.gather(self.publish_zone(child), *([self.publish_zone(parent)] if parent else []))
        if self.catalog_producer is not None:  # a new member: in the catalog when this returns
            await self.catalog_producer.sync()
        return {
            "zone": origin.to_text(),
            "file": str(child.path),
            "serial": serial_of(child.zone),
            "parent": parent.origin.to_text() if parent else None,
        }

    async def remove_zone(self, name: str) -> dict[str, object]:
        """`dynmx zone rm` through the running server: the parent's delegation goes, the zone
        stops being answered, its file is kept as `NAME.zone.removed`."""
        origin = _zone_name(name)
        zone = self.zones_by_origin().get(origin)
        if zone is None:
            raise ZoneEditRefused(f"unknown zone {origin}")
        consumer = self.catalog_consumer
        if consumer is not None and origin in consumer.members:
            raise ZoneEditRefused(
                f"{origin} is a member of catalog {consumer.origin}: remove it on its primary"
            )
        if self.secondary.is_secondary(origin):
            raise ZoneEditRefused(f"{origin} is a secondary zone: remove its primary from the config")
        self.state.by_file.pop(zone.path, None)  # no edit of it from here on (NOTAUTH)
        await asyncio.get_running_loop().run_in_executor(None, self.writeback.forget, zone.path)
        try:  # the parent as it is now: it may have been edited during the wait
            removed, parent, kept = remove_zone(self.owner, {**self.zones_by_origin(), origin: zone}, origin)
        except ZoneEditRefused:
            self.state.by_file[zone.path] = zone
            raise
        await asyncio.gather(self.unpublish_zone(removed), *([self.publish_zone(parent)] if parent else []))
        if self.catalog_producer is not None:
            await self.catalog_producer.sync()
        parent_name = parent.origin.to_text() if parent else None
        return {"zone": origin.to_text(), "kept": str(kept), "parent": parent_name}

    async def routes(self, fmt: str, since: str | None) -> tuple[str, str]:
        """The mail routing table (`dynmx routes`, GET /routes) and its cursor: Postfix transport
        lines or JSON; with `since` (a cursor), only the domains whose route changed after it.
        A snapshot is taken on the loop, the table computed in the page thread, and reused
        while nothing changed (`dynmx.app.pages`); one request at a time, so the route log's
        versions follow each other."""
        async with self._pages_lock:
            inputs = pages.RoutesInput(
                tuple(self.state.by_file.values()),
                {name: self.health.plans_for(state.config) for name, state in self.health.pools.items()},
                self.health.states(),
                {rule.name: rule.action for rule in self.config.name},
            )
            cached, log_now = self._routes_page, self.route_log
            compute = functools.partial(pages.routes_page, inputs, cached, log_now, fmt, since)
            page, body = await asyncio.get_running_loop().run_in_executor(self._pages, compute)
            self._routes_page, self.route_log = page, page.log
            return body, page.log.cursor

    def _first_counts(self, pool: str) -> dict[str, int]:
        if self.engine is None:
            return {}
        return {member: n for (name, owner, member), n in self.hot_stats().firsts.items() if owner == pool}

    async def status(self) -> dict[str, object]:
        """The JSON of GET /status; never holds secrets. The zone list (5,000 zones: 5,000
        serials read and sorted) is made in the page thread."""
        engine = self.engine
        zones = tuple(self.state.by_file.values())
        made = functools.partial(pages.zone_list, zones, self._zone_list)
        self._zone_list = listing = await asyncio.get_running_loop().run_in_executor(self._pages, made)
        return {
            "uptime_seconds": round(time.time() - self.started, 1),
            "listen": [f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in self.bound],
            "zones": listing.listing,
            "problems": [str(p) for p in self.state.problems],
            "unavailable": sorted(origin.to_text() for origin in self.unavailable),  # secondaries: SERVFAIL
            "pools": [self.health.pool_status(name, self._first_counts(name)) for name in self.health.pools],
            "entries": self.hot_stats().counters.get("entries", 0) if engine else 0,
            "selfcheck": self.selfcheck.status(),
            "ds_push": self.dspush.status(),
            **({"workers": self.workers.status()} if self.workers is not None else {}),
        }

"""The process lifecycle in uvicorn's shape (`Server.serve`): `serve` runs `startup`, then
`main_loop` until SIGTERM/SIGINT (or `request_stop`), then `shutdown`, which drains TCP
within a grace period. A start-up that fails half way runs the same `shutdown`, which stops
only what was started, so a failed start leaves no worker, listener, socket file or pid
file behind and releases `state_dir`'s lock. `run` is `asyncio.run` without the wait for
the executor's threads (see there).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import dns.name

from dynmx.app import heap, loading, reload, zonedir
from dynmx.app.catalog import ensure_catalog_file
from dynmx.app.dnssec_metrics import DnssecSampler
from dynmx.app.listeners import Listeners, bind_all, make_engine
from dynmx.app.resign import resign_daily
from dynmx.app.services import start_services
from dynmx.app.turns import commit_in_turn
from dynmx.app.workers.handover import handed_over
from dynmx.app.workers.pool import WorkerPool
from dynmx.config import Config, parse_hostport, readable_secrets
from dynmx.errors import DynmxError
from dynmx.policy.served import PoolPlans
from dynmx.server import sdnotify
from dynmx.zone.loader import LoadedZone

if TYPE_CHECKING:
    from dynmx.app.root import App

log = logging.getLogger("dynmx.app")

SHUTDOWN_GRACE = 4.0  # seconds for in-flight TCP replies; the whole stop stays under 5 s
SCAN_WAIT = 600.0  # seconds a stop waits for a reload's scan (its parse processes) to end


def run(app: App) -> None:
    """`serve` on a new event loop (uvloop's, once installed), then the loop closed without
    waiting for its executor's threads, which `asyncio.run` would join: what may still run
    there after `shutdown` is a slice of the fill, a reload's scan, an edit's compile (memory
    only) or a write of the answer store (one SQLite transaction: abandoned, it leaves the
    rows of the last write, as a crash does), and among 100,000 zones the last takes many
    seconds. Zone files and the journal are written and closed by `shutdown` before this
    returns; the caller then ends the process without joining those threads either. Only
    a reload's scan is waited for (`reload.scans_ended`): it may be parsing in child
    processes, which must not outlive the server."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(app))
    finally:
        try:
            _cancel_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()  # the default executor is shut down without waiting
            if not reload.scans_ended(SCAN_WAIT):
                log.warning("event=stop-left-scan seconds=%.0f", SCAN_WAIT)


def _cancel_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left (a reload waiting for its scan, a notify) and let it unwind, as
    `asyncio.run` does; a task awaiting a thread ends at once, the thread is left."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("event=task-failed-at-stop error=%r", str(task.exception()))


async def serve(app: App) -> None:
    """Start, serve until told to stop, stop; a failed start stops what it started, then raises."""
    try:
        await startup(app)
    except BaseException:
        try:
            await shutdown(app)
        except Exception:  # the start's own error is the one the operator must see
            log.exception("event=stop-after-failed-start-failed")
        raise
    await main_loop(app)
    await shutdown(app)


async def main_loop(app: App) -> None:
    """Serve until SIGTERM, SIGINT or `request_stop`: the work happens in tasks and threads."""
    await app.should_exit.wait()


async def startup(app: App) -> None:
    """Load the zones, answer from them, start the services and open every listener; then
    tell the supervisor the server is ready."""
    cfg = app.config.server
    started = time.monotonic()
    for path, mode in readable_secrets(app.config):  # TSIG secrets, passwords, tokens
        log.warning("event=config-readable-secrets file=%s mode=%04o", path, mode)
    sdnotify.notify("STATUS=loading zones")
    ensure_catalog_file(app.config, app.zones_dir)
    began, edits = time.time(), app.state.edits  # what the first reload may skip a scan by
    with heap.loading():
        loaded = loading.load(app, reconcile=True)
    zones, problems, table = loaded.zones, loaded.problems, loaded.table
    loading.expect_files(app, zones, {})
    app.publisher.first(make_engine(app.config, table))
    assert app.engine is not None
    app.engine.on_selfcheck = functools.partial(selfcheck_seen, app)
    loading.after_load(app, zones, problems, time.monotonic() - started)
    app.metrics.attach(
        app.hot_stats,
        lambda: app.engine is not None,
        app.listening.all,
        app.dyndns2.logins,
    )
    app.metrics.attach_dnssec(DnssecSampler(lambda: app.config))
    app.health.start(table.zoneset)
    start_services(app)
    loop = asyncio.get_running_loop()
    if cfg.workers:
        app.workers = WorkerPool(
            cfg.workers,
            functools.partial(answer_forwarded, app),
            functools.partial(selfcheck_seen, app),
            functools.partial(worker_start, app),
        )
        app.publisher.workers = app.workers
        app.bound = app.workers.bind(app.config)
        handover = app.held.enter_context(handed_over(app.config.path(cfg.state_dir), zones))
        try:
            await app.workers.start(handover)
        except BaseException:
            app.held.close()
            raise
    else:
        app.listeners = Listeners.for_engine(app.config, app.engine)
        sockets = bind_all(app.config, 1)[0]
        await app.listeners.serve(app.engine.handle, sockets)
        app.bound = [(pair.host, pair.port) for pair in sockets]
    for host, port in app.bound:
        log.info("event=listening proto=udp+tcp address=%s port=%d workers=%d", host, port, cfg.workers)
    app.selfcheck.start()
    app.dspush.start()
    if app.config.http.listen:
        app.listening.open_http(*parse_hostport(app.config.http.listen, 9153))
    await app.listening.apply_dyndns2(starting=True)
    app.listening.open_control_socket(loop)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, app.should_exit.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(app.reload()))
    if cfg.pid_file:
        app.pid_path = Path(app.config.path(cfg.pid_file))
        app.pid_path.write_text(f"{os.getpid()}\n")
    await app.catalog.ready()
    log.info(
        "event=serving zones=%d entries=%d pending=%d",
        len(zones),
        len(app.engine.table.entries),
        len(app.engine.table.pending),
    )
    sdnotify.ready(f"serving {len(zones)} zones")
    app.publisher.keep_filling()
    app.publisher.save_answers()
    glanced = loop.run_in_executor(None, zonedir.glance, app.zones_dir)
    glanced.add_done_callback(lambda done: _remember_scan(app, done, began, edits))
    app.resigning = loop.create_task(
        resign_daily(functools.partial(_dnssec_zones, app), functools.partial(_resign, app))
    )


async def shutdown(app: App) -> None:
    """Close listeners, let TCP replies drain, then exit (SIGTERM drains, design.md)."""
    log.info("event=stopping")
    sdnotify.stopping()
    app.publisher.stop()
    if app.resigning is not None:
        app.resigning.cancel()
    if app.listeners is not None:
        app.listeners.close()
    written_back = asyncio.get_running_loop().run_in_executor(None, app.writeback.flush, SHUTDOWN_GRACE)
    stopping_workers = asyncio.ensure_future(app.workers.stop() if app.workers else asyncio.sleep(0))
    await app.health.stop()
    await app.catalog.stop()
    for name in ("secondary", "selfcheck", "dspush"):
        service = getattr(app, name, None)  # absent when start-up failed before the services
        if service is not None:
            await service.stop()
    if app.listeners is not None:
        await app.listeners.tcp.drain(SHUTDOWN_GRACE)
    await stopping_workers
    app.held.close()
    app.listening.close()
    app.pages.close()
    if not await written_back:
        files = ",".join(sorted(map(str, app.writeback.behind())))
        log.warning("event=write-back-unfinished files=%s replayed=at-next-start", files)
    app.store.close()
    app.owner.close()
    if app.pid_path is not None:  # only the file this process wrote
        app.pid_path.unlink(missing_ok=True)
    log.info("event=stopped")


def _remember_scan(
    app: App, glanced: asyncio.Future[zonedir.Glance | None], began: float, edits: int
) -> None:
    """The zone directory as the start-up found it, glanced once serving: a reload with no
    file changed since is spared its scan (files changed after `began` are not trusted)."""
    if not glanced.cancelled() and glanced.exception() is None:
        reload.remember_scan(app, glanced.result(), began, edits)


def _dnssec_zones(app: App) -> list[LoadedZone]:
    """The served zones configured `dnssec = true`."""
    wanted = {dns.name.from_text(z.name) for z in app.config.zone if z.dnssec}
    return [zone for zone in app.state.by_file.values() if zone.origin in wanted]


async def _resign(app: App, zone: LoadedZone) -> None:
    """Compile `zone` again (here and in every worker), signed in the current window, under
    a new serial committed like an edit with no change (journal, serial policy, write-back,
    NOTIFY): a secondary transfers the renewed signatures only when the serial moves, as
    Knot and BIND bump it when they re-sign. When the owner refuses the commit now (the file
    cannot be written), the zone is still re-signed under its old serial. The commit takes
    the zone's turn, as every edit does."""
    origin = zone.origin
    try:
        await commit_in_turn(
            app.owner, origin, lambda: app.zones_by_origin().get(origin), lambda _: [], app.publish_zone
        )
    except DynmxError as error:
        log.warning("event=dnssec-resign-serial-kept zone=%s reason=%r", origin, str(error))
        app.publisher.serve(app.zones_by_origin().get(origin, zone))


def worker_start(
    app: App,
) -> tuple[Config, list[PoolPlans], dict[Path, LoadedZone], frozenset[dns.name.Name]]:
    """What a worker starts from: the config, every pool's current plans, the versions of
    the zones whose files are behind them (reading those files would undo edits), and the
    secondary zones that answer SERVFAIL."""
    behind = app.writeback.behind()
    versions = {path: zone for path, zone in app.state.by_file.items() if path in behind}
    return app.config, app.pool_plans(), versions, app.unavailable


def answer_forwarded(app: App, data: bytes, peer: object, tcp: bool) -> object:
    """A message a worker passed on (UPDATE, NOTIFY, transfer): answered here, by the one writer."""
    assert app.engine is not None
    return app.engine.handle_tcp(data, peer) if tcp else app.engine.handle(data, peer, False)


def selfcheck_seen(app: App, qname: bytes) -> None:
    """A self-check probe arrived on a listener (here or in a worker)."""
    app.selfcheck.arrived(qname)

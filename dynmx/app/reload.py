"""Reload (SIGHUP, POST /reload, `dynmx reload`): the config read again, the zone directory
rescanned, the table rebuilt from what changed and swapped in, under the publisher's lock.

A config that does not load is refused and the running one stays, as a zone that does not
load keeps its served version. An edit committed while the files were read wins over what
the file held (the version in memory is the newer one).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING

from dynmx.app import loading, zonedir
from dynmx.app.answerconfig import answers_alike
from dynmx.app.health_monitor import HealthMonitor
from dynmx.app.loading import after_load, expect_files
from dynmx.app.services import notify_secondaries, start_services
from dynmx.app.zonescan import soa_serial
from dynmx.errors import ConfigError, JournalFork, Problem, StaleBase
from dynmx.policy.signing_check import config_problems
from dynmx.server import sdnotify

if TYPE_CHECKING:
    from dynmx.answer.compiler import AnswerTable
    from dynmx.app.root import App

log = logging.getLogger("dynmx.app")

# The reload scans running in a thread, each until it ends, even when its reload was cancelled
# by a stop: a scan of many changed files parses in child processes, which the process must
# not leave behind (`lifecycle.run` waits for these, and for no other thread).
_scans: set[threading.Event] = set()
# Per server: the zone directory as the last scan saw it (`zonedir`), which a reload that
# finds it unchanged is spared its scan by.
_scanned: weakref.WeakKeyDictionary[App, zonedir.Scanned] = weakref.WeakKeyDictionary()


def scans_ended(timeout: float) -> bool:
    """Wait up to `timeout` seconds for the reload scans under way; whether they all ended."""
    deadline = time.monotonic() + timeout
    return all(ended.wait(max(0.0, deadline - time.monotonic())) for ended in list(_scans))


def _scan(app: App, previous: AnswerTable | None) -> loading.Loaded:
    """`loading.load` for a reload (in an executor thread), known to `scans_ended` while it runs."""
    ended = threading.Event()
    _scans.add(ended)
    try:
        return loading.load(app, previous=previous)
    finally:
        _scans.discard(ended)
        ended.set()


async def reload(app: App, reread_config: bool = True) -> list[Problem]:
    """Re-read the zone directory; compile off the loop; swap in one assignment. It ends
    when every worker answers from it too (waited for outside the lock, so edits go on).
    A supervisor is told of the reload and that it ended, however it ended."""
    sdnotify.reloading()
    try:
        async with app.publisher.lock:
            problems, sent = await _reload(app, reread_config)
        if sent is not None and app.workers is not None:
            await app.workers.applied(sent)
        return problems
    finally:
        sdnotify.ready(f"serving {len(app.state.by_file)} zones")


async def _reload(app: App, reread_config: bool = True) -> tuple[list[Problem], int | None]:
    """The reload itself, under the reload lock: its problems, and the change sent to the
    workers (if any). Every zone whose serial it changes is journaled and NOTIFYed."""
    started = time.monotonic()
    config = app.config
    config_problem = await reconfigure(app) if reread_config else None
    loop = asyncio.get_running_loop()
    mark = app.state.edits
    before = app.state.by_file
    assert app.engine is not None
    previous = app.engine.table if answers_alike(config, app.config) else None
    began = time.time()
    settings = app.config.server.max_zone_file_size
    seen = await loop.run_in_executor(None, zonedir.glance, app.zones_dir)
    if (
        previous is not None
        and not app.state.problems
        and zonedir.unchanged_since(_scanned.get(app), seen, mark, settings)
    ):
        return _nothing_changed(app, config_problem, reread_config, started)
    loaded = await loop.run_in_executor(None, functools.partial(_scan, app, previous))
    zones, problems, table = loaded.zones, loaded.problems, loaded.table
    # Committed while the files were read: the version in memory is the newer one (a hand
    # edit of its file is kept beside it when the edit is written: `WriteBack`).
    newer = [path for path, edit in app.state.edited.items() if edit > mark and path in zones]
    redo = list(newer)
    for path, changes in loaded.accepted.items():
        if path in newer:
            continue
        try:
            app.owner.record(before[path], zones[path], changes)
        except (StaleBase, JournalFork) as error:
            problems.append(Problem(str(path), 0, f"not taken: {error}"))
            redo.append(path)
    arrived = {  # a kept version (the very object) arrived before: its names are not compared
        p: z
        for p, z in zones.items()
        if (old := before.get(p)) is not z and (old is None or old.origin != z.origin)
    }
    if arrived:  # a journal left from an earlier zone of that name must not be replayed blindly
        fixed, found = app.owner.reconcile(arrived)
        problems += found
        for path, zone in fixed.items():
            if zone is not zones[path]:
                zones[path] = zone
                redo.append(path)
    if redo:
        for path in redo:
            if path in newer or path in loaded.accepted:
                zones[path] = app.state.by_file[path]
        table = app.publisher.compile(zones, table, [zones[path].origin for path in redo])
    fresh = {path: zone for path, zone in zones.items() if before.get(path) is not zone}
    expect_files(app, fresh, before)
    app.publisher.swap(table)
    sent = _follow(app, table, config_problem, reread_config)
    after_load(app, zones, problems, time.monotonic() - started)
    for path, zone in fresh.items():
        old = before.get(path)
        if path not in newer and (old is None or soa_serial(old) != soa_serial(zone)):
            notify_secondaries(app, zone)
    if seen is not None and not problems:  # what the next reload compares the directory with
        _scanned[app] = zonedir.Scanned(seen, began, mark, settings)
    else:
        _scanned.pop(app, None)
    log.info(
        "event=reloaded zones=%d changed=%d incremental=%s table=%s scan=%s seconds=%.3f",
        len(zones),
        len(fresh),
        "yes" if previous is not None else "no",
        "kept" if table is previous else "new",
        "full",
        time.monotonic() - started,
    )
    if app.catalog.producer is not None:  # zones may have come or gone with their files
        app.catalog.producer.request()
    return (problems if config_problem is None else [config_problem, *problems]), sent


def _follow(app: App, table: AnswerTable, config_problem: Problem | None, reread_config: bool) -> int | None:
    """What follows the table a reload serves: the workers told (the change sent to them),
    the prober and the services started anew under a config read again."""
    sent = None
    if app.workers is not None:
        sent = app.workers.broadcast("reload", app.config, app.pool_plans(), *app.file_state())
    if config_problem is None and app.config_loader is not None and reread_config:
        app.health.start(table.zoneset)
        start_services(app)
    app.health.reapply()  # verdicts that came in while the table compiled
    return sent


def _nothing_changed(
    app: App, config_problem: Problem | None, reread_config: bool, started: float
) -> tuple[list[Problem], int | None]:
    """No zone file changed since the last scan (`zonedir`) and no edit since: the served
    versions and table stay as they are, unread and unvisited; the config read again
    still takes effect."""
    assert app.engine is not None
    sent = _follow(app, app.engine.table, config_problem, reread_config)
    seconds = time.monotonic() - started
    app.metrics.observe_load(len(app.state.by_file), 0, seconds)
    log.info(
        "event=reloaded zones=%d changed=0 incremental=yes table=kept scan=skipped seconds=%.3f",
        len(app.state.by_file),
        seconds,
    )
    if app.catalog.producer is not None:  # as after any reload: the config may have moved it
        app.catalog.producer.request()
    return ([] if config_problem is None else [config_problem]), sent


def remember_scan(app: App, seen: zonedir.Glance | None, began: float, edits: int) -> None:
    """A scan made elsewhere (the start-up's), for the next reload to compare the directory
    with; `seen` may be taken after it, since only files older than `began` are trusted."""
    if seen is not None and not app.state.problems:
        _scanned[app] = zonedir.Scanned(seen, began, edits, app.config.server.max_zone_file_size)


async def reconfigure(app: App) -> Problem | None:
    """Re-read the config file (reload): pools, probes, keys, zone settings change in place.

    A config that does not load is refused and the running one stays, as with zones.
    The keys the schema marks `restart` (sockets, the answer engine's settings, rate
    limiting, logging: `dynmx.config.reload_decisions`) keep their running values, and the
    log names those that changed; every other key takes effect, the control listener
    (`[http] listen`) and the dyndns2 endpoint (`[dyndns2] enabled`) included.
    """
    from dynmx.config import keep_running, restart_keys

    if app.config_loader is None:
        return None
    try:
        new = app.config_loader()
    except (ConfigError, ValueError) as error:
        log.error("event=config-refused error=%r", str(error))
        return Problem("config", 0, str(error))
    unsignable = config_problems(new, app.state.by_file.values())  # dnssec = true it cannot honour
    if unsignable:
        log.error("event=config-refused error=%r", str(unsignable[0]))
        return unsignable[0]
    old = app.config
    new = app.catalog.with_pools(new)  # a consumer keeps serving the catalog's pools
    changed = restart_keys(old, new)
    if changed:
        log.warning("event=config-restart-needed keys=%s", ",".join(changed))
        new = keep_running(old, new)
    await app.health.stop()
    await app.catalog.stop()
    await app.secondary.stop()
    await app.selfcheck.stop()
    await app.dspush.stop()
    previous = app.health
    app.config = new
    app.zones_dir = new.path(new.server.zones_dir)
    app.owner.reconfigure(new)
    app.publisher.apply_gate()
    app.health = HealthMonitor(new, app.store, app.apply_plans, app.metrics)
    app.health.adopt(previous)
    await app.listening.apply(old.http.listen)
    if new.dyndns2.enabled != old.dyndns2.enabled:
        log.info("event=dyndns2-%s", "enabled" if new.dyndns2.enabled else "disabled")
    log.info(
        "event=config-reloaded pools=%d zones=%d keys=%d http=%s dyndns2=%s",
        len(new.pool),
        len(new.zone),
        len(new.key),
        app.config.http.listen or "off",
        "on" if new.dyndns2.enabled else "off",
    )
    return None

"""Reading the zone directory into a table: at start-up (with the answer store and the journal)
and at each reload (only what changed), and recording what was read as served.

A served zone whose file changed is judged before it is served (`control.owner.judge`):
refused, it keeps its version; accepted, its changes are journaled by the reload.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dns.name

from dynmx.answer.compiler import AnswerTable
from dynmx.app.publisher import worth_staging
from dynmx.app.zonescan import changed_origins, scan_zones, soa_serial
from dynmx.control.owner import judge
from dynmx.control.update import Change
from dynmx.errors import Problem
from dynmx.policy.signing_check import refuse_unsignable
from dynmx.zone.batch import available_cpus
from dynmx.zone.loader import LoadedZone

if TYPE_CHECKING:
    from dynmx.app.root import App

log = logging.getLogger("dynmx.app")

# Above this many new zone versions in one load, each zone's line is DEBUG and one summary
# line is INFO: a hosting start-up of 100,000 zones is not 100,000 lines to read (NSD logs
# none per zone; BIND and Knot one each).
ZONE_LINES = 1000


@dataclass
class Loaded:
    """What a scan of the zone directory gives: the zones, the problems, their table, and the
    changes of the served zones whose files were edited by hand (to journal)."""

    zones: dict[Path, LoadedZone]
    problems: list[Problem]
    table: AnswerTable
    accepted: dict[Path, list[Change]]


def load(
    app: App,
    reconcile: bool = False,
    previous: AnswerTable | None = None,
) -> Loaded:
    """Scan and compile; with `previous` (a reload under the same config) only the zones
    whose files changed, and those whose answers use them, are compiled again. An edit's
    zone stays as it is in memory while its file is behind it, or holds what was written
    from it. A served zone whose file changed is judged first (`owner.judge`): refused,
    it keeps its version; accepted, its changes come back to be journaled on the loop.
    Compiling everything (at start-up, or under a changed config) gives a staged table
    from many zones or names on, and a large changed zone is staged: the publisher
    compiles them behind (`TablePublisher.keep_filling`)."""
    before = app.state.by_file
    behind = app.writeback.behind()
    written = app.writeback.digests({path: zone.zone for path, zone in before.items()})
    limit = app.config.server.max_zone_file_size
    # At start-up, the zones whose answers the store holds: kept by the scan unread.
    warm = app.answers.warm_zones(app.config, app.journal) if reconcile and app.answers_here else {}
    zones, problems = scan_zones(
        app.zones_dir, warm or before, available_cpus(), behind, written, limit, serving=not reconcile
    )
    kept: dict[Path, LoadedZone] = {}
    if reconcile:  # at start-up, on the loop's thread (the journal's connection lives there)
        kept = app.answers.kept(zones)  # the journal agreed with their serials: nothing to replay
        fixed, found = app.owner.reconcile({p: z for p, z in zones.items() if p not in kept})
        zones = {p: kept[p] if p in kept else fixed[p] for p in zones}
        for zone in kept.values():
            app.journal.mark_flushed(origin_text(zone.origin), soa_serial(zone))
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
    problems += refuse_unsignable(app.config, zones, before)  # dnssec = true it cannot honour
    changed = changed_origins(before, zones)
    if previous is not None and not changed and zones.keys() == before.keys():
        return Loaded(zones, problems, previous, accepted)  # the same zones, config: the same table
    if previous is None:
        table = app.publisher.warm_table(zones, kept) if warm else None
        if table is None:
            table = app.publisher.compile(zones, None, [], staged=worth_staging(zones))
    else:
        table = app.publisher.compile(zones, previous, changed)
    return Loaded(zones, problems, table, accepted)


# Bytes a name's text shows as they are (`dns.name.Name.to_text` escapes every other one).
_PLAIN = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def origin_text(name: dns.name.Name) -> str:
    """`name.to_text()`, a tenth of its time for the common name of letters, digits, hyphens
    and underscores (a start names every one of 100,000 zones twice)."""
    labels = name.labels
    if len(labels) > 1 and not labels[-1] and not b"".join(labels).translate(None, _PLAIN):
        return b".".join(labels).decode("ascii")
    return name.to_text()


def expect_files(app: App, zones: dict[Path, LoadedZone], before: dict[Path, LoadedZone]) -> None:
    """Tell the write-back what each file newly read holds, so it knows a hand edit later."""
    for path, zone in zones.items():
        if zone.digest and before.get(path) is not zone:
            app.writeback.expect(path, zone.digest)


def after_load(app: App, zones: dict[Path, LoadedZone], problems: list[Problem], seconds: float) -> None:
    """Serials and log lines for the zone versions that are new; an unchanged one costs
    nothing, so a reload of many unchanged zones does not name each of them."""
    previous = app.state.by_file
    app.state.by_file = zones
    app.state.problems = problems
    for problem in problems:
        log.error("event=zone-refused problem=%r", str(problem))
    arrived = [zone for path, zone in zones.items() if previous.get(path) is not zone]
    left = [zone for path, zone in previous.items() if zones.get(path) is not zone]
    names = set()
    loaded = 0
    per_zone = logging.INFO if len(arrived) <= ZONE_LINES else logging.DEBUG
    for zone in arrived:
        serial = soa_serial(zone)
        name = origin_text(zone.origin)
        names.add(name)
        if app.state.serial_of.get(name) != serial:
            loaded += 1
            log.log(per_zone, "event=zone-loaded zone=%s serial=%d file=%s", name, serial, zone.path)
        app.state.serial_of[name] = serial
    if per_zone == logging.DEBUG:
        log.info("event=zones-loaded zones=%d seconds=%.2f", loaded, seconds)
    for gone in {zone.origin.to_text() for zone in left} - names:
        log.info("event=zone-removed zone=%s", gone)
        app.state.serial_of.pop(gone, None)
    app.metrics.observe_load(len(zones), len(problems), seconds)

"""The services that follow the config, started at start-up and anew after each reload that
reads it: RFC 2136 UPDATE, transfers out, secondary zones, the catalog, self-check, DS push,
the CH TXT status. Each one hands its changes to the publisher as an edit would.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING

from dynmx.app.dspush import DsPushService
from dynmx.app.secondary import SecondaryService
from dynmx.app.selfcheck_service import SelfCheckService
from dynmx.app.transfer_service import TransferService
from dynmx.app.update_service import UpdateService, key_secrets
from dynmx.app.zonestatus import send_notify
from dynmx.control.tsig import Signer
from dynmx.control.update import Change
from dynmx.errors import JournalFork, StaleBase
from dynmx.selfcheck.samples import selfcheck_samples
from dynmx.zone.loader import LoadedZone

if TYPE_CHECKING:
    from dynmx.app.root import App

log = logging.getLogger("dynmx.app")


def notify_secondaries(app: App, zone: LoadedZone) -> None:
    """RFC 1996: once the new serial is served, so a secondary's SOA query sees it."""
    targets = app.config.zone_settings(zone.origin.to_text()).notify
    for target in targets:
        task = asyncio.get_running_loop().create_task(send_notify(app.peers, zone, target))
        app.background.add(task)
        task.add_done_callback(app.background.discard)


def record_transfer(app: App, before: LoadedZone, after: LoadedZone, changes: list[Change]) -> None:
    """Journal what a transfer in changed, so our own secondaries can follow by IXFR. A
    journal that does not lead to the copy we held is set aside: they get an AXFR."""
    try:
        app.owner.record(before, after, changes)
    except (StaleBase, JournalFork) as error:
        name = before.origin.to_text()
        moved = app.journal.quarantine(name, str(error))
        log.warning("event=journal-unlinked zone=%s quarantined=%d reason=%r", name, moved, str(error))


def start_services(app: App) -> None:
    """The parts that follow the config: edits, transfers, secondary zones, CH TXT status."""
    assert app.engine is not None
    app.engine.chaos_status = app.health.status_text if app.config.server.chaos_status else None
    app.updates = UpdateService(app.config, app.owner, app.zones_by_origin, app.publish_zone)
    app.engine.control = app.updates.handle
    app.engine.tsig = Signer(app.updates.keyring)  # keys changed by a reload sign answers too
    app.transfers = TransferService(app.config, app.journal, app.zones_by_origin)
    app.engine.transfer = app.transfers.handle
    app.transfers.on_transfer = app.peers.served
    app.secondary = SecondaryService(
        app.config,
        app.zones_dir,
        app.zones_by_origin,
        app.publish_zone,
        app.writeback.submit,
        app.publisher.set_unavailable,
        functools.partial(record_transfer, app),
    )
    app.updates.secondaries = app.secondary.notified
    app.updates.is_secondary = app.secondary.is_secondary
    app.secondary.start()
    app.catalog.start()
    app.selfcheck = SelfCheckService(
        app.config,
        key_secrets(app.config),
        app.config.path(app.config.server.state_dir) / "selfcheck.sqlite",
        app.zones_by_origin,
        app.owner,
        app.publish_zone,
        lambda report, pushes: app.metrics.observe_selfcheck(selfcheck_samples(report, pushes)),
    )
    if app.bound:  # at start-up, rounds begin once the listeners are there to see the probes
        app.selfcheck.start()
    state_dir = app.config.path(app.config.server.state_dir)
    app.dspush = DsPushService(
        app.config,
        key_secrets(app.config),
        state_dir / "dspush.sqlite",
        observe=app.metrics.observe_ds_pushes,
    )
    if app.bound:  # at start-up, once the zones are signed and served (the first key is made)
        app.dspush.start()

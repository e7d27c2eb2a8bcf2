"""`dynmx zone add` and `dynmx zone rm` through the running server: the zone and its parent's
delegation change together (`control.zones`), and both are served, NOTIFYed and in the
catalog when the call returns. The parent's edit takes the parent's turn (`ZoneOwner.turn`),
as an UPDATE of it does, so the two never plan on the same version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import dns.name

from dynmx.config import absolute_name
from dynmx.control.zones import ZoneEditRefused, parent_of
from dynmx.control.zones import add_zone as add_zone_files
from dynmx.control.zones import remove_zone as remove_zone_files
from dynmx.zone.soa import serial_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from dynmx.app.root import App

log = logging.getLogger("dynmx.app")


def _zone_name(text: str) -> dns.name.Name:
    try:
        return dns.name.from_text(absolute_name(text))
    except ValueError as error:
        raise ZoneEditRefused(str(error)) from None


@contextlib.asynccontextmanager
async def _turns(app: App, origins: list[dns.name.Name]) -> AsyncIterator[None]:
    """The turns of `origins` and of the parent zone each has, taken in one order (names
    sorted, so two callers cannot wait for each other)."""
    zones = app.zones_by_origin()
    names = set(origins)
    for origin in origins:
        parent = parent_of(zones, origin)
        if parent is not None:
            names.add(parent.origin)
    async with contextlib.AsyncExitStack() as stack:
        for name in sorted(names):
            await stack.enter_async_context(app.owner.turn(name))
        yield


async def add_zone(app: App, name: str, text: str) -> dict[str, object]:
    """`dynmx zone add` through the running server: the new zone's file and the parent's
    delegation, both served (and NOTIFYed) when this returns."""
    origin = _zone_name(name)
    async with _turns(app, [origin]):
        child, parent = add_zone_files(app.owner, app.zones_by_origin(), app.zones_dir, origin, text)
        app.writeback.expect(child.path, child.digest)
        log.info("event=zone-added zone=%s file=%s parent=%s", origin, child.path, parent and parent.origin)
        served = [app.publish_zone(child), *([app.publish_zone(parent)] if parent else [])]
    await asyncio.gather(*served)
    if app.catalog.producer is not None:  # a new member: in the catalog when this returns
        await app.catalog.producer.sync()
    return {
        "zone": origin.to_text(),
        "file": str(child.path),
        "serial": serial_of(child.zone),
        "parent": parent.origin.to_text() if parent else None,
    }


async def remove_zone(app: App, name: str) -> dict[str, object]:
    """`dynmx zone rm` through the running server: the parent's delegation goes, the zone
    stops being answered, its file is kept as `NAME.zone.removed`."""
    origin = _zone_name(name)
    if app.zones_by_origin().get(origin) is None:
        raise ZoneEditRefused(f"unknown zone {origin}")
    consumer = app.catalog.consumer
    if consumer is not None and origin in consumer.members:
        raise ZoneEditRefused(f"{origin} is a member of catalog {consumer.origin}: remove it on its primary")
    if app.secondary.is_secondary(origin):
        raise ZoneEditRefused(f"{origin} is a secondary zone: remove its primary from the config")
    async with _turns(app, [origin]):  # an UPDATE of the zone or its parent under way ends first
        zone = app.zones_by_origin().get(origin)  # as that UPDATE left it
        if zone is None:
            raise ZoneEditRefused(f"unknown zone {origin}")
        app.state.by_file.pop(zone.path, None)  # no edit of it from here on (NOTAUTH)
        await asyncio.get_running_loop().run_in_executor(None, app.writeback.forget, zone.path)
        try:  # the parent as it is now
            zones = {**app.zones_by_origin(), origin: zone}
            removed, parent, kept = remove_zone_files(app.owner, zones, origin)
        except ZoneEditRefused:
            app.state.by_file[zone.path] = zone
            raise
        served = [app.unpublish_zone(removed), *([app.publish_zone(parent)] if parent else [])]
    await asyncio.gather(*served)
    if app.catalog.producer is not None:
        await app.catalog.producer.sync()
    parent_name = parent.origin.to_text() if parent else None
    return {"zone": origin.to_text(), "kept": str(kept), "parent": parent_name}

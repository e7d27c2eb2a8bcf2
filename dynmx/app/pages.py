"""The heavy control pages (/routes, the zone list of /status), computed off the event loop.

The app takes a snapshot on the loop (the zone versions served, the pools' plans and
member states, the name actions: references and small dicts, nothing walked), and these
functions run in its one page thread. A routing table (and /status's zone list) is kept
with the snapshot it came from: while nothing changed (the same zone objects, equal
plans, states and actions), the next request reuses it instead of walking every zone
again, so clients looping on /routes cost a comparison each, not a walk of 5,000 zones.
Zone versions are never changed in place (an edit makes a new one), so reading them from
a thread is safe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from dynmx.app.zonescan import soa_serial, zone_data
from dynmx.policy.route_log import RouteLog, delta_json, delta_postfix, postfix_header
from dynmx.policy.routes import Route, routing_table, to_json, to_postfix
from dynmx.policy.served import PoolPlans
from dynmx.zone.loader import LoadedZone


@dataclass(frozen=True, slots=True)
class RoutesInput:
    """What a routing table is computed from, taken on the loop."""

    zones: tuple[LoadedZone, ...]
    plans: Mapping[str, PoolPlans]
    states: Mapping[str, Mapping[str, str]]
    actions: Mapping[str, str]  # name action by domain

    def same(self, other: RoutesInput) -> bool:
        return (
            _same(self.zones, other.zones)
            and self.actions == other.actions
            and self.states == other.states
            and self.plans == other.plans
        )


@dataclass(frozen=True, slots=True)
class RoutesPage:
    """A routing table with the snapshot it came from, the route log that recorded it, and
    the full pages made from it so far (by format)."""

    inputs: RoutesInput
    table: tuple[Route, ...]
    log: RouteLog
    full: dict[str, str] = field(default_factory=dict)


def routes_page(
    inputs: RoutesInput, cached: RoutesPage | None, log: RouteLog, fmt: str, since: str | None
) -> tuple[RoutesPage, str]:
    """The page for `fmt` (and `since`), and what to keep for the next request."""
    if cached is None or cached.log is not log or not cached.inputs.same(inputs):
        computed = tuple(_table(inputs))
        cached = RoutesPage(inputs, computed, log.record(computed))
    log = cached.log
    if since is not None:
        delta = log.since(since)
        return cached, (delta_json(delta) if fmt == "json" else delta_postfix(delta))
    body = cached.full.get(fmt)
    if body is None:
        routes = list(cached.table)
        body = to_json(routes) if fmt == "json" else postfix_header(log.cursor, True) + to_postfix(routes)
        cached.full[fmt] = body  # only this thread writes it
    return cached, body


def _table(inputs: RoutesInput) -> list[Route]:
    table = routing_table(zone_data({zone.path: zone for zone in inputs.zones}), inputs.plans, inputs.states)
    actions = inputs.actions
    return [  # name actions are served over the zone data: the table shows what is served
        dataclasses.replace(route, hops=()) if actions.get(route.domain) == "null-mx" else route
        for route in table
        if actions.get(route.domain) not in ("nxdomain", "refuse")
    ]


@dataclass(frozen=True, slots=True)
class ZoneList:
    """The `zones` of GET /status with the zone versions it was made from."""

    zones: tuple[LoadedZone, ...]
    listing: list[dict[str, object]]


def zone_list(zones: tuple[LoadedZone, ...], cached: ZoneList | None) -> ZoneList:
    """Name, serial and file of each zone, by name; `cached` again while the versions are the same."""
    if cached is not None and _same(cached.zones, zones):
        return cached
    listing: list[dict[str, object]] = [
        {"name": z.origin.to_text(), "serial": soa_serial(z), "file": str(z.path)}
        for z in sorted(zones, key=lambda z: z.origin.to_text())
    ]
    return ZoneList(zones, listing)


def _same(these: tuple[LoadedZone, ...], those: tuple[LoadedZone, ...]) -> bool:
    """The very same zone versions, in the same order (identity: no zone compared)."""
    return len(these) == len(those) and all(a is b for a, b in zip(these, those, strict=True))

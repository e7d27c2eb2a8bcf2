"""The pages an operator reads from the running server: GET /status (`dynmx status`) and the
mail routing table (GET /routes, `dynmx routes`). Their large parts are made in one page
thread, off the event loop, from a snapshot taken on it (`dynmx.app.pages`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from dynmx.app import pages
from dynmx.app.explain import first_counts
from dynmx.policy.route_log import RouteLog

if TYPE_CHECKING:
    from dynmx.app.root import App


class StatusPages:
    """The page thread, one request at a time, and the pages kept while nothing changed."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._pages = ThreadPoolExecutor(1, "dynmx-pages")  # /routes, /status: off the event loop
        self._lock = asyncio.Lock()
        self._routes_page: pages.RoutesPage | None = None
        self._zone_list: pages.ZoneList | None = None
        self.route_log = RouteLog(os.urandom(6).hex())  # `routes --since`; a new boot id each start

    def close(self) -> None:
        self._pages.shutdown(wait=False)

    async def routes(self, fmt: str, since: str | None) -> tuple[str, str]:
        """The mail routing table (`dynmx routes`, GET /routes) and its cursor: Postfix transport
        lines or JSON; with `since` (a cursor), only the domains whose route changed after it.
        A snapshot is taken on the loop, the table computed in the page thread, and reused
        while nothing changed (`dynmx.app.pages`); one request at a time, so the route log's
        versions follow each other."""
        async with self._lock:
            inputs = pages.RoutesInput(
                tuple(self.app.state.by_file.values()),
                {
                    name: self.app.health.plans_for(state.config)
                    for name, state in self.app.health.pools.items()
                },
                self.app.health.states(),
                {rule.name: rule.action for rule in self.app.config.name},
            )
            cached, log_now = self._routes_page, self.route_log
            compute = functools.partial(pages.routes_page, inputs, cached, log_now, fmt, since)
            page, body = await asyncio.get_running_loop().run_in_executor(self._pages, compute)
            self._routes_page, self.route_log = page, page.log
            return body, page.log.cursor

    async def status(self) -> dict[str, object]:
        """The JSON of GET /status; never holds secrets. The zone list (a serial read per zone,
        then sorted) is made in the page thread."""
        app = self.app
        engine = app.engine
        zones = tuple(app.state.by_file.values())
        made = functools.partial(pages.zone_list, zones, self._zone_list)
        self._zone_list = listing = await asyncio.get_running_loop().run_in_executor(self._pages, made)
        return {
            "uptime_seconds": round(time.time() - app.started, 1),
            "listen": [f"{h}:{p}" if ":" not in h else f"[{h}]:{p}" for h, p in app.bound],
            "zones": listing.listing,
            "problems": [str(p) for p in app.state.problems],
            "unavailable": sorted(origin.to_text() for origin in app.unavailable),  # secondaries: SERVFAIL
            "pools": [app.health.pool_status(name, first_counts(app, name)) for name in app.health.pools],
            "entries": app.hot_stats().counters.get("entries", 0) if engine else 0,
            "selfcheck": app.selfcheck.status(),
            "ds_push": app.dspush.status(),
            **({"workers": app.workers.status()} if app.workers is not None else {}),
        }

"""Routes of the control HTTP listener (reload, status, metrics, member actions, explain),
of the dyndns2 listener (/nic/update), and of the local control socket (edits).

Handlers run in the HTTP server's threads; anything that touches the running state is
handed to the event loop and awaited with a timeout, so state has one writer. Who may call
them is `dynmx.app.guard`'s to decide.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype

from dynmx.app import zone_ops, zonestatus
from dynmx.app.explain import explain as explain_now
from dynmx.app.explain import next_answer
from dynmx.app.fleet import fleet_route
from dynmx.app.health_monitor import member
from dynmx.config import absolute_name
from dynmx.control import dyndns2
from dynmx.control.zones import ZoneEditRefused
from dynmx.errors import CommandError, ZoneLoadError
from dynmx.server.http import Request, Response, Route

if TYPE_CHECKING:
    from dynmx.app.root import App

log = logging.getLogger("dynmx.app.control")

T = TypeVar("T")
LOOP_TIMEOUT = 30.0
EDIT_TIMEOUT = 300.0  # an edit waits to be answered from (a large zone compiles for a while)
DYNDNS2_PATH = "/nic/update"
DYNDNS2_PORT = 8245  # of `[dyndns2] listen` without one: the port DynDNS served the protocol on


def _json(status: int, body: object) -> Response:
    return status, "application/json", json.dumps(body, indent=2).encode() + b"\n"


def _text(status: int, body: str) -> Response:
    return status, "text/plain", body.encode() + b"\n"


def control_routes(app: App, loop: asyncio.AbstractEventLoop) -> dict[tuple[str, str], Route]:
    def on_loop(function: Callable[[], T]) -> T:
        async def call() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=LOOP_TIMEOUT)

    def in_every_answer() -> None:
        """With workers, a member action is acknowledged once each of them applied it."""
        asyncio.run_coroutine_threadsafe(app.workers_caught_up(), loop).result(timeout=LOOP_TIMEOUT)

    def params(query: str, *names: str) -> list[str]:
        parsed = urllib.parse.parse_qs(query)
        missing = [n for n in names if not parsed.get(n)]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        return [parsed[n][0] for n in names]

    def reload_route(_: Request) -> Response:
        problems = asyncio.run_coroutine_threadsafe(app.reload(), loop).result(timeout=300)
        return _json(
            200 if not problems else 422, {"ok": not problems, "problems": [str(p) for p in problems]}
        )

    def member_load(request: Request) -> Response:
        try:
            pool, host, value = params(request.query, "pool", "host", "value")
            load = float(value)
            on_loop(lambda: app.health.set_load(*member(app.config, pool, host), load))
            in_every_answer()
        except ValueError as error:
            return _text(400, f"need pool=, host= and a numeric value= ({error})")
        except CommandError as error:
            return _text(404, str(error))
        return _text(200, "ok")

    def member_drain(request: Request) -> Response:
        try:
            pool, host, drained = params(request.query, "pool", "host", "drained")
            on_loop(lambda: app.health.set_drained(*member(app.config, pool, host), drained == "1"))
            in_every_answer()
        except ValueError as error:
            return _text(400, f"need pool=, host= and drained=0|1 ({error})")
        except CommandError as error:
            return _text(404, str(error))
        return _text(200, "ok")

    def explain(request: Request) -> Response:
        parsed = urllib.parse.parse_qs(request.query)
        name = parsed.get("name", [""])[0]
        if not name:
            return _text(400, "need name=")
        source = parsed.get("from", [""])[0]
        hint = parsed.get("hint", [""])[0]
        try:
            return _json(200, on_loop(lambda: explain_now(app, name, source, hint)))
        except CommandError as error:
            return _text(404, str(error))

    def routes(request: Request) -> Response:
        """`since=CURSOR` (present, even empty): only what changed after it, with the next cursor;
        every answer also carries its cursor in the `Dynmx-Cursor` header. Computed off the
        event loop (`App.routes`)."""
        parsed = urllib.parse.parse_qs(request.query, keep_blank_values=True)
        fmt = parsed.get("format", [""])[0] or "postfix"
        since = parsed["since"][0] if "since" in parsed else None
        if fmt not in ("postfix", "json"):
            return _text(400, "format=postfix|json (and since=CURSOR)")
        future = asyncio.run_coroutine_threadsafe(app.pages.routes(fmt, since), loop)
        body, cursor = future.result(timeout=LOOP_TIMEOUT)
        ctype = "application/json" if fmt == "json" else "text/plain"
        return 200, ctype, body.encode() + (b"\n" if fmt == "json" else b""), {"Dynmx-Cursor": cursor}

    def upcoming(pools: list[dict[str, Any]]) -> None:
        """Each pool's `next`: what a query arriving now gets first, as `dynmx explain` says it."""
        table = app.engine.table if app.engine is not None else None
        for pool in pools:
            state = app.health.pools.get(pool["name"])
            if state is None:
                continue
            key = (dns.name.from_text(pool["name"]), dns.rdatatype.MX)
            selector = table.selectors.get(key) if table is not None else None
            plans = app.health.plans_for(state.config)
            counter = selector.counter if selector is not None else 0
            pool["next"] = next_answer(plans.plan, counter, app.config.server.workers or 1)

    def status(_: Request) -> Response:
        body = asyncio.run_coroutine_threadsafe(app.pages.status(), loop).result(timeout=LOOP_TIMEOUT)
        pools = body.get("pools")
        if isinstance(pools, list):
            on_loop(lambda: upcoming(pools))
        return _json(200, body)

    def selfcheck(_: Request) -> Response:
        """One self-check round now (`dynmx selfcheck`); the report with every step."""
        future = asyncio.run_coroutine_threadsafe(app.selfcheck.round(), loop)
        try:
            report = future.result(timeout=300)
        except CommandError as error:
            return _text(409, str(error))
        return _json(
            200, {**report.to_json(), "lines": report.lines(), "status": on_loop(app.selfcheck.status)}
        )

    def zone_origin(request: Request, required: bool) -> dns.name.Name | None:
        text = urllib.parse.parse_qs(request.query).get("zone", [""])[0]
        if not text:
            if required:
                raise ValueError("need zone=NAME")
            return None
        try:
            return dns.name.from_text(absolute_name(text))
        except dns.exception.DNSException as error:
            raise ValueError(f"zone={text!r}: {error}") from None

    def zone_status(request: Request) -> Response:
        """Every zone (or zone=NAME): served and file serial, role, secondaries or primary, problems."""
        try:
            origin = zone_origin(request, required=False)
            entries = on_loop(lambda: zonestatus.collect(app, origin))
        except ValueError as error:
            return _text(400, str(error))
        except LookupError as error:
            return _text(404, str(error.args[0]))
        return _json(200, {"now": round(time.time(), 3), "zones": zonestatus.finish(entries)})

    def zone_notify(request: Request) -> Response:
        """NOTIFY the zone's targets now (`nsd-control notify`, `knotc zone-notify`)."""
        try:
            origin = zone_origin(request, required=True)
            assert origin is not None
            future = asyncio.run_coroutine_threadsafe(zonestatus.notify_now(app, origin), loop)
            return _json(200, future.result(timeout=LOOP_TIMEOUT))
        except ValueError as error:
            return _text(400, str(error))
        except LookupError as error:
            return _text(404, str(error.args[0]))

    def zone_retransfer(request: Request) -> Response:
        """A full AXFR of a secondary zone now (`knotc zone-retransfer`, `nsd-control force_transfer`)."""
        try:
            origin = zone_origin(request, required=True)
        except ValueError as error:
            return _text(400, str(error))
        assert origin is not None
        if not app.secondary.is_secondary(origin):
            served = origin in on_loop(app.zones_by_origin)
            why = "is a primary zone here: it has no primary to transfer from" if served else "is not served"
            return _text(409 if served else 404, f"{origin} {why}")
        future = asyncio.run_coroutine_threadsafe(app.secondary.retransfer(origin), loop)
        try:
            serial, before = future.result(timeout=LOOP_TIMEOUT)
        except ZoneLoadError as error:
            return _text(422, f"{origin}: the primary's copy is invalid, the old one is kept:\n{error}")
        except (OSError, EOFError, dns.exception.DNSException) as error:
            primary = app.secondary.primaries[origin]
            reason = str(error) or type(error).__name__
            return _text(502, f"{origin}: AXFR from {primary[0]}:{primary[1]} failed: {reason}")
        return _json(200, {"zone": origin.to_text(), "serial": serial, "was": before})

    return {
        ("GET", "/zones/status"): zone_status,
        ("GET", "/fleet"): fleet_route(app, loop),
        ("POST", "/zones/notify"): zone_notify,
        ("POST", "/zones/retransfer"): zone_retransfer,
        ("GET", DYNDNS2_PATH): nic_update_route(app, loop, dedicated=False),
        ("GET", "/routes"): routes,
        ("POST", "/reload"): reload_route,
        ("GET", "/status"): status,
        ("GET", "/metrics"): lambda _: (200, app.metrics.content_type, app.metrics.render()),
        ("POST", "/members/load"): member_load,
        ("POST", "/members/drain"): member_drain,
        ("GET", "/explain"): explain,
        ("POST", "/selfcheck"): selfcheck,
    }


def nic_update_route(app: App, loop: asyncio.AbstractEventLoop, dedicated: bool) -> Route:
    """GET /nic/update, served while `[dyndns2] enabled` is true: on the dyndns2 listener
    (`dedicated`) when `[dyndns2] listen` is set, else on the control listener, as the last
    reload left it (decided on the loop, so no update starts after the reload that moved or
    turned off the endpoint). Logins are checked in this thread first (`dyndns2.Logins`): a
    source that must wait costs the event loop nothing."""

    def served_here() -> bool:
        settings = app.config.dyndns2
        return settings.enabled and bool(settings.listen) == dedicated

    def nic_update(request: Request) -> Response:
        if not served_here():
            return _text(404, "not found")
        auth = request.headers.get("authorization")
        hosts = [dyndns2.DynHost(h.hostname, h.username, h.password) for h in app.config.dyndns2.host]
        login = app.dyndns2.logins.check(request.client, auth, hosts, request.query)  # logs refusals
        if login.refusal is not None:
            refusal = login.refusal
            return refusal.status, "text/plain", refusal.body.encode() + b"\n", refusal.headers

        async def call() -> Response:
            if not served_here():
                return _text(404, "not found")
            result = await app.dyndns2.handle(request.query, auth, request.client)
            return result.status, "text/plain", result.body.encode() + b"\n", result.headers

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=LOOP_TIMEOUT)

    return nic_update


def dyndns2_routes(app: App, loop: asyncio.AbstractEventLoop) -> dict[tuple[str, str], Route]:
    """The dyndns2 listener's one route."""
    return {("GET", DYNDNS2_PATH): nic_update_route(app, loop, dedicated=True)}


def local_routes(app: App, loop: asyncio.AbstractEventLoop) -> dict[tuple[str, str], Route]:
    """The routes of the local control socket only: edits handed to the one owner (`dynmx
    record`, `dynmx zone add|rm`). The socket's file mode authorizes them, as knotc's does."""

    def zone_param(request: Request) -> str:
        zone = urllib.parse.parse_qs(request.query).get("zone", [""])[0]
        if not zone:
            raise ZoneEditRefused("need zone=NAME")
        return zone

    def update(request: Request) -> Response:
        async def call() -> Response:
            outcome = await app.updates.apply_local(request.body)
            if outcome.served is not None:
                await outcome.served
            body = {"rcode": dns.rcode.to_text(outcome.rcode), "reason": outcome.reason}
            return _json(200 if outcome.rcode == dns.rcode.NOERROR else 422, body)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=EDIT_TIMEOUT)

    def zone_edit(edit: Callable[[Request], Coroutine[Any, Any, dict[str, object]]]) -> Route:
        def route(request: Request) -> Response:
            try:
                result = asyncio.run_coroutine_threadsafe(edit(request), loop).result(timeout=EDIT_TIMEOUT)
            except ZoneEditRefused as error:
                return _json(422, {"ok": False, "error": str(error)})
            return _json(200, {"ok": True, **result})

        return route

    async def add(request: Request) -> dict[str, object]:
        return await zone_ops.add_zone(app, zone_param(request), request.body.decode("utf-8", "replace"))

    async def remove(request: Request) -> dict[str, object]:
        return await zone_ops.remove_zone(app, zone_param(request))

    return {
        ("POST", "/update"): update,
        ("POST", "/zones/add"): zone_edit(add),
        ("POST", "/zones/remove"): zone_edit(remove),
        ("POST", "/dnssec/rollover"): rollover_route(app, loop),
    }


def rollover_route(app: App, loop: asyncio.AbstractEventLoop) -> Route:
    """`dynmx dnssec rollover ZONE STEP` on the running server (`dynmx.app.keyroll`): 200 with
    the keys after the step, 409 with the reason (and `earliest`) when it may not run now."""
    from dynmx.app.keyroll import rollover
    from dynmx.errors import DynmxError
    from dynmx.zone.rollover import RolloverRefused

    def route(request: Request) -> Response:
        parsed = urllib.parse.parse_qs(request.query)
        zone, step = parsed.get("zone", [""])[0], parsed.get("step", [""])[0]
        try:
            origin = dns.name.from_text(absolute_name(zone))
            future = asyncio.run_coroutine_threadsafe(rollover(app, origin, step), loop)
            return _json(200, {"ok": True, **future.result(timeout=EDIT_TIMEOUT)})
        except RolloverRefused as error:
            return _json(409, {"ok": False, "error": str(error), "earliest": error.earliest})
        except (ValueError, DynmxError) as error:
            return _json(422, {"ok": False, "error": str(error)})

    return route

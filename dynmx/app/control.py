"""Routes of the control HTTP listener: reload, status, metrics, member actions, explain.

Handlers run in the HTTP server's threads; anything that touches the running state is
handed to the event loop and awaited with a timeout, so state has one writer.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import dns.rcode

from dynmx.control.zones import ZoneEditRefused
from dynmx.errors import ControlError
from dynmx.server.http import Request, Response, Route

if TYPE_CHECKING:
    from dynmx.app import App

T = TypeVar("T")
LOOP_TIMEOUT = 30.0
EDIT_TIMEOUT = 300.0  # an edit waits to be answered from (a large zone compiles for a while)


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
            on_loop(lambda: app.health.set_load(*app.member(pool, host), load))
            in_every_answer()
        except ValueError as error:
            return _text(400, f"need pool=, host= and a numeric value= ({error})")
        except ControlError as error:
            return _text(404, str(error))
        return _text(200, "ok")

    def member_drain(request: Request) -> Response:
        try:
            pool, host, drained = params(request.query, "pool", "host", "drained")
            on_loop(lambda: app.health.set_drained(*app.member(pool, host), drained == "1"))
            in_every_answer()
        except ValueError as error:
            return _text(400, f"need pool=, host= and drained=0|1 ({error})")
        except ControlError as error:
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
            return _json(200, on_loop(lambda: app.explain(name, source, hint)))
        except ControlError as error:
            return _text(404, str(error))

    def routes(request: Request) -> Response:
        """`since=CURSOR` (present, even empty): only what changed after it, with the next cursor;
        every answer also carries its cursor in the `Dynmx-Cursor` header."""
        parsed = urllib.parse.parse_qs(request.query, keep_blank_values=True)
        fmt = parsed.get("format", [""])[0] or "postfix"
        since = parsed["since"][0] if "since" in parsed else None
        if fmt not in ("postfix", "json"):
            return _text(400, "format=postfix|json (and since=CURSOR)")
        body, cursor = on_loop(lambda: app.routes(fmt, since))
        ctype = "application/json" if fmt == "json" else "text/plain"
        return 200, ctype, body.encode() + (b"\n" if fmt == "json" else b""), {"Dynmx-Cursor": cursor}

    def nic_update(request: Request) -> Response:
        """Served while `[dyndns2] enabled` is true, as the last reload left it (decided on the
        loop, so no update starts after the reload that turned the endpoint off)."""
        auth = request.headers.get("authorization")

        async def call() -> Response:
            if not app.config.dyndns2.enabled:
                return _text(404, "not found")
            result = await app.dyndns2(request.query, auth, request.client)
            return result.status, "text/plain", result.body.encode() + b"\n", result.headers

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=LOOP_TIMEOUT)

    def selfcheck(_: Request) -> Response:
        """One self-check round now (`dynmx selfcheck`); the report with every step."""
        future = asyncio.run_coroutine_threadsafe(app.selfcheck.round(), loop)
        try:
            report = future.result(timeout=300)
        except ControlError as error:
            return _text(409, str(error))
        return _json(
            200, {**report.to_json(), "lines": report.lines(), "status": on_loop(app.selfcheck.status)}
        )

    return {
        ("GET", "/nic/update"): nic_update,
        ("GET", "/routes"): routes,
        ("POST", "/reload"): reload_route,
        ("GET", "/status"): lambda _: _json(200, on_loop(app.status)),
        ("GET", "/metrics"): lambda _: (200, app.metrics.content_type, app.metrics.render()),
        ("POST", "/members/load"): member_load,
        ("POST", "/members/drain"): member_drain,
        ("GET", "/explain"): explain,
        ("POST", "/selfcheck"): selfcheck,
    }


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
            outcome = app.updates.apply_local(request.body)
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
        return await app.add_zone(zone_param(request), request.body.decode("utf-8", "replace"))

    async def remove(request: Request) -> dict[str, object]:
        return await app.remove_zone(zone_param(request))

    return {
        ("POST", "/update"): update,
        ("POST", "/zones/add"): zone_edit(add),
        ("POST", "/zones/remove"): zone_edit(remove),
    }

"""Routes of the control HTTP listener: reload, status, metrics, member actions, explain.

Handlers run in the HTTP server's threads; anything that touches the running state is
handed to the event loop and awaited with a timeout, so state has one writer.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from dynmx.errors import ControlError
from dynmx.server.http import Request, Response, Route

if TYPE_CHECKING:
    from dynmx.app import App

T = TypeVar("T")
LOOP_TIMEOUT = 30.0


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
        parsed = urllib.parse.parse_qs(request.query)
        fmt = parsed.get("format", ["postfix"])[0]
        since_text = parsed.get("since", [""])[0]
        if fmt not in ("postfix", "json") or (since_text and not since_text.isdigit()):
            return _text(400, "format=postfix|json and since=SERIAL (digits)")
        since = int(since_text) if since_text else None
        body = on_loop(lambda: app.routes(fmt, since))
        return 200, "application/json" if fmt == "json" else "text/plain", body.encode()

    def nic_update(request: Request) -> Response:
        auth = request.headers.get("authorization")
        call = app.dyndns2(request.query, auth, request.client)
        result = asyncio.run_coroutine_threadsafe(call, loop).result(timeout=LOOP_TIMEOUT)
        return result.status, "text/plain", result.body.encode() + b"\n", result.headers

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

    extra: dict[tuple[str, str], Route] = (
        {("GET", "/nic/update"): nic_update} if app.config.dyndns2.enabled else {}
    )
    return {
        **extra,
        ("GET", "/routes"): routes,
        ("POST", "/reload"): reload_route,
        ("GET", "/status"): lambda _: _json(200, on_loop(app.status)),
        ("GET", "/metrics"): lambda _: (200, app.metrics.content_type, app.metrics.render()),
        ("POST", "/members/load"): member_load,
        ("POST", "/members/drain"): member_drain,
        ("GET", "/explain"): explain,
        ("POST", "/selfcheck"): selfcheck,
    }

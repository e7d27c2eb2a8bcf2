"""HTTP and load probes: one GET under the probe's budget, judged by status, body or a load figure.

The body is read raw (we ask for `identity`) and at most MAX_BODY bytes of it are kept, so
a status page cannot make the prober hold a large or decompression-bomb body. httpx's own
timeout is per operation; the whole GET also runs under `asyncio.timeout`, so a server
that drips bytes cannot stretch the probe past its budget.
"""

from __future__ import annotations

import asyncio
import json
import math
import reprlib

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dynmx.health.spec import ProbeSpec
from dynmx.health.verdict import Verdict, printable, url_secrets

MAX_BODY = 1 << 20
_REPR = reprlib.Repr()
_REPR.maxstring = 40
_REPR.maxother = 40


async def check_http(spec: ProbeSpec, client: httpx.AsyncClient | None) -> Verdict:
    """GET `spec.url` with `client` (or a client of our own) and judge the answer."""
    try:
        async with asyncio.timeout(spec.timeout):
            if client is not None:
                status, body, cut = await _get(client, spec)
            else:
                async with httpx.AsyncClient(timeout=spec.timeout, trust_env=False) as own:
                    status, body, cut = await _get(own, spec)
    except httpx.TimeoutException as exc:
        return Verdict("timeout-connect", type(exc).__name__)
    except TimeoutError:
        return Verdict("timeout-connect", f"no answer within {spec.timeout:g}s")
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as exc:
        return Verdict("http-error", printable(f"{type(exc).__name__}: {exc}", url_secrets(spec.url)))
    return judge(spec, status, body, cut)


async def _get(client: httpx.AsyncClient, spec: ProbeSpec) -> tuple[int, bytes, bool]:
    """Status, the first MAX_BODY bytes of the body, and whether it was cut there."""
    headers = {"Accept-Encoding": "identity"}
    timeout = httpx.Timeout(spec.timeout)
    async with client.stream("GET", spec.url, headers=headers, timeout=timeout) as response:
        body = bytearray()
        async for chunk in response.aiter_raw():
            room = MAX_BODY - len(body)
            body += chunk[:room]
            if len(chunk) > room:
                return response.status_code, bytes(body), True
        return response.status_code, bytes(body), False


def judge(spec: ProbeSpec, status: int, body: bytes, cut: bool = False) -> Verdict:
    """Status first (expect_status, or any 2xx), then body_match, then for `load` the figure."""
    seen = f"HTTP {status}"
    healthy = status in spec.expect_status if spec.expect_status else 200 <= status < 300
    if not healthy:
        return Verdict("http-status", seen)
    if spec.body_match and spec.body_match.encode("utf-8") not in body:
        return Verdict("body-mismatch", f"{seen}, body lacks the expected text")
    if spec.kind != "load":
        return Verdict("ok", seen)
    if cut:
        return Verdict("load-invalid", f"{seen}, body over {MAX_BODY} bytes")
    if spec.load_metric:
        return _metric_load(body, spec.load_metric, seen)
    return _json_load(body, spec.load_field, seen)


def _metric_load(body: bytes, metric: str, seen: str) -> Verdict:
    """The first sample of `metric` in Prometheus text exposition."""
    try:
        for family in text_string_to_metric_families(body.decode("utf-8")):
            for sample in family.samples:
                if metric in (sample.name, family.name):
                    return _as_load(sample.value, metric, seen)
    except ValueError as exc:
        return Verdict("load-invalid", printable(f"{seen}, not Prometheus text: {exc}"))
    return Verdict("load-missing", printable(f"{seen}, no metric {metric}"))


def _json_load(body: bytes, field: str, seen: str) -> Verdict:
    """The number at dotted path `field` in a JSON body."""
    try:
        node: object = json.loads(body)
    except (ValueError, RecursionError):
        return Verdict("load-invalid", f"{seen}, not JSON")
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return Verdict("load-missing", printable(f"{seen}, no field {field}"))
        node = node[part]
    return _as_load(node, field, seen)


def _as_load(value: object, name: str, seen: str) -> Verdict:
    """A finite number becomes the load; anything else (bool, string, NaN, null) is invalid."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = None
    if number is None or not math.isfinite(number):
        return Verdict("load-invalid", printable(f"{seen}, {name}={_REPR.repr(value)}"))
    return Verdict("ok", printable(f"{seen}, {name}={number:g}"), load=number)

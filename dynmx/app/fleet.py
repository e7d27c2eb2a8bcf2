"""`dynmx fleet`: is every secondary serving what this primary serves?

The secondaries are the NOTIFY targets of every zone served as primary here (the catalog's
included). Each is asked for each zone's SOA over UDP, as `check_soa` and Zonemaster's
consistency test ask every name server, and its serial is compared with the one served
here (RFC 1982 arithmetic): a secondary is current, behind, or not serving the zone. Beside
it stands what `zone status` knows of that target (the last NOTIFY and whether it was
answered, the last transfer its address took), which is what `knotc zone-status` tells.

The questions go out from the primary, so the addresses are the ones it notifies; they are
bounded in number at once (`CONCURRENCY`) and in time (`QUERY_TIMEOUT` x `TRIES`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from dynmx.app import zonestatus
from dynmx.config import parse_hostport

if TYPE_CHECKING:
    from dynmx.app.root import App

CONCURRENCY = 32  # SOA questions in flight at once
QUERY_TIMEOUT = 1.0  # seconds per try
TRIES = 2  # a lost datagram is not a verdict
ROUTE_TIMEOUT = 120.0  # seconds the control route waits for the survey

CURRENT, BEHIND, AHEAD, NOT_SERVED, FAILING, SILENT = (
    "current",
    "behind",
    "ahead",
    "not served",
    "failing",
    "no answer",
)


@dataclass(frozen=True, slots=True)
class SoaSeen:
    """One secondary's answer to one zone's SOA question."""

    serial: int | None
    detail: str  # the rcode, or why there was no usable answer


def serial_lt(a: int, b: int) -> bool:
    """RFC 1982 §3.2: `a` comes before `b` in 32-bit serial number arithmetic."""
    return a != b and ((a < b and b - a < 2**31) or (a > b and a - b > 2**31))


def verdict(here: int | None, seen: SoaSeen) -> str:
    """Where `seen` stands against `here`, the serial served here."""
    if seen.serial is None:
        if seen.detail in ("timeout", "unreachable"):
            return SILENT
        return FAILING if seen.detail == "SERVFAIL" else NOT_SERVED
    if here is None or seen.serial == here:
        return CURRENT
    return BEHIND if serial_lt(seen.serial, here) else AHEAD


def read_soa(reply: dns.message.Message, zone: dns.name.Name) -> SoaSeen:
    """An authoritative SOA of `zone` in the answer section, else what the reply was."""
    rcode = reply.rcode()
    if rcode != dns.rcode.NOERROR:
        return SoaSeen(None, dns.rcode.to_text(rcode))
    soa = reply.get_rrset(reply.answer, zone, dns.rdataclass.IN, dns.rdatatype.SOA)
    if soa is None or not len(soa):
        return SoaSeen(None, "no SOA in the answer")
    if not reply.flags & dns.flags.AA:
        return SoaSeen(None, "not authoritative")
    return SoaSeen(int(soa[0].serial), "NOERROR")


async def ask_soa(target: str, zone: dns.name.Name, gate: asyncio.Semaphore) -> SoaSeen:
    host, port = parse_hostport(target)
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    query.flags &= ~dns.flags.RD
    async with gate:
        for _ in range(TRIES):
            try:
                reply = await dns.asyncquery.udp(
                    query, host, port=port, timeout=QUERY_TIMEOUT, ignore_unexpected=True
                )
            except dns.exception.Timeout:
                continue
            except OSError:  # ICMP port unreachable: nothing listens there
                return SoaSeen(None, "unreachable")
            except dns.exception.DNSException as error:
                return SoaSeen(None, f"bad reply: {error}")
            return read_soa(reply, zone)
    return SoaSeen(None, "timeout")


def plan(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per NOTIFY target, the zones it should serve with what `zone status` knows of it
    (from `zonestatus.collect` entries; a secondary zone here has no targets of its own)."""
    targets: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        for known in entry.get("notify", []):
            facts = {k: v for k, v in known.items() if k != "target"}
            row = {"zone": entry["zone"], "serial_here": entry["serial"], **facts}
            targets.setdefault(known["target"], []).append(row)
    return targets


def summarise(targets: dict[str, list[dict[str, Any]]], now: float) -> dict[str, Any]:
    secondaries = []
    for target, rows in targets.items():
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        secondaries.append({"target": target, "counts": counts, "zones": rows})
    ok = all(row["state"] == CURRENT for rows in targets.values() for row in rows)
    return {"now": round(now, 3), "ok": ok, "secondaries": secondaries}


def catalog_seen(row: dict[str, Any], seen: SoaSeen) -> SoaSeen:
    """A catalog is not for queries (RFC 9432 §1): a consumer may refuse its SOA (Knot does).
    Then the serial it last transferred from here stands for it."""
    if seen.serial is None and seen.detail == "REFUSED" and row["transferred_serial"] is not None:
        return SoaSeen(int(row["transferred_serial"]), "REFUSED; serial of the last transfer to its address")
    return seen


async def survey(app: App) -> dict[str, Any]:
    """Every target's serial of every zone it is NOTIFYed for, asked now, beside ours."""
    targets = plan(zonestatus.collect(app, None))
    catalog = app.config.catalog.name if not app.config.catalog.primary else ""
    gate = asyncio.Semaphore(CONCURRENCY)
    rows = [(target, row) for target, found in targets.items() for row in found]
    seen = await asyncio.gather(
        *(ask_soa(target, dns.name.from_text(row["zone"]), gate) for target, row in rows)
    )
    for (_, row), answer in zip(rows, seen, strict=True):
        if catalog and dns.name.from_text(row["zone"]) == dns.name.from_text(catalog):
            answer = catalog_seen(row, answer)
        state = verdict(row["serial_here"], answer)
        row.update(serial_there=answer.serial, answer=answer.detail, state=state)
    return summarise(targets, time.time())


def fleet_route(app: App, loop: asyncio.AbstractEventLoop) -> Callable[[Any], tuple[int, str, bytes]]:
    """GET /fleet: the survey as JSON (the CLI prints it)."""

    def route(_: Any) -> tuple[int, str, bytes]:
        body = asyncio.run_coroutine_threadsafe(survey(app), loop).result(timeout=ROUTE_TIMEOUT)
        return 200, "application/json", json.dumps(body, indent=2).encode() + b"\n"

    return route

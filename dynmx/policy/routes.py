"""The mail routing table as an MTA would derive it from what we serve: domain -> next hops.

Pure: zones, pool plans and member states in; routes and their renderings out. Every
name in the served zones that owns an MX RRset (the apex included) is a mail domain; a
pool's name (an MX pool in a served zone) is one too, routed by the pool's current
order (`plan.orderings[0]`; for a fail-open plan the base order). A static MX lists its
exchanges by preference (RFC 5321 5.1); a null MX ("0 .", RFC 7505) has no hops.
Not routed: names at or below a delegation (not authoritative), wildcard owners (no
single domain) and hint names (`<label>._hint.<pool>`: transport targets, not domains).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import dns.name
import dns.rdataclass
import dns.rdatatype

from dynmx.answer.zoneset import ZoneData, ZoneSet
from dynmx.policy.served import HINT_LABEL, PoolPlans

IN = dns.rdataclass.IN
MX = dns.rdatatype.MX
WILDCARD = b"*"
STATIC = "static"
UNKNOWN = "unknown"
NULL_MX_ERROR = "error:5.1.10 null MX (RFC 7505)"


@dataclass(frozen=True, slots=True)
class Hop:
    host: str  # absolute name, e.g. "mx1.example.test."
    preference: int
    state: str  # "up" | "down" | "admin-down" | "unknown" | "static" (not a pool member)


@dataclass(frozen=True, slots=True)
class Route:
    domain: str  # absolute name
    hops: tuple[Hop, ...]  # best first; empty for a null MX
    pool: str | None  # the pool name when the MX is a pool


def _mx_pools(plans: Mapping[str, PoolPlans]) -> dict[dns.name.Name, tuple[str, PoolPlans]]:
    """MX pools by owner name (names compare case-insensitively), with the key they came under."""
    return {dns.name.from_text(key): (key, plan) for key, plan in plans.items() if plan.pool.kind == "mx"}


def _is_hint_name(name: dns.name.Name, pools: Mapping[dns.name.Name, object]) -> bool:
    """`<label>._hint.<pool name>` or `_hint.<pool name>` of a known pool."""
    for depth in (1, 2):
        hinted = len(name) > depth and name.labels[depth - 1].lower() == HINT_LABEL
        if hinted and dns.name.Name(name.labels[depth:]) in pools:
            return True
    return False


def _static_route(name: dns.name.Name, zone: ZoneData) -> Route | None:
    node = zone.node(name)
    rdataset = node.get_rdataset(IN, MX) if node is not None else None
    if rdataset is None or len(rdataset) == 0:
        return None
    exchanges = [(rdata.preference, rdata.exchange.derelativize(zone.origin)) for rdata in rdataset]
    # A null MX is "0 ."; an exchange of "." names no host whatever its preference.
    hosts = sorted(
        ((pref, exchange.to_text()) for pref, exchange in exchanges if exchange != dns.name.root),
        key=lambda hop: (hop[0], hop[1].lower()),
    )
    return Route(name.to_text(), tuple(Hop(host, pref, STATIC) for pref, host in hosts), None)


def _pool_route(name: dns.name.Name, key: str, plans: PoolPlans, states: Mapping[str, str]) -> Route:
    ordering = plans.plan.orderings[0] if plans.plan.orderings else ()
    hops = tuple(
        Hop(dns.name.from_text(host).to_text(), preference, states.get(host, UNKNOWN))
        for host, preference in ordering
    )
    return Route(name.to_text(), hops, key)


def routing_table(
    zones: list[ZoneData], plans: Mapping[str, PoolPlans], states: Mapping[str, Mapping[str, str]]
) -> list[Route]:
    """Each served mail domain with its next hops, best first; sorted by domain.

    `plans`: pool name -> current plans; `states`: pool name -> host -> state string
    (a member missing from `states` is "unknown").
    """
    zoneset = ZoneSet(zones)
    pools = _mx_pools(plans)
    found: dict[dns.name.Name, Route] = {}
    for zone in zoneset:
        for raw in [*zone.zone.nodes.keys(), *zone.overlay.keys()]:
            name = raw if raw.is_absolute() else raw.derelativize(zone.origin)
            if name in found or name in pools or zoneset.find(name) is not zone:
                continue
            if zone.cut_at_or_above(name) is not None or name.is_wild() or _is_hint_name(name, pools):
                continue
            route = _static_route(name, zone)
            if route is not None:
                found[name] = route
    for owner, (key, pool_plans) in pools.items():
        served = zoneset.find(owner)
        if served is None or served.cut_at_or_above(owner) is not None:
            continue  # not served: build_table leaves such pools out too
        found[owner] = _pool_route(owner, key, pool_plans, states.get(key, {}))
    return sorted(found.values(), key=lambda route: route.domain)


def bare(name: str) -> str:
    """A name as Postfix writes it: no trailing dot."""
    return name[:-1] if name.endswith(".") and name != "." else name


def to_postfix(routes: list[Route]) -> str:
    """Postfix transport(5) lines pinning each domain's current best hop (no MX lookup: brackets)."""
    lines = []
    for route in routes:
        nexthop = f"smtp:[{bare(route.hops[0].host)}]" if route.hops else NULL_MX_ERROR
        lines.append(f"{bare(route.domain)}    {nexthop}\n")
    return "".join(lines)


def to_json(routes: list[Route]) -> str:
    """A JSON list of {domain, pool, hops: [{host, preference, state}]}."""
    return json.dumps(
        [
            {
                "domain": route.domain,
                "pool": route.pool,
                "hops": [{"host": h.host, "preference": h.preference, "state": h.state} for h in route.hops],
            }
            for route in routes
        ],
        indent=2,
    )

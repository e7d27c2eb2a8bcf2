"""The mail routing table (`dynmx.policy.routes`): one behaviour per test."""

from __future__ import annotations

import json
from collections.abc import Mapping

import dns.name
import dns.zone

from dynmx.answer.zoneset import ZoneData
from dynmx.config import from_mapping
from dynmx.policy.routes import Hop, Route, routing_table, to_json, to_postfix
from dynmx.policy.served import PoolPlans, plan_all
from dynmx.policy.strategies import MemberFacts

ORIGIN = "example.test."
ZONE = f"""\
$ORIGIN {ORIGIN}
$TTL 3600
@         SOA   ns1 hostmaster 1 7200 900 1209600 300
@         NS    ns1
@         MX    10 mx1
@         MX    20 mx2
@         MX    30 mx3
ns1       A     192.0.2.53
mx1       A     192.0.2.1
mx2       A     192.0.2.2
mx3       A     192.0.2.3
static    MX    20 backup.other.test.
static    MX    5 mx1
parked    MX    0 .
www       A     192.0.2.80
"""
POOL = {
    "name": ORIGIN,
    "strategy": "static",
    "member": [
        {"host": "mx1.example.test.", "preference": 10, "probe": "none"},
        {"host": "mx2.example.test.", "preference": 20, "probe": "none"},
        {"host": "mx3.example.test.", "preference": 30, "probe": "none", "role": "relay"},
    ],
}
DOWN = MemberFacts(up=False)


def zones() -> list[ZoneData]:
    origin = dns.name.from_text(ORIGIN)
    return [ZoneData(origin, dns.zone.from_text(ZONE, origin=origin, relativize=False))]


def plans(facts: Mapping[str, MemberFacts] | None = None) -> dict[str, PoolPlans]:
    config = from_mapping({"pool": [POOL]})
    return {p.name: plan_all(p, facts or {}) for p in config.pool}


def route(routes: list[Route], domain: str) -> Route:
    (found,) = [r for r in routes if r.domain == domain]
    return found


UP = {ORIGIN: {"mx1.example.test.": "up", "mx2.example.test.": "up", "mx3.example.test.": "unknown"}}


def test_static_mx_hops_in_preference_order() -> None:
    routes = routing_table(zones(), plans(), UP)
    assert route(routes, "static.example.test.") == Route(
        "static.example.test.",
        (Hop("mx1.example.test.", 5, "static"), Hop("backup.other.test.", 20, "static")),
        None,
    )


def test_pool_domain_follows_plan_order_with_states() -> None:
    routes = routing_table(zones(), plans(), UP)
    assert route(routes, ORIGIN) == Route(
        ORIGIN,
        (
            Hop("mx1.example.test.", 10, "up"),
            Hop("mx2.example.test.", 20, "up"),
            Hop("mx3.example.test.", 30, "unknown"),
        ),
        ORIGIN,
    )


def test_null_mx_has_no_hops() -> None:
    routes = routing_table(zones(), plans(), UP)
    assert route(routes, "parked.example.test.") == Route("parked.example.test.", (), None)
    assert [r.domain for r in routes] == [ORIGIN, "parked.example.test.", "static.example.test."]


def test_down_member_listed_with_state_down_when_pool_fails_open() -> None:
    every = ("mx1.example.test.", "mx2.example.test.", "mx3.example.test.")
    states = {
        ORIGIN: {"mx1.example.test.": "down", "mx2.example.test.": "admin-down", "mx3.example.test.": "down"}
    }
    routes = routing_table(zones(), plans(dict.fromkeys(every, DOWN)), states)
    assert route(routes, ORIGIN).hops == (
        Hop("mx1.example.test.", 10, "down"),
        Hop("mx2.example.test.", 20, "admin-down"),
        Hop("mx3.example.test.", 30, "down"),
    )


def test_postfix_transport_lines() -> None:
    routes = routing_table(zones(), plans({"mx1.example.test.": DOWN}), UP)
    assert to_postfix(routes) == (
        "example.test    smtp:[mx2.example.test]\n"
        "parked.example.test    error:5.1.10 null MX (RFC 7505)\n"
        "static.example.test    smtp:[mx1.example.test]\n"
    )


def test_json_round_trip() -> None:
    routes = routing_table(zones(), plans(), UP)
    decoded = [
        Route(item["domain"], tuple(Hop(**hop) for hop in item["hops"]), item["pool"])
        for item in json.loads(to_json(routes))
    ]
    assert decoded == routes

"""Address (A/AAAA) and SRV pools for access servers, sans IO through the engine (RFC 6186, RFC 2782)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.zone

from dynmx.answer.engine import Engine
from dynmx.answer.zoneset import ZoneData
from dynmx.config import Config, from_mapping
from dynmx.policy.served import build_table, plan_all, refresh_pool
from dynmx.policy.strategies import MemberFacts

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
@ NS ns1
ns1 A 127.0.0.1
imap A 127.0.0.2
imap A 127.0.0.3
imap A 127.0.0.4
imap AAAA ::2
imap1 A 127.0.0.2
imap2 A 127.0.0.3
imap3 A 127.0.0.4
_imaps._tcp SRV 0 1 993 imap1
_imaps._tcp SRV 0 1 993 imap2
_imaps._tcp SRV 0 1 993 imap3
"""
HERE = ("127.0.0.1", 5353)


def _zone() -> ZoneData:
    origin = dns.name.from_text("example.test.")
    return ZoneData(origin, dns.zone.from_text(ZONE, origin=origin, relativize=False))


def _config(pools: list[dict[str, Any]], client: list[dict[str, Any]] | None = None) -> Config:
    return from_mapping({"pool": pools, "client": client or []})


def _address_pool(**extra: Any) -> dict[str, Any]:
    members = [{"host": f"127.0.0.{i}", "probe": "none"} for i in (2, 3, 4)] + [
        {"host": "::2", "probe": "none"}
    ]
    return {
        "name": "imap.example.test.",
        "kind": "address",
        "strategy": "round-robin",
        "member": members,
        **extra,
    }


def _srv_pool(**extra: Any) -> dict[str, Any]:
    members = [
        {"host": f"imap{i}.example.test.", "port": 993, "weight": w, "probe": "none"}
        for i, w in ((1, 5), (2, 1), (3, 1))
    ]
    return {
        "name": "_imaps._tcp.example.test.",
        "kind": "srv",
        "strategy": "round-robin",
        "member": members,
        **extra,
    }


def _engine(config: Config, facts: dict[str, dict[str, MemberFacts]] | None = None) -> tuple[Engine, Any]:
    plans = {p.name: plan_all(p, (facts or {}).get(p.name, {})) for p in config.pool}
    table = build_table(config, [_zone()], lambda p: plans[p.name], rng=random.Random(3).random)
    return Engine(table), table


def _ask(engine: Engine, name: str, rdtype: str, addr: tuple[str, int] = HERE) -> dns.message.Message:
    reply = engine.handle(dns.message.make_query(name, rdtype).to_wire(), addr, False)
    assert reply is not None
    return dns.message.from_wire(reply)


def _addresses(message: dns.message.Message) -> list[str]:
    return [r.address for r in message.answer[0]]


def test_address_pool_rotates_the_first_address() -> None:
    engine, _ = _engine(_config([_address_pool()]))
    firsts = [_addresses(_ask(engine, "imap.example.test", "A"))[0] for _ in range(6)]
    assert firsts == ["127.0.0.2", "127.0.0.3", "127.0.0.4"] * 2


def test_address_pool_answers_aaaa_from_its_ipv6_members() -> None:
    engine, _ = _engine(_config([_address_pool()]))
    assert _addresses(_ask(engine, "imap.example.test", "AAAA")) == ["::2"]


def test_answer_count_limits_addresses_per_family_like_multivalue() -> None:
    engine, _ = _engine(_config([_address_pool(answer_count=2)]))
    answers = [_addresses(_ask(engine, "imap.example.test", "A")) for _ in range(3)]
    assert all(len(a) == 2 for a in answers)
    assert Counter(a[0] for a in answers) == {"127.0.0.2": 1, "127.0.0.3": 1, "127.0.0.4": 1}


def test_weighted_address_pool_draws_the_first_address_by_weight() -> None:
    pool = _address_pool(strategy="weighted")
    pool["member"][0]["weight"] = 8
    engine, _ = _engine(_config([pool]))
    firsts = Counter(_addresses(_ask(engine, "imap.example.test", "A"))[0] for _ in range(1000))
    assert abs(firsts["127.0.0.2"] / 1000 - 0.8) < 0.05


def test_down_address_leaves_the_answer_at_once() -> None:
    config = _config([_address_pool()])
    engine, table = _engine(config)
    pool = config.pool[0]
    refresh_pool(table, plan_all(pool, {"127.0.0.3": MemberFacts(up=False)}))
    seen = {a for _ in range(6) for a in _addresses(_ask(engine, "imap.example.test", "A"))}
    assert seen == {"127.0.0.2", "127.0.0.4"}


def test_address_family_with_every_member_down_fails_open() -> None:
    config = _config([_address_pool()])
    engine, table = _engine(config)
    refresh_pool(table, plan_all(config.pool[0], {"::2": MemberFacts(up=False)}))
    assert _addresses(_ask(engine, "imap.example.test", "AAAA")) == ["::2"]


def test_rfc2782_srv_pool_rewrites_priorities_so_the_first_target_rotates() -> None:
    engine, _ = _engine(_config([_srv_pool()]))
    firsts = []
    for _ in range(3):
        records = sorted(_ask(engine, "_imaps._tcp.example.test", "SRV").answer[0], key=lambda r: r.priority)
        assert [r.priority for r in records] == [10, 20, 30]
        assert {r.port for r in records} == {993}
        firsts.append(str(records[0].target))
    assert sorted(firsts) == ["imap1.example.test.", "imap2.example.test.", "imap3.example.test."]


def test_srv_weight_comes_from_the_member_weight() -> None:
    engine, _ = _engine(_config([_srv_pool()]))
    records = _ask(engine, "_imaps._tcp.example.test", "SRV").answer[0]
    assert {str(r.target): r.weight for r in records}["imap1.example.test."] == 5


def test_down_srv_target_leaves_the_answer() -> None:
    config = _config([_srv_pool()])
    engine, table = _engine(config)
    refresh_pool(table, plan_all(config.pool[0], {"imap2.example.test.": MemberFacts(up=False)}))
    targets = {str(r.target) for r in _ask(engine, "_imaps._tcp.example.test", "SRV").answer[0]}
    assert targets == {"imap1.example.test.", "imap3.example.test."}


def test_srv_answer_carries_target_addresses_in_additional() -> None:
    engine, _ = _engine(_config([_srv_pool()]))
    reply = _ask(engine, "_imaps._tcp.example.test", "SRV")
    assert {str(r.name) for r in reply.additional if r.rdtype == dns.rdatatype.A} >= {
        "imap1.example.test.",
        "imap2.example.test.",
        "imap3.example.test.",
    }


def test_client_hint_works_for_address_pools() -> None:
    pool = _address_pool(hint=[{"label": "staff", "order": ["127.0.0.4"]}])
    client = [{"prefix": "127.0.0.9/32", "action": "hint", "hint": "staff"}]
    engine, _ = _engine(_config([pool], client))
    assert _addresses(_ask(engine, "imap.example.test", "A", ("127.0.0.9", 1))) == ["127.0.0.4"]
    assert _addresses(_ask(engine, "staff._hint.imap.example.test", "A")) == ["127.0.0.4"]


def test_client_refuse_works_for_srv_pools() -> None:
    client = [{"prefix": "127.0.0.9/32", "action": "refuse"}]
    engine, _ = _engine(_config([_srv_pool()], client))
    reply = _ask(engine, "_imaps._tcp.example.test", "SRV", ("127.0.0.9", 1))
    assert reply.rcode() == dns.rcode.REFUSED

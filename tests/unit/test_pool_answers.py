"""MX pools as a resolver sees them, sans IO: zones + config -> `build_table` -> `Engine.handle`.

Queries are built with dnspython and replies decoded with it. The first host of an answer
is the exchange with the lowest preference, since that is what a sender tries first
(RFC 5321 section 5.1); the dynamic strategies give every exchange a distinct preference.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from dynmx.answer.compiler import AnswerTable, compile_table
from dynmx.answer.dynamic import Selector
from dynmx.answer.engine import Engine
from dynmx.answer.zoneset import ZoneData
from dynmx.config import Config, from_mapping
from dynmx.policy.served import PoolPlans, build_table, plan_all, refresh_pool
from dynmx.policy.strategies import MemberFacts

ORIGIN = "pool.test."
MX = dns.rdatatype.MX
NS = dns.rdatatype.NS
SOA = dns.rdatatype.SOA
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
NOERROR = dns.rcode.NOERROR
NXDOMAIN = dns.rcode.NXDOMAIN
REFUSED = dns.rcode.REFUSED
HERE = ("127.0.0.1", 1)
THERE = ("127.0.0.2", 1)
DOWN = MemberFacts(up=False)

ZONE = f"""\
$ORIGIN {ORIGIN}
$TTL 3600
@        SOA   ns1 hostmaster 1 7200 900 1209600 300
@        NS    ns1
@        NS    ns2
@        MX    10 mx1
@        TXT   "v=spf1 mx -all"
ns1      A     192.0.2.53
ns1      AAAA  2001:db8::53
ns2      A     192.0.2.54
mx1      A     192.0.2.1
mx1      AAAA  2001:db8::1
mx2      A     192.0.2.2
mx2      AAAA  2001:db8::2
mx3      A     192.0.2.3
mx3      AAAA  2001:db8::3
relay    A     192.0.2.9
relay    AAAA  2001:db8::9
nomail   A     192.0.2.80
nomail   MX    10 mx1
nomail   TXT   "keep me"
gone     A     192.0.2.81
gone     TXT   "hidden"
secret   A     192.0.2.82
secret   TXT   "hidden"
"""


def h(short: str) -> str:
    return f"{short}.{ORIGIN}"


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def zone_data(text: str = ZONE, origin: str = ORIGIN) -> ZoneData:
    return ZoneData(n(origin), dns.zone.from_text(text, origin=origin, relativize=False))


def members(*spec: tuple[str, int] | tuple[str, int, dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for item in spec:
        entry: dict[str, Any] = {"host": h(item[0]), "preference": item[1]}
        if len(item) == 3:
            entry.update(item[2])
        found.append(entry)
    return found


THREE_AND_RELAY = members(("mx1", 10), ("mx2", 20), ("mx3", 30), ("relay", 90, {"role": "relay"}))


@dataclass
class Setup:
    config: Config
    table: AnswerTable
    plans: dict[str, PoolPlans]
    engine: Engine

    @property
    def selector(self) -> Selector:
        return self.table.selectors[(n(ORIGIN), MX)]

    def refresh(self, facts: dict[str, MemberFacts]) -> None:
        refresh_pool(self.table, plan_all(self.config.pool[0], facts))


def setup(
    strategy: str = "round-robin",
    member: Sequence[dict[str, Any]] = THREE_AND_RELAY,
    *,
    ttl: int = 30,
    hint: Sequence[dict[str, Any]] = ({"label": "urgent", "order": [h("mx3"), h("mx1")]},),
    client: Sequence[dict[str, Any]] = (),
    name: Sequence[dict[str, Any]] = (),
    extra_pools: Sequence[dict[str, Any]] = (),
    zones: Sequence[ZoneData] | None = None,
) -> Setup:
    pool = {"name": ORIGIN, "strategy": strategy, "ttl": ttl, "member": list(member), "hint": list(hint)}
    config = from_mapping({"pool": [pool, *extra_pools], "client": list(client), "name": list(name)})
    plans = {p.name: plan_all(p, {}) for p in config.pool}
    table = build_table(
        config,
        list(zones) if zones is not None else [zone_data()],
        lambda p: plans[p.name],
        rng=random.Random(7).random,
    )
    served = {name: plan for name, plan in plans.items() if table.selectors_of(name)}
    return Setup(config, table, served, Engine(table))


def make_query(qname: str, rdtype: str = "MX", **kwargs: Any) -> bytes:
    msg = dns.message.make_query(qname, rdtype, id=4242, **kwargs)
    msg.flags &= ~dns.flags.RD
    return msg.to_wire()


def ask(
    engine: Engine, qname: str = ORIGIN, rdtype: str = "MX", addr: object = HERE, **kw: Any
) -> dns.message.Message:
    reply = engine.handle(make_query(qname, rdtype, **kw), addr, False)
    assert reply is not None, "the engine dropped the query"
    return dns.message.from_wire(reply)


def mx_rrset(reply: dns.message.Message, owner: str = ORIGIN) -> dns.rrset.RRset:
    return reply.find_rrset(reply.answer, n(owner), dns.rdataclass.IN, MX)


def ranked(reply: dns.message.Message, owner: str = ORIGIN) -> list[tuple[int, str]]:
    """(preference, exchange) best first."""
    return sorted((rd.preference, rd.exchange.to_text()) for rd in mx_rrset(reply, owner))


def first(reply: dns.message.Message) -> str:
    return ranked(reply)[0][1]


def firsts(engine: Engine, count: int, **kw: Any) -> list[str]:
    """The first host of `count` consecutive answers (replies decoded once per distinct bytes)."""
    seen: dict[bytes, str] = {}
    data = make_query(ORIGIN, "MX", **kw)
    found = []
    for _ in range(count):
        reply = engine.handle(data, HERE, False)
        assert reply is not None
        if reply not in seen:
            seen[reply] = first(dns.message.from_wire(reply))
        found.append(seen[reply])
    return found


def rrsets(section: list[dns.rrset.RRset]) -> set[tuple[str, int, frozenset[str]]]:
    return {(r.name.to_text(), r.rdtype, frozenset(rd.to_text() for rd in r)) for r in section}


# -- strategies through the engine -----------------------------------------------------------


def test_round_robin_puts_each_primary_first_equally_often() -> None:
    s = setup("round-robin")
    counts = Counter(firsts(s.engine, 3000))
    assert counts == {h("mx1"): 1000, h("mx2"): 1000, h("mx3"): 1000}


def test_round_robin_any_three_consecutive_answers_rotate_first_place() -> None:
    s = setup("round-robin")
    seq = firsts(s.engine, 3000)
    assert all(len(set(seq[i : i + 3])) == 3 for i in range(len(seq) - 2))


def test_round_robin_relay_is_always_last() -> None:
    s = setup("round-robin")
    for _ in range(6):
        order = ranked(ask(s.engine))
        assert order[-1][1] == h("relay")
        assert [p for p, _ in order] == [10, 20, 30, 40]


def test_weighted_three_to_one_first_place_shares() -> None:
    s = setup("weighted", members(("mx1", 10, {"weight": 3}), ("mx2", 20, {"weight": 1})), hint=())
    counts = Counter(firsts(s.engine, 10_000))
    assert set(counts) == {h("mx1"), h("mx2")}
    assert abs(counts[h("mx1")] / 10_000 - 0.75) <= 0.02
    assert abs(counts[h("mx2")] / 10_000 - 0.25) <= 0.02


def test_least_load_puts_the_lowest_load_first_after_refresh() -> None:
    s = setup("least-load")
    assert first(ask(s.engine)) == h("mx1")  # no readings: base order
    s.refresh(
        {h("mx1"): MemberFacts(load=0.9), h("mx2"): MemberFacts(load=0.2), h("mx3"): MemberFacts(load=0.6)}
    )
    for _ in range(3):
        assert [host for _, host in ranked(ask(s.engine))] == [h("mx2"), h("mx3"), h("mx1"), h("relay")]


# -- the answer around the MX RRset ------------------------------------------------------------


def test_pool_answer_keeps_additional_and_authority_of_a_static_answer() -> None:
    s = setup("round-robin")
    pooled = ask(s.engine)
    static_zone = ZONE.replace(
        "@        MX    10 mx1\n", "@ MX 10 mx1\n@ MX 20 mx2\n@ MX 30 mx3\n@ MX 40 relay\n"
    )
    static = ask(Engine(compile_table([zone_data(static_zone)])))
    assert pooled.rcode() == NOERROR and pooled.flags & dns.flags.AA
    assert rrsets(pooled.answer) == rrsets(static.answer)  # the first rotation is the base order
    assert rrsets(pooled.authority) == rrsets(static.authority)
    assert rrsets(pooled.additional) == rrsets(static.additional)
    assert pooled.find_rrset(pooled.authority, n(ORIGIN), dns.rdataclass.IN, NS)
    glue = {(r.name.to_text(), r.rdtype) for r in pooled.additional}
    for short in ("mx1", "mx2", "mx3", "relay"):
        assert (h(short), A) in glue and (h(short), AAAA) in glue


def test_every_rotation_keeps_the_additional_addresses() -> None:
    s = setup("round-robin")
    wanted = {(h(x), t) for x in ("mx1", "mx2", "mx3", "relay") for t in (A, AAAA)}
    for _ in range(3):
        reply = ask(s.engine)
        assert wanted <= {(r.name.to_text(), r.rdtype) for r in reply.additional}


def test_rewritten_ttl_is_the_pool_ttl() -> None:
    s = setup("round-robin", ttl=42)
    reply = ask(s.engine)
    assert mx_rrset(reply).ttl == 42
    assert all(r.ttl == 3600 for r in reply.additional)


# -- hint names ---------------------------------------------------------------------------------


def test_hint_name_answers_the_hint_order() -> None:
    s = setup("round-robin")
    qname = f"urgent._hint.{ORIGIN}"
    reply = ask(s.engine, qname)
    assert reply.rcode() == NOERROR and reply.flags & dns.flags.AA
    (rrset,) = reply.answer
    assert rrset.name == n(qname)
    assert ranked(reply, qname) == [(10, h("mx3")), (20, h("mx1"))]
    assert rrset.ttl == 30


def test_hint_name_is_case_insensitive_and_answers_with_the_query_case() -> None:
    s = setup("round-robin")
    reply = ask(s.engine, f"URGENT._Hint.{ORIGIN}")
    assert ranked(reply, f"urgent._hint.{ORIGIN}") == [(10, h("mx3")), (20, h("mx1"))]


def test_hint_parent_is_an_empty_non_terminal() -> None:
    s = setup("round-robin")
    reply = ask(s.engine, f"_hint.{ORIGIN}")
    assert reply.rcode() == NOERROR
    assert reply.answer == []
    assert reply.find_rrset(reply.authority, n(ORIGIN), dns.rdataclass.IN, SOA)


def test_unknown_hint_label_is_nxdomain() -> None:
    s = setup("round-robin")
    reply = ask(s.engine, f"bulk._hint.{ORIGIN}")
    assert reply.rcode() == NXDOMAIN
    assert reply.answer == []


def test_hint_name_drops_a_member_marked_down() -> None:
    s = setup("round-robin")
    s.refresh({h("mx3"): DOWN})
    assert ranked(ask(s.engine, f"urgent._hint.{ORIGIN}"), f"urgent._hint.{ORIGIN}") == [(10, h("mx1"))]


# -- client actions -----------------------------------------------------------------------------


def test_client_refuse() -> None:
    s = setup(client=[{"prefix": "127.0.0.2/32", "action": "refuse"}])
    assert ask(s.engine, addr=THERE).rcode() == REFUSED
    assert ranked(ask(s.engine, addr=HERE))


def test_client_drop() -> None:
    s = setup(client=[{"prefix": "127.0.0.2/32", "action": "drop"}])
    assert s.engine.handle(make_query(ORIGIN), THERE, False) is None
    assert ranked(ask(s.engine, addr=HERE))


def test_client_hint_answers_the_hint_order_at_the_pool_name() -> None:
    s = setup(client=[{"prefix": "127.0.0.2/32", "action": "hint", "hint": "urgent"}])
    for _ in range(4):
        assert ranked(ask(s.engine, addr=THERE)) == [(10, h("mx3")), (20, h("mx1"))]
    assert {first(ask(s.engine, addr=HERE)) for _ in range(3)} == {h("mx1"), h("mx2"), h("mx3")}


def test_client_longest_prefix_wins() -> None:
    s = setup(
        client=[
            {"prefix": "127.0.0.0/8", "action": "refuse"},
            {"prefix": "127.0.0.2/32", "action": "hint", "hint": "urgent"},
            {"prefix": "127.0.0.0/30", "action": "answer"},
        ]
    )
    assert ranked(ask(s.engine, addr=THERE)) == [(10, h("mx3")), (20, h("mx1"))]
    assert ranked(ask(s.engine, addr=HERE))[-1] == (40, h("relay"))
    assert ask(s.engine, addr=("127.0.0.9", 1)).rcode() == REFUSED


def test_client_actions_leave_other_names_alone() -> None:
    s = setup(client=[{"prefix": "127.0.0.2/32", "action": "refuse"}])
    reply = ask(s.engine, h("mx1"), "A", addr=THERE)
    assert reply.rcode() == NOERROR and reply.answer


def test_client_action_applies_on_the_slow_path_too() -> None:
    """A query with an EDNS option takes the slow path; the client action still holds."""
    s = setup(client=[{"prefix": "127.0.0.2/32", "action": "refuse"}])
    cookie = [dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 8)]
    assert ask(s.engine, addr=THERE, use_edns=0, options=cookie).rcode() == REFUSED
    assert s.engine.stats["slow"] == 1


def test_client_refuse_holds_for_qclass_any() -> None:
    s = setup(client=[{"prefix": "127.0.0.2/32", "action": "refuse"}])
    reply = ask(s.engine, addr=THERE, rdclass="ANY")
    assert reply.rcode() == REFUSED


# -- name actions -------------------------------------------------------------------------------


def test_null_mx_answers_zero_dot() -> None:
    """RFC 7505: one MX with preference 0 and exchange '.' says the domain takes no mail."""
    s = setup(name=[{"name": h("nomail"), "action": "null-mx"}])
    reply = ask(s.engine, h("nomail"))
    assert reply.rcode() == NOERROR
    assert ranked(reply, h("nomail")) == [(0, ".")]


def test_null_mx_keeps_the_names_other_records() -> None:
    s = setup(name=[{"name": h("nomail"), "action": "null-mx"}])
    a = ask(s.engine, h("nomail"), "A")
    txt = ask(s.engine, h("nomail"), "TXT")
    assert [rd.to_text() for rd in a.answer[0]] == ["192.0.2.80"]
    assert [rd.to_text() for rd in txt.answer[0]] == ['"keep me"']


BLOCKED_TYPES = [
    "A",
    "MX",
    "TXT",
    "AAAA",
    "ANY",
]


@pytest.mark.parametrize("rdtype", BLOCKED_TYPES)
def test_name_action_nxdomain_for_every_type(rdtype: str) -> None:
    s = setup(name=[{"name": h("gone"), "action": "nxdomain"}])
    reply = ask(s.engine, h("gone"), rdtype)
    assert reply.rcode() == NXDOMAIN
    assert reply.answer == []


@pytest.mark.parametrize("rdtype", BLOCKED_TYPES)
def test_name_action_refuse_for_every_type(rdtype: str) -> None:
    s = setup(name=[{"name": h("secret"), "action": "refuse"}])
    reply = ask(s.engine, h("secret"), rdtype)
    assert reply.rcode() == REFUSED
    assert reply.answer == []


# -- facts change what is served ----------------------------------------------------------------


def test_member_marked_down_leaves_the_very_next_answer() -> None:
    s = setup("round-robin")
    assert h("mx2") in {host for _, host in ranked(ask(s.engine))}
    s.refresh({h("mx2"): DOWN})
    for _ in range(4):
        hosts = [host for _, host in ranked(ask(s.engine))]
        assert h("mx2") not in hosts
        assert hosts[-1] == h("relay")


def test_member_back_up_returns() -> None:
    s = setup("round-robin")
    s.refresh({h("mx2"): DOWN})
    s.refresh({})
    assert Counter(firsts(s.engine, 3)) == {h("mx1"): 1, h("mx2"): 1, h("mx3"): 1}


def test_all_primaries_down_answers_the_relay_first() -> None:
    s = setup("round-robin")
    s.refresh({h("mx1"): DOWN, h("mx2"): DOWN, h("mx3"): DOWN})
    assert ranked(ask(s.engine)) == [(10, h("relay"))]


def test_everything_down_fails_open_with_base_preferences() -> None:
    s = setup("round-robin")
    s.refresh({h(x): DOWN for x in ("mx1", "mx2", "mx3", "relay")})
    for _ in range(3):
        assert ranked(ask(s.engine)) == [(10, h("mx1")), (20, h("mx2")), (30, h("mx3")), (90, h("relay"))]


def test_first_counts_match_what_was_answered() -> None:
    s = setup("round-robin")
    answered = Counter(firsts(s.engine, 7))
    s.refresh({h("mx1"): DOWN})
    answered.update(firsts(s.engine, 5))
    cookie = [dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x02" * 8)]
    answered.update(firsts(s.engine, 4, use_edns=0, options=cookie))  # the slow path counts too
    assert s.engine.stats["slow"] == 4
    assert s.selector.first_counts() == dict(answered)
    assert sum(s.selector.first_counts().values()) == 16


BIG = 12
BIG_ZONE = ZONE + "".join(
    f"big{i} A 192.0.2.{100 + i}\nbig{i} AAAA 2001:db8::{100 + i:x}\n" for i in range(BIG)
)


def test_big_pool_over_udp_without_edns_rotates_and_counts_once() -> None:
    s = setup(
        "round-robin",
        members(*((f"big{i}", 10 + i) for i in range(BIG))),
        hint=(),
        zones=[zone_data(BIG_ZONE)],
    )
    raw = s.engine.handle(make_query(ORIGIN), HERE, False)
    assert raw is not None and len(raw) <= 512
    seq = [first(ask(s.engine)) for _ in range(BIG - 1)]
    seq.insert(0, first(dns.message.from_wire(raw)))
    assert Counter(seq) == {h(f"big{i}"): 1 for i in range(BIG)}
    assert sum(s.selector.first_counts().values()) == BIG


def test_big_pool_over_edns_rotates_and_counts_once() -> None:
    s = setup(
        "round-robin",
        members(*((f"big{i}", 10 + i) for i in range(BIG))),
        hint=(),
        zones=[zone_data(BIG_ZONE)],
    )
    seq = firsts(s.engine, BIG, use_edns=0, payload=1232)
    assert Counter(seq) == {h(f"big{i}"): 1 for i in range(BIG)}
    assert sum(s.selector.first_counts().values()) == BIG


# -- configuration edges ------------------------------------------------------------------------


def test_pool_whose_zone_is_not_served_is_ignored() -> None:
    s = setup(
        "round-robin",
        extra_pools=[
            {
                "name": "elsewhere.test.",
                "member": [{"host": "mx.elsewhere.test."}],
                "hint": [{"label": "urgent", "order": ["mx.elsewhere.test."]}],
            }
        ],
    )
    assert set(s.plans) == {ORIGIN}
    assert (n("elsewhere.test."), MX) not in s.table.selectors
    assert ask(s.engine, "elsewhere.test.").rcode() == REFUSED
    assert ask(s.engine, "urgent._hint.elsewhere.test.").rcode() == REFUSED
    assert ranked(ask(s.engine))

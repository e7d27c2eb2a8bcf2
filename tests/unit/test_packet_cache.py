"""The engine's UDP packet cache (PowerDNS's packet cache): a repeated question is answered
from the reply kept for its bytes, and the answer is the one the table gives, always.

Plain calls on `Engine.handle`; queries built and replies read with dnspython.
"""

from __future__ import annotations

import random
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from dynmx.answer import engine as engine_module
from dynmx.answer.acl import ZoneGate
from dynmx.answer.engine import Engine
from dynmx.answer.rrl import RateLimiter, RrlSettings
from dynmx.answer.zoneset import ZoneData
from dynmx.config import from_mapping
from dynmx.policy.served import build_table, plan_all, refresh_pool
from dynmx.policy.strategies import MemberFacts

ORIGIN = "example.test."
HERE = ("127.0.0.1", 5300)
AWAY = ("192.0.2.77", 5300)
ZONE = f"""\
$ORIGIN {ORIGIN}
$TTL 3600
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
ns1   A   192.0.2.53
www   A   192.0.2.80
mx1   A   192.0.2.1
mx2   A   192.0.2.2
mx3   A   192.0.2.3
pool  MX  10 mx1
big   TXT "{"a" * 200}"
big   TXT "{"b" * 200}"
big   TXT "{"c" * 200}"
"""
POOL = {
    "name": f"pool.{ORIGIN}",
    "strategy": "round-robin",
    "ttl": 30,
    "member": [{"host": f"mx{i}.{ORIGIN}", "preference": 10 * i, "probe": "none"} for i in (1, 2, 3)],
}


def _zone(text: str = ZONE) -> ZoneData:
    return ZoneData(dns.name.from_text(ORIGIN), dns.zone.from_text(text, origin=ORIGIN, relativize=False))


def _build(text: str = ZONE, client: list[dict[str, Any]] | None = None) -> tuple[Engine, Any, Any]:
    config = from_mapping({"pool": [POOL], "client": client or []})
    plans = {p.name: plan_all(p, {}) for p in config.pool}
    table = build_table(config, [_zone(text)], lambda p: plans[p.name], rng=random.Random(7).random)
    return Engine(table), table, config


def _query(name: str, rdtype: str = "A", qid: int = 1, **kwargs: Any) -> bytes:
    msg = dns.message.make_query(name, rdtype, id=qid, **kwargs)
    msg.flags &= ~dns.flags.RD
    return msg.to_wire()


def _ask(engine: Engine, wire: bytes, addr: object = HERE, tcp: bool = False) -> dns.message.Message:
    reply = engine.handle(wire, addr, tcp)
    assert isinstance(reply, bytes), f"no reply: {reply!r}"
    return dns.message.from_wire(reply)


def _first_exchange(message: dns.message.Message) -> str:
    (rrset,) = message.answer
    return str(min(rrset, key=lambda mx: mx.preference).exchange)


def test_a_repeated_question_gets_the_uncached_reply_with_its_own_id() -> None:
    warm, _, _ = _build()
    cold, _, _ = _build()
    warm.handle(_query("WwW.Example.TEST.", qid=1), HERE, False)
    again = warm.handle(_query("WwW.Example.TEST.", qid=777), HERE, False)
    assert again == cold.handle(_query("WwW.Example.TEST.", qid=777), HERE, False)
    assert dns.message.from_wire(again).id == 777  # type: ignore[arg-type]


def test_a_question_asked_in_other_case_gets_its_own_case_back_rfc_4343() -> None:
    engine, _, _ = _build()
    engine.handle(_query("www.example.test."), HERE, False)
    reply = _ask(engine, _query("WWW.EXAMPLE.TEST."))
    assert reply.question[0].name.to_text() == "WWW.EXAMPLE.TEST."


def test_a_query_with_do_and_one_without_edns_are_kept_apart_rfc_6891() -> None:
    engine, _, _ = _build()
    with_opt = _ask(engine, _query("www.example.test.", use_edns=0, want_dnssec=True))
    without = _ask(engine, _query("www.example.test."))
    assert with_opt.edns == 0 and with_opt.ednsflags & dns.flags.DO
    assert without.edns == -1


def test_a_cached_pool_question_still_rotates_per_query() -> None:
    engine, _, _ = _build()
    firsts = [_first_exchange(_ask(engine, _query("pool.example.test.", "MX", qid=i))) for i in range(6)]
    assert len(set(firsts[:3])) == 3 and firsts[3:] == firsts[:3]


def test_a_cached_pool_question_gets_the_pools_new_generation() -> None:
    engine, table, config = _build()
    for i in range(3):
        engine.handle(_query("pool.example.test.", "MX", qid=i), HERE, False)
    refresh_pool(table, plan_all(config.pool[0], {f"mx1.{ORIGIN}": MemberFacts(up=False)}))
    firsts = {_first_exchange(_ask(engine, _query("pool.example.test.", "MX", qid=i))) for i in range(6)}
    assert firsts == {f"mx2.{ORIGIN}", f"mx3.{ORIGIN}"}


def test_a_client_action_by_source_holds_for_a_cached_pool_question() -> None:
    engine, _, _ = _build(client=[{"prefix": "192.0.2.0/24", "action": "refuse"}])
    wire = _query("pool.example.test.", "MX")
    assert _ask(engine, wire, HERE).rcode() == dns.rcode.NOERROR
    assert _ask(engine, wire, AWAY).rcode() == dns.rcode.REFUSED
    assert _ask(engine, wire, HERE).rcode() == dns.rcode.NOERROR


def test_a_swapped_table_answers_a_cached_question() -> None:
    engine, _, _ = _build()
    engine.handle(_query("www.example.test."), HERE, False)
    _, edited, _ = _build(ZONE.replace("192.0.2.80", "192.0.2.81"))
    engine.swap(edited)
    (rrset,) = _ask(engine, _query("www.example.test.")).answer
    assert [r.address for r in rrset] == ["192.0.2.81"]


def test_a_zone_gate_set_after_a_question_was_cached_refuses_the_sources_it_names() -> None:
    engine, _, _ = _build()
    engine.handle(_query("www.example.test."), AWAY, False)
    engine.gate = ZoneGate({dns.name.from_text(ORIGIN).to_digestable(): []})  # nobody may ask
    assert _ask(engine, _query("www.example.test."), AWAY).rcode() == dns.rcode.REFUSED


def test_every_query_for_a_selfcheck_name_is_told() -> None:
    engine, _, _ = _build()
    seen: list[bytes] = []
    engine.on_selfcheck = seen.append
    for qid in (1, 2):
        engine.handle(_query("_selfcheck.www.example.test.", qid=qid), HERE, False)
    assert len(seen) == 2


def test_over_tcp_a_question_cached_truncated_over_udp_gets_the_whole_answer_rfc_7766() -> None:
    engine, _, _ = _build()
    wire = _query("big.example.test.", "TXT")
    assert _ask(engine, wire).flags & dns.flags.TC
    assert _ask(engine, wire).flags & dns.flags.TC
    whole = _ask(engine, wire, tcp=True)
    assert not whole.flags & dns.flags.TC and len(whole.answer[0]) == 3


def test_rate_limiting_counts_replies_from_the_cache() -> None:
    engine, _, _ = _build()
    engine.rrl = RateLimiter(RrlSettings(rate=1, slip=0))
    wire = _query("www.example.test.")
    assert engine.handle(wire, AWAY, False) is not None
    assert engine.handle(wire, AWAY, False) is None  # the bucket is empty: dropped
    assert engine.handle(wire, HERE, False) is not None  # loopback is exempt


def test_the_cache_keeps_at_most_its_bound_of_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "PACKET_CACHE", 8)
    engine, _, _ = _build()
    for index in range(50):
        engine.handle(_query(f"missing{index}.example.test."), HERE, False)
        assert len(engine._packets) <= 8
    assert _ask(engine, _query("missing3.example.test.")).rcode() == dns.rcode.NXDOMAIN


def test_once_full_the_cache_keeps_only_some_new_questions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A mix spread over more questions than the cache holds: after it first fills, about one
    new question in `ADMIT_WHEN_FULL`'s inverse is kept, not each (each would be a dict insert
    and a reply copied for nothing); a question asked again and again is still kept."""
    monkeypatch.setattr(engine_module, "PACKET_CACHE", 100_000)
    engine, _, _ = _build()
    engine._admit_all = False  # as after the cache first filled
    for index in range(800):
        engine.handle(_query(f"missing{index}.example.test."), HERE, False)
    assert 40 <= len(engine._packets) <= 200  # 1/8 of 800 is 100
    wire = _query("www.example.test.")
    for _ in range(200):  # bounded: kept after 8 tries on average
        engine.handle(wire, HERE, False)
        if wire[2:] in engine._packets:
            break
    assert wire[2:] in engine._packets


def test_a_cache_that_filled_keeps_every_new_question_again_after_a_swap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine_module, "PACKET_CACHE", 8)
    engine, table, _ = _build()
    for index in range(9):
        engine.handle(_query(f"missing{index}.example.test."), HERE, False)
    assert not engine._admit_all
    engine.swap(table)
    for index in range(5):
        engine.handle(_query(f"other{index}.example.test."), HERE, False)
    assert len(engine._packets) == 5


def test_the_memo_the_udp_loop_reads_holds_each_cached_reply_after_its_id() -> None:
    engine, _, _ = _build()
    wire = _query("www.example.test.", qid=0x1234)
    reply = engine.handle(wire, HERE, False)
    found = engine.udp_memo()
    assert found is not None and isinstance(reply, bytes)
    memo, hosts = found
    assert memo[wire[2:]] == reply[2:]
    assert hosts is None  # without RRL every source may be answered from it


def test_the_memo_names_only_the_sources_rrl_exempts() -> None:
    engine, _, _ = _build()
    engine.rrl = RateLimiter(RrlSettings(rate=1, slip=0))
    engine.handle(_query("www.example.test."), HERE, False)
    engine.handle(_query("www.example.test."), AWAY, False)
    found = engine.udp_memo()
    assert found is not None and found[1] == {HERE[0]}


def test_no_memo_is_offered_while_a_zone_gate_is_set() -> None:
    """Its answers depend on the source: every query goes through `handle`."""
    engine, _, _ = _build()
    engine.gate = ZoneGate({dns.name.from_text(ORIGIN).to_digestable(): []})
    assert engine.udp_memo() is None


def test_a_swap_offers_a_new_empty_memo() -> None:
    engine, table, _ = _build()
    engine.handle(_query("www.example.test."), HERE, False)
    engine.swap(table)
    found = engine.udp_memo()
    assert found is not None and found[0] == {}

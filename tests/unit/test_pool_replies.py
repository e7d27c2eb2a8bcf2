"""A cached pool question's replies (`dynmx.answer.picked.PoolReplies`) by plain calls: the
same answers, counter and hit counts as the selector's own `pick`, with the reply per
variant joined once."""

from __future__ import annotations

import ipaddress
import random

import dns.message

from dynmx.answer.clients import ClientAction, ClientRules
from dynmx.answer.dynamic import FIXED, ROTATE, WEIGHTED, Selector, SelectorState
from dynmx.answer.picked import PoolReplies
from dynmx.wire.query import parse_query
from dynmx.wire.response import FLAG_TC, OPT_PLAIN, Entry, RRsetSpan, assemble

HERE = ("127.0.0.1", 5300)
AWAY = ("192.0.2.9", 5300)
QUERY = dns.message.make_query("pool.example.test.", "MX", id=0).to_wire()
QUESTION = QUERY[12:]


def _entry(body: bytes) -> Entry:
    return Entry(rcode=0, authoritative=True, body=body, spans=(RRsetSpan(len(body), 0, 1, True),))


def _state(*bodies: bytes, mode: int = ROTATE, weights: tuple[float, ...] = ()) -> SelectorState:
    cumulative = tuple(sum(weights[: i + 1]) for i in range(len(weights)))
    return SelectorState(
        variants=tuple(_entry(body) for body in bodies),
        firsts=tuple(body.decode() for body in bodies),
        mode=mode,
        cumulative=cumulative,
        hints={},
        hits=[0] * len(bodies),
    )


def _twins(state: SelectorState, rules: ClientRules | None = None) -> tuple[Selector, Selector]:
    """Two selectors on equal generations: one asked through PoolReplies, one by `pick`."""
    copy = SelectorState(
        state.variants, state.firsts, state.mode, state.cumulative, state.hints, [0] * len(state.variants)
    )
    return (
        Selector("pool", state, rules, random.Random(5).random),
        Selector("pool", copy, rules, random.Random(5).random),
    )


def _replies(selector: Selector, limit: int = 512, opt: bytes = b"") -> PoolReplies:
    return PoolReplies(selector, QUERY[2:], QUERY[2] & 1, opt, QUESTION, limit)


def _reply(entry: Entry, opt: bytes = b"", rd: int = 1) -> bytes:
    head = entry.head_opt[rd] if opt else entry.head[rd]
    return head + QUESTION + entry.body + opt


def test_a_rotation_answers_in_the_selectors_order_with_its_counter_and_hit_counts() -> None:
    cached, asked = _twins(_state(b"a", b"b", b"c"))
    replies = _replies(cached)
    for _ in range(7):
        picked = asked.pick(HERE)
        assert picked is not None
        assert replies.reply(HERE) == _reply(picked)
    assert cached.counter == asked.counter
    assert cached.state.hits == asked.state.hits == [3, 2, 2]


def test_a_rotation_continues_from_the_counter_other_queries_moved() -> None:
    """TCP and uncached questions pick from the same selector: one rotation per pool."""
    selector = Selector("pool", _state(b"a", b"b", b"c"), None, random.Random(5).random)
    replies = _replies(selector)
    assert replies.reply(HERE) == _reply(selector.state.variants[0])
    selector.pick(HERE)  # b, through another path
    assert replies.reply(HERE) == _reply(selector.state.variants[2])


def test_a_new_generation_answers_from_the_next_query() -> None:
    """A health change replaces the selector's generation; no cached reply outlives it."""
    selector = Selector("pool", _state(b"a", b"b"), None, random.Random(5).random)
    replies = _replies(selector)
    replies.reply(HERE)
    selector.replace(_state(b"x", b"y"))
    assert replies.reply(HERE) == _reply(selector.state.variants[1])  # the counter stood at 1
    assert selector.first_counts() == {"a": 1, "b": 0, "x": 0, "y": 1}


def test_a_single_ordering_is_always_first_and_leaves_the_counter_as_pick_does() -> None:
    cached, asked = _twins(_state(b"only", mode=FIXED))
    replies = _replies(cached)
    for _ in range(3):
        asked.pick(HERE)
        assert replies.reply(HERE) == _reply(cached.state.variants[0])
    assert cached.counter == asked.counter == 0
    assert cached.state.hits == asked.state.hits == [3]


def test_a_weighted_pool_draws_as_the_selector_does() -> None:
    cached, asked = _twins(_state(b"a", b"b", b"c", mode=WEIGHTED, weights=(1.0, 2.0, 3.0)))
    replies = _replies(cached)
    for _ in range(20):
        picked = asked.pick(HERE)
        assert picked is not None
        assert replies.reply(HERE) == _reply(picked)
    assert cached.state.hits == asked.state.hits


def test_a_client_action_by_source_holds_drop_for_its_prefix_only() -> None:
    rules = ClientRules([ClientAction(ipaddress.ip_network("192.0.2.0/24"), "drop")])
    selector = Selector("pool", _state(b"a", b"b"), rules, random.Random(5).random)
    replies = _replies(selector)
    assert replies.reply(AWAY) is None
    assert replies.reply(HERE) == _reply(selector.state.variants[0])


def test_the_reply_carries_the_opt_record_and_its_count_rfc_6891() -> None:
    selector = Selector("pool", _state(b"a"), None, random.Random(5).random)
    assert _replies(selector, opt=OPT_PLAIN).reply(HERE) == _reply(selector.state.variants[0], OPT_PLAIN)


def test_a_variant_too_big_for_the_client_is_truncated_as_assemble_does_rfc_2181_9() -> None:
    selector = Selector("pool", _state(b"a" * 600, b"b"), None, random.Random(5).random)
    replies = _replies(selector, limit=512)
    tail = replies.reply(HERE)
    assert tail == assemble(QUERY, parse_query(QUERY), selector.state.variants[0], 512)[2:]
    assert tail is not None and (tail[0] << 8) & FLAG_TC
    assert replies.reply(HERE) == _reply(selector.state.variants[1])  # the rotation goes on
    assert selector.counter == 2

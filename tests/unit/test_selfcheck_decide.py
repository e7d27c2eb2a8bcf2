"""The self-check decision table: plain calls for each rule, hypothesis for what must never happen."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.selfcheck.decide import Action, Decider, Decision

INTERVAL = 300.0
CAP = 3600.0
OURS = "198.51.100.7"
NEW = "203.0.113.9"
PUBLISHED = frozenset({OURS})


def decider() -> Decider:
    return Decider(interval=INTERVAL, backoff_cap=CAP)


def lost(d: Decider, discovered: str | None, now: float, published: frozenset[str] = PUBLISHED) -> Decision:
    return d.observe(False, published, discovered, now, why="" if discovered else "no quorum")


# -- one rule each -----------------------------------------------------------------------------


def test_probe_arriving_is_ok_at_the_normal_interval() -> None:
    decision = decider().observe(True, PUBLISHED, None, 0.0)
    assert (decision.action, decision.next_round_in, decision.address) == (Action.OK, INTERVAL, None)


def test_first_mismatch_is_only_pending() -> None:
    decision = lost(decider(), NEW, 0.0)
    assert decision.action is Action.PENDING
    assert NEW in decision.message and OURS in decision.message


def test_same_mismatch_on_the_next_round_updates_to_the_discovered_address() -> None:
    d = decider()
    lost(d, NEW, 0.0)
    decision = lost(d, NEW, INTERVAL)
    assert (decision.action, decision.address, decision.log) == (Action.UPDATE, NEW, True)


def test_a_different_mismatch_restarts_the_confirmation() -> None:
    d = decider()
    lost(d, NEW, 0.0)
    assert lost(d, "203.0.113.10", INTERVAL).action is Action.PENDING


def test_a_failed_discovery_between_mismatches_restarts_the_confirmation() -> None:
    d = decider()
    lost(d, NEW, 0.0)
    lost(d, None, INTERVAL)
    assert lost(d, NEW, 2 * INTERVAL).action is Action.PENDING


def test_mismatches_too_far_apart_are_not_consecutive() -> None:
    d = decider()
    lost(d, NEW, 0.0)
    assert lost(d, NEW, 10 * INTERVAL).action is Action.PENDING


def test_discovered_address_already_published_is_hairpin() -> None:
    decision = lost(decider(), OURS, 0.0)
    assert decision.action is Action.HAIRPIN
    assert decision.message.startswith("hairpin/firewall: probe lost but address correct")


def test_hairpin_is_logged_once_while_it_lasts() -> None:
    d = decider()
    logged = [lost(d, OURS, n * INTERVAL).log for n in range(4)]
    assert logged == [True, False, False, False]


def test_hairpin_is_logged_again_after_the_situation_changed() -> None:
    d = decider()
    lost(d, OURS, 0.0)
    d.observe(True, PUBLISHED, None, INTERVAL)
    assert lost(d, OURS, 2 * INTERVAL).log is True


def test_failed_discovery_backs_off_doubling_up_to_the_cap() -> None:
    d = decider()
    waits = [lost(d, None, float(n)).next_round_in for n in range(6)]
    assert waits == [600.0, 1200.0, 2400.0, CAP, CAP, CAP]


def test_backoff_warning_is_logged_once_per_reason() -> None:
    d = decider()
    logs = [d.observe(False, PUBLISHED, None, float(n), why="no quorum").log for n in range(3)]
    logs.append(d.observe(False, PUBLISHED, None, 3.0, why="sources disagree").log)
    assert logs == [True, False, False, True]


def test_backoff_resets_once_discovery_works_again() -> None:
    d = decider()
    lost(d, None, 0.0)
    lost(d, None, 1.0)
    assert lost(d, OURS, 2.0).next_round_in == INTERVAL
    assert lost(d, None, 3.0).next_round_in == 2 * INTERVAL


def test_after_a_reported_update_a_lagging_resolver_does_not_cause_a_second_update() -> None:
    d = decider()
    lost(d, NEW, 0.0)
    lost(d, NEW, INTERVAL)
    d.updated(NEW)
    decision = lost(d, NEW, 2 * INTERVAL)
    assert decision.action is Action.PENDING
    assert "waiting" in decision.message


def test_after_an_update_the_probe_arriving_is_ok_and_asks_for_nothing() -> None:
    d = decider()
    lost(d, NEW, 0.0)
    lost(d, NEW, INTERVAL)
    d.updated(NEW)
    decision = d.observe(True, frozenset({NEW}), None, 2 * INTERVAL)
    assert (decision.action, decision.address) == (Action.OK, None)


def test_an_update_not_reported_done_is_decided_again_next_round() -> None:
    d = decider()
    lost(d, NEW, 0.0)
    lost(d, NEW, INTERVAL)  # the repair failed: updated() is not called
    assert [lost(d, NEW, n * INTERVAL).action for n in (2, 3, 4)] == [Action.UPDATE] * 3


def test_an_update_not_visible_after_the_settle_time_is_confirmed_and_made_again() -> None:
    d = Decider(interval=INTERVAL, backoff_cap=CAP, settle=1000.0)
    lost(d, NEW, 0.0)
    lost(d, NEW, INTERVAL)
    d.updated(NEW)
    actions = [lost(d, NEW, INTERVAL + t).action for t in (2000.0, 2300.0)]
    assert actions == [Action.PENDING, Action.UPDATE]


def test_unusable_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        Decider(interval=0)
    with pytest.raises(ValueError, match="backoff_cap"):
        Decider(interval=300, backoff_cap=100)


def test_decision_as_json_names_the_action() -> None:
    decision = lost(decider(), OURS, 5.0)
    assert decision.to_json()["action"] == "hairpin"
    assert decision.to_json()["at"] == 5.0


# -- properties over any sequence of rounds ------------------------------------------------------

ADDRESSES = st.sampled_from(["192.0.2.1", "192.0.2.2", "192.0.2.3"])
Round = tuple[bool, frozenset[str], str | None, float, bool]
Facts = tuple[bool, frozenset[str], str | None]  # arrived, published, discovered
ROUND = st.tuples(
    st.booleans(),  # arrived
    st.frozensets(ADDRESSES, max_size=2),  # published
    st.none() | ADDRESSES,  # discovered
    st.floats(min_value=0.0, max_value=5000.0),  # seconds since the previous round
    st.booleans(),  # whether an UPDATE's repair succeeds
)


def play(
    rounds: list[Round],
) -> list[tuple[Facts, Decision]]:
    d = decider()
    now = 0.0
    seen: list[tuple[Facts, Decision]] = []
    for arrived, published, discovered, gap, repaired in rounds:
        now += gap
        decision = d.observe(arrived, published, discovered, now, why="x")
        if decision.action is Action.UPDATE and repaired and decision.address:
            d.updated(decision.address)
        seen.append(((arrived, published, discovered), decision))
    return seen


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUND, min_size=1, max_size=12))
def test_never_update_on_the_first_round(
    rounds: list[Round],
) -> None:
    assert play(rounds[:1])[0][1].action is not Action.UPDATE


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUND, min_size=1, max_size=12))
def test_never_update_to_an_address_already_published(
    rounds: list[Round],
) -> None:
    for (arrived, published, discovered), decision in play(rounds):
        if decision.action is Action.UPDATE:
            assert not arrived and discovered is not None and discovered not in published
            assert decision.address == discovered


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUND, min_size=2, max_size=12))
def test_every_update_follows_the_same_mismatch_on_the_round_before(
    rounds: list[Round],
) -> None:
    seen = play(rounds)
    for (before, _), (_, decision) in itertools.pairwise(seen):
        if decision.action is Action.UPDATE:
            arrived, published, discovered = before
            assert not arrived and discovered == decision.address and discovered not in published


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUND, min_size=1, max_size=12))
def test_next_round_is_never_sooner_than_the_interval_nor_later_than_the_cap(
    rounds: list[Round],
) -> None:
    for _, decision in play(rounds):
        assert INTERVAL <= decision.next_round_in <= CAP
        assert (decision.next_round_in > INTERVAL) == (decision.action is Action.BACKOFF)


@settings(max_examples=300, deadline=None)
@given(st.lists(ROUND, min_size=1, max_size=12))
def test_an_arriving_probe_is_always_ok(
    rounds: list[Round],
) -> None:
    for (arrived, _, _), decision in play(rounds):
        assert (decision.action is Action.OK) == arrived


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=20), ADDRESSES)
def test_a_lasting_hairpin_logs_exactly_once(rounds: int, address: str) -> None:
    d = decider()
    logs = [d.observe(False, frozenset({address}), address, n * INTERVAL).log for n in range(rounds)]
    assert logs.count(True) == 1

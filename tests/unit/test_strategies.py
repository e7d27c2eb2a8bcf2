"""The pool strategies as pure functions: `plan_pool(pool, facts)` and `plan_hint(pool, hint, facts)`.

One behaviour per test, then hypothesis properties over random pools and facts. A sender
tries the lowest preference first and picks at random among equal preferences (RFC 5321
section 5.1), so an ordering only means something when its preferences strictly increase;
the dynamic strategies number their orderings 10, 20, 30, ... for that reason.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dynmx.config_pools import HintConfig, MemberConfig, PoolConfig
from dynmx.policy.strategies import MemberFacts, Mode, Plan, plan_hint, plan_pool

STRATEGIES = ("static", "round-robin", "weighted", "least-load")
DOWN = MemberFacts(up=False)
DRAINED = MemberFacts(drained=True)


def host(short: str) -> str:
    return f"{short}.pool.test."


def member(short: str, preference: int = 10, role: str = "primary", weight: float = 1.0) -> MemberConfig:
    return MemberConfig(host=host(short), preference=preference, role=role, weight=weight)


def pool(
    strategy: str, *members: MemberConfig, tie_band: float = 0.05, hints: tuple[HintConfig, ...] = ()
) -> PoolConfig:
    return PoolConfig(name="pool.test.", strategy=strategy, tie_band=tie_band, member=members, hint=hints)


def hosts(ordering: tuple[tuple[str, int], ...]) -> list[str]:
    return [h for h, _ in ordering]


def prefs(ordering: tuple[tuple[str, int], ...]) -> list[int]:
    return [p for _, p in ordering]


def three_and_relay(strategy: str) -> PoolConfig:
    return pool(
        strategy,
        member("a", 10),
        member("b", 20),
        member("c", 30),
        member("relay", 5, role="relay"),
    )


# -- static ------------------------------------------------------------------------------


def test_static_keeps_configured_preferences() -> None:
    plan = plan_pool(pool("static", member("b", 17), member("a", 5), member("c", 40)), {})
    assert plan == Plan(Mode.FIXED, (((host("a"), 5), (host("b"), 17), (host("c"), 40)),))


def test_static_puts_relays_after_every_primary() -> None:
    """A relay configured below the primaries still ranks after them (RFC 5321 5.1: lower = first)."""
    plan = plan_pool(three_and_relay("static"), {})
    (ordering,) = plan.orderings
    assert hosts(ordering) == [host("a"), host("b"), host("c"), host("relay")]
    assert ordering[-1][1] > ordering[-2][1]
    assert prefs(ordering)[:3] == [10, 20, 30]


def test_static_keeps_a_relay_preference_already_after_the_primaries() -> None:
    plan = plan_pool(pool("static", member("a", 10), member("relay", 90, role="relay")), {})
    assert plan.orderings == (((host("a"), 10), (host("relay"), 90)),)


def test_static_relays_keep_their_relative_order() -> None:
    plan = plan_pool(
        pool("static", member("a", 10), member("b", 20), member("r1", 5, "relay"), member("r2", 6, "relay")),
        {},
    )
    (ordering,) = plan.orderings
    assert hosts(ordering) == [host("a"), host("b"), host("r1"), host("r2")]
    assert prefs(ordering)[2] < prefs(ordering)[3]


# -- round-robin -------------------------------------------------------------------------


def test_round_robin_has_one_ordering_per_primary() -> None:
    plan = plan_pool(three_and_relay("round-robin"), {})
    assert plan.mode is Mode.ROTATE
    assert len(plan.orderings) == 3


def test_round_robin_puts_each_primary_first_exactly_once() -> None:
    plan = plan_pool(three_and_relay("round-robin"), {})
    assert Counter(plan.firsts) == Counter([host("a"), host("b"), host("c")])


def test_round_robin_orderings_are_rotations_of_the_base_order() -> None:
    plan = plan_pool(three_and_relay("round-robin"), {})
    primaries = [hosts(o)[:3] for o in plan.orderings]
    assert primaries == [
        [host("a"), host("b"), host("c")],
        [host("b"), host("c"), host("a")],
        [host("c"), host("a"), host("b")],
    ]


def test_round_robin_puts_relays_last() -> None:
    plan = plan_pool(three_and_relay("round-robin"), {})
    assert all(hosts(o)[-1] == host("relay") for o in plan.orderings)


def test_round_robin_numbers_preferences_by_ten() -> None:
    """Distinct preferences, so the first host is the first choice (RFC 5321 5.1)."""
    plan = plan_pool(three_and_relay("round-robin"), {})
    assert all(prefs(o) == [10, 20, 30, 40] for o in plan.orderings)


def test_round_robin_with_one_eligible_primary_is_fixed() -> None:
    plan = plan_pool(three_and_relay("round-robin"), {host("a"): DOWN, host("b"): DOWN})
    assert plan == Plan(Mode.FIXED, (((host("c"), 10), (host("relay"), 20)),))


# -- weighted ----------------------------------------------------------------------------


def test_weighted_weights_line_up_with_orderings() -> None:
    plan = plan_pool(
        pool("weighted", member("a", 10, weight=3), member("b", 20, weight=1), member("c", 30, weight=2)), {}
    )
    assert plan.mode is Mode.WEIGHTED
    assert len(plan.weights) == len(plan.orderings)
    assert dict(zip(plan.firsts, plan.weights, strict=True)) == {
        host("a"): 3.0,
        host("b"): 1.0,
        host("c"): 2.0,
    }


def test_weighted_rest_follows_the_base_order_then_relays() -> None:
    plan = plan_pool(
        pool("weighted", member("a", 10, weight=1), member("b", 20, weight=1), member("r", 1, "relay")), {}
    )
    assert [hosts(o) for o in plan.orderings] == [
        [host("a"), host("b"), host("r")],
        [host("b"), host("a"), host("r")],
    ]
    assert all(prefs(o) == [10, 20, 30] for o in plan.orderings)


def test_weighted_zero_weight_primary_is_never_first_but_listed() -> None:
    plan = plan_pool(
        pool("weighted", member("a", 10, weight=0), member("b", 20, weight=2), member("c", 30, weight=1)), {}
    )
    assert host("a") not in plan.firsts
    assert all(host("a") in hosts(o) for o in plan.orderings)
    assert plan.weights == (2.0, 1.0)


def test_weighted_zero_weight_primaries_share_first_place_when_the_weighted_are_down() -> None:
    plan = plan_pool(
        pool("weighted", member("a", 10, weight=0), member("b", 20, weight=0), member("c", 30, weight=5)),
        {host("c"): DOWN},
    )
    assert plan.mode is Mode.WEIGHTED
    assert plan.firsts == (host("a"), host("b"))
    assert plan.weights == (1.0, 1.0)


# -- least-load --------------------------------------------------------------------------


def loads(**values: float) -> dict[str, MemberFacts]:
    return {host(short): MemberFacts(load=value) for short, value in values.items()}


def test_least_load_puts_the_lowest_load_first() -> None:
    plan = plan_pool(three_and_relay("least-load"), loads(a=0.9, b=0.5, c=0.1))
    assert plan.mode is Mode.FIXED
    assert hosts(plan.orderings[0]) == [host("c"), host("b"), host("a"), host("relay")]
    assert prefs(plan.orderings[0]) == [10, 20, 30, 40]


def test_least_load_rotates_first_place_within_the_tie_band() -> None:
    plan = plan_pool(three_and_relay("least-load"), loads(a=0.9, b=0.32, c=0.3))
    assert plan.mode is Mode.ROTATE
    assert [hosts(o) for o in plan.orderings] == [
        [host("c"), host("b"), host("a"), host("relay")],
        [host("b"), host("c"), host("a"), host("relay")],
    ]


def test_least_load_outside_the_tie_band_is_not_rotated() -> None:
    plan = plan_pool(
        pool("least-load", member("a", 10), member("b", 20), tie_band=0.01), loads(a=0.32, b=0.3)
    )
    assert plan.mode is Mode.FIXED
    assert plan.firsts == (host("b"),)


def test_least_load_without_readings_keeps_the_base_order() -> None:
    plan = plan_pool(three_and_relay("least-load"), {})
    assert plan == Plan(
        Mode.FIXED, (((host("a"), 10), (host("b"), 20), (host("c"), 30), (host("relay"), 40)),)
    )


def test_least_load_ranks_unknown_loads_after_known() -> None:
    plan = plan_pool(three_and_relay("least-load"), loads(c=0.99))
    assert hosts(plan.orderings[0]) == [host("c"), host("a"), host("b"), host("relay")]


# -- eligibility -------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_down_member_leaves_every_ordering(strategy: str) -> None:
    plan = plan_pool(three_and_relay(strategy), {host("b"): DOWN})
    assert not plan.fail_open
    assert all(host("b") not in hosts(o) for o in plan.orderings)
    assert all(len(o) == 3 for o in plan.orderings)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_drained_member_leaves_every_ordering_even_when_up(strategy: str) -> None:
    plan = plan_pool(three_and_relay(strategy), {host("a"): MemberFacts(up=True, drained=True)})
    assert all(host("a") not in hosts(o) for o in plan.orderings)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_standbys_are_never_listed(strategy: str) -> None:
    plan = plan_pool(
        pool(strategy, member("a", 10), member("b", 20), member("spare", 1, "standby", weight=9)), {}
    )
    assert all(host("spare") not in hosts(o) for o in plan.orderings)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_all_primaries_down_puts_the_relay_first(strategy: str) -> None:
    facts = {host("a"): DOWN, host("b"): DOWN, host("c"): DRAINED}
    plan = plan_pool(three_and_relay(strategy), facts)
    assert not plan.fail_open
    assert plan.mode is Mode.FIXED
    assert hosts(plan.orderings[0]) == [host("relay")]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_nothing_eligible_fails_open_with_base_preferences(strategy: str) -> None:
    """Like PowerDNS ifportup: an answer listing everyone beats an empty one."""
    members = (member("b", 20), member("a", 10), member("relay", 5, "relay"), member("spare", 1, "standby"))
    facts = {m.host: DOWN for m in members}
    facts[host("a")] = DRAINED
    plan = plan_pool(pool(strategy, *members), facts)
    assert plan == Plan(Mode.FIXED, (((host("relay"), 5), (host("a"), 10), (host("b"), 20)),), fail_open=True)


def test_missing_facts_count_as_up_and_foreign_facts_are_ignored() -> None:
    plan = plan_pool(three_and_relay("round-robin"), {host("elsewhere"): DOWN})
    assert len(plan.orderings) == 3 and not plan.fail_open


# -- hints -------------------------------------------------------------------------------


def hint_pool() -> tuple[PoolConfig, HintConfig]:
    hint = HintConfig(label="urgent", order=(host("c"), host("relay"), host("a")))
    return pool("round-robin", *three_and_relay("static").member, hints=(hint,)), hint


def test_hint_answers_its_order_with_numbered_preferences() -> None:
    p, hint = hint_pool()
    assert plan_hint(p, hint, {}) == Plan(
        Mode.FIXED, (((host("c"), 10), (host("relay"), 20), (host("a"), 30)),)
    )


def test_hint_filters_down_and_drained_members() -> None:
    p, hint = hint_pool()
    plan = plan_hint(p, hint, {host("c"): DOWN, host("relay"): DRAINED})
    assert plan == Plan(Mode.FIXED, (((host("a"), 10),),))


def test_hint_fails_open_when_every_listed_member_is_down() -> None:
    p, hint = hint_pool()
    facts = {host("c"): DOWN, host("relay"): DOWN, host("a"): DRAINED}
    plan = plan_hint(p, hint, facts)
    assert plan.fail_open
    assert plan.orderings == (((host("c"), 10), (host("relay"), 20), (host("a"), 30)),)


# -- properties over random pools ---------------------------------------------------------

ROLES = ("primary", "relay", "standby")
LOADS = st.one_of(st.none(), st.sampled_from([0.0, 0.1, 0.12, 0.5, 0.9]), st.floats(0, 2, allow_nan=False))


@st.composite
def pools_and_facts(draw: st.DrawFn) -> tuple[PoolConfig, dict[str, MemberFacts]]:
    strategy = draw(st.sampled_from(STRATEGIES))
    count = draw(st.integers(1, 6))
    members = tuple(
        MemberConfig(
            host=host(f"m{i}"),
            preference=draw(st.integers(0, 60)),
            weight=draw(st.sampled_from([0.0, 0.5, 1.0, 3.0])),
            role=draw(st.sampled_from(ROLES)),
        )
        for i in range(count)
    )
    if strategy == "weighted":  # the config refuses a weighted pool without a weighted primary
        assume(any(m.weight > 0 and m.role == "primary" for m in members))
    facts = {
        m.host: MemberFacts(up=draw(st.booleans()), drained=draw(st.booleans()), load=draw(LOADS))
        for m in members
        if draw(st.booleans())
    }
    tie_band = draw(st.sampled_from([0.0, 0.05, 0.5]))
    return pool(strategy, *members, tie_band=tie_band), facts


def eligible(m: MemberConfig, facts: Mapping[str, MemberFacts]) -> bool:
    state = facts.get(m.host, MemberFacts())
    return state.up and not state.drained


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


@PROPERTY
@given(pools_and_facts())
def test_property_every_eligible_member_listed_exactly_once(
    case: tuple[PoolConfig, dict[str, MemberFacts]],
) -> None:
    p, facts = case
    plan = plan_pool(p, facts)
    wanted = sorted(m.host for m in p.member if m.role != "standby" and eligible(m, facts))
    if not wanted:  # fail open: every non-standby member (all of them if there are only standbys)
        listed = [m for m in p.member if m.role != "standby"] or list(p.member)
        wanted = sorted(m.host for m in listed)
    assert plan.fail_open == (not any(m.role != "standby" and eligible(m, facts) for m in p.member))
    assert plan.orderings
    for ordering in plan.orderings:
        assert sorted(hosts(ordering)) == wanted


@PROPERTY
@given(pools_and_facts())
def test_property_preferences_strictly_increase(case: tuple[PoolConfig, dict[str, MemberFacts]]) -> None:
    """RFC 5321 5.1: equal preferences are a coin toss, so an ordering needs increasing ones.

    The static strategy and fail-open keep the configured preferences, which may tie: for
    them the preferences only never decrease, and every relay still ranks after every primary.
    """
    p, facts = case
    plan = plan_pool(p, facts)
    configured = {m.host: m.preference for m in p.member}
    roles = {m.host: m.role for m in p.member}
    for ordering in plan.orderings:
        values = prefs(ordering)
        if plan.fail_open:
            assert values == [configured[h] for h in hosts(ordering)]
            assert values == sorted(values)
        elif p.strategy == "static":
            assert values == sorted(values)
            primary = [pr for h, pr in ordering if roles[h] == "primary"]
            relay = [pr for h, pr in ordering if roles[h] == "relay"]
            assert primary == [configured[h] for h, _ in ordering if roles[h] == "primary"]
            assert not primary or not relay or min(relay) > max(primary)
        else:
            assert all(a < b for a, b in itertools.pairwise(values))


@PROPERTY
@given(pools_and_facts())
def test_property_no_relay_before_an_eligible_primary(
    case: tuple[PoolConfig, dict[str, MemberFacts]],
) -> None:
    p, facts = case
    plan = plan_pool(p, facts)
    by_host = {m.host: m for m in p.member}
    for ordering in plan.orderings:
        seen_relay = False
        for name, _ in ordering:
            m = by_host[name]
            if m.role == "relay":
                seen_relay = True
            elif m.role == "primary" and eligible(m, facts):
                assert not seen_relay, ordering


@PROPERTY
@given(pools_and_facts())
def test_property_weights_line_up_with_orderings(case: tuple[PoolConfig, dict[str, MemberFacts]]) -> None:
    p, facts = case
    plan = plan_pool(p, facts)
    if plan.mode is Mode.WEIGHTED:
        assert p.strategy == "weighted"
        assert len(plan.weights) == len(plan.orderings) >= 1
        assert all(w > 0 for w in plan.weights)
        assert len(set(plan.firsts)) == len(plan.firsts)
    else:
        assert plan.weights == ()
    if plan.mode is Mode.ROTATE:
        assert len(plan.orderings) >= 2
    if plan.mode is not Mode.FIXED:
        assert not plan.fail_open


@PROPERTY
@given(pools_and_facts())
def test_property_first_place_follows_the_strategy(case: tuple[PoolConfig, dict[str, MemberFacts]]) -> None:
    p, facts = case
    plan = plan_pool(p, facts)
    primaries = [
        m for m in sorted(p.member, key=lambda m: m.preference) if m.role == "primary" and eligible(m, facts)
    ]
    if plan.fail_open or len(primaries) < 2:
        assert plan.mode is Mode.FIXED
        return
    if p.strategy == "round-robin":
        assert sorted(plan.firsts) == sorted(m.host for m in primaries)
    elif p.strategy == "weighted":
        weighted = [m.host for m in primaries if m.weight > 0]
        assert list(plan.firsts) == (weighted or [m.host for m in primaries])
    elif p.strategy == "least-load":
        readings = {m.host: facts[m.host].load for m in primaries if m.host in facts}
        known = [load for load in readings.values() if load is not None]
        for first in plan.firsts:
            if known:
                load = readings.get(first)
                assert load is not None and load <= min(known) + p.tie_band
            else:
                assert first == primaries[0].host


@PROPERTY
@given(pools_and_facts(), st.data())
def test_property_hint_lists_its_live_hosts_in_order(
    case: tuple[PoolConfig, dict[str, MemberFacts]], data: st.DataObject
) -> None:
    p, facts = case
    names = [m.host for m in p.member]
    order = tuple(data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True)))
    plan = plan_hint(p, HintConfig(label="h", order=order), facts)
    by_host = {m.host: m for m in p.member}
    alive = [h for h in order if eligible(by_host[h], facts)]
    assert plan.mode is Mode.FIXED
    assert plan.fail_open == (not alive)
    (ordering,) = plan.orderings
    assert hosts(ordering) == (alive or list(order))
    assert prefs(ordering) == [10 * (i + 1) for i in range(len(ordering))]

"""The member health state machine (fall/rise hysteresis) and standby promotion, as plain calls."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.health.state import TRANSITIONS, Health, MemberHealth, observe, pending_results
from dynmx.policy.promotion import Promotion, due_in, step

FALL, RISE = 3, 2


def run(results: list[bool], start: MemberHealth | None = None) -> MemberHealth:
    health = start or MemberHealth()
    for now, ok in enumerate(results):
        health, _ = observe(health, ok, float(now), fall=FALL, rise=RISE, reason="ok" if ok else "refused")
    return health


def test_transition_table_covers_every_state_and_result() -> None:
    assert set(TRANSITIONS) == {(state, ok) for state in Health for ok in (True, False)}


def test_unknown_member_counts_as_up_until_a_verdict() -> None:
    assert MemberHealth().counts_as_up
    assert run([False, False]).state is Health.UNKNOWN
    assert run([False, False]).counts_as_up


def test_first_success_is_a_verdict() -> None:
    assert run([True]).state is Health.UP


def test_fall_consecutive_failures_mark_down() -> None:
    assert run([True, False, False]).state is Health.UP
    assert run([True, False, False, False]).state is Health.DOWN


def test_a_success_resets_the_failure_streak() -> None:
    assert run([True, False, False, True, False, False]).state is Health.UP


def test_rise_consecutive_successes_mark_up_again() -> None:
    down = run([True, False, False, False])
    assert run([True], down).state is Health.DOWN
    assert run([True, True], down).state is Health.UP


def test_transition_reports_old_new_and_reason() -> None:
    health = run([True, False, False])
    _, transition = observe(health, False, 9.0, fall=FALL, rise=RISE, reason="timeout-banner", evidence="")
    assert transition is not None
    assert (transition.old, transition.new, transition.reason) == (Health.UP, Health.DOWN, "timeout-banner")


def test_since_is_the_time_of_the_last_change() -> None:
    health = run([True, False, False, False])
    assert health.since == 3.0


def test_pending_results_counts_down_to_a_verdict() -> None:
    assert pending_results(run([True]), fall=FALL, rise=RISE) is None
    assert pending_results(run([True, False]), fall=FALL, rise=RISE) == 2
    assert pending_results(run([True, False, False, False, True]), fall=FALL, rise=RISE) == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(1, 5))
def test_state_changes_only_after_full_streaks(results: list[bool], fall: int, rise: int) -> None:
    """Hysteresis: DOWN needs `fall` failures in a row, UP (from DOWN) `rise` successes in a row."""
    health = MemberHealth()
    for now, ok in enumerate(results):
        before = health
        health, transition = observe(health, ok, float(now), fall=fall, rise=rise)
        if transition is None:
            assert health.state is before.state
            continue
        if transition.new is Health.DOWN:
            assert not ok and health.failures >= fall
        elif before.state is Health.DOWN:
            assert ok and health.successes >= rise
        else:
            assert before.state is Health.UNKNOWN and ok


PROMOTE, DEMOTE = 120.0, 60.0


def advance(state: Promotion, primary_up: bool, now: float) -> tuple[Promotion, str | None]:
    return step(state, primary_up, now, promote_after=PROMOTE, demote_after=DEMOTE)


def test_standbys_promoted_after_primaries_down_for_promote_after() -> None:
    state, event = advance(Promotion(), False, 0.0)
    assert event is None and not state.promoted
    state, event = advance(state, False, 119.0)
    assert event is None
    state, event = advance(state, False, 120.0)
    assert event == "promote" and state.promoted


def test_a_primary_back_before_promote_after_cancels_the_countdown() -> None:
    state, _ = advance(Promotion(), False, 0.0)
    state, _ = advance(state, True, 100.0)
    state, event = advance(state, False, 150.0)
    assert event is None and not state.promoted


def test_promotion_ends_after_a_primary_is_up_for_demote_after() -> None:
    state, _ = advance(Promotion(), False, 0.0)
    state, _ = advance(state, False, 120.0)
    state, event = advance(state, True, 200.0)
    assert event is None and state.promoted
    state, event = advance(state, True, 259.0)
    assert event is None
    state, event = advance(state, True, 260.0)
    assert event == "demote" and not state.promoted


def test_a_primary_flapping_restarts_the_demote_countdown() -> None:
    state, _ = advance(Promotion(), False, 0.0)
    state, _ = advance(state, False, 120.0)
    state, _ = advance(state, True, 200.0)
    state, _ = advance(state, False, 230.0)
    state, event = advance(state, True, 240.0)
    assert event is None
    state, event = advance(state, True, 290.0)
    assert event is None and state.promoted


def test_due_in_tells_when_the_promotion_may_change() -> None:
    state, _ = advance(Promotion(), False, 0.0)
    assert due_in(state, 20.0, promote_after=PROMOTE, demote_after=DEMOTE) == 100.0
    assert due_in(Promotion(), 20.0, promote_after=PROMOTE, demote_after=DEMOTE) is None

"""A secondary's refresh, retry and expiry (dynmx.zone.refresh) by plain calls and an injected clock.

RFC 1035 §3.3.13: REFRESH is the interval before the zone should be refreshed, RETRY the
interval before a failed refresh is retried, EXPIRE the upper limit after which the zone is
no longer authoritative. RFC 1996 §3.7: a NOTIFY makes the secondary query the primary at
once. States as NSD's xfrd: ok, refreshing, expired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.zone.refresh import (
    FIRST_RETRY,
    TRANSITIONS,
    Availability,
    Event,
    State,
    Timers,
    ZoneRefresh,
    check,
    expires_in,
    initial,
    observe,
)

TIMERS = Timers(refresh=3600.0, retry=600.0, expire=86400.0)


@dataclass
class Clock:
    """The injected clock: time moves only when a test says so."""

    now: float = 1_000_000.0

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def _answered(clock: Clock) -> ZoneRefresh:
    zone, _ = observe(ZoneRefresh(), Event.ANSWERED, TIMERS, clock.now)
    return zone


def test_rfc1035_3_3_13_an_answer_schedules_the_next_refresh_REFRESH_seconds_on() -> None:
    zone, wait = observe(ZoneRefresh(), Event.ANSWERED, TIMERS, Clock().now)
    assert (zone.state, wait) == (State.OK, 3600.0)


def test_rfc1035_3_3_13_an_answer_records_when_the_primary_last_answered() -> None:
    clock = Clock()
    assert _answered(clock).verified == clock.now


def test_rfc1035_3_3_13_a_failure_schedules_a_retry_RETRY_seconds_on() -> None:
    zone, wait = observe(ZoneRefresh(), Event.FAILED, TIMERS, Clock().now)
    assert (zone.state, wait) == (State.REFRESHING, 600.0)


def test_rfc1035_3_3_13_a_failure_keeps_the_last_answer_time() -> None:
    clock = Clock()
    zone = _answered(clock)
    failed, _ = observe(zone, Event.FAILED, TIMERS, clock.advance(100))
    assert failed.verified == zone.verified


def test_an_answer_after_failures_returns_refreshing_to_ok() -> None:
    clock = Clock()
    zone, _ = observe(ZoneRefresh(), Event.FAILED, TIMERS, clock.now)
    zone, _ = observe(zone, Event.FAILED, TIMERS, clock.advance(600))
    zone, wait = observe(zone, Event.ANSWERED, TIMERS, clock.advance(600))
    assert (zone.state, zone.verified, wait) == (State.OK, clock.now, 3600.0)


def test_rfc1996_3_7_a_notify_asks_for_a_refresh_at_once() -> None:
    clock = Clock()
    zone = _answered(clock)
    notified, wait = observe(zone, Event.NOTIFY, TIMERS, clock.advance(10))
    assert (notified, wait) == (zone, 0.0)


def test_without_a_copy_both_answer_and_failure_wait_the_first_retry() -> None:
    assert observe(ZoneRefresh(), Event.FAILED, None, 0.0)[1] == FIRST_RETRY
    assert observe(ZoneRefresh(), Event.ANSWERED, None, 0.0)[1] == FIRST_RETRY


def test_a_zone_without_a_copy_starts_expired() -> None:
    assert initial(None, None, Clock().now).state is State.EXPIRED


def test_a_copy_confirmed_within_EXPIRE_starts_ok() -> None:
    clock = Clock()
    assert initial(clock.now - 86399.0, TIMERS, clock.now).state is State.OK


def test_rfc1035_3_3_13_a_copy_confirmed_EXPIRE_seconds_ago_starts_expired() -> None:
    clock = Clock()  # a restart: the copy's file mtime is the last answer
    assert initial(clock.now - 86400.0, TIMERS, clock.now).state is State.EXPIRED


def test_rfc1035_3_3_13_the_copy_is_not_expired_one_second_before_EXPIRE() -> None:
    clock = Clock()
    zone = _answered(clock)
    zone, change, left = check(zone, TIMERS, clock.advance(86399.0))
    assert (zone.state, change, left) == (State.OK, None, 1.0)


def test_rfc1035_3_3_13_the_copy_expires_EXPIRE_seconds_after_the_last_answer() -> None:
    clock = Clock()
    zone = _answered(clock)
    zone, change, left = check(zone, TIMERS, clock.advance(86400.0))
    assert (zone.state, change, left) == (State.EXPIRED, Availability.UNAVAILABLE, math.inf)


def test_rfc1035_3_3_13_failures_do_not_delay_expiry() -> None:
    clock = Clock()
    zone = _answered(clock)
    for _ in range(10):
        zone, _ = observe(zone, Event.FAILED, TIMERS, clock.advance(8640.0))
    assert check(zone, TIMERS, clock.now)[0].state is State.EXPIRED


def test_a_change_of_availability_is_reported_once() -> None:
    clock = Clock()
    zone, _, _ = check(_answered(clock), TIMERS, clock.advance(86400.0))
    assert check(zone, TIMERS, clock.advance(1.0))[1] is None


def test_only_check_leaves_expired() -> None:
    clock = Clock()
    zone = initial(None, None, clock.now)
    zone, _ = observe(zone, Event.ANSWERED, TIMERS, clock.advance(5.0))
    assert zone.state is State.EXPIRED


def test_check_after_an_answer_makes_an_expired_zone_available() -> None:
    clock = Clock()
    zone, _ = observe(initial(None, None, clock.now), Event.ANSWERED, TIMERS, clock.advance(5.0))
    zone, change, left = check(zone, TIMERS, clock.now)
    assert (zone.state, change, left) == (State.OK, Availability.AVAILABLE, 86400.0)


def test_a_zone_whose_copy_is_gone_is_unavailable() -> None:
    clock = Clock()
    zone, change, _ = check(_answered(clock), None, clock.advance(1.0))
    assert (zone.state, change) == (State.EXPIRED, Availability.UNAVAILABLE)


def test_an_unknown_last_answer_counts_as_now() -> None:
    assert expires_in(ZoneRefresh(), TIMERS, Clock().now) == 86400.0


def test_expiry_uses_the_timers_of_the_copy_held_now() -> None:
    clock = Clock()
    zone = _answered(clock)
    shorter = Timers(refresh=60.0, retry=30.0, expire=120.0)
    assert check(zone, shorter, clock.advance(120.0))[0].state is State.EXPIRED


def test_a_copy_without_an_soa_expiry_never_expires() -> None:
    clock = Clock()
    zone = _answered(clock)
    assert check(zone, Timers(), clock.advance(1e12))[0].state is State.OK


def test_the_table_covers_every_state_and_event() -> None:
    assert set(TRANSITIONS) == {(state, event) for state in State for event in Event}


EXPIRE = 1000
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["answered", "failed", "notify", "check", "to-deadline", "before-deadline"]),
        st.integers(min_value=0, max_value=2 * EXPIRE),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(start_age=st.integers(min_value=0, max_value=2 * EXPIRE), steps=STEPS)
def test_rfc1035_3_3_13_expiry_comes_exactly_EXPIRE_seconds_after_the_last_answer_never_before(
    start_age: int, steps: list[tuple[str, int]]
) -> None:
    timers = Timers(refresh=100.0, retry=10.0, expire=float(EXPIRE))
    clock = Clock()
    last_answer = clock.now - start_age  # the copy's file mtime at start
    zone = initial(last_answer, timers, clock.now)
    assert (zone.state is State.EXPIRED) == (clock.now >= last_answer + EXPIRE)
    for step, seconds in steps:
        if step == "to-deadline":  # the very second it is due
            clock.now = max(clock.now, last_answer + EXPIRE)
        elif step == "before-deadline":
            clock.now = max(clock.now, last_answer + EXPIRE - 1)
        else:
            clock.advance(seconds)
        if step == "answered":
            zone, _ = observe(zone, Event.ANSWERED, timers, clock.now)
            last_answer = clock.now
        elif step == "failed":
            zone, _ = observe(zone, Event.FAILED, timers, clock.now)
        elif step == "notify":
            zone, _ = observe(zone, Event.NOTIFY, timers, clock.now)
        due = clock.now >= last_answer + EXPIRE
        assert (expires_in(zone, timers, clock.now) <= 0) == due
        zone, _, left = check(zone, timers, clock.now)
        assert (zone.state is State.EXPIRED) == due
        assert left == (math.inf if due else last_answer + EXPIRE - clock.now)

"""The health monitor driven by hand: probe results in, plans out, with an exact clock."""

from __future__ import annotations

from typing import Any

import pytest

from dynmx.app.health_monitor import HealthMonitor
from dynmx.config import from_mapping
from dynmx.control.store import StateStore
from dynmx.health.prober import Target
from dynmx.health.probes import ProbeResult
from dynmx.health.spec import ProbeSpec
from dynmx.metrics import Metrics
from dynmx.policy.served import PoolPlans

POOL = "example.test."


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _member(name: str, role: str = "primary", **extra: Any) -> dict[str, Any]:
    return {"host": f"{name}.example.test.", "role": role, "interval": 10, "fall": 3, "rise": 2, **extra}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def applied() -> list[PoolPlans]:
    return []


@pytest.fixture
def monitor(clock: Clock, applied: list[PoolPlans]) -> HealthMonitor:
    config = from_mapping(
        {
            "pool": [
                {
                    "name": POOL,
                    "strategy": "round-robin",
                    "ttl": 300,
                    "promote_after": 120,
                    "demote_after": 60,
                    "member": [_member("mx1"), _member("mx2"), _member("spare", "standby")],
                }
            ]
        }
    )
    monitor = HealthMonitor(config, StateStore.in_memory(), applied.append, Metrics(), clock=clock)
    monitor.reapply()
    return monitor


def feed(monitor: HealthMonitor, host: str, ok: bool) -> None:
    spec = ProbeSpec(kind="smtp", address="127.0.0.2", port=25)
    result = ProbeResult(ok=ok, reason="ok" if ok else "refused", latency=0.01)
    monitor.on_result(Target(POOL, f"{host}.example.test.", spec, 10.0), result)


def firsts(plans: PoolPlans) -> set[str]:
    return {ordering[0][0].split(".")[0] for ordering in plans.plan.orderings}


def test_a_member_down_is_re_planned_at_once(monitor: HealthMonitor, applied: list[PoolPlans]) -> None:
    for _ in range(3):
        feed(monitor, "mx2", False)
    assert firsts(applied[-1]) == {"mx1"}


def test_ttl_is_lowered_while_a_verdict_is_pending(monitor: HealthMonitor, applied: list[PoolPlans]) -> None:
    """One failure of fall=3 at interval 10 s: the answer may change in 20 s, so TTL 20 (gdnsd)."""
    feed(monitor, "mx1", True)
    assert applied[-1].ttl == 300
    feed(monitor, "mx1", False)
    assert applied[-1].ttl == 20
    feed(monitor, "mx1", True)
    assert applied[-1].ttl == 300


def test_ttl_is_lowered_before_a_pending_promotion(
    monitor: HealthMonitor, applied: list[PoolPlans], clock: Clock
) -> None:
    for _ in range(3):
        feed(monitor, "mx1", False)
        feed(monitor, "mx2", False)
    clock.now = 100.0
    feed(monitor, "mx1", False)
    assert applied[-1].ttl == 20  # promote_after 120 s from t=0


def test_standby_promoted_after_promote_after_and_hook_event_logged(
    monitor: HealthMonitor, applied: list[PoolPlans], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        feed(monitor, "mx1", False)
        feed(monitor, "mx2", False)
    assert not applied[-1].promoted
    clock.now = 120.0
    feed(monitor, "mx1", False)
    assert applied[-1].promoted and firsts(applied[-1]) == {"spare"}
    assert "event=pool-promote" in caplog.text


def test_drain_persists_in_the_store(monitor: HealthMonitor, applied: list[PoolPlans]) -> None:
    monitor.set_drained(POOL, "mx1.example.test.", True)
    assert monitor.store.drained() == {(POOL, "mx1.example.test.")}
    assert firsts(applied[-1]) == {"mx2"}
    monitor.set_drained(POOL, "mx1.example.test.", False)
    assert firsts(applied[-1]) == {"mx1", "mx2"}


def test_unchanged_facts_do_not_re_render(monitor: HealthMonitor, applied: list[PoolPlans]) -> None:
    feed(monitor, "mx1", True)
    count = len(applied)
    feed(monitor, "mx1", True)
    assert len(applied) == count

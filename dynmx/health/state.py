"""A member's health as a state machine with hysteresis (fall/rise), as a table.

Rules of this module: pure, no I/O, no clock of its own (`now` is passed in). Each
probe result is observed once; the table says which streak it extends and at which
threshold the state flips. A member starts UNKNOWN and counts as up until it has a
verdict: its first success makes it UP at once, while `fall` consecutive failures are
needed to call it DOWN, so a server that is slow at start-up is not pulled at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Health(enum.Enum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class MemberHealth:
    state: Health = Health.UNKNOWN
    successes: int = 0  # consecutive, since the last failure
    failures: int = 0  # consecutive, since the last success
    since: float = 0.0  # when the state last changed
    reason: str = ""  # the last probe's reason ("ok", "timeout-banner", ...)
    evidence: str = ""
    latency: float | None = None
    load: float | None = None
    checked_at: float | None = None

    @property
    def counts_as_up(self) -> bool:
        return self.state is not Health.DOWN


# (state, probe ok) -> (streak that decides, state it leads to). None: nothing flips.
TRANSITIONS: dict[tuple[Health, bool], tuple[str | None, Health | None]] = {
    (Health.UNKNOWN, True): (None, Health.UP),  # the first success is a verdict
    (Health.UNKNOWN, False): ("fall", Health.DOWN),
    (Health.UP, True): (None, None),
    (Health.UP, False): ("fall", Health.DOWN),
    (Health.DOWN, True): ("rise", Health.UP),
    (Health.DOWN, False): (None, None),
}


@dataclass(frozen=True, slots=True)
class Transition:
    old: Health
    new: Health
    reason: str
    evidence: str


def observe(
    health: MemberHealth,
    ok: bool,
    now: float,
    *,
    fall: int,
    rise: int,
    reason: str = "",
    evidence: str = "",
    latency: float | None = None,
    load: float | None = None,
) -> tuple[MemberHealth, Transition | None]:
    """Fold one probe result into `health`; return the new health and the transition, if any."""
    successes = health.successes + 1 if ok else 0
    failures = 0 if ok else health.failures + 1
    streak, target = TRANSITIONS[(health.state, ok)]
    flips = target is not None and (
        streak is None or (streak == "fall" and failures >= fall) or (streak == "rise" and successes >= rise)
    )
    updated = replace(
        health,
        successes=successes,
        failures=failures,
        reason=reason,
        evidence=evidence,
        latency=latency,
        load=load if ok else health.load,
        checked_at=now,
    )
    if not flips or target is None:
        return updated, None
    transition = Transition(health.state, target, reason, evidence)
    return replace(updated, state=target, since=now), transition


def pending_results(health: MemberHealth, *, fall: int, rise: int) -> int | None:
    """How many more results in the current streak would flip the state (None: none pending).

    Used to lower the answer TTL while a verdict may be near (gdnsd computes TTLs so).
    """
    if health.state is Health.DOWN and health.successes:
        return rise - health.successes
    if health.state is not Health.DOWN and health.failures:
        return fall - health.failures
    return None

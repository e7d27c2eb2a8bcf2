"""Standby promotion as a pure function of time and one fact: is any original primary up?

When every primary has been down for `promote_after` seconds, the pool's standbys are
promoted to primaries (the operator's `on_promote` hook starts their mail service);
the promotion ends once an original primary has been up for `demote_after` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Promotion:
    promoted: bool = False
    primaries_down_since: float | None = None
    primary_up_since: float | None = None  # while promoted: since when a primary is back


def step(
    state: Promotion, primary_up: bool, now: float, *, promote_after: float, demote_after: float
) -> tuple[Promotion, str | None]:
    """The next promotion state and the event it raises: "promote", "demote" or None."""
    if not state.promoted:
        if primary_up:
            return Promotion(), None
        since = state.primaries_down_since if state.primaries_down_since is not None else now
        if now - since >= promote_after:
            return Promotion(True, since, None), "promote"
        return Promotion(False, since, None), None
    if not primary_up:
        return Promotion(True, state.primaries_down_since, None), None
    up_since = state.primary_up_since if state.primary_up_since is not None else now
    if now - up_since >= demote_after:
        return Promotion(), "demote"
    return Promotion(True, state.primaries_down_since, up_since), None


def due_in(state: Promotion, now: float, *, promote_after: float, demote_after: float) -> float | None:
    """Seconds until the promotion may change, for TTLs; None when nothing is pending."""
    if not state.promoted and state.primaries_down_since is not None:
        return max(0.0, state.primaries_down_since + promote_after - now)
    if state.promoted and state.primary_up_since is not None:
        return max(0.0, state.primary_up_since + demote_after - now)
    return None

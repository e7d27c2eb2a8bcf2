"""A secondary zone's refresh, retry and expiry as a state table (RFC 1035 §3.3.13, RFC 1996).

Rules of this module: pure, no I/O, no clock of its own (`now` is passed in), as
`health/state.py`. The states are NSD's xfrd zone states: OK (the primary confirmed our
copy; the next refresh is REFRESH seconds on), REFRESHING (the last refresh failed; the
next try is RETRY seconds on) and EXPIRED (no copy, or EXPIRE seconds have passed since
the primary last answered: the zone answers SERVFAIL). A NOTIFY (RFC 1996) asks for a
refresh at once. The SOA timers are those of the copy held when the event happens (None:
no copy yet), since a transfer or a reload may change them between two events.

Only `check` enters or leaves EXPIRED, so each change of availability is seen exactly
once, by whoever tells the server and logs it.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

FIRST_RETRY = 5.0  # seconds to the next try while no SOA says (no copy yet)


class State(enum.Enum):
    OK = "ok"
    REFRESHING = "refreshing"
    EXPIRED = "expired"


class Event(enum.Enum):
    ANSWERED = "answered"  # the primary answered: nothing newer, or a transfer done
    FAILED = "failed"  # no usable answer: no reply, a transfer error, or a copy we refused
    NOTIFY = "notify"  # RFC 1996 §3.7: the primary says it changed; refresh now


class Availability(enum.Enum):
    UNAVAILABLE = "unavailable"
    AVAILABLE = "available"


@dataclass(frozen=True, slots=True)
class Timers:
    """The SOA REFRESH, RETRY and EXPIRE of the copy held (RFC 1035 §3.3.13), in seconds."""

    refresh: float = FIRST_RETRY
    retry: float = FIRST_RETRY
    expire: float = math.inf


@dataclass(frozen=True, slots=True)
class ZoneRefresh:
    state: State = State.OK
    verified: float | None = None  # when the primary last answered; None: not known


# (state, event) -> state it leads to. EXPIRED is left only by `check`.
TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.OK, Event.ANSWERED): State.OK,
    (State.OK, Event.FAILED): State.REFRESHING,
    (State.OK, Event.NOTIFY): State.OK,
    (State.REFRESHING, Event.ANSWERED): State.OK,
    (State.REFRESHING, Event.FAILED): State.REFRESHING,
    (State.REFRESHING, Event.NOTIFY): State.REFRESHING,
    (State.EXPIRED, Event.ANSWERED): State.EXPIRED,
    (State.EXPIRED, Event.FAILED): State.EXPIRED,
    (State.EXPIRED, Event.NOTIFY): State.EXPIRED,
}


def expires_in(zone: ZoneRefresh, timers: Timers | None, now: float) -> float:
    """Seconds until the copy is EXPIRE seconds past the primary's last answer: 0 or less
    once it is, minus infinity without a copy (an unknown last answer counts as now)."""
    if timers is None:
        return -math.inf
    verified = now if zone.verified is None else zone.verified
    return verified + timers.expire - now


def initial(verified: float | None, timers: Timers | None, now: float) -> ZoneRefresh:
    """A zone as found at start: `verified` from what survived (the copy's file), EXPIRED
    when that is too old or there is no copy."""
    zone = ZoneRefresh(verified=verified)
    return replace(zone, state=State.EXPIRED) if expires_in(zone, timers, now) <= 0 else zone


def observe(zone: ZoneRefresh, event: Event, timers: Timers | None, now: float) -> tuple[ZoneRefresh, float]:
    """Fold one event into `zone`; return it and the seconds until the next refresh."""
    timers = timers or Timers()
    state = TRANSITIONS[(zone.state, event)]
    if event is Event.ANSWERED:
        return ZoneRefresh(state, now), timers.refresh
    if event is Event.FAILED:
        return replace(zone, state=state), timers.retry
    return replace(zone, state=state), 0.0


def check(
    zone: ZoneRefresh, timers: Timers | None, now: float
) -> tuple[ZoneRefresh, Availability | None, float]:
    """Enter or leave EXPIRED as the clock says; return the zone, the change of availability
    (None: none) and the seconds until it expires (infinity once it has)."""
    left = expires_in(zone, timers, now)
    expired = left <= 0
    change = None
    if expired != (zone.state is State.EXPIRED):
        change = Availability.UNAVAILABLE if expired else Availability.AVAILABLE
        zone = replace(zone, state=State.EXPIRED if expired else State.OK)
    return zone, change, math.inf if expired else left

"""CSK rollover of a zone dynmx signs, as steps whose waiting times (RFC 7583) the tool keeps.

Sans-IO: a step takes the zone's keys, its timing and the time, and returns the new keys or
raises `RolloverRefused` saying when the step may run and why. The sequence (each key's
state and what it does: `dynmx.zone.keys.ROLES`):

    step      new key               old key              wait before it (RFC 7583)
    start     made, published       active               none: no rollover under way
    ds-seen   (parent serves its DS, the operator says so: Knot's zone-ksk-submitted,
               BIND's `rndc dnssec -checkds published`)  any time after start
    switch    active                retired              3.2.1 Ipub = DprpC + TTLkey since start
    finish    active                removed              3.2.1 Iret = Dsgn + DprpC + TTLsig since
                                                         switch (Dsgn = 0: dynmx signs a zone
                                                         whole), and 3.3.2 DprpP + TTLds since
                                                         ds-seen

Both keys sign the DNSKEY RRset from `start` to `finish`, so every DS set a resolver may hold
meanwhile (old, both, new) leads to a DNSKEY RRset it can validate; both keys' CDS are
served until `switch` (double-DS: the parent adds the new DS before the old goes), then the
new key's alone (the parent may drop the old DS).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.rdatatype
import dns.zone

from dynmx.errors import DynmxError
from dynmx.zone.keys import ACTIVE, DS_SEEN, PUBLISHED, REMOVED, RETIRED, ZoneKey

START, DS_SEEN_STEP, SWITCH, FINISH = "start", "ds-seen", "switch", "finish"
STEPS = (START, DS_SEEN_STEP, SWITCH, FINISH)
IDLE, PREPUBLISHED, SWITCHED = "idle", "pre-published", "switched"


class RolloverRefused(DynmxError):
    """A step that cannot run: `earliest` (seconds since the epoch) when it is too early, None
    when it cannot run in this phase at all."""

    def __init__(self, message: str, earliest: int | None = None) -> None:
        super().__init__(message)
        self.earliest = earliest


@dataclass(frozen=True, slots=True)
class Timing:
    """RFC 7583's parameters, in seconds."""

    dnskey_ttl: int  # TTLkey: the DNSKEY RRset's TTL as served
    max_ttl: int  # TTLsig: the largest TTL of any signed RRset of the zone
    propagation: int  # DprpC: until every server of the zone serves a change
    parent_ds_ttl: int  # TTLds: the TTL of the DS RRset at the parent
    parent_propagation: int  # DprpP: until every server of the parent serves a DS change


def utc(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def zone_ttls(zone: dns.zone.Zone, extra: int = 0) -> tuple[int, int]:
    """(TTLkey, TTLsig) of a zone dynmx signs: the DNSKEY RRset takes the SOA's TTL; the
    largest TTL of any RRset in the zone (or `extra`, the TTL of what the policy renders)."""
    assert zone.origin is not None
    soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
    assert soa is not None
    largest = max((rds.ttl for node in zone.nodes.values() for rds in node.rdatasets), default=0)
    return soa.ttl, max(largest, soa.ttl, extra)


def live(keys: tuple[ZoneKey, ...]) -> tuple[ZoneKey, ...]:
    return tuple(key for key in keys if key.state != REMOVED)


def phase(keys: tuple[ZoneKey, ...]) -> tuple[str, ZoneKey, ZoneKey | None]:
    """(phase, active key, the other live key). Raises RolloverRefused for a set no step makes."""
    states = sorted(key.state for key in live(keys))
    active = [key for key in keys if key.state == ACTIVE]
    if states == [ACTIVE]:
        return IDLE, active[0], None
    if states == [ACTIVE, PUBLISHED]:
        return PREPUBLISHED, active[0], next(k for k in keys if k.state == PUBLISHED)
    if states == [ACTIVE, RETIRED]:
        return SWITCHED, active[0], next(k for k in keys if k.state == RETIRED)
    raise RolloverRefused(f"the key set ({', '.join(states) or 'empty'}) is not one a rollover step makes")


@dataclass(frozen=True, slots=True)
class Wait:
    """When a step may run: `at` (0: at once), the waits that add up to it and what they count
    from, with the RFC 7583 section that asks for them."""

    at: int = 0
    waits: str = ""
    since: str = ""

    def rule(self) -> str:
        return f"{self.waits} {self.since}"

    def refusal(self, now: int) -> str:
        when = f"not before {utc(self.at)} ({self.at - now} s from now)"
        return f"too early, {when}: {self.waits} not yet elapsed {self.since}"


def _wait(start: int | None, waits: list[tuple[int, str]], since: str) -> Wait:
    assert start is not None
    total = sum(seconds for seconds, _ in waits)
    text = " + ".join(f"{name} {seconds} s" for seconds, name in waits)
    return Wait(start + total, text, f"since {since} at {utc(start)}")


def earliest(step: str, keys: tuple[ZoneKey, ...], timing: Timing) -> Wait:
    """When `step` may run, and the RFC 7583 rule that says so. Raises RolloverRefused when
    the step cannot run in the current phase."""
    now_phase, active, other = phase(keys)
    if step == START:
        if now_phase != IDLE:
            raise RolloverRefused(f"a rollover is under way ({now_phase}): finish it first")
        return Wait()
    if now_phase == IDLE or other is None:
        zone = active.origin.to_text(omit_final_dot=True)
        raise RolloverRefused(f"no rollover is under way: start one (`dynmx dnssec rollover {zone} start`)")
    if step == DS_SEEN_STEP:
        new = other if now_phase == PREPUBLISHED else active
        if new.at(DS_SEEN) is not None:
            raise RolloverRefused(f"the DS of key {new.tag} was already seen at {utc(new.at(DS_SEEN) or 0)}")
        return Wait()
    if step == SWITCH:
        if now_phase != PREPUBLISHED:
            raise RolloverRefused("the new key already signs the zone: the next step is finish")
        waits = [(timing.dnskey_ttl, "DNSKEY TTL"), (timing.propagation, "propagation delay")]
        return _wait(other.at(PUBLISHED), waits, "pre-publication (RFC 7583 3.2.1, Ipub)")
    if step == FINISH:
        if now_phase != SWITCHED:
            raise RolloverRefused("the new key does not sign the zone yet: the next step is switch")
        seen = active.at(DS_SEEN)
        if seen is None:
            zone = active.origin.to_text(omit_final_dot=True)
            raise RolloverRefused(
                f"the parent is not known to serve the DS of the new key {active.tag}: once it does"
                f" (dig DS {zone} at a server of the parent), run `dynmx dnssec rollover {zone} ds-seen`"
            )
        retire = _wait(
            other.at(RETIRED),
            [(timing.max_ttl, "largest TTL"), (timing.propagation, "propagation delay")],
            "the switch (RFC 7583 3.2.1, Iret: old signatures out of every cache)",
        )
        ds = _wait(
            seen,
            [
                (timing.parent_ds_ttl, "parent DS TTL"),
                (timing.parent_propagation, "parent propagation delay"),
            ],
            "the new DS was seen (RFC 7583 3.3.2: the new DS in every cache)",
        )
        return retire if retire.at >= ds.at else ds
    raise RolloverRefused(f"unknown step {step!r}: one of {', '.join(STEPS)}")


def advance(
    step: str,
    keys: tuple[ZoneKey, ...],
    timing: Timing,
    now: float,
    make: Callable[[int], ZoneKey],
) -> tuple[ZoneKey, ...]:
    """The keys after `step` at `now`; `make(now)` makes the new key of `start`. Raises
    RolloverRefused when the step may not run now."""
    wait = earliest(step, keys, timing)
    second = int(now)
    if second < wait.at:
        raise RolloverRefused(wait.refusal(second), wait.at)
    now_phase, active, other = phase(keys)
    removed = tuple(key for key in keys if key.state == REMOVED)
    if step == START:
        return (*removed, active, make(second))
    assert other is not None
    if step == DS_SEEN_STEP:
        if now_phase == PREPUBLISHED:
            return (*removed, active, other.noting(DS_SEEN, second))
        return (*removed, other, active.noting(DS_SEEN, second))
    if step == SWITCH:
        return (*removed, active.entering(RETIRED, second), other.entering(ACTIVE, second))
    return (*removed, other.entering(REMOVED, second), active)


def next_step(keys: tuple[ZoneKey, ...], timing: Timing) -> tuple[str, int, str] | None:
    """The next step of a rollover under way, when it may run and why; None when none is."""
    now_phase, active, _ = phase(keys)
    if now_phase == IDLE:
        return None
    if now_phase == SWITCHED and active.at(DS_SEEN) is None:
        return (DS_SEEN_STEP, 0, "confirm the parent serves the new key's DS; then finish")
    step = SWITCH if now_phase == PREPUBLISHED else FINISH
    wait = earliest(step, keys, timing)
    return step, wait.at, wait.rule()

"""MX pool strategies as pure functions: (pool config, member facts) -> Plan.

A Plan lists every ordering the pool can answer with now and how a query picks one.
Senders try the lowest preference first and pick at random among equals (RFC 5321
5.1), so every ordering gets distinct preferences 10, 20, 30, ... and the first host
really is the first choice. The static strategy keeps the configured preferences.

Eligibility: a member that is down or drained leaves the answers; standbys are not
listed (the prober promotes them); relays always rank after every eligible primary,
so when no primary is eligible they come first. When nothing is eligible the pool
fails open: every primary and relay at its base preference, as PowerDNS ifportup and
Route 53 do, rather than an empty answer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from dynmx.config_pools import HintConfig, MemberConfig, PoolConfig

PREFERENCE_STEP = 10


class Mode(enum.IntEnum):
    """How a query picks among a plan's orderings."""

    FIXED = 0  # always the first
    ROTATE = 1  # a counter: N consecutive queries see each ordering once
    WEIGHTED = 2  # a draw proportional to `weights`


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """What is known about a member right now (from the prober or the operator)."""

    up: bool = True  # until a member has a verdict it counts as up
    drained: bool = False  # admin-down: set by the operator, survives restarts
    load: float | None = None  # latest load reading, lower is better


NO_FACTS = MemberFacts()

# One answer: (host, preference) in the order written, best first.
Ordering = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Plan:
    mode: Mode
    orderings: tuple[Ordering, ...]
    weights: tuple[float, ...] = ()
    fail_open: bool = False

    @property
    def firsts(self) -> tuple[str, ...]:
        return tuple(ordering[0][0] for ordering in self.orderings)


def _eligible(member: MemberConfig, facts: Mapping[str, MemberFacts]) -> bool:
    state = facts.get(member.host, NO_FACTS)
    return state.up and not state.drained


def _base_order(members: Sequence[MemberConfig]) -> list[MemberConfig]:
    """Base preference, then the order of the config file (sort is stable)."""
    return sorted(members, key=lambda m: m.preference)


def _numbered(hosts: Sequence[str]) -> Ordering:
    return tuple((host, PREFERENCE_STEP * (index + 1)) for index, host in enumerate(hosts))


def _fail_open(pool: PoolConfig) -> Plan:
    listed = [m for m in pool.member if m.role != "standby"] or list(pool.member)
    ordering = tuple((m.host, m.preference) for m in _base_order(listed))
    return Plan(Mode.FIXED, (ordering,), fail_open=True)


def with_promotion(pool: PoolConfig, promoted: bool) -> PoolConfig:
    """The pool as it stands: while promoted, its standbys serve as primaries."""
    if not promoted:
        return pool
    members = tuple(replace(m, role="primary") if m.role == "standby" else m for m in pool.member)
    return replace(pool, member=members)


def plan_pool(pool: PoolConfig, facts: Mapping[str, MemberFacts]) -> Plan:
    """Every ordering `pool` answers with now, and how one is picked per query."""
    eligible = [m for m in _base_order(pool.member) if _eligible(m, facts)]
    primaries = [m for m in eligible if m.role == "primary"]
    relays = [m.host for m in eligible if m.role == "relay"]
    if not primaries and not relays:
        return _fail_open(pool)
    if pool.strategy == "static" or len(primaries) <= 1:
        if pool.strategy == "static":
            ordering = tuple((m.host, m.preference) for m in primaries)
            last = max((p for _, p in ordering), default=-1)
            for relay in (m for m in eligible if m.role == "relay"):
                last = max(relay.preference, last + 1)  # relays stay behind primaries and in order
                ordering += ((relay.host, last),)
            return Plan(Mode.FIXED, (ordering,))
        return Plan(Mode.FIXED, (_numbered([m.host for m in primaries] + relays),))
    hosts = [m.host for m in primaries]
    if pool.strategy == "round-robin":
        rotations = [hosts[i:] + hosts[:i] for i in range(len(hosts))]
        return Plan(Mode.ROTATE, tuple(_numbered(r + relays) for r in rotations))
    if pool.strategy == "weighted":
        weighted = [m for m in primaries if m.weight > 0] or primaries
        orderings = tuple(_numbered([m.host] + [h for h in hosts if h != m.host] + relays) for m in weighted)
        weights = tuple(m.weight if m.weight > 0 else 1.0 for m in weighted)
        return Plan(Mode.WEIGHTED, orderings, weights)
    return _least_load(pool, primaries, relays, facts)


def _least_load(
    pool: PoolConfig, primaries: list[MemberConfig], relays: list[str], facts: Mapping[str, MemberFacts]
) -> Plan:
    """Lowest load first; members within `tie_band` of the lowest share first place by rotation.

    A member without a reading ranks after those with one; with no readings at all the
    base order applies.
    """
    loads = {m.host: facts.get(m.host, NO_FACTS).load for m in primaries}
    known = sorted((m for m in primaries if loads[m.host] is not None), key=lambda m: loads[m.host] or 0.0)
    unknown = [m for m in primaries if loads[m.host] is None]
    ranked = [m.host for m in known + unknown]
    if not known:
        return Plan(Mode.FIXED, (_numbered(ranked + relays),))
    lowest = loads[known[0].host] or 0.0
    tied = [m.host for m in known if (loads[m.host] or 0.0) <= lowest + pool.tie_band]
    if len(tied) == 1:
        return Plan(Mode.FIXED, (_numbered(ranked + relays),))
    rest = [h for h in ranked if h not in tied]
    rotations = [tied[i:] + tied[:i] for i in range(len(tied))]
    return Plan(Mode.ROTATE, tuple(_numbered(r + rest + relays) for r in rotations))


def plan_hint(pool: PoolConfig, hint: HintConfig, facts: Mapping[str, MemberFacts]) -> Plan:
    """A hint's fixed order, without members that are down; all of it if none is up."""
    by_host = {m.host: m for m in pool.member}
    listed = [by_host[h] for h in hint.order if h in by_host]
    alive = [m.host for m in listed if _eligible(m, facts)]
    if not alive:
        return Plan(Mode.FIXED, (_numbered([m.host for m in listed]),), fail_open=True)
    return Plan(Mode.FIXED, (_numbered(alive),))

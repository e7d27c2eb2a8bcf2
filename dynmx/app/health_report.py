"""What the health monitor shows: a pool on /status, the routing table's states, CH TXT lines.

Read-only views of `HealthMonitor`'s state, apart from the facts and plans it keeps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from dynmx.config import MemberConfig, PoolConfig
from dynmx.health.state import MemberHealth
from dynmx.policy.served import PoolPlans
from dynmx.policy.strategies import MemberFacts

if TYPE_CHECKING:
    from dynmx.app.health_monitor import PoolHealth


class _Monitor(Protocol):
    """What the views read of the monitor."""

    pools: dict[str, PoolHealth]
    clock: Callable[[], float]

    def facts(self, pool: str) -> dict[str, MemberFacts]: ...

    def plans_for(self, pool: PoolConfig) -> PoolPlans: ...


class HealthReport:
    """The reporting of `HealthMonitor`, its base."""

    def pool_status(self: _Monitor, pool: str, first_counts: dict[str, int]) -> dict[str, object]:
        """A pool as /status shows it: strategy, members with health, what is served now."""
        state = self.pools[pool]
        plans = state.plans or self.plans_for(state.config)
        facts = self.facts(pool)
        now = self.clock()
        members = []
        for member in state.config.member:
            health = state.members.get(member.host)
            members.append(
                {
                    "host": member.host,
                    "role": member.role,
                    "preference": member.preference,
                    "weight": member.weight,
                    "probe": member.probe,
                    "state": member_state(member, health, facts[member.host]),
                    "reason": health.reason if health else "",
                    "evidence": health.evidence if health else "",
                    "latency": round(health.latency, 4) if health and health.latency is not None else None,
                    "checked_ago": round(now - health.checked_at, 1)
                    if health and health.checked_at
                    else None,
                    "load": facts[member.host].load,
                    "first": first_counts.get(member.host, 0),
                }
            )
        plan = plans.plan
        return {
            "name": pool,
            "strategy": state.config.strategy,
            "ttl": plans.ttl,
            "mode": plan.mode.name.lower(),
            "fail_open": plan.fail_open,
            "promoted": plans.promoted,
            "orderings": [[f"{preference} {host}" for host, preference in o] for o in plan.orderings],
            "weights": list(plan.weights),
            "members": members,
            "hints": {label: [f"{pr} {h}" for h, pr in p.orderings[0]] for label, p in plans.hints},
        }

    def states(self: _Monitor) -> dict[str, dict[str, str]]:
        """pool -> host -> up | down | admin-down | unknown, for the routing table."""
        found: dict[str, dict[str, str]] = {}
        for name, state in self.pools.items():
            facts = self.facts(name)
            found[name] = {
                m.host: member_state(m, state.members.get(m.host), facts[m.host]) for m in state.config.member
            }
        return found

    def status_text(self: _Monitor, pool: str) -> list[str] | None:
        """One line per member for `dig CH TXT status.<pool>`; None for an unknown pool."""
        state = self.pools.get(pool)
        if state is None:
            return None
        facts = self.facts(pool)
        lines = []
        for member in state.config.member:
            health = state.members.get(member.host)
            status = member_state(member, health, facts[member.host])
            reason = f" {health.reason}" if health and health.reason else ""
            lines.append(f"{member.host} {member.role} {status}{reason}")
        return lines


def member_state(member: MemberConfig, health: MemberHealth | None, facts: MemberFacts) -> str:
    """admin-down, down, up, or unknown (no verdict yet; counts as up)."""
    if facts.drained:
        return "admin-down"
    if member.probe == "none":
        return "up"
    if health is None:
        return "unknown"
    return health.state.value

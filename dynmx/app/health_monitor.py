"""From probe results and operator decisions to what the pools serve.

Facts flow one way: a probe result (or a drain, or a load reading) updates a member's
health; the pool's facts, promotion state and TTL are derived again; when what would be
served changed, the pool is re-planned and handed to `apply`, which swaps the pool's
selector state. The monitor never builds DNS answers itself.

Its parts: `health_targets` (where a member is probed), `health_report` (what /status
and CH TXT show) and `promote_hooks` (the operator's hooks).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dynmx.answer.zoneset import ZoneSet
from dynmx.app.health_report import HealthReport
from dynmx.app.health_targets import member_address, member_tlsa, probe_spec
from dynmx.app.promote_hooks import PromotionHooks
from dynmx.config import Config, PoolConfig, absolute_name
from dynmx.control.store import StateStore
from dynmx.errors import CommandError
from dynmx.health.prober import Prober, Target
from dynmx.health.probes import ProbeResult
from dynmx.health.state import Health, MemberHealth, observe, pending_results
from dynmx.metrics import Metrics
from dynmx.policy import promotion
from dynmx.policy.served import PoolPlans, plan_all
from dynmx.policy.strategies import MemberFacts

log = logging.getLogger("dynmx.health")

MIN_TTL = 1


@dataclass
class PoolHealth:
    """Everything the monitor knows about one pool."""

    config: PoolConfig
    members: dict[str, MemberHealth] = field(default_factory=dict)
    loads: dict[str, float] = field(default_factory=dict)  # set by the operator (no load probe)
    promotion: promotion.Promotion = field(default_factory=promotion.Promotion)
    plans: PoolPlans | None = None


def member(config: Config, pool: str, host: str) -> tuple[str, str]:
    """Normalise and check a (pool, host) named by an operator."""
    pool, host = absolute_name(pool), absolute_name(host)
    found = next((p for p in config.pool if p.name == pool), None)
    if found is None:
        raise CommandError(f"no pool {pool}")
    if host not in {m.host for m in found.member}:
        raise CommandError(f"{host} is not a member of pool {pool}")
    return pool, host


class HealthMonitor(HealthReport, PromotionHooks):
    """Owns member health, drains, loads and promotions for every pool."""

    def __init__(
        self,
        config: Config,
        store: StateStore,
        apply: Callable[[PoolPlans], None],
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.apply = apply
        self.metrics = metrics
        self.clock = clock
        self.pools = {p.name: PoolHealth(p) for p in config.pool}
        self.drained = store.drained()
        self.prober: Prober | None = None
        self.hook_tasks: set[asyncio.Task[None]] = set()

    # -- facts -------------------------------------------------------------------------

    def facts(self, pool: str) -> dict[str, MemberFacts]:
        state = self.pools[pool]
        facts = {}
        for member in state.config.member:
            health = state.members.get(member.host, MemberHealth())
            load = health.load if member.probe == "load" else state.loads.get(member.host)
            facts[member.host] = MemberFacts(
                up=health.counts_as_up, drained=(pool, member.host) in self.drained, load=load
            )
        return facts

    def ttl(self, pool: str) -> int:
        """The pool TTL, lowered to when the answer may change next (as gdnsd does)."""
        state = self.pools[pool]
        config = state.config
        due: list[float] = [float(config.ttl)]
        for member in config.member:
            health = state.members.get(member.host)
            if health is None or member.probe == "none":
                continue
            pending = pending_results(health, fall=member.fall, rise=member.rise)
            if pending is not None:
                due.append(pending * member.interval)
        wait = promotion.due_in(
            state.promotion,
            self.clock(),
            promote_after=config.promote_after,
            demote_after=config.demote_after,
        )
        if wait is not None:
            due.append(wait)
        return max(MIN_TTL, min(config.ttl, int(min(due))))

    def evaluate(self, pool: str) -> PoolPlans:
        """Derive the pool's plans from the facts now; hand them on when they changed."""
        state = self.pools[pool]
        config = state.config
        facts = self.facts(pool)
        primary_up = any(
            facts[m.host].up and not facts[m.host].drained for m in config.member if m.role == "primary"
        )
        state.promotion, event = promotion.step(
            state.promotion,
            primary_up,
            self.clock(),
            promote_after=config.promote_after,
            demote_after=config.demote_after,
        )
        if event is not None:
            self._on_promotion(config, event)
        plans = plan_all(config, facts, promoted=state.promotion.promoted, ttl=self.ttl(pool))
        if state.plans is None or _served(state.plans) != _served(plans):
            if plans.plan.fail_open and not (state.plans and state.plans.plan.fail_open):
                log.warning("event=pool-fail-open pool=%s reason=no-eligible-member", pool)
            self.metrics.pool_fail_open.labels(pool).set(1 if plans.plan.fail_open else 0)
            self.metrics.pool_promoted.labels(pool).set(1 if plans.promoted else 0)
            state.plans = plans
            self.apply(plans)
        return state.plans

    def adopt(self, previous: HealthMonitor) -> None:
        """Keep what a config reload must not forget: verdicts, loads, promotions of kept members."""
        for name, state in self.pools.items():
            old = previous.pools.get(name)
            if old is None:
                continue
            hosts = {m.host for m in state.config.member}
            state.members = {h: v for h, v in old.members.items() if h in hosts}
            state.loads = {h: v for h, v in old.loads.items() if h in hosts}
            state.promotion = old.promotion

    def plans_for(self, pool: PoolConfig) -> PoolPlans:
        """The pool's current plans, for a table being compiled (any thread; reads only)."""
        state = self.pools[pool.name]
        if state.plans is not None:
            return state.plans
        facts = self.facts(pool.name)
        return plan_all(pool, facts, promoted=state.promotion.promoted, ttl=self.ttl(pool.name))

    def reapply(self) -> None:
        """Hand every pool's plans on again (after a new table replaced the selectors)."""
        for name, state in self.pools.items():
            state.plans = None
            self.evaluate(name)

    # -- inputs ------------------------------------------------------------------------

    def on_result(self, target: Target, result: ProbeResult) -> None:
        state = self.pools[target.pool]
        member = next(m for m in state.config.member if m.host == target.host)
        before = state.members.get(target.host, MemberHealth())
        after, transition = observe(
            before,
            result.ok,
            self.clock(),
            fall=member.fall,
            rise=member.rise,
            reason=result.reason,
            evidence=result.evidence,
            latency=result.latency,
            load=result.load,
        )
        state.members[target.host] = after
        labels = (target.pool, target.host)
        self.metrics.probes.labels(*labels, "ok" if result.ok else "fail").inc()
        self.metrics.probe_latency.labels(*labels).set(result.latency)
        self.metrics.member_up.labels(*labels).set(1 if after.counts_as_up else 0)
        if result.cert_expires_in is not None:
            self.metrics.tls_expiry.labels(*labels).set(result.cert_expires_in)
            if result.reason == "tls-expiring" and before.reason != "tls-expiring":
                log.warning(
                    "event=tls-expiring pool=%s host=%s days_left=%.1f",
                    target.pool,
                    target.host,
                    result.cert_expires_in / 86400,
                )
        if transition is not None:
            self.metrics.transitions.labels(*labels, transition.new.value).inc()
            level = logging.WARNING if transition.new is Health.DOWN else logging.INFO
            log.log(
                level,
                "event=member-%s pool=%s host=%s from=%s reason=%s evidence=%r latency=%.3f",
                transition.new.value,
                target.pool,
                target.host,
                transition.old.value,
                result.reason,
                result.evidence,
                result.latency,
            )
        self.evaluate(target.pool)

    def set_drained(self, pool: str, host: str, drained: bool) -> None:
        self.store.set_drained(pool, host, drained)
        if drained:
            self.drained.add((pool, host))
        else:
            self.drained.discard((pool, host))
        log.info("event=member-%s pool=%s host=%s", "drained" if drained else "undrained", pool, host)
        self.evaluate(pool)

    def set_load(self, pool: str, host: str, value: float) -> None:
        self.pools[pool].loads[host] = value
        log.info("event=member-load pool=%s host=%s load=%s", pool, host, value)
        self.evaluate(pool)

    # -- probing -----------------------------------------------------------------------

    def start(self, zones: ZoneSet) -> None:
        targets = self._targets(zones, quiet=False)
        self.prober = Prober(targets, self.on_result, concurrency=self.config.server.probe_concurrency)
        self.prober.start()
        log.info("event=prober-started targets=%d", len(targets))

    def retarget(self, zones: ZoneSet) -> None:
        """The zone data changed: a member whose address changed is probed at its new one (and
        one that lost its address is no longer probed at the old)."""
        if self.prober is None:
            return
        changed = self.prober.retarget(self._targets(zones, quiet=True))
        if changed:
            log.info("event=prober-retargeted targets=%d changed=%d", len(self.prober.targets), changed)

    def _targets(self, zones: ZoneSet, quiet: bool) -> list[Target]:
        targets: list[Target] = []
        helo = self.config.server.probe_name
        for pool in self.config.pool:
            for member in pool.member:
                if member.probe == "none":
                    continue
                address = member_address(member, zones)
                if address is None:
                    if not quiet:
                        log.warning(
                            "event=probe-skipped pool=%s host=%s reason=no-address", pool.name, member.host
                        )
                    continue
                spec = probe_spec(member, address, helo, member_tlsa(member, zones))
                targets.append(Target(pool.name, member.host, spec, member.interval))
        return targets

    async def stop(self) -> None:
        if self.prober is not None:
            await self.prober.stop()
        for task in list(self.hook_tasks):
            task.cancel()


def _served(plans: PoolPlans) -> tuple[object, ...]:
    """What of a plan reaches the wire; equal values need no re-render."""
    return (plans.plan, plans.hints, plans.ttl, plans.relay_views, plans.families)

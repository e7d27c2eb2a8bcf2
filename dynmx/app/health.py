"""From probe results and operator decisions to what the pools serve.

Facts flow one way: a probe result (or a drain, or a load reading) updates a member's
health; the pool's facts, promotion state and TTL are derived again; when what would be
served changed, the pool is re-planned and handed to `apply`, which swaps the pool's
selector state. The monitor never builds DNS answers itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.name
import dns.rdataclass
import dns.rdatatype
import httpx

from dynmx.answer.zoneset import ZoneSet
from dynmx.config import Config, MemberConfig, PoolConfig
from dynmx.control.store import StateStore
from dynmx.health.prober import Prober, Target
from dynmx.health.probes import ProbeResult
from dynmx.health.spec import ProbeSpec
from dynmx.health.state import Health, MemberHealth, observe, pending_results
from dynmx.metrics import Metrics
from dynmx.policy import promotion
from dynmx.policy.served import PoolPlans, plan_all
from dynmx.policy.strategies import MemberFacts

log = logging.getLogger("dynmx.health")

HOOK_TIMEOUT = 30.0
MIN_TTL = 1


@dataclass
class PoolHealth:
    """Everything the monitor knows about one pool."""

    config: PoolConfig
    members: dict[str, MemberHealth] = field(default_factory=dict)
    loads: dict[str, float] = field(default_factory=dict)  # set by the operator (no load probe)
    promotion: promotion.Promotion = field(default_factory=promotion.Promotion)
    plans: PoolPlans | None = None


def member_address(member: MemberConfig, zones: ZoneSet) -> str | None:
    """Where to probe a member: its configured address, else its A (or AAAA) in our zones."""
    if member.ip:
        return member.ip
    name = dns.name.from_text(member.host)
    zone = zones.find(name)
    node = zone.node(name) if zone is not None else None
    if node is None:
        return None
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
        if rdataset is not None:
            return str(next(iter(rdataset)).address)
    return None


def probe_spec(member: MemberConfig, address: str, helo_name: str) -> ProbeSpec:
    return ProbeSpec(
        kind=member.probe,
        address=address,
        port=member.probe_port,
        timeout=member.timeout,
        helo_name=helo_name.rstrip("."),
        require_starttls=member.starttls,
        url=member.url,
        expect_status=member.expect_status,
        body_match=member.body_match,
        load_field=member.load_field,
        load_metric=member.load_metric,
        tls_warn_days=member.tls_warn_days,
        server_name=member.server_name,
    )


class HealthMonitor:
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

    # -- reporting ---------------------------------------------------------------------

    def pool_status(self, pool: str, first_counts: dict[str, int]) -> dict[str, object]:
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

    def states(self) -> dict[str, dict[str, str]]:
        """pool -> host -> up | down | admin-down | unknown, for the routing table."""
        found: dict[str, dict[str, str]] = {}
        for name, state in self.pools.items():
            facts = self.facts(name)
            found[name] = {
                m.host: member_state(m, state.members.get(m.host), facts[m.host]) for m in state.config.member
            }
        return found

    def status_text(self, pool: str) -> list[str] | None:
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
                targets.append(
                    Target(pool.name, member.host, probe_spec(member, address, helo), member.interval)
                )
        return targets

    async def stop(self) -> None:
        if self.prober is not None:
            await self.prober.stop()
        for task in list(self.hook_tasks):
            task.cancel()

    # -- promotion hooks ---------------------------------------------------------------

    def _on_promotion(self, config: PoolConfig, event: str) -> None:
        standbys = [m.host for m in config.member if m.role == "standby"]
        log.warning("event=pool-%s pool=%s standbys=%s", event, config.name, ",".join(standbys))
        if event != "promote" or not (config.on_promote or config.on_promote_url):
            return
        try:
            task = asyncio.get_running_loop().create_task(self._run_hook(config, standbys))
        except RuntimeError:  # no loop (a unit test driving evaluate by hand)
            return
        self.hook_tasks.add(task)
        task.add_done_callback(self.hook_tasks.discard)

    async def _run_hook(self, config: PoolConfig, standbys: list[str]) -> None:
        """Run the operator's hook once per promotion: a command, a webhook, or both."""
        if config.on_promote:
            env = {**os.environ, "DYNMX_POOL": config.name, "DYNMX_STANDBYS": " ".join(standbys)}
            try:
                process = await asyncio.create_subprocess_exec(*config.on_promote, env=env)
                code = await asyncio.wait_for(process.wait(), HOOK_TIMEOUT)
                log.info("event=promote-hook kind=command pool=%s exit=%d", config.name, code)
            except (OSError, TimeoutError) as error:
                log.error("event=promote-hook kind=command pool=%s error=%r", config.name, str(error))
        if config.on_promote_url:
            body = {"event": "promote", "pool": config.name, "standbys": standbys}
            try:
                async with httpx.AsyncClient(timeout=HOOK_TIMEOUT) as client:
                    response = await client.post(config.on_promote_url, json=body)
                log.info(
                    "event=promote-hook kind=webhook pool=%s status=%d", config.name, response.status_code
                )
            except httpx.HTTPError as error:
                log.error(
                    "event=promote-hook kind=webhook pool=%s error=%r", config.name, type(error).__name__
                )


def member_state(member: MemberConfig, health: MemberHealth | None, facts: MemberFacts) -> str:
    """admin-down, down, up, or unknown (no verdict yet; counts as up)."""
    if facts.drained:
        return "admin-down"
    if member.probe == "none":
        return "up"
    if health is None:
        return "unknown"
    return health.state.value


def _served(plans: PoolPlans) -> tuple[object, ...]:
    """What of a plan reaches the wire; equal values need no re-render."""
    return (plans.plan, plans.hints, plans.ttl, plans.relay_views, plans.families)

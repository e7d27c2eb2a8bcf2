"""`dynmx explain NAME [--from ADDR] [--hint LABEL]`: the answer a query gets now, and why."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import dns.name
import dns.rdatatype

from dynmx.config import Config, PoolConfig, absolute_name
from dynmx.errors import CommandError
from dynmx.policy.served import PoolPlans
from dynmx.policy.strategies import Mode, Ordering, Plan

if TYPE_CHECKING:
    from dynmx.app.root import App

SHARE_DIGITS = 3  # a share as a fraction: 0.333
# How a query picks among the pool's orderings, in words (what `Mode` means to an operator).
MODE_WORDS = {
    Mode.FIXED: "one ordering for every query",
    Mode.ROTATE: "each query gets the next ordering in turn",
    Mode.WEIGHTED: "first place drawn per query in proportion to the members' weights",
}


def _render(ordering: Ordering) -> list[str]:
    return [f"{preference} {host}" for host, preference in ordering]


def _shares(weights: tuple[float, ...], orderings: tuple[Ordering, ...]) -> list[dict[str, object]]:
    """Every ordering with the fraction of queries it answers, in the plan's order.

    A list, not a mapping keyed by the share: orderings with equal weights are all kept.
    """
    total = sum(weights)
    return [
        {"share": round(weight / total, SHARE_DIGITS), "answer": _render(ordering)}
        for weight, ordering in zip(weights, orderings, strict=True)
    ]


def first_shares(plan: Plan) -> dict[str, float]:
    """Each host's share of first place under a weighted plan."""
    total = sum(plan.weights)
    shares: dict[str, float] = {}
    for weight, ordering in zip(plan.weights, plan.orderings, strict=True):
        host = ordering[0][0]
        shares[host] = round(shares.get(host, 0.0) + weight / total, SHARE_DIGITS)
    return shares


def next_answer(plan: Plan, counter: int, processes: int = 1) -> dict[str, object]:
    """What a query arriving now gets: the one notion `dynmx status` and `dynmx explain` share.
    A rotation's next ordering is the selector's counter modulo their number (as `Selector.pick`
    takes it); a weighted pool has no next one, only each host's chance of first place; with
    several answer processes (`workers`) each rotates on its own counter, so none is next."""
    found: dict[str, object] = {
        "mode": plan.mode.name.lower(),
        "how": MODE_WORDS[plan.mode],
        "orderings": len(plan.orderings),
    }
    if plan.mode is Mode.WEIGHTED:
        return {**found, "first": None, "first_shares": first_shares(plan)}
    if plan.mode is Mode.ROTATE and processes > 1:
        return {**found, "first": None, "processes": processes}
    index = counter % len(plan.orderings) if plan.mode is Mode.ROTATE else 0
    ordering = plan.orderings[index]
    return {**found, "index": index + 1, "first": ordering[0][0], "answer": _render(ordering)}


def _client_action(config: Config, source: str) -> tuple[str, str, str] | None:
    """(prefix, action, hint) of the most specific client rule covering `source`."""
    if not source:
        return None
    address = ipaddress.ip_address(source)
    matches = [c for c in config.client if address in ipaddress.ip_network(c.prefix)]
    if not matches:
        return None
    best = max(matches, key=lambda c: ipaddress.ip_network(c.prefix).prefixlen)
    return best.prefix, best.action, best.hint


def explain_query(
    config: Config,
    owner: str,
    pool: PoolConfig | None,
    status: dict[str, object] | None,
    plans: PoolPlans | None,
    counter: int,
    source: str,
    hint: str,
) -> dict[str, object]:
    """Assemble the explanation from the pool's plans and the selector's counter (read only)."""
    why: list[str] = []
    result: dict[str, object] = {"name": owner, "from": source or None, "why": why}
    name_rule = next((r for r in config.name if r.name == owner), None)
    if name_rule is not None:
        why.append(f"name action {name_rule.action} applies to every query type at {owner}")
        result["answer"] = {"null-mx": ["0 ."], "nxdomain": "NXDOMAIN", "refuse": "REFUSED"}[name_rule.action]
        return result
    if pool is None or plans is None:
        why.append("not a pool or hint name: answered from the zone data as it stands")
        result["answer"] = "static (see dig)"
        return result
    result["pool"] = status
    result["ttl"] = plans.ttl
    if plans.ttl < pool.ttl:
        why.append(
            f"TTL lowered from {pool.ttl} to {plans.ttl}: a verdict or promotion may change the answer"
        )
    if plans.promoted:
        why.append("standbys are promoted: every primary has been down longer than promote_after")
    if plans.plan.fail_open:
        why.append("fail-open: no member is eligible, so every member is listed at its base preference")
    hinted = dict(plans.hints)
    try:
        action = _client_action(config, source)
    except ValueError:
        action = None
        why.append(f"--from {source!r} is not an address; client actions not applied")
    relay = next(
        (
            (host, view)
            for host, sources, view in plans.relay_views
            if source and any(ipaddress.ip_address(source) in ipaddress.ip_network(p) for p in sources)
        ),
        None,
    )
    if hint:
        if hint not in hinted:
            result["answer"] = "NXDOMAIN"
            why.append(f"no hint {hint!r} in pool {pool.name}")
            return result
        why.append(f"hint {hint!r}: its fixed order, members that are down left out")
        result["answer"] = _render(hinted[hint].orderings[0])
        return result
    if relay is not None:
        host, view = relay
        why.append(f"{source} is a source of relay {host}: it gets the pool without itself (RFC 5321 5.1)")
        result["answer"] = _render(view.orderings[(counter + 1) % len(view.orderings)])
        return result
    if action is not None and action[1] != "answer":
        prefix, verb, label = action
        why.append(f"client rule {prefix}: {verb}{' ' + label if label else ''}")
        if verb == "hint" and label in hinted:
            result["answer"] = _render(hinted[label].orderings[0])
        else:
            result["answer"] = {"refuse": "REFUSED", "drop": "no reply"}.get(verb, "?")
        return result
    plan = plans.plan
    upcoming = next_answer(plan, counter, config.server.workers or 1)
    result["next"] = upcoming
    if isinstance(status, dict):
        status["next"] = upcoming
    if upcoming.get("processes"):
        why.append(
            f"{pool.strategy}: {MODE_WORDS[plan.mode]}, in each of the {upcoming['processes']} answer"
            " processes on its own: which ordering comes next depends on the process a query reaches"
        )
        result["answer"] = [", ".join(_render(ordering)) for ordering in plan.orderings]
    elif plan.mode is Mode.ROTATE:
        why.append(
            f"{pool.strategy}: {MODE_WORDS[plan.mode]}; a query arriving now gets ordering"
            f" {upcoming['index']} of {len(plan.orderings)}, {upcoming['first']} first"
        )
        result["answer"] = upcoming["answer"]
    elif plan.mode is Mode.WEIGHTED:
        drawn = ", ".join(f"{host} {share:.1%}" for host, share in first_shares(plan).items())
        why.append(f"{pool.strategy}: {MODE_WORDS[plan.mode]}: {drawn}")
        result["answer"] = _shares(plan.weights, plan.orderings)
    else:
        why.append(f"{pool.strategy}: {MODE_WORDS[plan.mode]}, {upcoming['first']} first")
        result["answer"] = upcoming["answer"]
    return result


def explain(app: App, name: str, source: str = "", hint: str = "") -> dict[str, object]:
    """What a query for `name` MX would get now, and why (`dynmx explain`)."""
    try:
        owner = absolute_name(name)
    except ValueError as error:
        raise CommandError(str(error)) from None
    pool = next((p for p in app.config.pool if p.name == owner), None)
    hint_label = hint
    if pool is None:
        for candidate in app.config.pool:
            suffix = f"._hint.{candidate.name}"
            if owner.endswith(suffix):
                pool, hint_label = candidate, owner[: -len(suffix)]
    selector = None
    if pool is not None and app.engine is not None:
        selector = app.engine.table.selectors.get((dns.name.from_text(pool.name), dns.rdatatype.MX))
    return explain_query(
        app.config,
        owner,
        pool,
        app.health.pool_status(pool.name, first_counts(app, pool.name)) if pool else None,
        app.health.plans_for(pool) if pool else None,
        selector.counter if selector is not None else 0,
        source,
        hint_label,
    )


def first_counts(app: App, pool: str) -> dict[str, int]:
    """How often each member of `pool` was given first, from the hot path's counters."""
    if app.engine is None:
        return {}
    return {member: n for (name, owner, member), n in app.hot_stats().firsts.items() if owner == pool}

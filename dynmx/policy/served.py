"""Turn pools, hints, client and name actions into what the compiler serves.

Pure: config and member facts in; dynamic RRsets, overlay nodes and forced names out.
The pool name's RRset (MX, A/AAAA or SRV, by the pool's kind) and every hint name's are
dynamic (re-planned when facts change); hint names and null-MX names also get overlay
nodes so that they exist for the lookup (NODATA for other types, no NXDOMAIN below them).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype

from dynmx.answer.clients import ClientAction, ClientRules
from dynmx.answer.compiler import AnswerTable, compile_table, recompile_table, staged_table
from dynmx.answer.dynamic import DynamicRRset, ServedPolicy, render_state
from dynmx.answer.zoneset import ZoneData, ZoneSet
from dynmx.config import Config
from dynmx.config_pools import PoolConfig
from dynmx.policy import records
from dynmx.policy.signing import signed_zones
from dynmx.policy.strategies import MemberFacts, Plan, plan_hint, plan_pool, with_promotion

MX = dns.rdatatype.MX
IN = dns.rdataclass.IN
HINT_LABEL = b"_hint"
NULL_MX_TTL = 3600


def hint_owner(pool: PoolConfig, label: str) -> dns.name.Name:
    """`<label>._hint.<pool name>`: the name a transport map points at for a message class."""
    return dns.name.from_text(f"{label}._hint.{pool.name}")


@dataclass(frozen=True)
class PoolPlans:
    """The current plans of one pool: its own, each hint's, and each relay's own view."""

    pool: PoolConfig
    plan: Plan
    hints: tuple[tuple[str, Plan], ...]
    ttl: int  # the pool TTL, lowered while a change is due sooner
    promoted: bool = False
    relay_views: tuple[tuple[str, tuple[str, ...], Plan], ...] = ()
    # Address pools with IPv4 and IPv6 members: one plan per family, so each rotates on its own.
    families: tuple[tuple[int, PoolPlans], ...] = ()

    def _variants(self, plan: Plan, rdtype: int) -> tuple[dns.rdataset.Rdataset, ...]:
        """One rdataset per ordering; a family with no member left fails open (base order)."""
        fallback = {int(r.rdtype): r for r in records.placeholder(self.pool)}
        found = []
        for ordering in plan.orderings:
            by_type = records.rdatasets(self.pool, ordering, self.ttl)
            rdataset = by_type.get(rdtype) or fallback[rdtype]
            if rdataset.ttl != self.ttl:
                rdataset = dns.rdataset.from_rdata_list(self.ttl, list(rdataset))
            found.append(rdataset)
        return tuple(found)

    def specs(self) -> list[DynamicRRset]:
        if self.families:
            return [spec for _, plans in self.families for spec in plans.specs()]
        owner = dns.name.from_text(self.pool.name)
        found = []
        for rdtype in records.rdtypes(self.pool):
            found.append(
                DynamicRRset(
                    name=self.pool.name,
                    owner=owner,
                    rdtype=rdtype,
                    mode=int(self.plan.mode),
                    variants=self._variants(self.plan, rdtype),
                    firsts=self.plan.firsts,
                    weights=self.plan.weights,
                    hints=tuple((label, self._variants(p, rdtype)[0]) for label, p in self.hints),
                    relay_views=tuple(
                        (host, sources, self._variants(p, rdtype)) for host, sources, p in self.relay_views
                    ),
                    original_ttl=self.pool.ttl,
                )
            )
            for label, plan in self.hints:
                found.append(
                    DynamicRRset(
                        name=self.pool.name,
                        owner=hint_owner(self.pool, label),
                        rdtype=rdtype,
                        mode=int(plan.mode),
                        variants=self._variants(plan, rdtype),
                        firsts=plan.firsts,
                        original_ttl=self.pool.ttl,
                    )
                )
        return found


def plan_all(
    pool: PoolConfig, facts: Mapping[str, MemberFacts], *, promoted: bool = False, ttl: int | None = None
) -> PoolPlans:
    """Plan a pool, its hints and the views of relays that resolve through us (RFC 5321 5.1).

    A relay that finds itself in the MX list drops every record at its own preference
    and above; seeing itself first it would bounce or loop. Its own queries therefore
    get the pool without it, primaries first (all of them, if none is up), so it keeps
    queueing for the primaries as a backup MX should.
    """
    families = records.rdtypes(pool)
    if pool.kind == "address" and len(families) > 1:
        parts = tuple(
            (rdtype, plan_all(records.family_pool(pool, rdtype), facts, promoted=promoted, ttl=ttl))
            for rdtype in families
        )
        return replace(parts[0][1], pool=pool, families=parts)
    serving = with_promotion(pool, promoted)
    hints = tuple((hint.label, plan_hint(serving, hint, facts)) for hint in pool.hint)
    views = tuple(
        (
            m.host,
            m.sources,
            plan_pool(replace(serving, member=tuple(o for o in serving.member if o is not m)), facts),
        )
        for m in serving.member
        if m.sources
    )
    return PoolPlans(
        pool, plan_pool(serving, facts), hints, pool.ttl if ttl is None else ttl, promoted, views
    )


def client_rules(config: Config) -> ClientRules:
    return ClientRules(
        [ClientAction(ipaddress.ip_network(c.prefix), c.action, c.hint) for c in config.client]
    )


def overlay_nodes(
    config: Config, existing: Mapping[dns.name.Name, dns.node.Node | None]
) -> dict[dns.name.Name, dns.node.Node]:
    """Nodes to lay over the zones: hint names (a placeholder MX) and null MX names (RFC 7505)."""
    nodes: dict[dns.name.Name, dns.node.Node] = {}
    for pool in config.pool:
        for hint in pool.hint:
            node = dns.node.Node()  # type: ignore[no-untyped-call]
            node.rdatasets.extend(records.placeholder(pool))
            nodes[hint_owner(pool, hint.label)] = node
    null_mx: dns.rdataset.Rdataset | None = None  # parsed only when some rule asks (every edit builds this)
    for rule in config.name:
        if rule.action != "null-mx":
            continue
        if null_mx is None:
            null_mx = dns.rdataset.from_text(IN, MX, NULL_MX_TTL, "0 .")
        name = dns.name.from_text(rule.name)
        node = dns.node.Node()  # type: ignore[no-untyped-call]
        old = existing.get(name)
        if old is not None:
            node.rdatasets.extend(rds for rds in old.rdatasets if rds.rdtype != MX)
        node.rdatasets.append(null_mx)
        nodes[name] = node
    return nodes


def forced_names(config: Config) -> dict[dns.name.Name, int]:
    """Name actions that answer an rcode for every type: nxdomain (3) or refuse (5)."""
    rcodes = {"nxdomain": 3, "refuse": 5}
    return {dns.name.from_text(r.name): rcodes[r.action] for r in config.name if r.action in rcodes}


def served_policy(config: Config, plans: list[PoolPlans], rules: ClientRules) -> ServedPolicy:
    dynamic = tuple(spec for plans_of_pool in plans for spec in plans_of_pool.specs())
    return ServedPolicy(dynamic=dynamic, forced=forced_names(config), rules=rules)


def build_table(
    config: Config,
    zones: list[ZoneData],
    plan_of: Callable[[PoolConfig], PoolPlans],
    rng: Callable[[], float] | None = None,
    previous: AnswerTable | None = None,
    changed: Iterable[dns.name.Name] = (),
    staged: bool = False,
    stage_from: int | None = None,
) -> AnswerTable:
    """Zones plus policy, compiled: the one place a new table is made.

    `plan_of` gives each pool's current plans (facts, promotion, TTL are the caller's).
    Pools whose name is in no served zone are left out (`dynmx check` reports them).
    With `previous` (same config), only the `changed` zones and those that use them are
    compiled again (an edit), or staged when they have at least `stage_from` names.
    `staged`: every zone pending, for `fill_table` to compile.
    """
    base = ZoneSet(zones)
    existing = {}
    for rule in config.name:
        name = dns.name.from_text(rule.name)
        zone = base.find(name)
        existing[name] = zone.node(name) if zone is not None else None
    overlays: dict[dns.name.Name, dict[dns.name.Name, dns.node.Node]] = {}
    for name, node in overlay_nodes(config, existing).items():
        zone = base.find(name)
        if zone is not None:
            overlays.setdefault(zone.origin, {})[name] = node
    layered: ZoneSet | list[ZoneData] = base  # no overlay: the ZoneSet just built serves as it is
    signed = signed_zones(config, zones, overlays)  # dnssec = true: signed, overlay laid in
    if signed is not None:
        layered = [z if z.signer is not None else _layer(z, overlays.get(z.origin)) for z in signed]
    elif overlays:
        layered = [_layer(z, overlays.get(z.origin)) for z in zones]
    plans = [plan_of(p) for p in config.pool if base.find(dns.name.from_text(p.name))]
    policy = served_policy(config, plans, client_rules(config))
    if rng is not None:
        policy = dataclasses.replace(policy, rng=rng)
    if previous is not None:
        return recompile_table(previous, layered, changed, policy, stage_from)
    return staged_table(layered, policy) if staged else compile_table(layered, policy)


def _layer(zone: ZoneData, overlay: dict[dns.name.Name, dns.node.Node] | None) -> ZoneData:
    return ZoneData(zone.origin, zone.zone, overlay=overlay) if overlay else zone


def refresh_pool(table: AnswerTable, plans: PoolPlans) -> None:
    """Re-render one pool's dynamic RRsets after its facts changed; the table stays."""
    for spec in plans.specs():
        selector = table.selectors.get((spec.owner, spec.rdtype))
        if selector is not None:
            selector.replace(render_state(table.zoneset, spec))

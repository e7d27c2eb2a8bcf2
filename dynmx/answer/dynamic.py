"""RRsets that change per query: every variant prerendered, one picked per query in O(1).

The policy layer describes a dynamic RRset (`DynamicRRset`: the rdatasets it can
answer with and how to choose); this module renders each variant through the normal
lookup, so additional data, authority and truncation are exactly those of a static
answer, and wraps them in a `Selector` that the table entry carries. Facts (a member
down, a new load) replace a selector's state in one assignment; the table is untouched.
"""

from __future__ import annotations

import bisect
import dataclasses
import ipaddress
import random
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.name
import dns.rdataset

from dynmx.answer.clients import ClientAction, ClientRules
from dynmx.answer.lookup import lookup
from dynmx.answer.render import render
from dynmx.answer.zoneset import ZoneSet
from dynmx.wire.response import RCODE_REFUSED, Entry

FIXED, ROTATE, WEIGHTED = 0, 1, 2

REFUSED_ENTRY = Entry(rcode=RCODE_REFUSED, authoritative=False, body=b"", spans=())


@dataclass(frozen=True, slots=True)
class DynamicRRset:
    """What the policy wants served at owner/rdtype: variants, how to pick, hint answers."""

    name: str  # the pool it belongs to, for metrics and status
    owner: dns.name.Name
    rdtype: int
    mode: int
    variants: tuple[dns.rdataset.Rdataset, ...]
    firsts: tuple[str, ...]  # first host of each variant
    weights: tuple[float, ...] = ()
    hints: tuple[tuple[str, dns.rdataset.Rdataset], ...] = ()  # client action 'hint' answers
    # RFC 5321 5.1 relay rule: queries from a relay's own prefixes get answers without it.
    # (relay host, its source prefixes, the variants to answer them with)
    relay_views: tuple[tuple[str, tuple[str, ...], tuple[dns.rdataset.Rdataset, ...]], ...] = ()
    # The TTL the variants are signed with (the pool's own): a TTL the prober lowered is
    # served with the RRSIG's TTL lowered too, its Original TTL unchanged (RFC 4035 5.3.3).
    original_ttl: int = 0


@dataclass(frozen=True)
class ServedPolicy:
    """Everything the policy layer asks the compiler to serve beyond the zones."""

    dynamic: tuple[DynamicRRset, ...] = ()
    forced: dict[dns.name.Name, int] = field(default_factory=dict)  # name -> NXDOMAIN or REFUSED
    rules: ClientRules | None = None
    rng: Callable[[], float] | None = None


@dataclass(frozen=True, slots=True)
class SelectorState:
    """One immutable generation of a selector; `hits` counts picks per variant."""

    variants: tuple[Entry, ...]
    firsts: tuple[str, ...]
    mode: int
    cumulative: tuple[float, ...]
    hints: dict[str, Entry]
    hits: list[int] = field(default_factory=list)
    relay_rules: ClientRules | None = None  # source prefix -> relay host (in `hint`)
    relay_views: dict[str, tuple[Entry, ...]] = field(default_factory=dict)
    # In a zone dynmx signs: the same generation for DO=1, each RRset with its own RRSIG.
    signed: SelectorState | None = None


_UNDECIDED = Entry(rcode=0, authoritative=False, body=b"", spans=())  # no rule of the source's applies


class Selector:
    """Picks the variant for one query; carried by the table entry of a dynamic RRset."""

    __slots__ = ("__weakref__", "counter", "name", "random", "rules", "signed_sides", "state", "totals")

    def __init__(self, name: str, state: SelectorState, rules: ClientRules | None, rng: Callable[[], float]):
        self.name = name
        self.state = state
        self.rules = rules if rules else None
        self.random = rng
        self.counter = 0
        self.totals: dict[str, int] = {}
        # The DO=1 sides of a signed zone's pool, given each new generation in `replace`.
        self.signed_sides: weakref.WeakSet[SignedSelector] = weakref.WeakSet()

    def pick(self, addr: object) -> Entry | None:
        """The entry to answer with, or None to drop the query (client action 'drop')."""
        state = self.state
        if state.relay_rules is not None or self.rules is not None:
            chosen = self._by_source(state, addr)
            if chosen is not _UNDECIDED:
                return chosen
        mode = state.mode
        if mode == ROTATE:
            index = self.counter % len(state.variants)
            self.counter = index + 1
        elif mode == WEIGHTED:
            cumulative = state.cumulative
            index = bisect.bisect_right(cumulative, self.random() * cumulative[-1])
            if index >= len(cumulative):
                index = len(cumulative) - 1
        else:
            index = 0
        state.hits[index] += 1
        return state.variants[index]

    def _by_source(self, state: SelectorState, addr: object) -> Entry | None:
        """The answer a relay's prefix or a client action gives this source, if any."""
        if not isinstance(addr, tuple):
            return _UNDECIDED
        relay_rules = state.relay_rules
        if relay_rules is not None:
            relay = relay_rules.match(addr[0])
            if relay is not None:
                view = state.relay_views[relay.hint]
                self.counter += 1
                return view[self.counter % len(view)]
        rules = self.rules
        if rules is not None:
            action = rules.match(addr[0])
            if action is not None and action.action != "answer":
                if action.action == "refuse":
                    return REFUSED_ENTRY
                if action.action == "drop":
                    return None
                hinted = state.hints.get(action.hint)
                if hinted is not None:
                    return hinted
        return _UNDECIDED

    def replace(self, state: SelectorState) -> None:
        """Swap in a new generation; the old one's counts move to the running totals."""
        old = self.state
        for first, hits in zip(old.firsts, old.hits, strict=True):
            self.totals[first] = self.totals.get(first, 0) + hits
        self.state = state
        for side in self.signed_sides:
            side.follow(state)

    def first_counts(self) -> dict[str, int]:
        """How often each host was ranked first, over every generation."""
        counts = dict(self.totals)
        state = self.state
        for first, hits in zip(state.firsts, state.hits, strict=True):
            counts[first] = counts.get(first, 0) + hits
        return counts


class SignedSelector(Selector):
    """The DO=1 side of a selector in a zone dynmx signs: picks from its current
    generation's signed variants (`SelectorState.signed`), so a health change that replaces
    the generation replaces both at once."""

    __slots__ = ("parent",)

    def __init__(self, parent: Selector) -> None:
        self.parent = parent
        self.name = parent.name
        self.rules = parent.rules
        self.random = parent.random
        self.counter = 0
        self.totals = {}
        self.signed_sides = weakref.WeakSet()
        self.follow(parent.state)
        parent.signed_sides.add(self)

    def follow(self, state: SelectorState) -> None:
        """The parent's new generation: its signed side, kept as this selector's own state
        (read per query as a plain attribute)."""
        self.state = state.signed if state.signed is not None else state


def render_state(zoneset: ZoneSet, spec: DynamicRRset, do: bool = False) -> SelectorState:
    """Render every variant (and hint answer) of `spec` through the ordinary lookup; in a
    zone dynmx signs, each RRset is signed here, before it can be served (and `signed`
    holds the DO=1 generation)."""
    zone = zoneset.find(spec.owner, spec.rdtype)
    signer = zone.signer if zone is not None else None

    def entry_for(rdataset: dns.rdataset.Rdataset) -> Entry:
        sig = signer(spec.owner, rdataset, spec.original_ttl) if do and signer is not None else None
        answer = lookup(
            zoneset, spec.owner, spec.rdtype, override=(spec.owner, rdataset), do=do, override_sig=sig
        )
        return render(answer, spec.owner)

    variants = tuple(entry_for(rds) for rds in spec.variants)
    cumulative: list[float] = []
    total = 0.0
    for weight in spec.weights:
        total += weight
        cumulative.append(total)
    relay_rules = ClientRules(
        [
            ClientAction(ipaddress.ip_network(prefix), "exclude", host)
            for host, prefixes, _ in spec.relay_views
            for prefix in prefixes
        ]
    )
    return SelectorState(
        variants=variants,
        firsts=spec.firsts,
        mode=spec.mode,
        cumulative=tuple(cumulative),
        hints={label: entry_for(rds) for label, rds in spec.hints},
        hits=[0] * len(variants),
        relay_rules=relay_rules if relay_rules else None,
        relay_views={host: tuple(entry_for(rds) for rds in view) for host, _, view in spec.relay_views},
        signed=render_state(zoneset, spec, do=True) if signer is not None and not do else None,
    )


def carrier(state: SelectorState, selector: Selector) -> Entry:
    """The table entry for a dynamic RRset: its first variant, carrying the selector."""
    return dataclasses.replace(state.variants[0], selector=selector)


def default_rng() -> Callable[[], float]:
    return random.Random().random

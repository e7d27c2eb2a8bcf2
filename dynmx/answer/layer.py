"""The policy laid over compiled entries: a pool's dynamic RRsets replace their static
entry with a carrier of a fresh selector; name actions (`forced`) replace every entry of
their name with NXDOMAIN or REFUSED."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import dns.name

from dynmx.answer.dynamic import (
    REFUSED_ENTRY,
    Selector,
    ServedPolicy,
    SignedSelector,
    carrier,
    default_rng,
    render_state,
)
from dynmx.answer.lookup import Answer, Outcome
from dynmx.answer.render import render
from dynmx.answer.table import DO_KEY, AnswerTable, CompiledZone, wire_key
from dynmx.answer.zoneset import ZoneSet
from dynmx.wire.response import RCODE_NXDOMAIN, Entry


def with_policy(
    zoneset: ZoneSet,
    entries: dict[bytes, Entry],
    compiled: dict[bytes, CompiledZone],
    keys: dict[bytes, Sequence[bytes]],
    uses: dict[bytes, frozenset[bytes]],
    policy: ServedPolicy,
) -> AnswerTable:
    """A table of these entries with `policy` laid over them (in `entries`)."""
    for name, rcode in policy.forced.items():
        force(zoneset, entries, keys, name, rcode)
    selectors = lay_dynamic(zoneset, policy, entries, entries.__contains__)
    return AnswerTable(
        entries=entries,
        zones=compiled,
        zoneset=zoneset,
        selectors=selectors,
        forced=forced_keys(policy),
        keys=keys,
        uses=uses,
        signed=any(zone.signed for zone in compiled.values()),
    )


def forced_keys(policy: ServedPolicy) -> frozenset[bytes]:
    return frozenset(wire_key(name) for name in policy.forced)


def lay_dynamic(
    zoneset: ZoneSet, policy: ServedPolicy, into: dict[bytes, Entry], signed: Callable[[bytes], bool]
) -> dict[tuple[dns.name.Name, int], Selector]:
    """Each dynamic RRset's carrier, with a fresh selector, set in `into`; `signed(key)`:
    whether the table has a DO=1 entry under `key` (a pool's answers are its own there too)."""
    selectors: dict[tuple[dns.name.Name, int], Selector] = {}
    for spec in policy.dynamic:
        state = render_state(zoneset, spec)
        selector = Selector(spec.name, state, policy.rules, policy.rng or default_rng())
        selectors[(spec.owner, spec.rdtype)] = selector
        typed = wire_key(spec.owner) + spec.rdtype.to_bytes(2, "big")
        into[typed] = carrier(state, selector)
        if signed(DO_KEY + typed):
            by_dnssec = state.signed  # signed by dynmx: each variant with its RRSIG
            into[DO_KEY + typed] = (
                into[typed] if by_dnssec is None else carrier(by_dnssec, SignedSelector(selector))
            )
    return selectors


def force(
    zoneset: ZoneSet,
    entries: dict[bytes, Entry],
    keys: dict[bytes, Sequence[bytes]],
    name: dns.name.Name,
    rcode: int,
) -> None:
    """Answer every qtype at `name` with NXDOMAIN or REFUSED (a name action)."""
    key = wire_key(name)
    zone = zoneset.find(name)
    drop_name(entries, keys.get(zone.key, ()) if zone is not None else (), key)
    if rcode == RCODE_NXDOMAIN and zone is not None:
        answer = Answer(Outcome.NAME_ERROR, rcode=rcode, authority=[(zone.negative_soa, True)])
        entries[key] = render(answer, name)
    else:
        entries[key] = REFUSED_ENTRY


def drop_name(entries: dict[bytes, Entry], zone_keys: Iterable[bytes], key: bytes) -> None:
    """Remove the entries of one name (its default and every typed one, DO=1 ones included)
    among a zone's keys."""
    for existing in [k for k in zone_keys if k[: len(key)] == key and len(k) in (len(key), len(key) + 2)]:
        entries.pop(existing, None)
    signed = DO_KEY + key
    lengths = (len(signed), len(signed) + 2)
    for existing in [k for k in zone_keys if k[: len(signed)] == signed and len(k) in lengths]:
        entries.pop(existing, None)

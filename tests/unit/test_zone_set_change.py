"""Adding or removing a zone compiles that zone and the zones it affects, not every zone, and
the table equals a full compile of the new set (as NSD and Knot add a zone beside the others).

The zones it affects (`answer.reach`): the zone that served its names before or serves them
after (parent and child nest), the zones whose CNAME chains reached a name at or below it
(RFC 1034 4.3.2: a chain is followed through every zone served), and the zones just below
it whose DS the nearest zone above answers (RFC 4035 3.1.4.1).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.zone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dynmx.answer.compiler as compiler
import dynmx.answer.entries as entries_module
from dynmx.answer.compiler import AnswerTable, compile_table, fill_table, recompile_table, wire_key
from dynmx.answer.dynamic import ServedPolicy
from dynmx.answer.engine import Engine
from dynmx.answer.zoneset import ZoneData, ZoneSet
from dynmx.config import from_mapping
from dynmx.policy.served import build_table, plan_all
from tests.signing import SignerUnavailable, sign_zone

SIGNED = "sig.b.t."
# Nested origins (t. > a.t. > s.a.t. > x.s.a.t., t. > b.t. > sig.b.t.) and one apart (c.u.).
ORIGINS = ("t.", "a.t.", "b.t.", "s.a.t.", "x.s.a.t.", "c.u.", SIGNED)
HOSTS = ("www", "mail", "alias", "a", "b", "s", "x.s", "sig", "*.w", "deep.x.s")
# Names in every zone of the set, below cuts, at wildcards, in no zone at all.
TARGETS = (
    "www.b.t.",
    "www.s.a.t.",
    "x.s.a.t.",
    "www.x.s.a.t.",
    "alias.a.t.",
    "www.c.u.",
    "mail.t.",
    "q.w.t.",
    "q.w.s.a.t.",
    "www.sig.b.t.",
    "nowhere.v.",
    "deep.x.s.a.t.",
)
APEX = "@ SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\n"
SIGNED_TEXT = (
    APEX + "www CNAME www.b.t.\nalias CNAME x.s.a.t.\nmail MX 10 www.c.u.\n"
    "sub NS ns.sub\nns.sub A 192.0.2.9\nmx A 192.0.2.10\n*.w A 192.0.2.11\n"
)


def _record(kind: str, target: str, number: int) -> str:
    return {
        "A": f"A 192.0.2.{number}",
        "CNAME": f"CNAME {target}",
        "MX": f"MX 10 {target}",
        "SRV": f"SRV 0 0 25 {target}",
        "NS": f"NS {target}",
        "TXT": f'TXT "{number}"',
    }[kind]


records = st.builds(
    _record,
    st.sampled_from(("A", "CNAME", "CNAME", "MX", "SRV", "NS", "TXT")),
    st.sampled_from(TARGETS),
    st.integers(min_value=2, max_value=250),
)
contents = st.dictionaries(st.sampled_from(HOSTS), records, max_size=6)


def _text(hosts: dict[str, str], apex_mx: str | None) -> str:
    lines = [APEX, *(f"{host} {record}\n" for host, record in sorted(hosts.items()))]
    if apex_mx is not None:
        lines.append(f"@ MX 10 {apex_mx}\n")
    return "".join(line for line in lines if not (line.startswith("*.w NS")))


def _zone(origin: str, text: str) -> ZoneData:
    return ZoneData(dns.name.from_text(origin), dns.zone.from_text(text, origin=origin, relativize=False))


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> ZoneData:
    """sig.b.t. signed by ldns-signzone (its DO=1 entries beside the others); unsigned when
    the signer is not installed."""
    tmp: Path = tmp_path_factory.mktemp("sig")
    (tmp / "plain.zone").write_text(f"$ORIGIN {SIGNED}\n$TTL 3600\n{SIGNED_TEXT}")
    try:
        sign_zone(tmp / "plain.zone", SIGNED, tmp / "signed.zone", tmp / "keys")
    except SignerUnavailable:
        return _zone(SIGNED, SIGNED_TEXT)
    zone = dns.zone.from_file(str(tmp / "signed.zone"), origin=SIGNED, relativize=False)
    return ZoneData(dns.name.from_text(SIGNED), zone)


CONFIG = from_mapping(
    {
        "pool": [
            {
                "name": "b.t.",
                "strategy": "round-robin",
                "member": [
                    {"host": "mx1.b.t.", "preference": 10},
                    {"host": "mx2.b.t.", "preference": 20},
                ],
            }
        ],
        "name": [
            {"name": "www.s.a.t.", "action": "nxdomain"},
            {"name": "mail.b.t.", "action": "refuse"},
            {"name": "alias.x.s.a.t.", "action": "null-mx"},
        ],
    }
)
PLANS = {pool.name: plan_all(pool, {}) for pool in CONFIG.pool}


def _build(
    zones: Iterable[ZoneData], previous: AnswerTable | None = None, changed: Iterable[str] = ()
) -> AnswerTable:
    return build_table(
        CONFIG,
        list(zones),
        lambda pool: PLANS[pool.name],
        rng=random.Random(7).random,
        previous=previous,
        changed=[dns.name.from_text(origin) for origin in changed],
    )


def _view(table: AnswerTable) -> dict[str, object]:
    """Everything a later compile or edit reads from the table, by value."""
    return {
        "entries": {key: (e.body, e.rcode, e.authoritative) for key, e in table.entries.items()},
        "keys": {origin: set(keys) for origin, keys in table.keys.items()},
        "uses": table.uses,
        "reach": table.reach,
        "pending": table.pending,
        "negatives": {origin: set(n.shared) for origin, n in table.negatives.items()},
        "zones": {
            origin: (z.names, z.cuts, z.wildcard_parents, z.nxdomain.body, z.complete, z.signed)
            for origin, z in table.zones.items()
        },
        "selectors": set(table.selectors),
        "forced": table.forced,
    }


QUESTIONS = [
    (f"{host}.{origin}" if host else origin, qtype, do)
    for origin in ORIGINS
    for host in ("", "www", "alias", "mail", "q.w", "missing")
    for qtype, do in (("A", False), ("MX", False), ("DS", False), ("A", True))
]


def _replies(table: AnswerTable) -> list[bytes | None]:
    engine = Engine(table)
    found = []
    for qname, qtype, do in QUESTIONS:
        query = dns.message.make_query(qname, qtype, id=7, want_dnssec=do).to_wire()
        reply = engine.handle(query, ("127.0.0.1", 1), False)
        assert reply is None or isinstance(reply, bytes)
        found.append(reply)
    return found


steps = st.lists(
    st.one_of(
        st.sets(st.sampled_from(ORIGINS), min_size=1, max_size=2).map(lambda s: ("toggle", sorted(s))),
        st.tuples(st.sampled_from(ORIGINS), contents).map(lambda e: ("edit", e)),
    ),
    min_size=1,
    max_size=5,
)


@pytest.fixture(params=[False, True], ids=["small", "tracked"])
def tracked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Zones of a few names tracked too (refs, shared NODATA entries), as a 1,000-name one is."""
    if request.param:
        monkeypatch.setattr(entries_module, "TRACK_FROM", 3)
    yield


@given(
    texts=st.fixed_dictionaries({origin: contents for origin in ORIGINS if origin != SIGNED}),
    apex_mx=st.sampled_from((None, *TARGETS)),
    first=st.sets(st.sampled_from(ORIGINS)),
    changes=steps,
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_adding_and_removing_zones_equals_compiling_the_new_set(
    signed: ZoneData,
    tracked: None,
    texts: dict[str, dict[str, str]],
    apex_mx: str | None,
    first: set[str],
    changes: list[tuple[str, object]],
) -> None:
    """RFC 1034 4.3.2 chains, RFC 4035 3.1.4.1 DS, nesting, delegations, wildcards, a pool and
    name actions: after every add, removal, add-and-removal or edit the table is the one a
    full compile of the new set gives, and so is every answer."""
    data = {origin: _zone(origin, _text(hosts, apex_mx)) for origin, hosts in texts.items()}
    data[SIGNED] = signed
    served = set(first)
    table = _build(data[o] for o in sorted(served))
    for kind, change in changes:
        if kind == "toggle":
            moved = list(change)  # type: ignore[call-overload]
            served ^= set(moved)
        else:
            origin, hosts = change  # type: ignore[misc]
            if origin == SIGNED:
                continue
            data[origin] = _zone(origin, _text(hosts, None))
            moved = [origin]
        zones = [data[o] for o in sorted(served)]
        table = _build(zones, table, moved)
        fresh = _build(zones)
        assert _view(table) == _view(fresh)
    assert _replies(table) == _replies(_build(data[o] for o in sorted(served)))


# -- what is compiled ---------------------------------------------------------------------


def _numbered(count: int) -> list[ZoneData]:
    text = APEX + "www A 192.0.2.80\nmail MX 10 www\n"
    return [_zone(f"z{i}.test.", text) for i in range(count)]


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The origins `recompile_table` compiles, in order."""
    seen: list[str] = []
    real = compiler.compile_zone

    def counted(zoneset: object, zone: ZoneData, *args: object) -> object:
        seen.append(zone.origin.to_text())
        return real(zoneset, zone, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(compiler, "compile_zone", counted)
    return seen


def test_adding_one_zone_to_fifty_compiles_it_alone_and_keeps_every_other_entry(compiles: list[str]) -> None:
    zones = _numbered(50)
    table = compile_table(zones)
    added = _zone("new.test.", APEX + "www A 192.0.2.99\n")
    compiles.clear()
    after = recompile_table(table, [*zones, added], [added.origin], ServedPolicy())
    assert compiles == ["new.test."]
    assert all(after.entries[key] is entry for key, entry in table.entries.items())
    assert wire_key(dns.name.from_text("www.new.test.")) + b"\x00\x01" in after.entries


def test_adding_a_zone_compiles_the_zones_whose_chains_reach_into_it(compiles: list[str]) -> None:
    """RFC 1034 4.3.2: z3's CNAME into new.test. now goes on into the new zone."""
    zones = _numbered(10)
    zones[3] = _zone("z3.test.", APEX + "www CNAME www.new.test.\n")
    table = compile_table(zones)
    assert table.reach == {zones[3].key: {wire_key(dns.name.from_text("www.new.test."))}}
    added = _zone("new.test.", APEX + "www A 192.0.2.99\n")
    compiles.clear()
    after = recompile_table(table, [*zones, added], [added.origin], ServedPolicy())
    assert sorted(compiles) == ["new.test.", "z3.test."]
    chained = after.entries[wire_key(dns.name.from_text("www.z3.test.")) + b"\x00\x01"]
    assert bytes([192, 0, 2, 99]) in chained.body
    assert _view(after) == _view(compile_table([*zones, added]))


def test_adding_a_child_zone_compiles_its_parent_whose_names_below_it_are_the_childs(
    compiles: list[str],
) -> None:
    zones = [*_numbered(5), _zone("a.test.", APEX + "www.sub A 192.0.2.7\n")]
    table = compile_table(zones)
    child = _zone("sub.a.test.", APEX + "www A 192.0.2.8\n")
    compiles.clear()
    after = recompile_table(table, [*zones, child], [child.origin], ServedPolicy())
    assert sorted(compiles) == ["a.test.", "sub.a.test."]
    assert _view(after) == _view(compile_table([*zones, child]))


def test_adding_a_parent_zone_compiles_the_zones_just_below_it_rfc4035_3_1_4_1(compiles: list[str]) -> None:
    """Their DS is the parent's to answer from now on; a zone below another child is not."""
    zones = [
        _zone("a.test.", APEX),
        _zone("b.test.", APEX),
        _zone("x.b.test.", APEX),
        _zone("c.other.", APEX),
    ]
    table = compile_table(zones)
    parent = _zone("test.", APEX)
    compiles.clear()
    after = recompile_table(table, [*zones, parent], [parent.origin], ServedPolicy())
    assert sorted(compiles) == ["a.test.", "b.test.", "test."]
    assert _view(after) == _view(compile_table([*zones, parent]))


def test_removing_a_zone_compiles_its_users_and_its_parent_alone(compiles: list[str]) -> None:
    zones = [*_numbered(10), _zone("new.test.", APEX + "www A 192.0.2.99\n")]
    zones[3] = _zone("z3.test.", APEX + "www CNAME www.new.test.\n")
    table = compile_table(zones)
    compiles.clear()
    after = recompile_table(table, zones[:-1], [zones[-1].origin], ServedPolicy())
    assert compiles == ["z3.test."]
    assert wire_key(dns.name.from_text("www.new.test.")) + b"\x00\x01" not in after.entries
    assert _view(after) == _view(compile_table(zones[:-1]))


def test_a_table_that_does_not_know_its_chains_compiles_every_zone(compiles: list[str]) -> None:
    """A table made elsewhere (the answer store's) without `reach`: nothing can be judged."""
    zones = _numbered(5)
    table = compile_table(zones)
    unknown = AnswerTable(table.entries, table.zones, table.zoneset, keys=table.keys, uses=table.uses)
    added = _zone("new.test.", APEX)
    compiles.clear()
    after = recompile_table(unknown, [*zones, added], [added.origin], ServedPolicy())
    assert len(compiles) == 6 or len(after.pending) == 6


def test_a_zone_added_during_the_fill_leaves_the_other_pending_zones_pending() -> None:
    zones = _numbered(6)
    staged = compiler.staged_table(zones)
    table = fill_table(staged, [zones[0].key, zones[1].key])
    added = _zone("new.test.", APEX + "www A 192.0.2.99\n")
    after = recompile_table(table, [*zones, added], [added.origin], ServedPolicy())
    assert after.pending == table.pending
    filled = fill_table(after, list(after.pending))
    assert _view(filled) == _view(compile_table([*zones, added]))


def test_a_pool_whose_name_a_new_zone_serves_gets_its_carrier() -> None:
    zones = [_zone("t.", APEX)]
    table = _build(zones)
    child = _zone("b.t.", APEX + "@ MX 10 mx1\nmx1 A 192.0.2.31\nmx2 A 192.0.2.32\n")
    after = _build([*zones, child], table, ["b.t."])
    fresh = _build([*zones, child])
    assert _view(after) == _view(fresh)
    assert _replies(after) == _replies(fresh)
    back = _build(zones, after, ["b.t."])
    assert _view(back) == _view(_build(zones))


def test_a_table_whose_every_zone_the_compiler_made_knows_its_chains_from_the_first_edit(
    compiles: list[str],
) -> None:
    """A cold start through the answer store (no row kept): every zone indexed, then all of
    them compiled as changed; the next add compiles the new zone alone."""
    zones = _numbered(5)
    zones[2] = _zone("z2.test.", APEX + "www CNAME www.new.test.\n")
    indexed = {zone.key: compiler.index_zone(zone, complete=False) for zone in zones}
    empty = AnswerTable({}, indexed, ZoneSet(zones), pending=frozenset(indexed))
    table = recompile_table(empty, zones, [zone.origin for zone in zones], ServedPolicy())
    assert table.reach == {zones[2].key: {wire_key(dns.name.from_text("www.new.test."))}}
    added = _zone("new.test.", APEX + "www A 192.0.2.99\n")
    compiles.clear()
    after = recompile_table(table, [*zones, added], [added.origin], ServedPolicy())
    assert sorted(compiles) == ["new.test.", "z2.test."]
    assert _view(after) == _view(compile_table([*zones, added]))


def test_twenty_zones_added_at_once_compile_with_the_zones_they_affect_alone(compiles: list[str]) -> None:
    """A catalog's members arriving together: the same rules, tested label by label."""
    zones = [*_numbered(30), _zone("test.", APEX + "www.n7 A 192.0.2.5\n")]
    zones[4] = _zone("z4.test.", APEX + "www CNAME www.n13.test.\n")
    table = compile_table(zones)
    added = [_zone(f"n{i}.test.", APEX + "www A 192.0.2.99\n") for i in range(20)]
    compiles.clear()
    after = recompile_table(table, [*zones, *added], [zone.origin for zone in added], ServedPolicy())
    assert sorted(compiles) == sorted(["test.", "z4.test.", *(zone.origin.to_text() for zone in added)])
    assert _view(after) == _view(compile_table([*zones, *added]))

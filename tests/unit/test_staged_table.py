"""A staged table (many zones at start-up): every zone indexed and pending, answered by the
slow path from the same lookup, then compiled a slice at a time. Every answer is the same
before, during and after the fill, and filling everything equals compiling everything."""

from __future__ import annotations

import itertools

import dns.message
import dns.name
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.answer.compiler import compile_table, fill_table, recompile_table, staged_table, wire_key
from dynmx.answer.dynamic import ServedPolicy
from dynmx.answer.engine import Engine
from dynmx.answer.zoneset import ZoneData
from dynmx.policy.served import build_table, plan_all
from tests.unit.test_pool_answers import ORIGIN, firsts, setup, zone_data
from tests.unit.test_recompile import ORIGINS, _table_view, _zone

FORCED = ServedPolicy(forced={dns.name.from_text("www.b.test."): 3, dns.name.from_text("ns1.a.test."): 5})
HOSTS = ("", "ns1.", "www.", "alias.", "mail.", "sub.", "ns.sub.", "x.wild.", "missing.", "a.b.missing.")
QUESTIONS = [
    (f"{host}{origin}", qtype)
    for origin in ORIGINS
    for host in HOSTS
    for qtype in ("A", "AAAA", "MX", "NS", "SOA", "DS", "TXT", "CNAME", "ANY")
]


def _zones() -> list[ZoneData]:
    return [_zone(origin, "") for origin in ORIGINS]


def _replies(engine: Engine) -> list[bytes | None]:
    found = []
    for qname, qtype in QUESTIONS:
        reply = engine.handle(dns.message.make_query(qname, qtype, id=7).to_wire(), ("127.0.0.1", 1), False)
        assert reply is None or isinstance(reply, bytes)
        found.append(reply)
    return found


def test_a_staged_table_holds_every_zone_pending_and_no_entry_of_them() -> None:
    table = staged_table(_zones())
    assert table.pending == {wire_key(dns.name.from_text(origin)) for origin in ORIGINS}
    assert not table.entries
    assert not any(zone.complete for zone in table.zones.values())


def test_a_staged_engine_answers_every_question_as_a_compiled_one() -> None:
    compiled = _replies(Engine(compile_table(_zones(), FORCED)))
    assert _replies(Engine(staged_table(_zones(), FORCED))) == compiled


@pytest.mark.parametrize("filled", range(1, len(ORIGINS) + 1))
def test_a_partly_filled_engine_answers_every_question_as_a_compiled_one(filled: int) -> None:
    staged = staged_table(_zones(), FORCED)
    table = fill_table(staged, list(itertools.islice(sorted(staged.pending), filled)))
    assert len(table.pending) == len(ORIGINS) - filled
    assert _replies(Engine(table)) == _replies(Engine(compile_table(_zones(), FORCED)))


@given(st.permutations(ORIGINS), st.integers(min_value=1, max_value=len(ORIGINS)))
@settings(max_examples=30, deadline=None)
def test_filling_every_pending_zone_in_any_slices_equals_compiling_everything(
    order: list[str], size: int
) -> None:
    table = staged_table(_zones(), FORCED)
    keys = [wire_key(dns.name.from_text(origin)) for origin in order]
    for start in range(0, len(keys), size):
        table = fill_table(table, keys[start : start + size])
    fresh = compile_table(_zones(), FORCED)
    assert not table.pending
    assert _table_view(table) == _table_view(fresh)
    assert table.uses == fresh.uses
    assert all(zone.complete for zone in table.zones.values())


def test_an_edit_compiles_its_pending_zone_and_leaves_the_others_pending() -> None:
    zones = _zones()
    table = staged_table(zones)
    edited = _zone("b.test.", "new A 192.0.2.77\n")
    zones[1] = edited
    after = recompile_table(table, zones, [edited.origin], ServedPolicy())
    assert after.pending == table.pending - {wire_key(edited.origin)}
    assert after.zones[wire_key(edited.origin)].complete
    assert wire_key(dns.name.from_text("new.b.test.")) + b"\x00\x01" in after.entries


def test_a_fill_keeps_a_pools_selector_so_its_rotation_goes_on() -> None:
    """The fill copies the pool's carrier over the static MX it compiles: the same selector
    answers, so round-robin neither restarts nor skips a member."""
    s = setup("round-robin")
    staged = build_table(s.config, [zone_data()], lambda p: plan_all(p, {}), staged=True)
    engine = Engine(staged)
    before = firsts(engine, 2)
    engine.swap(fill_table(staged, list(staged.pending)))
    assert engine.table.selectors is staged.selectors
    after = firsts(engine, 4)
    assert len(set(before + after[:1])) == 3  # the third answer puts the third member first
    assert after[0] == firsts(Engine(s.table), 3)[2]
    assert wire_key(dns.name.from_text(ORIGIN)) + b"\x00\x0f" in engine.table.entries


@given(st.permutations(ORIGINS), st.integers(min_value=1, max_value=8))
@settings(max_examples=30, deadline=None)
def test_filling_a_few_names_at_a_time_equals_compiling_everything(order: list[str], max_names: int) -> None:
    table = staged_table(_zones(), FORCED)
    keys = [wire_key(dns.name.from_text(origin)) for origin in order]
    for _ in range(100):
        if not table.pending:
            break
        table = fill_table(table, keys, max_names)
    fresh = compile_table(_zones(), FORCED)
    assert not table.pending
    assert not table.unfilled
    assert _table_view(table) == _table_view(fresh)
    assert table.uses == fresh.uses
    assert all(zone.complete for zone in table.zones.values())


def test_a_zone_filled_in_part_answers_every_question_as_a_compiled_one() -> None:
    compiled = _replies(Engine(compile_table(_zones(), FORCED)))
    table = staged_table(_zones(), FORCED)
    keys = sorted(table.pending)
    in_part = 0
    for _ in range(100):
        if not table.pending:
            break
        table = fill_table(table, keys, 2)
        in_part += bool(table.unfilled)
        assert _replies(Engine(table)) == compiled
    assert not table.pending
    assert in_part > 0  # some answers came from a zone compiled in part


def test_an_edit_stages_a_zone_of_at_least_stage_from_names_and_serves_its_new_version() -> None:
    """A large zone's edit is served once indexed; its compile comes behind, from `fill_table`."""
    zones = _zones()
    table = compile_table(zones, FORCED)
    edited = _zone("b.test.", 'new A 192.0.2.77\nwww TXT "moved"\n')
    zones[1] = edited
    after = recompile_table(table, zones, [edited.origin], FORCED, stage_from=len(edited.names))
    key = wire_key(edited.origin)
    assert key in after.pending
    assert not after.zones[key].complete
    assert after.keys[key] == ()
    assert wire_key(dns.name.from_text("ns1.b.test.")) not in after.entries
    assert _replies(Engine(after)) == _replies(Engine(compile_table(zones, FORCED)))
    filled = fill_table(after, list(after.pending))
    assert _table_view(filled) == _table_view(compile_table(zones, FORCED))


def test_an_edit_below_stage_from_names_is_compiled_at_once() -> None:
    zones = _zones()
    edited = _zone("b.test.", "new A 192.0.2.77\n")
    zones[1] = edited
    larger = max(len(zone.names) for zone in zones) + 1  # the zones using b.test. compile again too
    after = recompile_table(compile_table(_zones()), zones, [edited.origin], ServedPolicy(), larger)
    assert not after.pending
    assert wire_key(dns.name.from_text("new.b.test.")) + b"\x00\x01" in after.entries


def test_an_edit_to_a_zone_filled_in_part_drops_what_was_compiled_of_its_old_version() -> None:
    zones = _zones()
    key = wire_key(zones[1].origin)
    table = fill_table(staged_table(zones, FORCED), [key], len(zones[1].names) - 1)
    assert len(table.unfilled[key]) == 1
    edited = _zone("b.test.", '@ MX 10 www\nns1 TXT "x"\nwww TXT "y"\n')
    zones[1] = edited
    after = recompile_table(table, zones, [edited.origin], FORCED, stage_from=1)
    assert key not in after.unfilled
    assert after.keys[key] == ()
    assert _replies(Engine(after)) == _replies(Engine(compile_table(zones, FORCED)))


def test_staging_a_parent_zone_keeps_the_entries_of_the_child_zone_below_its_cut() -> None:
    """The parent's names at and below `sub.a.test.` are the child's to answer and compile:
    staging the parent (dropping its entries) must not drop the child's."""
    zones = _zones()
    edited = _zone("b.test.", "new A 192.0.2.77\n")  # a.test. uses b.test.; sub.a.test. does not
    zones[1] = edited
    stage_from = len(zones[0].names)
    after = recompile_table(compile_table(_zones()), zones, [edited.origin], ServedPolicy(), stage_from)
    assert after.pending == {wire_key(zones[0].origin)}
    assert wire_key(dns.name.from_text("sub.a.test.")) in after.entries
    assert wire_key(dns.name.from_text("ns.sub.a.test.")) + b"\x00\x01" in after.entries


def test_a_new_zone_and_the_zones_it_affects_with_stage_from_names_together_are_staged() -> None:
    """A new zone compiles itself and the zones it affects (here its parent, whose names below
    it are now the child's), behind when they have `stage_from` names together; the others
    are left as they are."""
    table = compile_table(_zones()[:2], FORCED)
    zones = _zones()
    after = recompile_table(
        table, zones, [zones[2].origin], FORCED, stage_from=len(zones[0].names) + len(zones[2].names)
    )
    assert after.pending == {zones[0].key, zones[2].key}
    assert _replies(Engine(after)) == _replies(Engine(compile_table(zones, FORCED)))


def test_a_new_zone_among_fewer_names_compiles_everything_at_once() -> None:
    table = compile_table(_zones()[:2], FORCED)
    zones = _zones()
    after = recompile_table(
        table, zones, [zones[2].origin], FORCED, stage_from=sum(len(z.names) for z in zones) + 1
    )
    assert not after.pending
    assert _table_view(after) == _table_view(compile_table(zones, FORCED))

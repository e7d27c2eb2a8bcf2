"""An edit of a tracked zone renders only the names it touches and the names whose answers
use them (`recompile_names`), and the table it gives is the one a full compile of the new
zones gives: every entry, key by key and byte by byte, and every answer the engine sends."""

from __future__ import annotations

from collections.abc import Iterator

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.answer import entries, zoneset
from dynmx.answer.compiler import AnswerTable, compile_table, recompile_table, wire_key
from dynmx.answer.dynamic import ServedPolicy
from dynmx.answer.engine import Engine
from dynmx.answer.zoneset import ZoneData, note_edit
from dynmx.control.update import Change, Op
from dynmx.control.versions import apply_changes, soa_change

ORIGINS = ("a.test.", "b.test.")
BASE = {
    "a.test.": (
        "@ 3600 SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\n@ MX 10 mx\nns1 A 192.0.2.1\n"
        "mx A 192.0.2.2\nwww A 192.0.2.3\nalias CNAME www.b.test.\nmail MX 10 mx.b.test.\n"
        'sub NS ns.sub\nns.sub A 192.0.2.4\n*.wild A 192.0.2.5\ndeep.x TXT "deep"\n'
    ),
    "b.test.": (
        "@ 3600 SOA ns1 hostmaster 7 7200 900 1209600 60\n@ NS ns1\nns1 A 192.0.2.9\n"
        "www A 192.0.2.10\nback CNAME new.a.test.\nrelay MX 5 host.a.test.\n"
    ),
}
HOSTS = (
    *("www", "mx", "host", "alias", "new", "deep.x", "y.deep.x", "ns1", "x.wild", "*.wild", "ns.sub"),
    *("back", "q.r.wild", "s.r.wild"),  # a name below a wildcard's parent changes what it covers
)
TARGETS = [f"{host}.{origin}" for host in HOSTS for origin in ORIGINS if "*" not in host]
QTYPES = ("A", "AAAA", "MX", "TXT", "CNAME", "NS", "SOA", "DS", "ANY", "SRV")


@pytest.fixture(autouse=True)
def _track_every_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small zones here stand in for large ones: every zone is tracked."""
    monkeypatch.setattr(entries, "TRACK_FROM", 0)


def _zone(origin: str) -> ZoneData:
    return ZoneData(
        dns.name.from_text(origin), dns.zone.from_text(BASE[origin], origin=origin, relativize=False)
    )


record = st.one_of(
    st.tuples(st.just("A"), st.sampled_from(["192.0.2.77", "192.0.2.78"])),
    st.tuples(st.just("AAAA"), st.just("2001:db8::77")),
    st.tuples(st.just("TXT"), st.sampled_from(['"one"', '"two"'])),
    st.tuples(st.just("MX"), st.sampled_from([f"10 {t}" for t in TARGETS])),
    st.tuples(st.just("CNAME"), st.sampled_from(TARGETS)),
)
edit = st.tuples(st.sampled_from(ORIGINS), st.booleans(), st.sampled_from(HOSTS), record)


def _changes(zone: dns.zone.Zone, origin: str, add: bool, host: str, rr: tuple[str, str]) -> list[Change]:
    """An add, or the delete of a record the name has (of a random one when it has none)."""
    name = dns.name.from_text(host, dns.name.from_text(origin))
    rdtype, text = rr
    rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False)
    if not add:
        node = zone.nodes.get(name)
        existing = [(rds.ttl, r) for rds in node.rdatasets for r in rds] if node is not None else []
        if existing:
            ttl, rdata = existing[0]
            return [Change(Op.DELETE, name, ttl, rdata)]
    return [Change(Op.ADD, name, 300, rdata)]


def _view(table: AnswerTable) -> dict[bytes, tuple[bytes, int, bool]]:
    return {key: (e.body, e.rcode, e.authoritative) for key, e in table.entries.items()}


def _questions() -> Iterator[bytes]:
    for origin in ORIGINS:
        for host in (*HOSTS, "@", "missing", "z.missing", "q.x.wild", "a.b.sub"):
            name = origin if host == "@" else f"{host}.{origin}"
            for qtype in QTYPES:
                query = dns.message.make_query(name, qtype, use_edns=False)
                query.id = 4242
                yield query.to_wire()


def _replies(table: AnswerTable) -> list[bytes | None]:
    engine = Engine(table)
    return [engine.handle(wire, ("127.0.0.1", 5300)) for wire in _questions()]  # type: ignore[misc]


@settings(max_examples=80, deadline=None)
@given(st.lists(edit, min_size=1, max_size=6))
def test_an_incremental_recompile_equals_a_full_compile_of_the_new_zones(
    edits: list[tuple[str, bool, str, tuple[str, str]]],
) -> None:
    _edits_equal_full_compiles(edits)


@settings(max_examples=40, deadline=None)
@given(st.lists(edit, min_size=1, max_size=6))
def test_a_small_zone_that_uses_an_edited_one_is_compiled_again_into_the_delta(
    edits: list[tuple[str, bool, str, tuple[str, str]]],
) -> None:
    """b.test. (5 names) is below TRACK_FROM here, a.test. (12) above: b.test.'s answers that
    chain into a.test. are compiled again whole, laid with the same delta."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(entries, "TRACK_FROM", 8)
        _edits_equal_full_compiles(edits)


def _edits_equal_full_compiles(edits: list[tuple[str, bool, str, tuple[str, str]]]) -> None:
    zones = {origin: _zone(origin) for origin in ORIGINS}
    table = compile_table(zones.values())
    for origin, add, host, rr in edits:
        before = zones[origin]
        changes = _changes(before.zone, origin, add, host, rr)
        after = apply_changes(before.zone, [*changes, *soa_change(before.zone, "increment", 0)])
        zones[origin] = before.edited(after)
        served = _view(table)
        made = recompile_table(table, zones.values(), [before.origin], ServedPolicy())
        assert _view(table) == served  # nothing of the edit is seen before it is settled
        table = made.settle()
        full = compile_table(zones.values())
        assert _view(table) == _view(full)
        for key, index in full.zones.items():
            assert set(table.zones[key].names) == set(index.names)
            assert table.zones[key].nxdomain.body == index.nxdomain.body
    assert _replies(table) == _replies(compile_table(zones.values()))


def _edit(zones: dict[str, ZoneData], origin: str, changes: list[Change]) -> ZoneData:
    before = zones[origin]
    after = apply_changes(before.zone, [*changes, *soa_change(before.zone, "increment", 0)])
    zones[origin] = before.edited(after)
    return zones[origin]


def _a(host: str, origin: str, address: str) -> Change:
    name = dns.name.from_text(host, dns.name.from_text(origin))
    return Change(Op.ADD, name, 300, dns.rdata.from_text(dns.rdataclass.IN, "A", address))


def test_an_ordinary_edit_renders_only_the_names_it_touches_and_their_users() -> None:
    zones = {origin: _zone(origin) for origin in ORIGINS}
    table = compile_table(zones.values())
    edited = _edit(zones, "a.test.", [_a("new", "a.test.", "192.0.2.99")])
    unchanged = wire_key(dns.name.from_text("www.a.test.")) + dns.rdatatype.A.to_bytes(2, "big")
    user = wire_key(dns.name.from_text("back.b.test."))  # CNAME new.a.test.: was NXDOMAIN
    before = dict(table.entries)
    after = recompile_table(table, zones.values(), [edited.origin], ServedPolicy()).settle()
    assert after.entries[unchanged] is before[unchanged]  # not rendered again
    assert after.entries[user] is not before[user]
    assert after.entries[user].rcode == 0 and b"\xc0" in after.entries[user].body
    assert _view(after) == _view(compile_table(zones.values()))


def test_every_nodata_of_the_zone_carries_the_new_serial() -> None:
    """RFC 2308 3: the SOA in a negative answer is the zone's current one."""
    zones = {origin: _zone(origin) for origin in ORIGINS}
    table = compile_table(zones.values())
    edited = _edit(zones, "a.test.", [_a("new", "a.test.", "192.0.2.99")])
    after = recompile_table(table, zones.values(), [edited.origin], ServedPolicy())
    query = dns.message.make_query("www.a.test.", "TXT")
    reply = dns.message.from_wire(Engine(after).handle(query.to_wire(), ("127.0.0.1", 5300)))  # type: ignore[arg-type]
    assert reply.authority[0][0].serial == 2


def test_an_edit_of_a_wildcard_compiles_the_zone_again() -> None:
    zones = {origin: _zone(origin) for origin in ORIGINS}
    table = compile_table(zones.values())
    edited = _edit(zones, "a.test.", [_a("*.wild", "a.test.", "192.0.2.99")])
    after = recompile_table(table, zones.values(), [edited.origin], ServedPolicy())
    unchanged = wire_key(dns.name.from_text("www.a.test.")) + dns.rdatatype.A.to_bytes(2, "big")
    assert after.entries[unchanged] is not table.entries[unchanged]
    assert _view(after) == _view(compile_table(zones.values()))


@settings(max_examples=60, deadline=None)
@given(st.lists(edit, min_size=1, max_size=4))
def test_an_index_from_the_names_an_edit_told_equals_a_full_index(
    edits: list[tuple[str, bool, str, tuple[str, str]]],
) -> None:
    """What the UPDATE service tells (`note_edit`) replaces comparing every node; a removed
    name is indexed in full."""
    data = _zone("a.test.")
    for _, add, host, rr in edits:
        changes = [*_changes(data.zone, "a.test.", add, host, rr), *soa_change(data.zone, "increment", 0)]
        after = apply_changes(data.zone, changes)
        note_edit(data.zone, after, [change.name for change in changes])
        data, full = data.edited(after), ZoneData(data.origin, after)
        assert (set(data.names), set(data.name_keys), data.cuts) == (
            set(full.names),
            set(full.name_keys),
            full.cuts,
        )


def test_an_edit_told_its_names_compares_no_node(monkeypatch: pytest.MonkeyPatch) -> None:
    def compared(*_: object) -> None:
        raise AssertionError("every node compared")

    monkeypatch.setattr(zoneset, "_changed_nodes", compared)
    zones = {origin: _zone(origin) for origin in ORIGINS}
    before = zones["a.test."]
    changes = [_a("new", "a.test.", "192.0.2.99"), *soa_change(before.zone, "increment", 0)]
    after = apply_changes(before.zone, changes)
    note_edit(before.zone, after, [change.name for change in changes])
    assert dns.name.from_text("new.a.test.") in before.edited(after).names


def test_a_name_added_beside_a_wildcard_compiles_the_zone_again() -> None:
    """RFC 4592 2.2.2: `r.wild` becomes an empty non-terminal, so `q.r.wild` is no longer
    synthesised from `*.wild`: an MX naming it loses its additional address."""
    zones = {origin: _zone(origin) for origin in ORIGINS}
    mx = dns.rdata.from_text(dns.rdataclass.IN, "MX", "10 q.r.wild.a.test.")
    _edit(zones, "a.test.", [Change(Op.ADD, dns.name.from_text("to.a.test."), 300, mx)])
    table = compile_table(zones.values())
    edited = _edit(zones, "a.test.", [_a("s.r.wild", "a.test.", "192.0.2.99")])
    after = recompile_table(table, zones.values(), [edited.origin], ServedPolicy())
    key = wire_key(dns.name.from_text("to.a.test.")) + dns.rdatatype.MX.to_bytes(2, "big")
    assert b"\xc0\x00\x02\x05" not in after.entries[key].body  # *.wild's address, no longer added
    assert _view(after) == _view(compile_table(zones.values()))


def test_an_edit_is_answered_only_once_its_table_is_swapped_in() -> None:
    """The new table shares the served entries; the engine's swap lays the edit onto them,
    so queries between the compile and the swap get the version before, whole."""
    zones = {origin: _zone(origin) for origin in ORIGINS}
    engine = Engine(compile_table(zones.values()))
    edited = _edit(zones, "a.test.", [_a("new", "a.test.", "192.0.2.99")])
    after = recompile_table(engine.table, zones.values(), [edited.origin], ServedPolicy())
    assert after.entries is engine.table.entries  # nothing copied

    def ask(name: str, qtype: str) -> dns.message.Message:
        wire = dns.message.make_query(name, qtype).to_wire()
        return dns.message.from_wire(engine.handle(wire, ("127.0.0.1", 5300)))  # type: ignore[arg-type]

    assert ask("new.a.test.", "A").rcode() == dns.rcode.NXDOMAIN
    assert ask("www.a.test.", "TXT").authority[0][0].serial == 1
    engine.swap(after)
    assert ask("new.a.test.", "A").answer[0][0].address == "192.0.2.99"
    assert ask("www.a.test.", "TXT").authority[0][0].serial == 2


def test_a_table_an_edit_was_laid_over_since_is_compiled_again_whole() -> None:
    """An older table no longer holds its own entries: building from it compiles everything."""
    zones = {origin: _zone(origin) for origin in ORIGINS}
    first = compile_table(zones.values())
    edited = _edit(zones, "a.test.", [_a("new", "a.test.", "192.0.2.99")])
    recompile_table(first, zones.values(), [edited.origin], ServedPolicy()).settle()
    assert not first.current
    edited = _edit(zones, "a.test.", [_a("other", "a.test.", "192.0.2.98")])
    again = recompile_table(first, zones.values(), [edited.origin], ServedPolicy())
    assert again.entries is not first.entries and again.delta is None
    assert _view(again) == _view(compile_table(zones.values()))

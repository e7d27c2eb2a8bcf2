"""An edit's zone version is indexed from the version it was made from: only the changed
names are looked at, and the index is the one a full walk would build."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.node
import dns.rdatatype
import dns.zone
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.answer.zoneset import ZoneData
from dynmx.app.zonescan import zone_data
from dynmx.control.update import Op
from dynmx.control.writer import apply_changes
from dynmx.zone.loader import LoadedZone
from tests.unit.test_edit_validation import ORIGIN, _change, _name, _zone, edits, random_changes, records


def _view(data: ZoneData) -> tuple[object, ...]:
    return (data.names, data.name_keys, data.cuts, data.soa, data.negative_soa[1].ttl, data.apex_ns, data.key)


@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=8), edits, st.data())
def test_the_index_of_an_edit_equals_indexing_the_whole_new_version(
    extra: list[tuple[str, int, str]], edits: list[tuple[bool, tuple[str, int, str]]], data: st.DataObject
) -> None:
    before = _zone(extra)
    after = apply_changes(before, random_changes(before, edits, data))
    assert _view(ZoneData(ORIGIN, before).edited(after)) == _view(ZoneData(ORIGIN, after))


def _marked(zone: object) -> ZoneData:
    """An index with a name the zone does not have: kept only by an index built from it."""
    data = ZoneData(ORIGIN, zone)  # type: ignore[arg-type]
    data.names.add(_name("marker"))
    return data


def test_an_added_name_is_indexed_from_the_previous_version_not_by_a_full_walk() -> None:
    before = _zone([("a", dns.rdatatype.A, "192.0.2.1")])
    after = apply_changes(before, [_change(Op.ADD, "new.deep", dns.rdatatype.A, "192.0.2.9")])
    edited = _marked(before).edited(after)
    assert _name("marker") in edited.names
    assert {_name("new.deep"), _name("deep")} <= edited.names


def test_a_new_delegation_is_a_cut_and_a_removed_one_is_not() -> None:
    before = _zone([("sub", dns.rdatatype.A, "192.0.2.1")])
    delegated = apply_changes(before, [_change(Op.ADD, "sub", dns.rdatatype.NS, "ns1")])
    assert ZoneData(ORIGIN, before).edited(delegated).cuts == {_name("sub")}
    undone = apply_changes(delegated, [_change(Op.DELETE, "sub", dns.rdatatype.NS, "ns1")])
    assert not ZoneData(ORIGIN, delegated).edited(undone).cuts


def test_a_removed_name_is_indexed_again_in_full_so_its_empty_parents_go_too() -> None:
    before = _zone([("x.deep", dns.rdatatype.A, "192.0.2.1")])
    after = apply_changes(before, [_change(Op.DELETE, "x.deep", dns.rdatatype.A, "192.0.2.1")])
    edited = _marked(before).edited(after)
    assert _name("marker") not in edited.names
    assert _name("deep") not in edited.names


def test_a_version_not_made_from_this_one_is_indexed_in_full() -> None:
    other = _zone([("a", dns.rdatatype.A, "192.0.2.1")])
    edited = _marked(_zone([])).edited(other)
    assert _name("marker") not in edited.names
    assert dns.name.from_text("a", ORIGIN) in edited.names


def test_a_changed_node_left_empty_is_indexed_again_in_full() -> None:
    """A version made elsewhere than the writer may hold a node with no data: its name is gone."""
    before = _zone([("x.deep", dns.rdatatype.A, "192.0.2.1")])
    after = dns.zone.Zone(ORIGIN, relativize=False)
    after.nodes = dict(before.nodes)
    after.nodes[_name("x.deep")] = dns.node.Node()
    edited = _marked(before).edited(after)
    assert _name("marker") not in edited.names
    assert _name("x.deep") not in edited.names


def test_the_served_index_of_an_edited_zone_is_built_from_the_version_indexed_before() -> None:
    path = Path("ex.test.zone")
    before = _zone([("a", dns.rdatatype.A, "192.0.2.1")])
    [indexed] = zone_data({path: LoadedZone(ORIGIN, before, path)})
    indexed.names.add(_name("marker"))
    after = apply_changes(before, [_change(Op.ADD, "b", dns.rdatatype.A, "192.0.2.2")])
    [edited] = zone_data({path: LoadedZone(ORIGIN, after, path)})
    assert {_name("marker"), _name("b")} <= edited.names

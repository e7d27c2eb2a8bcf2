"""A version of a large zone shares the node dict of the version it was made from
(`VersionNodes`): every version reads as if its nodes had been copied, the older ones
never change, and the zone index of an edit is made from the names it changed."""

from __future__ import annotations

import pickle

import dns.name
import dns.rdata
import dns.rdataclass
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.answer.zoneset import ZoneData
from dynmx.control.update import Change, Op
from dynmx.control.versions import apply_changes, soa_change
from dynmx.zone import nodes
from dynmx.zone.nodes import VersionNodes

ZONE = "@ 3600 SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.2\n"
HOSTS = ("www", "mail", "a.b", "b", "ns1", "new")


@pytest.fixture(autouse=True)
def _share_every_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small zones stand in for large ones, their changes held over one base."""
    monkeypatch.setattr(nodes, "SHARE_FROM", 0)
    monkeypatch.setattr(nodes, "MERGE_AT", 0)


def _change(zone: dns.zone.Zone, add: bool, host: str, last: int) -> Change:
    name = dns.name.from_text(host, dns.name.from_text("z.test."))
    node = zone.nodes.get(name)
    if not add and node is not None:
        rdataset = node.rdatasets[0]
        return Change(Op.DELETE, name, rdataset.ttl, rdataset[0])
    return Change(Op.ADD, name, 300, dns.rdata.from_text(dns.rdataclass.IN, "A", f"192.0.2.{last}"))


def _plain(zone: dns.zone.Zone) -> dict[dns.name.Name, list[str]]:
    return {name: sorted(rds.to_text(name) for rds in node.rdatasets) for name, node in zone.nodes.items()}


edit = st.tuples(st.booleans(), st.sampled_from(HOSTS), st.integers(3, 250))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(edit, min_size=1, max_size=3), min_size=1, max_size=12))
def test_every_version_reads_as_a_copy_and_older_ones_never_change(
    edits: list[list[tuple[bool, str, int]]],
) -> None:
    zone = dns.zone.from_text(ZONE, origin="z.test.", relativize=False)
    versions = [(zone, _plain(zone))]
    for batch in edits:
        changes = [_change(zone, add, host, last) for add, host, last in batch]
        zone = apply_changes(zone, [*changes, *soa_change(zone, "increment", 0)])
        expected = _plain(zone)
        assert len(zone.nodes) == len(expected) == len(list(zone.nodes))
        assert all(name in zone.nodes and zone.nodes.get(name) is zone.nodes[name] for name in expected)
        assert dns.name.from_text("nowhere.z.test.") not in zone.nodes
        versions.append((zone, expected))
    for version, seen in versions:
        assert _plain(version) == seen


def test_a_version_is_sent_to_a_worker_as_a_plain_dict() -> None:
    zone = dns.zone.from_text(ZONE, origin="z.test.", relativize=False)
    after = apply_changes(zone, [_change(zone, True, "new", 9)])
    assert isinstance(after.nodes, VersionNodes)
    copied = pickle.loads(pickle.dumps(after))
    assert type(copied.nodes) is dict and _plain(copied) == _plain(after)


def test_a_version_over_many_changes_is_one_dict_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "MERGE_AT", 64)
    zone = dns.zone.from_text(ZONE, origin="z.test.", relativize=False)
    after = apply_changes(zone, [_change(zone, True, "new", 9)])
    assert type(apply_changes(after, [_change(after, True, "mail", 9)]).nodes) is dict  # 1 * 64 > 4


@settings(max_examples=40, deadline=None)
@given(st.lists(edit, min_size=1, max_size=4))
def test_the_index_of_an_untold_edit_over_shared_nodes_equals_a_full_index(
    batch: list[tuple[bool, str, int]],
) -> None:
    """Without `note_edit` (dyndns2, the CLI), an edit is found from the names its version
    holds over the shared dict; a removed name is indexed in full."""
    zone = dns.zone.from_text(ZONE, origin="z.test.", relativize=False)
    data = ZoneData(dns.name.from_text("z.test."), zone)
    changes = [_change(zone, add, host, last) for add, host, last in batch]
    after = apply_changes(zone, [*changes, *soa_change(zone, "increment", 0)])
    edited, full = data.edited(after), ZoneData(data.origin, after)
    assert (set(edited.names), set(edited.name_keys), edited.cuts) == (
        set(full.names),
        set(full.name_keys),
        full.cuts,
    )

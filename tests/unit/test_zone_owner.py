"""The one owner of zone data, by plain calls: the lock, one line of history per zone, what a
version made outside the owner must be to be served, and adding and removing zones."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.config import Config, load_config
from dynmx.control.journal import Journal, JournalEntry, JournalFork
from dynmx.control.lock import StateDirBusy, StateLock
from dynmx.control.owner import ZoneOwner, judge
from dynmx.control.update import Change, Op
from dynmx.control.writer import (
    JournalMismatch,
    StaleBase,
    ZoneWriter,
    apply_changes,
    diff_zones,
    replay,
    serial_of,
)
from dynmx.control.zones import ZoneEditRefused, add_zone, remove_zone, zone_file
from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.loader import LoadedZone, load_zone_file, parse_zone

IN = dns.rdataclass.IN
A = dns.rdatatype.A
ORIGIN = dns.name.from_text("example.test.")
NOW = 1_700_000_000.0
ZONE_TEXT = """\
$ORIGIN example.test.
$TTL 300
@ IN SOA ns1.example.test. hostmaster.example.test. 10 3600 600 86400 300
@ IN NS ns1.example.test.
ns1 IN A 192.0.2.1
mx1 IN A 192.0.2.2
www IN A 192.0.2.10
"""
POOL = """
[[pool]]
name = "mx.example.test."
strategy = "round-robin"
[[pool.member]]
host = "mx1.example.test."
probe = "none"
"""


def add(owner: str, text: str, ttl: int = 300, rdtype: dns.rdatatype.RdataType = A) -> Change:
    return Change(Op.ADD, dns.name.from_text(owner, ORIGIN), ttl, dns.rdata.from_text(IN, rdtype, text))


def delete(owner: str, text: str, ttl: int = 300, rdtype: dns.rdatatype.RdataType = A) -> Change:
    return Change(Op.DELETE, dns.name.from_text(owner, ORIGIN), ttl, dns.rdata.from_text(IN, rdtype, text))


def config_for(tmp_path: Path, extra: str = "") -> Config:
    path = tmp_path / "dynmx.toml"
    server = f'[server]\nzones_dir = "{tmp_path / "zones"}"\nstate_dir = "{tmp_path / "state"}"\n'
    path.write_text(server + extra)
    return load_config(path)


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedZone:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE_TEXT)
    return load_zone_file(zones / "example.test.zone")


@pytest.fixture
def owner(tmp_path: Path, loaded: LoadedZone) -> Iterator[ZoneOwner]:
    zone_owner = ZoneOwner(config_for(tmp_path, POOL), "test")
    yield zone_owner
    zone_owner.close()


# --- the lock ----------------------------------------------------------------------------


def test_a_second_owner_of_a_state_dir_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = StateLock(tmp_path)
    first.acquire("server")
    with pytest.raises(StateDirBusy, match=r"owned by pid \d+ \(server\)"):
        StateLock(tmp_path).acquire("dynmx record --offline")
    first.release()
    StateLock(tmp_path).acquire("dynmx record --offline")  # free again once released


def test_asking_who_owns_a_state_dir_does_not_take_it(tmp_path: Path) -> None:
    lock = StateLock(tmp_path)
    assert lock.holder() is None
    lock.acquire("server")
    assert StateLock(tmp_path).holder() is not None and "server" in str(StateLock(tmp_path).holder())
    lock.release()
    assert StateLock(tmp_path).holder() is None


# --- one line of history per zone ----------------------------------------------------------


def _entry(old: int, new: int) -> JournalEntry:
    return JournalEntry("example.test.", old, new, (), ())


def test_the_journal_refuses_a_second_change_from_one_serial(tmp_path: Path) -> None:
    """Two branches from serial 1 (the lost-edit bug of issue 22) cannot both be journaled."""
    journal = Journal(tmp_path / "journal.sqlite")
    journal.append(_entry(1, 2))
    with pytest.raises(JournalFork, match="already has a change from serial 1"):
        journal.append(_entry(1, 2))
    assert len(journal.entries("example.test.")) == 1
    journal.close()


def test_a_journal_holding_two_branches_from_an_older_dynmx_is_quarantined_at_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, zone TEXT NOT NULL,"
        " old_serial INTEGER NOT NULL, new_serial INTEGER NOT NULL, removed TEXT NOT NULL,"
        " added TEXT NOT NULL, at REAL NOT NULL);"
        "INSERT INTO journal (zone, old_serial, new_serial, removed, added, at) VALUES"
        " ('example.test.', 1, 2, '', 'a', 0), ('example.test.', 1, 2, '', 'b', 0),"
        " ('other.test.', 5, 6, '', 'c', 0);"
    )
    db.commit()
    db.close()
    journal = Journal(path)
    assert journal.forked == ["example.test."]
    assert journal.entries("example.test.") == []
    assert len(journal.entries("other.test.")) == 1  # a zone with one line of history is kept
    kept = journal.db.execute("SELECT COUNT(*) FROM journal_quarantine WHERE zone = 'example.test.'")
    assert kept.fetchone()[0] == 2
    journal.close()


def test_the_journal_never_prunes_a_change_the_zone_file_lacks(tmp_path: Path) -> None:
    """Writes failing (a full disk) must not cost the changes the file never got (issue 22 #12)."""
    journal = Journal(tmp_path / "journal.sqlite", keep=2)
    journal.mark_flushed("example.test.", 1)
    for serial in range(1, 7):
        journal.append(_entry(serial, serial + 1))
    assert [e.old_serial for e in journal.entries("example.test.")] == [1, 2, 3, 4, 5, 6]
    journal.mark_flushed("example.test.", 5)  # the file caught up to serial 5
    journal.prune("example.test.")
    assert [e.old_serial for e in journal.entries("example.test.")] == [5, 6]
    journal.close()


def test_a_commit_planned_on_an_older_version_is_refused(loaded: LoadedZone, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    writer = ZoneWriter(journal)
    writer.commit(loaded, [add("a", "192.0.2.31")], NOW)
    with pytest.raises(StaleBase, match="planned on serial 10, but serial 11 is newer"):
        writer.commit(loaded, [add("b", "192.0.2.32")], NOW)
    assert [e.new_serial for e in journal.entries("example.test.")] == [11]
    journal.close()


def test_replay_refuses_a_change_that_removes_what_the_file_does_not_have(loaded: LoadedZone) -> None:
    soa = "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. {} 3600 600 86400 300"
    entry = JournalEntry(
        "example.test.",
        10,
        11,
        (soa.format(10), "gone.example.test. 300 IN A 192.0.2.99"),
        (soa.format(11),),
    )
    with pytest.raises(JournalMismatch, match=re.escape("removes gone.example.test. 300 IN A 192.0.2.99")):
        replay(loaded.zone, entry)


def test_reconcile_reports_a_journal_that_does_not_lead_on_from_the_file(
    loaded: LoadedZone, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.append(_entry(50, 51))
    with pytest.raises(JournalMismatch, match=re.escape("serial 10, which the journal (50 to 51) does not")):
        ZoneWriter(journal).reconcile(loaded)
    journal.close()


def test_an_unlinked_journal_is_quarantined_and_the_file_served_above_its_serials(
    owner: ZoneOwner, loaded: LoadedZone
) -> None:
    """Secondaries that took serial 51 from the journal must see the file's data as newer."""
    owner.journal.append(_entry(50, 51))
    zones, problems = owner.reconcile({loaded.path: loaded})
    assert serial_of(zones[loaded.path].zone) == 52
    assert serial_of(load_zone_file(loaded.path).zone) == 52
    assert owner.journal.entries("example.test.") == []
    [problem] = problems
    assert "journal_quarantine" in problem.reason and problem.file == str(loaded.path)


# --- versions made outside the owner ------------------------------------------------------


def _version(text: str) -> LoadedZone:
    return parse_zone(Path("example.test.zone"), text.encode())


def test_a_changed_file_with_the_same_serial_is_refused_as_bind_does(loaded: LoadedZone) -> None:
    verdict = judge(loaded, _version(ZONE_TEXT + "new IN A 192.0.2.77\n"))
    assert isinstance(verdict, Problem)
    assert "its SOA serial is still 10" in verdict.reason


def test_a_file_whose_serial_went_back_is_refused(loaded: LoadedZone) -> None:
    verdict = judge(loaded, _version(ZONE_TEXT.replace(" 10 3600", " 9 3600")))
    assert isinstance(verdict, Problem)
    assert "older than the served 10 (RFC 1982)" in verdict.reason


def test_a_file_with_only_comments_changed_is_the_same_zone(loaded: LoadedZone) -> None:
    assert judge(loaded, _version("; a comment\n" + ZONE_TEXT)) == []


def test_a_file_with_a_newer_serial_gives_its_changes_to_journal(loaded: LoadedZone) -> None:
    verdict = judge(loaded, _version(ZONE_TEXT.replace(" 10 3600", " 11 3600") + "new IN A 192.0.2.77\n"))
    assert isinstance(verdict, list)
    assert {(c.op, c.name.to_text(), c.rdata.rdtype) for c in verdict} >= {
        (Op.ADD, "new.example.test.", A),
        (Op.DELETE, "example.test.", dns.rdatatype.SOA),
        (Op.ADD, "example.test.", dns.rdatatype.SOA),
    }


RECORDS = st.lists(
    st.tuples(
        st.sampled_from(["www", "mx1", "a.b", "new", "ns1"]),
        st.integers(1, 40),
        st.sampled_from([60, 300]),
    ),
    max_size=12,
)


def _zone_with(records: list[tuple[str, int, int]]) -> dns.zone.Zone:
    lines = [f"{owner} {ttl} IN A 192.0.2.{host}" for owner, host, ttl in records]
    text = ZONE_TEXT.replace("mx1 IN A 192.0.2.2\nwww IN A 192.0.2.10\n", "\n".join(lines) + "\n")
    return dns.zone.from_text(text, relativize=False, check_origin=False)


@settings(max_examples=200, deadline=None)
@given(before=RECORDS, after=RECORDS)
def test_applying_the_difference_of_two_versions_gives_the_second(
    before: list[tuple[str, int, int]], after: list[tuple[str, int, int]]
) -> None:
    old, new = _zone_with(before), _zone_with(after)
    rebuilt = apply_changes(old, diff_zones(old, new))
    assert rebuilt == new
    for name, node in new.nodes.items():  # dnspython's zone equality ignores TTLs
        for rdataset in node.rdatasets:
            found = rebuilt.nodes[name].get_rdataset(IN, rdataset.rdtype)
            assert found is not None and found.ttl == rdataset.ttl


# --- edits checked as `dynmx check` checks ---------------------------------------------------


def test_an_edit_leaving_a_pool_member_without_an_address_is_refused(
    owner: ZoneOwner, loaded: LoadedZone
) -> None:
    with pytest.raises(ZoneLoadError, match=re.escape("mx1.example.test. has no A or AAAA record")):
        owner.commit(loaded, [delete("mx1", "192.0.2.2")])
    assert owner.journal.entries("example.test.") == []


def test_an_edit_replacing_a_pool_members_address_is_allowed(owner: ZoneOwner, loaded: LoadedZone) -> None:
    updated = owner.commit(loaded, [delete("mx1", "192.0.2.2"), add("mx1", "192.0.2.3")])
    assert serial_of(updated.zone) == 11


def test_an_edit_of_names_no_pool_uses_is_not_held_up_by_an_old_problem(
    tmp_path: Path, loaded: LoadedZone
) -> None:
    """A problem the edit did not bring in (a pool name without MX) does not refuse it."""
    zone_owner = ZoneOwner(config_for(tmp_path, POOL), "test")
    try:
        updated = zone_owner.commit(loaded, [add("mx.example.test.", "192.0.2.40")])
    finally:
        zone_owner.close()
    assert serial_of(updated.zone) == 11


# --- whole zones ---------------------------------------------------------------------------

CHILD = """\
$ORIGIN shop.example.test.
$TTL 300
@ SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300
@ NS ns1.example.test.
@ MX 10 mx1.example.test.
"""


def test_a_zone_name_never_becomes_a_path_out_of_the_zones_dir(tmp_path: Path) -> None:
    for text in ("/tmp/evil.test.", "a\\/b.test.", "x\\.y.test."):
        with pytest.raises(ZoneEditRefused, match="a label may hold only letters, digits"):
            zone_file(tmp_path, dns.name.from_text(text))
    named = zone_file(tmp_path, dns.name.from_text("Shop.Example.test."))
    assert named == tmp_path / "shop.example.test.zone"


def test_zone_add_never_overwrites_a_file_that_is_there(owner: ZoneOwner, loaded: LoadedZone) -> None:
    zones_dir = loaded.path.parent
    (zones_dir / "shop.example.test.zone").write_text("; someone else's file\n")
    origin = dns.name.from_text("shop.example.test.")
    with pytest.raises(ZoneEditRefused, match="exists already"):
        add_zone(owner, {loaded.origin: loaded}, zones_dir, origin, CHILD)
    assert (zones_dir / "shop.example.test.zone").read_text() == "; someone else's file\n"
    assert owner.journal.entries("example.test.") == []  # no delegation either


def test_zone_add_writes_the_child_then_delegates_and_zone_rm_undoes_both(
    owner: ZoneOwner, loaded: LoadedZone
) -> None:
    zones_dir = loaded.path.parent
    origin = dns.name.from_text("shop.example.test.")
    child, parent = add_zone(owner, {loaded.origin: loaded}, zones_dir, origin, CHILD)
    assert parent is not None and parent.zone.get_rdataset(origin, "NS") is not None
    assert load_zone_file(child.path).origin == origin
    _, after, kept = remove_zone(owner, {loaded.origin: parent, origin: child}, origin)
    assert after is not None and after.zone.get_rdataset(origin, "NS") is None
    assert kept.name == "shop.example.test.zone.removed" and not child.path.exists()
    assert owner.journal.entries("shop.example.test.") == []

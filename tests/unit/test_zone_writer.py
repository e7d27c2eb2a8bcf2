"""The one writer: serials (RFC 1982), new zone versions, commit, journal and reconcile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.control.journal import Journal
from dynmx.control.update import Change, Op
from dynmx.control.versions import next_serial
from dynmx.control.writer import ZoneWriter, apply_changes, serial_of
from dynmx.errors import ZoneLoadError
from dynmx.zone.loader import LoadedZone, load_zone_file

IN = dns.rdataclass.IN
A = dns.rdatatype.A
ORIGIN = dns.name.from_text("example.test.")
NOW = 1_700_000_000.0  # 2023-11-14 UTC
ZONE_TEXT = """\
$ORIGIN example.test.
$TTL 300
@ IN SOA ns1.example.test. hostmaster.example.test. 10 3600 600 86400 300
@ IN NS ns1.example.test.
ns1 IN A 192.0.2.1
www IN A 192.0.2.10
alias IN CNAME www.example.test.
"""


def newer(new: int, old: int) -> bool:
    """RFC 1982 section 3.2: `new` is greater than `old`."""
    return new != old and (new - old) % 2**32 < 2**31


def rdata(rdtype: dns.rdatatype.RdataType, text: str) -> dns.rdata.Rdata:
    return dns.rdata.from_text(IN, rdtype, text)


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, origin=ORIGIN)


def add(owner: str, rdtype: dns.rdatatype.RdataType, text: str, ttl: int = 300) -> Change:
    return Change(Op.ADD, name(owner), ttl, rdata(rdtype, text))


def delete(owner: str, rdtype: dns.rdatatype.RdataType, text: str, ttl: int = 300) -> Change:
    return Change(Op.DELETE, name(owner), ttl, rdata(rdtype, text))


def addresses(zone: dns.zone.Zone, owner: str) -> set[str]:
    node = zone.nodes.get(name(owner))
    rds = node.get_rdataset(IN, A) if node is not None else None
    return {rd.to_text() for rd in rds} if rds is not None else set()


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedZone:
    path = tmp_path / "example.test.zone"
    path.write_text(ZONE_TEXT)
    return load_zone_file(path)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "j.sqlite")
    yield j
    j.close()


# --- next_serial (RFC 1982) ------------------------------------------------------------


def test_rfc1982_increment_adds_one() -> None:
    assert next_serial(10, "increment", NOW) == 11


def test_rfc1982_increment_wraps_at_2_32() -> None:
    assert next_serial(2**32 - 1, "increment", NOW) == 0
    assert newer(0, 2**32 - 1)


def test_rfc1982_unixtime_takes_the_clock_when_it_moves_forward() -> None:
    assert next_serial(10, "unixtime", NOW + 0.9) == int(NOW)


def test_rfc1982_unixtime_counts_on_when_the_serial_is_ahead_of_the_clock() -> None:
    assert next_serial(int(NOW) + 5, "unixtime", NOW) == int(NOW) + 6


def test_rfc1982_unixtime_from_near_the_wrap_is_newer() -> None:
    old = 2**32 - 2
    result = next_serial(old, "unixtime", NOW)
    assert newer(result, old)


def test_rfc1982_dateserial_takes_today_with_counter_zero() -> None:
    assert next_serial(2023010100, "dateserial", NOW) == 2023111400


def test_rfc1982_dateserial_counts_on_within_a_day() -> None:
    assert next_serial(2023111400, "dateserial", NOW) == 2023111401
    assert next_serial(2023111499, "dateserial", NOW) == 2023111500


def test_rfc1982_dateserial_from_near_the_wrap_is_newer() -> None:
    old = 2**32 - 1
    assert newer(next_serial(old, "dateserial", NOW), old)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.sampled_from(["unixtime", "dateserial", "increment"]),
    st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False),
)
def test_rfc1982_next_serial_is_always_newer(old: int, policy: str, now: float) -> None:
    result = next_serial(old, policy, now)
    assert 0 <= result < 2**32
    assert newer(result, old)


# --- apply_changes ----------------------------------------------------------------------


def test_apply_changes_leaves_the_old_zone_untouched(loaded: LoadedZone) -> None:
    before = loaded.zone.to_text()
    new = apply_changes(loaded.zone, [add("www", A, "192.0.2.11"), delete("ns1", A, "192.0.2.1")])
    assert addresses(new, "www") == {"192.0.2.10", "192.0.2.11"}
    assert addresses(new, "ns1") == set()
    assert loaded.zone.to_text() == before
    assert addresses(loaded.zone, "www") == {"192.0.2.10"}


def test_apply_changes_add_delete_add_at_one_new_name(loaded: LoadedZone) -> None:
    changes = [add("new", A, "192.0.2.50"), delete("new", A, "192.0.2.50"), add("new", A, "192.0.2.50")]
    assert addresses(apply_changes(loaded.zone, changes), "new") == {"192.0.2.50"}


# --- ZoneWriter.commit ------------------------------------------------------------------


def test_commit_bumps_serial_and_writes_a_loadable_file(loaded: LoadedZone, journal: Journal) -> None:
    updated = ZoneWriter(journal).commit(loaded, [add("new", A, "192.0.2.50")], NOW)
    assert serial_of(updated.zone) == 11
    reread = load_zone_file(loaded.path)
    assert reread.origin == ORIGIN
    assert serial_of(reread.zone) == 11
    assert addresses(reread.zone, "new") == {"192.0.2.50"}
    assert addresses(reread.zone, "www") == {"192.0.2.10"}


def test_commit_leaves_the_version_it_started_from_untouched(loaded: LoadedZone, journal: Journal) -> None:
    """Readers of the old version (the table being served) never see half an edit."""
    ZoneWriter(journal).commit(loaded, [add("new", A, "192.0.2.50"), delete("www", A, "192.0.2.10")], NOW)
    assert serial_of(loaded.zone) == 10
    assert addresses(loaded.zone, "new") == set()
    assert addresses(loaded.zone, "www") == {"192.0.2.10"}


def test_commit_uses_the_zone_policy(loaded: LoadedZone, journal: Journal) -> None:
    writer = ZoneWriter(journal, {"example.test.": "unixtime"})
    updated = writer.commit(loaded, [add("new", A, "192.0.2.50")], NOW)
    assert serial_of(updated.zone) == int(NOW)


def test_commit_journals_one_entry_with_the_soa(loaded: LoadedZone, journal: Journal) -> None:
    ZoneWriter(journal).commit(loaded, [add("new", A, "192.0.2.50")], NOW)
    entries = journal.entries("example.test.")
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.old_serial, entry.new_serial) == (10, 11)
    soa = "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. {} 3600 600 86400 300"
    assert entry.removed == (soa.format(10),)
    assert set(entry.added) == {"new.example.test. 300 IN A 192.0.2.50", soa.format(11)}


def test_journal_keeps_only_the_newest_changes_per_zone(loaded: LoadedZone, tmp_path: Path) -> None:
    """Bounded history (Knot's journal-max-depth): older changes go, IXFR from them falls back to AXFR."""
    journal = Journal(tmp_path / "bounded.sqlite", keep=3)
    writer = ZoneWriter(journal)
    zone = loaded
    for index in range(5):
        zone = writer.commit(zone, [add(f"host{index}", A, f"192.0.2.{index + 1}")], NOW + index)
    serials = [(e.old_serial, e.new_serial) for e in journal.entries("example.test.")]
    assert serials == [(12, 13), (13, 14), (14, 15)]
    assert journal.since("example.test.", 10) == []
    journal.close()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param([delete("ns1", A, "192.0.2.1")], id="in-bailiwick-ns-target-without-address"),
        pytest.param(
            [add("alias", A, "192.0.2.77")],
            id="data-beside-a-cname",
        ),
        pytest.param(
            [add("www", dns.rdatatype.CNAME, "ns1.example.test.")],
            id="cname-beside-data",
        ),
        pytest.param([add("big", A, "192.0.2.9", ttl=2**31)], id="ttl-too-large"),
    ],
)
def test_commit_of_an_invalid_zone_changes_nothing(
    loaded: LoadedZone, journal: Journal, changes: list[Change]
) -> None:
    before = loaded.path.read_bytes()
    with pytest.raises(ZoneLoadError):
        ZoneWriter(journal).commit(loaded, changes, NOW)
    assert loaded.path.read_bytes() == before
    assert journal.entries("example.test.") == []
    assert sorted(p.name for p in loaded.path.parent.iterdir() if p.name.startswith(".")) == []


def test_commit_from_a_parsed_update(loaded: LoadedZone, journal: Journal) -> None:
    from dynmx.control.update import evaluate

    msg = dns.update.UpdateMessage("example.test.")
    msg.add("new.example.test.", 300, "A", "192.0.2.50")
    parsed = dns.message.from_wire(msg.to_wire())
    assert isinstance(parsed, dns.update.UpdateMessage)
    changes = evaluate(loaded.zone, ORIGIN, parsed)
    ZoneWriter(journal).commit(loaded, changes, NOW)
    assert addresses(load_zone_file(loaded.path).zone, "new") == {"192.0.2.50"}


# --- ZoneWriter.reconcile ---------------------------------------------------------------


def test_reconcile_replays_an_entry_newer_than_the_file(loaded: LoadedZone, journal: Journal) -> None:
    ZoneWriter(journal).commit(loaded, [add("new", A, "192.0.2.50")], NOW)
    loaded.path.write_text(ZONE_TEXT)  # as if the rename never happened
    stale = load_zone_file(loaded.path)
    assert addresses(stale.zone, "new") == set()
    fixed = ZoneWriter(journal).reconcile(stale)
    assert serial_of(fixed.zone) == 11
    reread = load_zone_file(loaded.path)
    assert serial_of(reread.zone) == 11
    assert addresses(reread.zone, "new") == {"192.0.2.50"}


def test_reconcile_with_nothing_newer_leaves_the_file(loaded: LoadedZone, journal: Journal) -> None:
    ZoneWriter(journal).commit(loaded, [add("new", A, "192.0.2.50")], NOW)
    current = load_zone_file(loaded.path)
    before = loaded.path.read_bytes()
    assert ZoneWriter(journal).reconcile(current) is current
    assert loaded.path.read_bytes() == before

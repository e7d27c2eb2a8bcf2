"""Small zones kept as their bytes (`SourceZone`) at a start-up of many zones: a released
zone parsed again holds what it held, transfers the same records, and the table compiled
from such zones answers what the table of plainly parsed zones answers; equal answers of
zones made from one template are one entry."""

from __future__ import annotations

import operator
import pickle
from pathlib import Path

import dns.message
import dns.name
import dns.rdatatype
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dynmx.app.zonescan as zonescan
from dynmx.answer.compiler import compile_table, staged_table, wire_key
from dynmx.answer.engine import Engine
from dynmx.answer.table import shared_entry
from dynmx.answer.zoneset import ZoneData
from dynmx.app.publisher import fill_slice
from dynmx.app.zonescan import CompactZoneData, parse_compact, scan_zones, zone_data
from dynmx.control.transfer import axfr
from dynmx.zone.loader import LoadedZone, load_zone_file, parse_zone
from dynmx.zone.soa import serial_of
from dynmx.zone.source import Few, SourceZone

TEMPLATE = (
    "$TTL 3600\n@ SOA ns1 hostmaster {serial} 7200 900 1209600 300\n@ NS ns1\n@ NS ns2\n@ MX 10 mx\n"
    '@ TXT "v=spf1 mx -all"\nns1 A 192.0.2.53\nns2 A 192.0.2.54\nmx A 192.0.2.25\n'
    "mx AAAA 2001:db8::25\nwww A 192.0.2.80\n*.wild CNAME www\n"
)
QUESTIONS = [
    (host, qtype)
    for host in ("", "www.", "mx.", "ns1.", "missing.", "a.wild.", "x.y.wild.")
    for qtype in ("A", "AAAA", "MX", "NS", "SOA", "TXT", "CNAME", "DS")
]


def _write(tmp_path: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = tmp_path / f"z{i}.src.test.zone"
        path.write_text(TEMPLATE.format(serial=i + 1))
        paths.append(path)
    return paths


def _source_zone(path: Path) -> SourceZone:
    data = path.read_bytes()
    loaded = parse_zone(path, data)
    return SourceZone.of(loaded.zone, path, data, serial_of(loaded.zone))


def _parsed(zone: dns.zone.Zone) -> bool:
    return isinstance(zone, SourceZone) and zone.parsed


def _records(zone: dns.zone.Zone) -> list[str]:
    return sorted(
        f"{name} {rdataset.ttl} {rdataset.to_text()}"
        for name, node in zone.nodes.items()
        for rdataset in node
    )


def test_a_released_zone_parsed_again_holds_what_its_file_holds(tmp_path: Path) -> None:
    path = _write(tmp_path, 1)[0]
    zone = _source_zone(path)
    assert not zone.parsed
    assert _records(zone) == _records(load_zone_file(path).zone)
    assert zone.parsed
    zone.release()
    assert not zone.parsed
    assert _records(zone) == _records(load_zone_file(path).zone)


def test_a_released_zone_transfers_the_records_of_its_file(tmp_path: Path) -> None:
    """AXFR (RFC 5936) of a zone let go and read again from its bytes: the same messages."""
    path = _write(tmp_path, 1)[0]
    zone = _source_zone(path)
    query = dns.message.make_query("z0.src.test.", "AXFR", id=1)
    assert _transferred(axfr(query, zone)) == _transferred(axfr(query, load_zone_file(path).zone))


def _transferred(messages: list[bytes]) -> list[str]:
    """The records of an AXFR's messages, SOA first and last (dnspython shuffles an RRset's
    records as it writes them: compared as lines, sorted between the SOAs)."""
    lines = [
        line
        for wire in messages
        for rrset in dns.message.from_wire(wire).answer
        for line in rrset.to_text().splitlines()
    ]
    return [lines[0], *sorted(lines[1:-1]), lines[-1]]


def test_a_released_zone_knows_its_serial_and_size_without_being_parsed(tmp_path: Path) -> None:
    from dynmx.zone.source import node_count

    path = _write(tmp_path, 3)[2]
    zone = _source_zone(path)
    assert serial_of(zone) == 3
    assert node_count(zone) == len(load_zone_file(path).zone.nodes)
    assert not zone.parsed


def test_a_zone_travels_between_processes_as_its_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path, 1)[0]
    zone = _source_zone(path)
    _records(zone)  # parsed here: what travels is still only the bytes
    copy = pickle.loads(pickle.dumps(zone))
    assert isinstance(copy, SourceZone) and not copy.parsed
    assert _records(copy) == _records(zone)


def test_a_zone_version_kept_as_bytes_cannot_be_given_other_nodes(tmp_path: Path) -> None:
    zone = _source_zone(_write(tmp_path, 1)[0])
    with pytest.raises(TypeError):
        zone.nodes = {}


def _answers(engine: Engine, origins: list[str]) -> list[object]:
    found: list[object] = []
    for origin in origins:
        for host, qtype in QUESTIONS:
            query = dns.message.make_query(f"{host}{origin}", qtype, id=7).to_wire()
            found.append(engine.handle(query, ("127.0.0.1", 1), False))
    return found


def test_zones_kept_as_bytes_answer_as_zones_parsed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start-up scan of many files (here: `COMPACT_FROM` lowered) keeps small zones as bytes;
    the staged table, filled a slice at a time, answers every question as a table compiled
    from the same files parsed whole, and holds no parsed zone once filled."""
    paths = _write(tmp_path, 12)
    monkeypatch.setattr(zonescan, "COMPACT_FROM", 1)
    zones, problems = scan_zones(tmp_path, {}, processes=1)
    assert not problems
    assert all(isinstance(zone.zone, SourceZone) for zone in zones.values())
    table = staged_table(zone_data(zones))
    assert not any(_parsed(zone.zone) for zone in zones.values())  # indexed without parsing
    while table.pending:
        table = fill_slice(table)
    assert not any(_parsed(zone.zone) for zone in zones.values())  # let go once compiled
    whole = compile_table([ZoneData(z.origin, z.zone) for z in map(load_zone_file, paths)])
    origins = [f"z{i}.src.test." for i in range(len(paths))]
    assert _answers(Engine(table), origins) == _answers(Engine(whole), origins)
    assert table.entries.keys() == whole.entries.keys()


def test_a_chunk_of_many_files_gives_small_zones_as_bytes_and_large_or_bad_ones_as_before(
    tmp_path: Path,
) -> None:
    small = _write(tmp_path, 1)[0]
    large = tmp_path / "big.src.test.zone"
    large.write_text(TEMPLATE.format(serial=1) + "".join(f"h{i} A 192.0.2.1\n" for i in range(300)))
    bad = tmp_path / "bad.src.test.zone"
    bad.write_text("$TTL 300\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\nwww A 192.0.2.300\n")
    found = dict(parse_compact([(p, p.read_bytes()) for p in (small, large, bad)]))
    sent: tuple[LoadedZone, CompactZoneData] = pickle.loads(
        pickle.dumps(found[small])
    )  # as a process sends it
    loaded, index = sent
    assert isinstance(loaded.zone, SourceZone) and index.zone is loaded.zone and not loaded.zone.parsed
    assert index.key == wire_key(dns.name.from_text("z0.src.test."))
    kept_whole = found[large]
    assert isinstance(kept_whole, LoadedZone) and not isinstance(kept_whole.zone, SourceZone)
    assert isinstance(found[bad], list)


def test_equal_answers_of_zones_from_one_template_are_one_entry(tmp_path: Path) -> None:
    paths = _write(tmp_path, 3)
    table = compile_table([ZoneData(z.origin, z.zone) for z in map(load_zone_file, paths)])
    www = [table.entries[wire_key(dns.name.from_text(f"www.z{i}.src.test.")) + b"\x00\x01"] for i in range(3)]
    assert www[0] is www[1] is www[2]
    assert shared_entry(www[0]) is www[0]


@given(st.lists(st.binary(max_size=6), max_size=8), st.binary(max_size=6))
def test_a_few_members_behave_as_a_frozenset(members: list[bytes], probe: bytes) -> None:
    few = Few(dict.fromkeys(members))
    plain = frozenset(members)
    assert (probe in few) == (probe in plain)
    assert len(few) == len(plain) and set(few) == plain
    assert operator.eq(few, plain) and operator.eq(plain, few)
    assert few | {probe} == plain | {probe}


def test_a_released_index_is_made_again_from_the_zone_bytes_as_it_was(tmp_path: Path) -> None:
    path = _write(tmp_path, 1)[0]
    ((_, sent),) = parse_compact([(path, path.read_bytes())])
    assert isinstance(sent, tuple)
    loaded, index = sent
    whole = ZoneData(loaded.origin, load_zone_file(path).zone)
    index.release()
    assert not loaded.zone.parsed
    assert index.overlay == {} and serial_of(index.zone) == 1  # as the answer store asks: not parsed
    assert not loaded.zone.parsed
    assert set(index.names) == whole.names and set(index.name_keys) == whole.name_keys
    assert index.negative_soa[1] == whole.negative_soa[1] and index.apex_ns == whole.apex_ns
    assert index.cuts == whole.cuts and index.signed == whole.signed


def test_answers_read_back_from_the_store_are_one_entry_for_zones_alike(tmp_path: Path) -> None:
    from dynmx.store.codec import Decoder, encode_zone

    paths = _write(tmp_path, 2)
    table = compile_table([ZoneData(z.origin, z.zone) for z in map(load_zone_file, paths)])
    read = [
        Decoder().decode(encode_zone(table, wire_key(dns.name.from_text(f"z{i}.src.test.")), 1))
        for i in (0, 1)
    ]
    www = [dict(zip(zone.keys, zone.entries, strict=True)) for zone in read]
    first, second = (
        www[i][wire_key(dns.name.from_text(f"www.z{i}.src.test.")) + b"\x00\x01"] for i in (0, 1)
    )
    assert first is second

"""The answer store (dynmx/store): a restart serves stored answers only while everything
that shaped them is unchanged; anything stale, corrupt or cut short is not served."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.answer.compiler import AnswerTable, CompiledZone, compile_table
from dynmx.answer.zoneset import ZoneData, name_key
from dynmx.store.answers import STORE_FILE, AnswerStore
from dynmx.store.codec import Decoder, StoreCorrupt, StoredZone, encode_zone, lay_in, storable
from dynmx.store.rows import Header, ZoneRow, fingerprint, origins_digest
from dynmx.wire.response import Entry
from dynmx.zone.loader import LoadedZone, load_zone_file, read_digest

ROOT = Path(__file__).resolve().parents[2]
OLD = 10.0  # seconds: files are aged past the racy window so their stamps are trusted


def later() -> float:
    """A clock past the racy window of files written just now (their ctime cannot be aged)."""
    return time.time() + OLD


def zone_text(origin: str, serial: int = 1, extra: str = "") -> str:
    return (
        f"$ORIGIN {origin}.\n$TTL 3600\n@ SOA ns1 hostmaster {serial} 7200 900 1209600 300\n"
        '@ NS ns1\n@ NS ns2\n@ MX 10 mx\n@ TXT "v=spf1 mx -all"\n'
        "ns1 A 192.0.2.53\nns2 A 192.0.2.54\nmx A 192.0.2.25\nmx AAAA 2001:db8::25\n"
        f"www A 192.0.2.80\n*.wild A 192.0.2.99\nsub NS ns.other.test.\n{extra}"
    )


def age(path: Path) -> None:
    past = time.time() - OLD
    os.utime(path, (past, past))


def write_zones(directory: Path, count: int) -> list[Path]:
    directory.mkdir(exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"z{index}.test.zone"
        path.write_text(zone_text(f"z{index}.test"))
        age(path)
        paths.append(path)
    return paths


def compiled(paths: list[Path]) -> tuple[dict[Path, LoadedZone], AnswerTable]:
    loaded = {path: load_zone_file(path) for path in paths}
    return loaded, compile_table([ZoneData(z.origin, z.zone) for z in loaded.values()])


def key_of(zone: LoadedZone) -> bytes:
    return name_key(zone.origin)


def serial_of(zone: LoadedZone) -> int:
    return int(zone.zone.get_soa().serial)


def rows_of(loaded: dict[Path, LoadedZone], table: AnswerTable) -> list[ZoneRow]:
    return [
        ZoneRow(
            path,
            key_of(z),
            _stamp(path),
            z.digest,
            serial_of(z),
            encode_zone(table, key_of(z), serial_of(z)),
            path.read_bytes(),
        )
        for path, z in loaded.items()
    ]


def _stamp(path: Path) -> tuple[int, int, int, int]:
    info = os.stat(path)
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)


def header_of(loaded: dict[Path, LoadedZone], config: object = "config") -> Header:
    return Header(fingerprint(config), origins_digest(key_of(z) for z in loaded.values()))


def same_entry(a: Entry, b: Entry) -> bool:
    return (a.rcode, a.authoritative, a.body, a.spans, a.partial_tc, a.head, a.head_opt, a.counts) == (
        b.rcode,
        b.authoritative,
        b.body,
        b.spans,
        b.partial_tc,
        b.head,
        b.head_opt,
        b.counts,
    )


def assert_same_as_compile(
    stored: Mapping[Path, StoredZone], loaded: dict[Path, LoadedZone], table: AnswerTable
) -> None:
    entries: dict[bytes, Entry] = {}
    zones: dict[bytes, CompiledZone] = {}
    keys: dict[bytes, Sequence[bytes]] = {}
    uses: dict[bytes, frozenset[bytes]] = {}
    lay_in({s.origin: s for s in stored.values()}, entries, zones, keys, uses)
    for origin in zones:
        assert tuple(table.keys[origin]) == keys[origin]
        assert uses[origin] == table.uses[origin]
        for key in table.keys[origin]:
            assert same_entry(entries[key], table.entries[key])
        mine, theirs = zones[origin], table.zones[origin]
        for field in ("origin", "cuts", "wildcard_parents", "nx_pointers", "signed", "complete"):
            assert getattr(mine, field) == getattr(theirs, field)
        assert set(mine.names) == set(theirs.names)
        assert same_entry(mine.nxdomain, theirs.nxdomain)
        assert mine.nx_compressed is not None and theirs.nx_compressed is not None
        assert same_entry(mine.nx_compressed, theirs.nx_compressed)


def test_round_trip_gives_the_compiled_zone(tmp_path: Path) -> None:
    loaded, table = compiled(write_zones(tmp_path / "zones", 3))
    decoder = Decoder()
    stored = {}
    for path, zone in loaded.items():
        assert storable(table, key_of(zone))
        stored[path] = decoder.decode(encode_zone(table, key_of(zone), serial_of(zone)))
    assert_same_as_compile(stored, loaded, table)


def test_saved_store_loads_every_unchanged_zone(tmp_path: Path) -> None:
    loaded, table = compiled(write_zones(tmp_path / "zones", 5))
    store = AnswerStore(tmp_path)
    assert store.save(header_of(loaded), rows_of(loaded, table)) == 5
    store.close()
    found = AnswerStore(tmp_path).load(header_of(loaded).shaping, read_digest, now=later())
    assert found.stale == {} and found.whole is None
    assert found.zones.keys() == loaded.keys()
    assert_same_as_compile(AnswerStore(tmp_path).decoded(found.zones.values()), loaded, table)


def test_a_changed_zone_file_is_stale(tmp_path: Path) -> None:
    paths = write_zones(tmp_path / "zones", 3)
    loaded, table = compiled(paths)
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded), rows_of(loaded, table))
    paths[1].write_text(zone_text("z1.test", serial=2))
    age(paths[1])
    found = store.load(header_of(loaded).shaping, read_digest, now=later())
    assert found.stale == {paths[1]: "changed"}
    assert found.zones.keys() == {paths[0], paths[2]}


def test_a_touched_but_unchanged_file_is_still_current(tmp_path: Path) -> None:
    """The stamp moved, the bytes did not: the digest decides (read and hashed, not parsed)."""
    paths = write_zones(tmp_path / "zones", 2)
    loaded, table = compiled(paths)
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded), rows_of(loaded, table))
    os.utime(paths[0], (time.time() - 5, time.time() - 5))  # a stamp other than the stored one
    hashed: list[Path] = []

    def digest(path: Path) -> bytes:
        hashed.append(path)
        return read_digest(path)

    found = store.load(header_of(loaded).shaping, digest, now=later())
    assert found.zones.keys() == set(paths)
    assert hashed == [paths[0]]


def test_a_changed_config_makes_the_whole_store_stale(tmp_path: Path) -> None:
    loaded, table = compiled(write_zones(tmp_path / "zones", 2))
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded, "config A"), rows_of(loaded, table))
    found = store.load(header_of(loaded, "config B").shaping, read_digest, now=later())
    assert found.zones == {} and found.whole == "header"


def test_a_zone_added_makes_the_whole_store_stale(tmp_path: Path) -> None:
    """A new origin may be what a stored CNAME or MX target now reaches."""
    paths = write_zones(tmp_path / "zones", 3)
    loaded, table = compiled(paths[:2])
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded), rows_of(loaded, table))
    everything, _ = compiled(paths)
    found = store.load(header_of(everything).shaping, read_digest, now=later())
    assert found.origins == header_of(loaded).origins != header_of(everything).origins


def test_a_zone_the_journal_holds_at_another_serial_is_stale(tmp_path: Path) -> None:
    """The file is behind the journal (written behind, then a crash): the journal wins."""
    loaded, table = compiled(write_zones(tmp_path / "zones", 2))
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded), rows_of(loaded, table))
    first = next(iter(loaded.values()))
    found = store.load(header_of(loaded).shaping, read_digest, {key_of(first): 2}, now=later())
    assert found.stale == {first.path: "journal"}
    assert store.load(header_of(loaded).shaping, read_digest, {key_of(first): 1}, now=later()).stale == {}


def flip(tmp_path: Path, table: str, column: str) -> str:
    """Flip one bit in the middle of one row's `column`; the row's path."""
    with sqlite3.connect(tmp_path / STORE_FILE) as db:
        (path, value) = db.execute(f"SELECT path, {column} FROM {table} LIMIT 1").fetchone()
        broken = bytearray(value)
        broken[len(broken) // 2] ^= 0x01
        db.execute(f"UPDATE {table} SET {column} = ? WHERE path = ?", (bytes(broken), path))
    return str(path)


@pytest.mark.parametrize("column", ["origin", "spelled", "digest", "uses"])
def test_a_flipped_byte_in_an_index_row_is_detected_at_start(tmp_path: Path, column: str) -> None:
    loaded, table = compiled(write_zones(tmp_path / "zones", 2))
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded), rows_of(loaded, table))
    store.close()
    path = flip(tmp_path, "zone", column)
    found = AnswerStore(tmp_path).load(header_of(loaded).shaping, read_digest, now=later())
    assert found.stale == {Path(path): "checksum"}
    assert len(found.zones) == 1


def test_a_flipped_byte_in_stored_answers_is_detected_when_they_are_read(tmp_path: Path) -> None:
    """The answers are read on first use, not at start: then, and only then, they are checked;
    a row that does not check out is given as None (compiled from its file), never decoded."""
    loaded, table = compiled(write_zones(tmp_path / "zones", 2))
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded), rows_of(loaded, table))
    store.close()
    path = Path(flip(tmp_path, "answers", "body"))
    again = AnswerStore(tmp_path)
    found = again.load(header_of(loaded).shaping, read_digest, now=later())
    assert found.stale == {} and len(found.zones) == 2  # the index checks out
    answers = again.answers_of(found.zones.values())
    assert answers[path] is None
    assert [p for p, body in answers.items() if body is not None] == [p for p in loaded if p != path]
    with pytest.raises(StoreCorrupt):
        again.decoded(found.zones.values())


def test_answers_of_another_row_are_not_served_for_this_one(tmp_path: Path) -> None:
    """Each row's answers are checked against its own index row: swapped bodies do not pass."""
    loaded, table = compiled(write_zones(tmp_path / "zones", 2))
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded), rows_of(loaded, table))
    store.close()
    with sqlite3.connect(tmp_path / STORE_FILE) as db:
        (a, body_a, sum_a), (b, body_b, sum_b) = db.execute(
            "SELECT path, body, checksum FROM answers"
        ).fetchall()
        db.execute("UPDATE answers SET body = ?, checksum = ? WHERE path = ?", (body_b, sum_b, a))
        db.execute("UPDATE answers SET body = ?, checksum = ? WHERE path = ?", (body_a, sum_a, b))
    again = AnswerStore(tmp_path)
    found = again.load(header_of(loaded).shaping, read_digest, now=later())
    assert set(again.answers_of(found.zones.values()).values()) == {None}


def test_a_truncated_store_file_is_detected_and_rebuilt(tmp_path: Path) -> None:
    loaded, table = compiled(write_zones(tmp_path / "zones", 20))
    store = AnswerStore(tmp_path)
    store.save(header_of(loaded), rows_of(loaded, table))
    store._connect().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    file = tmp_path / STORE_FILE
    size = file.stat().st_size
    with file.open("r+b") as handle:
        handle.truncate(size // 3)
    again = AnswerStore(tmp_path)
    found = again.load(header_of(loaded).shaping, read_digest, now=later())
    assert found.zones == {}
    assert again.save(header_of(loaded), rows_of(loaded, table)) == 20  # rebuilt
    assert again.load(header_of(loaded).shaping, read_digest, now=later()).zones.keys() == loaded.keys()


def test_a_store_of_the_previous_format_is_replaced_whole(tmp_path: Path) -> None:
    """A store written by an older dynmx (other tables) is not read, and the next save makes
    the new tables in its place."""
    with sqlite3.connect(tmp_path / STORE_FILE) as db:
        db.execute("CREATE TABLE header (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        db.execute("CREATE TABLE zone (path TEXT PRIMARY KEY, body BLOB NOT NULL)")
        db.executemany(
            "INSERT INTO header VALUES (?, ?)",
            [("format", b"dynmx-answers/3.1/0"), ("shaping", b"x"), ("origins", b"y")],
        )
    loaded, table = compiled(write_zones(tmp_path / "zones", 2))
    store = AnswerStore(tmp_path)
    assert store.load(header_of(loaded).shaping, read_digest, now=later()).whole == "header"
    assert store.save(header_of(loaded), rows_of(loaded, table)) == 2
    assert store.load(header_of(loaded).shaping, read_digest, now=later()).zones.keys() == loaded.keys()


def test_garbage_in_place_of_a_row_is_not_served() -> None:
    with pytest.raises(StoreCorrupt):
        Decoder().decode(b"\x00not marshal")


@settings(max_examples=25, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="abc xyz=;", min_size=0, max_size=40), min_size=0, max_size=4),
    hosts=st.lists(st.sampled_from(["a", "b", "mail", "x.y"]), min_size=0, max_size=4, unique=True),
)
def test_round_trip_of_any_small_zone(
    tmp_path_factory: pytest.TempPathFactory, texts: list[str], hosts: list[str]
) -> None:
    directory = tmp_path_factory.mktemp("zones")
    extra = "".join(f'@ TXT "{t}"\n' for t in dict.fromkeys(texts))
    extra += "".join(f"{h} A 192.0.2.{i + 1}\n@ MX {i} {h}\n" for i, h in enumerate(hosts))
    path = directory / "h.test.zone"
    path.write_text(zone_text("h.test", extra=extra))
    loaded, table = compiled([path])
    zone = loaded[path]
    stored = {path: Decoder().decode(encode_zone(table, key_of(zone), serial_of(zone)))}
    assert_same_as_compile(stored, loaded, table)


_CRASH_WRITER = """
import sys, pickle
from pathlib import Path
from dynmx.store.answers import AnswerStore
header, rows = pickle.loads(Path(sys.argv[2]).read_bytes())
store = AnswerStore(Path(sys.argv[1]))
print("ready", flush=True)
while True:
    store.save(header, rows)
    store.drop([row.path for row in rows[::2]])
"""


@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3])
def test_kill_9_while_the_store_is_written_serves_only_current_zones(tmp_path: Path, delay: float) -> None:
    """Whenever the writer dies, a load gives rows each equal to a compile of its file."""
    import pickle

    paths = write_zones(tmp_path / "zones", 200)
    loaded, table = compiled(paths)
    header = header_of(loaded)
    job = tmp_path / "job.pickle"
    job.write_bytes(pickle.dumps((header, rows_of(loaded, table))))
    state = tmp_path / "state"
    state.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH_WRITER, str(state), str(job)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(delay)
    finally:
        child.kill()  # SIGKILL: no cleanup, mid-transaction or between
        child.wait(timeout=10)
    again = AnswerStore(state)
    found = again.load(header.shaping, read_digest, now=later())
    assert found.stale == {}
    assert_same_as_compile(again.decoded(found.zones.values()), loaded, table)

"""A warm start from the answer store (dynmx/store/warm.py, lazy.py): the table equals a
cold compile of the same files, and parses nothing it does not need."""

from __future__ import annotations

import os
import pickle
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import dns.message
import pytest

from dynmx.answer.compiler import AnswerTable, CompiledZone, fill_table
from dynmx.answer.engine import Engine
from dynmx.answer.zoneset import ZoneData, name_key
from dynmx.app.zonescan import scan_zones
from dynmx.config import Config, load_config
from dynmx.errors import ZoneLoadError
from dynmx.policy.served import build_table, plan_all
from dynmx.store.answers import STORE_FILE, AnswerStore
from dynmx.store.lazy import LazyIndex, LazyZone, lazy_loaded
from dynmx.store.rows import Header, StoredIndex, fingerprint, origins_digest
from dynmx.store.warm import fill_slice, rows_to_save, warm_table, warm_zones
from dynmx.zone.loader import LoadedZone, load_zone_file, read_digest


def zone_text(origin: str, address: str = "192.0.2.25", extra: str = "") -> str:
    return (
        f"$ORIGIN {origin}.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\n"
        f"@ NS ns1\n@ MX 10 mx\nns1 A 192.0.2.53\nmx A {address}\n{extra}"
    )


def setup(tmp_path: Path, texts: dict[str, str], extra: str = "") -> Config:
    zones = tmp_path / "zones"
    zones.mkdir(exist_ok=True)
    for origin, text in texts.items():
        (zones / f"{origin}.zone").write_text(text)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path}"\n' + extra
    )
    return load_config(config)


def cold(tmp_path: Path, config: Config) -> tuple[dict[Path, LoadedZone], AnswerTable]:
    zones, problems = scan_zones(tmp_path / "zones", {}, 1)
    assert problems == []
    data = [ZoneData(z.origin, z.zone) for z in zones.values()]
    return zones, build_table(config, data, lambda pool: plan_all(pool, {}))


def save(tmp_path: Path, config: Config) -> AnswerStore:
    zones, table = cold(tmp_path, config)
    rows, keep = rows_to_save(zones, table, {})
    store = AnswerStore(tmp_path)
    store.save(
        Header(fingerprint(config), origins_digest(name_key(z.origin) for z in zones.values())), rows, keep
    )
    return store


def warm(tmp_path: Path, config: Config, store: AnswerStore) -> tuple[dict[Path, LoadedZone], AnswerTable]:
    zones, table, _ = warm_with_rows(tmp_path, config, store)
    return zones, filled(table)


def warm_with_rows(
    tmp_path: Path, config: Config, store: AnswerStore
) -> tuple[dict[Path, LoadedZone], AnswerTable, dict[Path, LazyIndex]]:
    """The warm table as served first: its stored zones pending, no answer read."""
    found = store.load(fingerprint(config), read_digest, now=time.time() + 10)
    zones, _ = scan_zones(tmp_path / "zones", warm_zones(found.zones, store.source_of), 1)
    table, _, lazies = warm_table(
        config, zones, found.zones, lambda pool: plan_all(pool, {}), None, None, store.answers_of
    )
    return zones, table, lazies


def filled(table: AnswerTable) -> AnswerTable:
    """As the server fills a staged table behind it, a slice at a time."""
    for _ in range(100):
        if not table.pending:
            break
        table = fill_slice(table, 1000, 5000)
    assert not table.pending
    return table


def served(table: AnswerTable) -> dict[bytes, tuple[int, bool, bytes]]:
    return {key: (e.rcode, e.authoritative, e.body) for key, e in table.entries.items()}


def test_warm_table_equals_a_cold_compile_and_parses_nothing(tmp_path: Path) -> None:
    config = setup(tmp_path, {f"z{i}.test": zone_text(f"z{i}.test") for i in range(5)})
    store = save(tmp_path, config)
    zones, table = warm(tmp_path, config, store)
    assert served(table) == served(cold(tmp_path, config)[1])
    assert not table.pending
    assert all(isinstance(z.zone, LazyZone) and not z.zone.parsed for z in zones.values())


def test_a_stored_zone_whose_cname_target_changed_elsewhere_is_compiled_again(tmp_path: Path) -> None:
    """a.test's CNAME answer follows the chain into b.test (RFC 1034 4.3.2): b.test changed,
    so a.test's stored answers are stale too, though its own file is not."""
    texts = {
        "a.test": zone_text("a.test", extra="@ TXT hello\nalias CNAME mx.b.test.\n"),
        "b.test": zone_text("b.test"),
    }
    config = setup(tmp_path, texts)
    store = save(tmp_path, config)
    setup(tmp_path, {"b.test": zone_text("b.test", address="198.51.100.7")})
    _, table = warm(tmp_path, config, store)
    assert served(table) == served(cold(tmp_path, config)[1])
    assert any(
        b"\xc6\x33\x64\x07" in e.body for k, e in table.entries.items() if k.startswith(b"\x05alias\x01a")
    )


def test_a_new_zone_file_is_compiled_beside_the_stored_ones(tmp_path: Path) -> None:
    config = setup(tmp_path, {"a.test": zone_text("a.test")})
    store = save(tmp_path, config)
    setup(tmp_path, {"c.test": zone_text("c.test")})
    _, table = warm(tmp_path, config, store)
    assert served(table) == served(cold(tmp_path, config)[1])


def test_rows_to_save_keeps_the_stored_rows_still_served(tmp_path: Path) -> None:
    config = setup(tmp_path, {"a.test": zone_text("a.test"), "b.test": zone_text("b.test")})
    store = save(tmp_path, config)
    setup(tmp_path, {"b.test": zone_text("b.test", address="198.51.100.7")})
    zones, table, stored = warm_with_rows(tmp_path, config, store)
    rows, keep = rows_to_save(zones, filled(table), stored)
    assert keep == [tmp_path / "zones" / "a.test.zone"]
    assert [row.path for row in rows] == [tmp_path / "zones" / "b.test.zone"]


def test_a_lazy_zone_is_read_on_first_use(tmp_path: Path) -> None:
    setup(tmp_path, {"a.test": zone_text("a.test")})
    path = tmp_path / "zones" / "a.test.zone"
    full = load_zone_file(path)
    lazy = lazy_loaded(full.origin, path, full.digest, None, 1, path.read_bytes())
    assert isinstance(lazy.zone, LazyZone) and not lazy.zone.parsed
    assert lazy.zone.nodes == full.zone.nodes
    assert lazy.zone.parsed


def test_a_lazy_zone_is_the_served_version_though_its_file_changed(tmp_path: Path) -> None:
    """It is read from the bytes its stored answers were made from, not from the file: a
    reload judges a hand edit against the version served (owner.judge), as after a cold start."""
    setup(tmp_path, {"a.test": zone_text("a.test")})
    path = tmp_path / "zones" / "a.test.zone"
    full = load_zone_file(path)
    lazy = lazy_loaded(full.origin, path, full.digest, None, 1, path.read_bytes())
    path.write_text(zone_text("a.test", address="198.51.100.7"))
    assert lazy.zone.nodes == full.zone.nodes


def test_kept_bytes_that_do_not_match_their_digest_are_refused(tmp_path: Path) -> None:
    setup(tmp_path, {"a.test": zone_text("a.test")})
    path = tmp_path / "zones" / "a.test.zone"
    full = load_zone_file(path)
    lazy = lazy_loaded(full.origin, path, full.digest, None, 1, path.read_bytes().replace(b"25", b"26"))
    with pytest.raises(ZoneLoadError, match="do not match their digest"):
        _ = lazy.zone.nodes


def test_a_lazy_zone_pickles_as_a_plain_zone(tmp_path: Path) -> None:
    """Workers get zones pickled: they get a whole one."""
    setup(tmp_path, {"a.test": zone_text("a.test")})
    path = tmp_path / "zones" / "a.test.zone"
    full = load_zone_file(path)
    copy = pickle.loads(
        pickle.dumps(lazy_loaded(full.origin, path, full.digest, None, 1, path.read_bytes()).zone)
    )
    assert type(copy) is not LazyZone
    assert copy.nodes == full.zone.nodes and copy.origin == full.origin


def test_scan_keeps_a_stored_version_by_its_digest(tmp_path: Path) -> None:
    """The scan stats each file; unchanged bytes keep the lazy version, unparsed."""
    config = setup(tmp_path, {"a.test": zone_text("a.test")})
    store = save(tmp_path, config)
    os.utime(tmp_path / "zones" / "a.test.zone", None)
    zones, _ = warm(tmp_path, config, store)
    (zone,) = zones.values()
    assert isinstance(zone.zone, LazyZone) and not zone.zone.parsed


def test_a_warm_zone_keeps_the_spelling_of_its_origin(tmp_path: Path) -> None:
    """The journal and the logs name a zone by its origin as the file spells it (dnspython keeps
    the case): a warm start must name it the same, not by the lower-case table key."""
    config = setup(tmp_path, {"Mixed.TEST": zone_text("Mixed.TEST")})
    cold_zones, _ = cold(tmp_path, config)
    store = save(tmp_path, config)
    zones, _ = warm(tmp_path, config, store)
    (zone,) = zones.values()
    assert isinstance(zone.zone, LazyZone) and not zone.zone.parsed
    assert zone.origin.to_text() == next(iter(cold_zones.values())).origin.to_text() == "Mixed.TEST."


def test_a_zone_with_names_laid_over_it_is_not_stored(tmp_path: Path) -> None:
    """A null-MX name (or a pool's hint names) is laid over the zone by policy, which a catalog
    may change without the config changing: such a zone is compiled at every start."""
    rule = '[[name]]\nname = "mail.a.test."\naction = "null-mx"\n'
    config = setup(tmp_path, {"a.test": zone_text("a.test"), "b.test": zone_text("b.test")}, rule)
    zones, table = cold(tmp_path, config)
    rows, _ = rows_to_save(zones, table, {})
    assert [row.path.name for row in rows] == ["b.test.zone"]


QUESTIONS = [
    (f"{name}{origin}.", rdtype)
    for origin in ("z0.test", "z3.test")
    for name, rdtype in [
        ("", "SOA"),
        ("", "MX"),
        ("", "NS"),
        ("mx.", "A"),
        ("mx.", "AAAA"),
        ("nx.", "A"),
        ("deep.nx.", "MX"),
        ("ns1.", "TXT"),
    ]
]


def replies(table: AnswerTable) -> list[bytes]:
    """The engine's reply to each of QUESTIONS (fast path, slow path for what is pending)."""
    engine = Engine(table)
    found = []
    for name, rdtype in QUESTIONS:
        query = dns.message.make_query(name, rdtype, use_edns=False)
        query.id = 7
        reply = engine.handle(query.to_wire())
        assert isinstance(reply, bytes)
        found.append(reply)
    return found


def five_zones(tmp_path: Path) -> Config:
    return setup(tmp_path, {f"z{i}.test": zone_text(f"z{i}.test") for i in range(5)})


def flip_answers(tmp_path: Path, origin: str) -> None:
    """One bit flipped in one zone's stored answers where they still decode: mx's address
    192.0.2.25 reads 192.0.2.24 (only the checksum can tell)."""
    path = str(tmp_path / "zones" / f"{origin}.zone")
    with sqlite3.connect(tmp_path / STORE_FILE) as db:
        (body,) = db.execute("SELECT body FROM answers WHERE path = ?", (path,)).fetchone()
        assert b"\xc0\x00\x02\x19" in body
        broken = body.replace(b"\xc0\x00\x02\x19", b"\xc0\x00\x02\x18")
        db.execute("UPDATE answers SET body = ? WHERE path = ?", (broken, path))


def test_a_warm_start_reads_no_answer_before_a_zone_is_asked(tmp_path: Path) -> None:
    """Every stored zone is pending with a lazy index; a question reads that zone's row only."""
    config = five_zones(tmp_path)
    store = save(tmp_path, config)
    asked: list[list[Path]] = []
    answers_of = store.answers_of

    def counting(rows: Iterable[StoredIndex]) -> Mapping[Path, bytes | None]:
        rows = list(rows)
        asked.append([row.path for row in rows])
        return answers_of(rows)

    store.answers_of = counting  # type: ignore[method-assign]
    _, table, lazies = warm_with_rows(tmp_path, config, store)
    assert table.pending == set(table.zones) and not table.entries
    assert asked == [] and all(table.zones[lazy.origin] is lazy for lazy in lazies.values())
    engine = Engine(table)
    engine.handle(dns.message.make_query("nx.z2.test.", "A").to_wire())
    assert asked == [[tmp_path / "zones" / "z2.test.zone"]]


def test_a_pending_stored_zone_answers_as_the_cold_start_before_and_after_it_is_laid_in(
    tmp_path: Path,
) -> None:
    """Byte for byte: first from the slow path (its index read from its row), then from the
    stored answers laid in by the fill."""
    config = five_zones(tmp_path)
    expected = replies(cold(tmp_path, config)[1])
    store = save(tmp_path, config)
    _, table, lazies = warm_with_rows(tmp_path, config, store)
    assert replies(table) == expected
    table = filled(table)
    assert replies(table) == expected
    assert all(lazy.filled is table.zones[lazy.origin] for lazy in lazies.values())
    assert served(table) == served(cold(tmp_path, config)[1])


def test_a_corrupt_row_found_when_laid_in_is_compiled_from_the_file_and_saved_again(tmp_path: Path) -> None:
    """The index checked out at start, the answers do not when read: never served."""
    config = five_zones(tmp_path)
    store = save(tmp_path, config)
    flip_answers(tmp_path, "z3.test")
    zones, table, lazies = warm_with_rows(tmp_path, config, store)
    assert len(lazies) == 5
    table = filled(table)
    assert served(table) == served(cold(tmp_path, config)[1])
    assert lazies[tmp_path / "zones" / "z3.test.zone"].filled is None
    rows, keep = rows_to_save(zones, table, lazies)
    assert [row.path.name for row in rows] == ["z3.test.zone"] and len(keep) == 4


def test_a_corrupt_row_found_by_a_query_is_not_served(tmp_path: Path) -> None:
    """A question for a pending zone whose row does not check out is answered from its file."""
    config = five_zones(tmp_path)
    expected = replies(cold(tmp_path, config)[1])
    store = save(tmp_path, config)
    flip_answers(tmp_path, "z0.test")
    flip_answers(tmp_path, "z3.test")
    _, table, _ = warm_with_rows(tmp_path, config, store)
    assert replies(table) == expected
    assert replies(filled(table)) == expected


def test_a_compile_step_over_a_pending_stored_zone_gives_a_plain_index(tmp_path: Path) -> None:
    """Where a fill compiles a stored zone instead (`fill_table`), its lazy index becomes a
    plain `CompiledZone` with the same contents."""
    config = five_zones(tmp_path)
    store = save(tmp_path, config)
    _, table, _ = warm_with_rows(tmp_path, config, store)
    table = fill_table(table, list(table.pending))
    assert not table.pending
    assert all(type(zone) is CompiledZone for zone in table.zones.values())
    assert served(table) == served(cold(tmp_path, config)[1])

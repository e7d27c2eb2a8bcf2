"""A warm start from the answer store (dynmx/store/warm.py, lazy.py): the table equals a
cold compile of the same files, and parses nothing it does not need."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import pytest

from dynmx.answer.compiler import AnswerTable
from dynmx.answer.zoneset import ZoneData, name_key
from dynmx.app.zonescan import scan_zones
from dynmx.config import Config, load_config
from dynmx.errors import ZoneLoadError
from dynmx.policy.served import build_table, plan_all
from dynmx.store.answers import AnswerStore, Header, fingerprint, origins_digest
from dynmx.store.codec import StoredZone
from dynmx.store.lazy import LazyZone, lazy_loaded
from dynmx.store.warm import rows_to_save, warm_table, warm_zones
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
    return zones, table


def warm_with_rows(
    tmp_path: Path, config: Config, store: AnswerStore
) -> tuple[dict[Path, LoadedZone], AnswerTable, dict[Path, StoredZone]]:
    found = store.load(fingerprint(config), read_digest, now=time.time() + 10)
    zones, _ = scan_zones(
        tmp_path / "zones", warm_zones(found.zones, found.digests, found.stamps, found.sources), 1
    )
    table, _ = warm_table(config, zones, found.zones, lambda pool: plan_all(pool, {}), None, None)
    return zones, table, found.zones


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
    rows, keep = rows_to_save(zones, table, stored)
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

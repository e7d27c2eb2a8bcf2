"""The zone-index cache: built once per zone version, and never keeps old versions alive."""

from __future__ import annotations

import gc
import os
import weakref
from pathlib import Path

import dns.name
import dns.zone
import pytest

from dynmx.app import zonescan
from dynmx.zone.loader import LoadedZone, file_digest

TEXT = "@ 300 IN SOA ns1 hostmaster {serial} 2 3 4 5\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n"


def _version(serial: int) -> LoadedZone:
    zone = dns.zone.from_text(TEXT.format(serial=serial), "example.test.", relativize=False)
    return LoadedZone(dns.name.from_text("example.test."), zone, Path("example.test.zone"))


def test_an_unchanged_zone_keeps_its_indexes() -> None:
    loaded = _version(1)
    first = zonescan.zone_data({loaded.path: loaded})
    assert zonescan.zone_data({loaded.path: loaded})[0] is first[0]


def test_replaced_versions_are_released() -> None:
    """The soak run found RSS growing with every edit: the cache held every version."""
    versions = [weakref.ref(_version(0).zone)]
    for serial in range(1, 30):
        loaded = _version(serial)
        zonescan.zone_data({loaded.path: loaded})
        versions.append(weakref.ref(loaded.zone))
        del loaded
    gc.collect()
    assert sum(ref() is not None for ref in versions) <= 1


def _write(directory: Path, serial: int) -> Path:
    path = directory / "example.test.zone"
    path.write_text(TEXT.format(serial=serial))
    return path


def test_a_rescan_keeps_the_zone_of_a_file_whose_bytes_are_unchanged(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    first, _ = zonescan.scan_zones(tmp_path, {})
    second, _ = zonescan.scan_zones(tmp_path, first)
    assert second == first
    assert zonescan.changed_origins(first, second) == []


@pytest.mark.parametrize("racy_seconds", [0.0, zonescan.RACY_SECONDS])
def test_a_changed_file_is_read_again_even_with_its_size_and_mtime_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, racy_seconds: float
) -> None:
    """The stamp holds the ctime and inode too, and a file changed moments ago has none: a
    `touch -d` or an edit within one clock tick is not missed."""
    monkeypatch.setattr(zonescan, "RACY_SECONDS", racy_seconds)
    path = _write(tmp_path, 1)
    stat = path.stat()
    first, _ = zonescan.scan_zones(tmp_path, {})
    _write(tmp_path, 2)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    second, _ = zonescan.scan_zones(tmp_path, first)
    assert zonescan.soa_serial(second[path]) == 2
    assert zonescan.changed_origins(first, second) == [dns.name.from_text("example.test.")]


def test_a_version_made_in_memory_is_replaced_by_its_file_on_a_rescan(tmp_path: Path) -> None:
    """An edit's version has no digest: the file, written back by the writer, is read again."""
    path = _write(tmp_path, 3)
    edited = _version(4)
    in_memory = {path: LoadedZone(edited.origin, edited.zone, path)}
    scanned, _ = zonescan.scan_zones(tmp_path, in_memory)
    assert zonescan.soa_serial(scanned[path]) == 3


def test_a_file_not_written_back_yet_keeps_the_version_in_memory(tmp_path: Path) -> None:
    """The file is behind an edit (its write-back waits): reading it would undo the edit."""
    path = _write(tmp_path, 3)
    edited = _version(4)
    in_memory = {path: LoadedZone(edited.origin, edited.zone, path)}
    scanned, _ = zonescan.scan_zones(tmp_path, in_memory, keep=frozenset({path}))
    assert scanned[path] is in_memory[path]


def test_an_edits_version_is_kept_when_the_file_holds_what_was_written_from_it(tmp_path: Path) -> None:
    path = _write(tmp_path, 3)
    edited = _version(4)
    in_memory = {path: LoadedZone(edited.origin, edited.zone, path)}
    written = {path: file_digest(path.read_bytes())}
    scanned, _ = zonescan.scan_zones(tmp_path, in_memory, written=written)
    assert scanned[path] is in_memory[path]
    path.write_text(path.read_text() + "extra 300 IN A 192.0.2.9\n")  # changed by hand since
    rescanned, _ = zonescan.scan_zones(tmp_path, in_memory, written=written)
    assert rescanned[path] is not in_memory[path]


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Which files the next scans read (the real reader, watched)."""
    seen: list[Path] = []
    read = zonescan.read_zone_bytes

    def watched(path: Path) -> bytes:
        seen.append(path)
        return read(path)

    monkeypatch.setattr(zonescan, "read_zone_bytes", watched)
    return seen


def test_a_rescan_does_not_read_a_file_whose_stamp_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """100,000 unchanged files cost a stat each on a reload, not a read and a digest."""
    monkeypatch.setattr(zonescan, "RACY_SECONDS", 0.0)
    path = _write(tmp_path, 1)
    first, _ = zonescan.scan_zones(tmp_path, {})
    assert first[path].stamp is not None
    reads = _reads(monkeypatch)
    second, _ = zonescan.scan_zones(tmp_path, first)
    assert reads == []
    assert second[path] is first[path]


def test_a_file_changed_moments_ago_is_read_again_at_the_next_rescan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Racy git's rule: another write within the clock's resolution could keep the stamp."""
    path = _write(tmp_path, 1)
    first, _ = zonescan.scan_zones(tmp_path, {})
    assert first[path].stamp is None
    reads = _reads(monkeypatch)
    second, _ = zonescan.scan_zones(tmp_path, first)
    assert reads == [path]
    assert second[path] is first[path]  # the same bytes: kept by digest

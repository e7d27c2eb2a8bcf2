"""The zone-index cache: built once per zone version, and never keeps old versions alive."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import weakref
from pathlib import Path

import dns.name
import dns.zone
import pytest

from dynmx.app import zonescan
from dynmx.errors import Problem
from dynmx.zone import batch
from dynmx.zone.filebytes import file_digest
from dynmx.zone.loader import LoadedZone, load_zone_file

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

    def watched(path: Path, limit: int) -> bytes:
        seen.append(path)
        return read(path, limit)

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


# -- large files: checked in a process of their own (issue 23, item 13) ------------------

LARGE = TEXT + "".join(f"h{i} 300 IN A 10.0.{i >> 8 & 255}.{i & 255}\n" for i in range(100))


@pytest.fixture
def large_from_1k(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files of 1 KB and more count as large here: a megabyte takes seconds to parse."""
    monkeypatch.setattr(zonescan, "APART_FROM", 1024)


def _checks(monkeypatch: pytest.MonkeyPatch) -> list[list[Path]]:
    """The lists of files `check_apart` is given (the real one, watched)."""
    seen: list[list[Path]] = []
    check = zonescan.check_apart

    def watched(paths: list[Path], processes: int, max_size: int) -> dict[Path, list[Problem]]:
        seen.append(list(paths))
        return check(paths, processes, max_size)

    monkeypatch.setattr(zonescan, "check_apart", watched)
    return seen


def test_a_running_server_checks_a_large_file_in_a_child_then_parses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large_from_1k: None
) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(LARGE.format(serial=1))
    assert path.stat().st_size >= zonescan.APART_FROM
    (tmp_path / "small.test.zone").write_text(TEXT.format(serial=1))
    checks = _checks(monkeypatch)
    scanned, problems = zonescan.scan_zones(tmp_path, {}, serving=True)
    assert problems == []
    assert checks == [[path]]
    here = load_zone_file(path)
    assert scanned[path].digest == here.digest
    assert scanned[path].zone.to_text() == here.zone.to_text()


def test_at_start_up_a_large_file_is_parsed_here_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large_from_1k: None
) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(LARGE.format(serial=1))
    checks = _checks(monkeypatch)
    scanned, _ = zonescan.scan_zones(tmp_path, {})
    assert checks == [[]]
    assert zonescan.soa_serial(scanned[path]) == 1


def test_a_large_file_whose_bytes_are_unchanged_is_not_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large_from_1k: None
) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(LARGE.format(serial=1))
    first, _ = zonescan.scan_zones(tmp_path, {})
    path.write_text(LARGE.format(serial=1))  # a new stamp, the same bytes
    checks = _checks(monkeypatch)
    second, _ = zonescan.scan_zones(tmp_path, first, serving=True)
    assert checks == [[]]
    assert second[path] is first[path]


def test_a_large_bad_file_is_refused_by_the_child_and_never_read_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large_from_1k: None
) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(LARGE.format(serial=1))
    first, _ = zonescan.scan_zones(tmp_path, {})
    path.write_text(LARGE.format(serial=2) + "bad 300 IN A 999.1.1.1\n")
    reads = _reads(monkeypatch)
    second, problems = zonescan.scan_zones(tmp_path, first, serving=True)
    assert [str(p) for p in problems] == [f"{path}:104: syntax error at '999.1.1.1'"]
    assert reads == []
    assert second[path] is first[path]


def test_a_file_over_max_size_is_refused_unread_and_keeps_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, large_from_1k: None
) -> None:
    path = _write(tmp_path, 1)
    first, _ = zonescan.scan_zones(tmp_path, {})
    path.write_text(LARGE.format(serial=2))
    size = path.stat().st_size
    checks = _checks(monkeypatch)
    for serving in (False, True):
        second, problems = zonescan.scan_zones(tmp_path, first, max_size=size - 1, serving=serving)
        reason = (
            f"zone file of {size:,} bytes, larger than max_zone_file_size ({size - 1:,} bytes): not loaded"
        )
        assert [str(p) for p in problems] == [f"{path}:0: {reason}"]
        assert second[path] is first[path]
    assert checks == [[], []]


def test_a_file_is_not_refused_when_its_check_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No process can start, or the child fails on its own (not the file's fault): the
    server parses the file itself, as it did before."""
    path = tmp_path / "example.test.zone"
    path.write_text(LARGE.format(serial=1))

    def cannot_start(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    def fails(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(command, 1, b"", b"Traceback ...\nImportError: no dynmx\n")

    for run in (cannot_start, fails):
        monkeypatch.setattr(batch.subprocess, "run", run)
        with caplog.at_level(logging.WARNING):
            assert batch.check_apart([path]) == {path: []}
    assert caplog.text.count("event=apart-check-failed") == 2
    assert "ImportError: no dynmx" in caplog.text


def test_a_file_whose_check_is_killed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of memory, most likely: the server could not have parsed it either."""
    path = tmp_path / "example.test.zone"
    path.write_text(LARGE.format(serial=1))

    def killed(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(command, -9, b"", b"")

    monkeypatch.setattr(batch.subprocess, "run", killed)
    reason = "not loaded: the process checking it was killed (Killed; out of memory?)"
    assert batch.check_apart([path]) == {path: [Problem(str(path), 0, reason)]}


def test_the_child_sends_back_a_bad_files_problems(tmp_path: Path) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(LARGE.format(serial=1) + "bad 300 IN A 999.1.1.1\n")
    good = tmp_path / "good.test.zone"
    good.write_text(LARGE.format(serial=1))
    found = batch.check_apart([path, good], processes=2)
    assert [str(p) for p in found[path]] == [f"{path}:104: syntax error at '999.1.1.1'"]
    assert found[good] == []


# -- a reload with nothing changed: a stat per file (issue 26) -----------------------------


def test_a_file_read_again_with_its_bytes_unchanged_is_kept_by_stat_at_the_next_rescan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file too fresh to trust its stamp was read at every reload, for as long as it served."""
    monkeypatch.setattr(zonescan, "RACY_SECONDS", 3600.0)
    path = _write(tmp_path, 1)
    first, _ = zonescan.scan_zones(tmp_path, {})
    assert first[path].stamp is None
    monkeypatch.setattr(zonescan, "RACY_SECONDS", 0.0)
    reads = _reads(monkeypatch)
    second, _ = zonescan.scan_zones(tmp_path, first)
    assert reads == [path]
    third, _ = zonescan.scan_zones(tmp_path, second)
    assert reads == [path]
    assert third[path] is second[path] is first[path]


def test_a_touched_file_is_read_once_kept_by_its_bytes_then_kept_by_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`touch` moves the mtime: the bytes decide (the same version: nothing recompiled), and
    the new stamp is trusted from then on."""
    monkeypatch.setattr(zonescan, "RACY_SECONDS", 0.0)
    path = _write(tmp_path, 1)
    first, _ = zonescan.scan_zones(tmp_path, {})
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 5_000_000_000))
    reads = _reads(monkeypatch)
    second, _ = zonescan.scan_zones(tmp_path, first)
    assert reads == [path]
    assert second[path] is first[path]
    assert zonescan.changed_origins(first, second) == []
    third, _ = zonescan.scan_zones(tmp_path, second)
    assert reads == [path]
    assert third[path] is first[path]


def test_a_file_whose_size_changed_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zonescan, "RACY_SECONDS", 0.0)
    path = _write(tmp_path, 1)
    first, _ = zonescan.scan_zones(tmp_path, {})
    _write(tmp_path, 12345)
    reads = _reads(monkeypatch)
    second, _ = zonescan.scan_zones(tmp_path, first)
    assert reads == [path]
    assert zonescan.soa_serial(second[path]) == 12345


def test_among_many_unchanged_files_only_the_changed_one_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zonescan, "RACY_SECONDS", 0.0)
    for index in range(20):
        (tmp_path / f"z{index}.test.zone").write_text(TEXT.format(serial=1))
    first, _ = zonescan.scan_zones(tmp_path, {})
    changed = tmp_path / "z7.test.zone"
    changed.write_text(TEXT.format(serial=2) + "extra 300 IN A 192.0.2.9\n")
    reads = _reads(monkeypatch)
    second, problems = zonescan.scan_zones(tmp_path, first)
    assert problems == []
    assert reads == [changed]
    assert [path for path in second if second[path] is not first[path]] == [changed]
    assert list(second) == list(first)


def test_a_stamp_confirmed_for_one_version_does_not_keep_another() -> None:
    """The bytes were those of the version read then: an edit's newer version is not kept by it."""
    old, new = _version(1), _version(2)
    stamp = (1, 2, 3, 4)
    assert zonescan.unchanged(old, stamp, (old, stamp))
    assert not zonescan.unchanged(new, stamp, (old, stamp))
    assert not zonescan.unchanged(old, (1, 2, 3, 5), (old, stamp))


def test_a_version_is_kept_by_the_stamp_it_was_read_with() -> None:
    loaded = _version(1)
    stamped = LoadedZone(loaded.origin, loaded.zone, loaded.path, b"d", (1, 2, 3, 4))
    assert zonescan.unchanged(stamped, (1, 2, 3, 4), None)
    assert not zonescan.unchanged(stamped, (1, 2, 4, 4), None)  # the size moved


def test_the_current_directory_keeps_its_unchanged_files_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.` lists `./example.test.zone`, which `Path` writes `example.test.zone`: the same file."""
    monkeypatch.setattr(zonescan, "RACY_SECONDS", 0.0)
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, 1)
    first, _ = zonescan.scan_zones(Path("."), {})
    reads = _reads(monkeypatch)
    second, _ = zonescan.scan_zones(Path("."), first)
    assert reads == []
    assert list(second) == [Path("example.test.zone")]
    assert second[Path("example.test.zone")] is first[Path("example.test.zone")]

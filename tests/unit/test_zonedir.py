"""The zone directory at a glance (`dynmx.app.zonedir`): when a reload may skip its scan."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dynmx.app.zonedir import Glance, Scanned, glance, unchanged_since
from dynmx.app.zonescan import RACY_SECONDS

NOW = 1_800_000_000.0
OLD_NS = int((NOW - 3600) * 1e9)
LIMIT = 1 << 20


def _glance(names: list[str], newest_ns: int = OLD_NS, size: int = 100) -> Glance:
    stamps = [(newest_ns, newest_ns, size, index) for index, _ in enumerate(names)]
    return Glance(Path("/zones"), names, stamps, newest_ns)


def _scanned(seen: Glance, began: float = NOW, edits: int = 0) -> Scanned:
    return Scanned(seen, began, edits, LIMIT)


def test_the_same_files_with_the_same_stamps_are_unchanged() -> None:
    assert unchanged_since(_scanned(_glance(["a.zone", "b.zone"])), _glance(["a.zone", "b.zone"]), 0, LIMIT)


def test_a_file_whose_stamp_moved_is_a_change() -> None:
    assert not unchanged_since(_scanned(_glance(["a.zone"])), _glance(["a.zone"], size=101), 0, LIMIT)


def test_a_file_added_or_removed_is_a_change() -> None:
    scanned = _scanned(_glance(["a.zone", "b.zone"]))
    assert not unchanged_since(scanned, _glance(["a.zone"]), 0, LIMIT)
    assert not unchanged_since(scanned, _glance(["a.zone", "b.zone", "c.zone"]), 0, LIMIT)


def test_an_edit_published_since_the_scan_is_a_change() -> None:
    """Its file may be behind the version in memory, or written since: the scan decides."""
    seen = _glance(["a.zone"])
    assert not unchanged_since(_scanned(seen, edits=3), seen, 4, LIMIT)


def test_another_size_limit_is_a_change() -> None:
    seen = _glance(["a.zone"])
    assert not unchanged_since(_scanned(seen), seen, 0, LIMIT // 2)


def test_no_earlier_scan_or_no_glance_now_is_a_change() -> None:
    seen = _glance(["a.zone"])
    assert not unchanged_since(None, seen, 0, LIMIT)
    assert not unchanged_since(_scanned(seen), None, 0, LIMIT)


def test_a_file_changed_within_the_racy_window_of_the_scan_is_not_trusted() -> None:
    """A second write within the clock's tick could leave every stamp as it was (racy-git)."""
    fresh = int((NOW - RACY_SECONDS / 2) * 1e9)
    seen = _glance(["a.zone"], newest_ns=fresh)
    assert not _scanned(seen).trusted
    assert not unchanged_since(_scanned(seen), seen, 0, LIMIT)
    settled = _glance(["a.zone"], newest_ns=int((NOW - RACY_SECONDS) * 1e9))
    assert _scanned(settled).trusted


def test_glance_stats_only_zone_files_and_says_the_newest_change(tmp_path: Path) -> None:
    (tmp_path / "a.zone").write_text("a")
    (tmp_path / "notes.txt").write_text("n")
    (tmp_path / "sub.zone").mkdir()
    os.utime(tmp_path / "a.zone", (1000, 1000))
    seen = glance(tmp_path)
    assert seen is not None
    assert seen.names == ["a.zone"]
    info = (tmp_path / "a.zone").stat()
    assert seen.stamps == [(info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)]
    assert seen.newest_ns == info.st_ctime_ns  # the write's own ctime: os.utime cannot set it back
    assert abs(seen.newest_ns / 1e9 - time.time()) < 60


def test_glance_at_a_missing_directory_is_none(tmp_path: Path) -> None:
    assert glance(tmp_path / "missing") is None

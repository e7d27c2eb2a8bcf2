"""The control process's zones handed to starting workers through a file in the state directory."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from dynmx.app.handover import HANDOVER_FILE, handed_over, taken_over
from dynmx.zone.loader import LoadedZone, load_zone_file

ZONE = """\
$TTL 300
@   SOA ns1 hostmaster 7 7200 900 1209600 300
@   NS  ns1
ns1 A   192.0.2.53
@   MX  10 mx
mx  A   192.0.2.25
"""


def _zones(tmp_path: Path, count: int) -> dict[Path, LoadedZone]:
    directory = tmp_path / "zones"
    directory.mkdir()
    zones = {}
    for index in range(count):
        path = directory / f"z{index}.example.zone"
        path.write_text(ZONE)
        zones[path] = load_zone_file(path)
    return zones


def test_workers_take_over_every_zone_as_the_control_process_loaded_it(tmp_path: Path) -> None:
    zones = _zones(tmp_path, 3)
    with handed_over(tmp_path, zones) as path:
        assert path is not None
        taken = taken_over(path)
    assert taken.keys() == zones.keys()
    for file, zone in zones.items():
        assert taken[file].origin == zone.origin
        assert taken[file].digest == zone.digest
        assert taken[file].zone.to_text() == zone.zone.to_text()


def test_the_handover_file_lasts_as_long_as_its_context(tmp_path: Path) -> None:
    with handed_over(tmp_path, _zones(tmp_path, 1)) as path:
        assert path == tmp_path / HANDOVER_FILE
        assert path.exists()
    assert not (tmp_path / HANDOVER_FILE).exists()


def test_the_handover_file_is_gone_when_the_start_fails(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError), handed_over(tmp_path, _zones(tmp_path, 1)):
        raise TimeoutError("a worker was not ready")
    assert not (tmp_path / HANDOVER_FILE).exists()


def test_a_handover_that_cannot_be_written_leaves_the_workers_to_the_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    zones = _zones(tmp_path, 1)
    with caplog.at_level(logging.WARNING), handed_over(tmp_path / "missing", zones) as path:
        assert path is None
    assert "event=handover-failed" in caplog.text


def test_a_truncated_handover_gives_no_zones(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with handed_over(tmp_path, _zones(tmp_path, 2)) as path:
        assert path is not None
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 40])
        with caplog.at_level(logging.WARNING):
            assert taken_over(path) == {}
    assert "event=handover-unread" in caplog.text


def test_a_handover_of_something_other_than_zones_gives_no_zones(tmp_path: Path) -> None:
    path = tmp_path / HANDOVER_FILE
    path.write_bytes(pickle.dumps({"not": "a zone"}))
    assert taken_over(path) == {}


def test_a_missing_handover_gives_no_zones(tmp_path: Path) -> None:
    assert taken_over(tmp_path / HANDOVER_FILE) == {}


def test_a_damaged_handover_gives_no_zones(tmp_path: Path) -> None:
    path = tmp_path / HANDOVER_FILE
    path.write_bytes(b"\x80\x05not a pickle at all")
    assert taken_over(path) == {}

"""The control process's zones handed to starting workers through a file with no name, passed
as a file descriptor: nothing in the state directory is ever read as a pickle (issue 23, item 12)."""

from __future__ import annotations

import logging
import os
import pickle
import stat
import tempfile
from pathlib import Path

import pytest

from dynmx.app.workers import handover
from dynmx.app.workers.handover import handed_over, taken_over
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


def _state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    return state


def test_workers_take_over_every_zone_as_the_control_process_loaded_it(tmp_path: Path) -> None:
    zones = _zones(tmp_path, 3)
    with handed_over(_state(tmp_path), zones) as fd:
        assert fd is not None
        taken = taken_over(os.dup(fd))
    assert taken.keys() == zones.keys()
    for file, zone in zones.items():
        assert taken[file].origin == zone.origin
        assert taken[file].digest == zone.digest
        assert taken[file].zone.to_text() == zone.zone.to_text()


def test_the_file_has_no_name_and_leaves_nothing_in_the_state_directory(tmp_path: Path) -> None:
    state = _state(tmp_path)
    with handed_over(state, _zones(tmp_path, 2)) as fd:
        assert fd is not None
        assert stat.S_ISREG(os.fstat(fd).st_mode)
        assert os.fstat(fd).st_nlink == 0  # no directory entry anywhere
        assert not os.get_inheritable(fd)  # only the workers it is passed to get it
        assert list(state.iterdir()) == []
    assert list(state.iterdir()) == []


def test_each_reader_reads_from_its_own_offset(tmp_path: Path) -> None:
    """Every worker (and one started again later) gets a descriptor of the one file: their
    shared file position must not matter."""
    zones = _zones(tmp_path, 3)
    with handed_over(_state(tmp_path), zones) as fd:
        assert fd is not None
        os.lseek(fd, 17, os.SEEK_SET)
        assert taken_over(os.dup(fd)).keys() == zones.keys()
        assert taken_over(os.dup(fd)).keys() == zones.keys()


def test_the_descriptor_is_closed_when_the_context_ends(tmp_path: Path) -> None:
    with handed_over(_state(tmp_path), _zones(tmp_path, 1)) as fd:
        assert fd is not None
    with pytest.raises(OSError):
        os.fstat(fd)


def test_the_descriptor_is_closed_when_the_start_fails(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError), handed_over(_state(tmp_path), _zones(tmp_path, 1)) as fd:
        raise TimeoutError("a worker was not ready")
    assert fd is not None
    with pytest.raises(OSError):
        os.fstat(fd)


def test_without_a_usable_state_directory_the_file_is_made_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    zones = _zones(tmp_path, 1)
    with caplog.at_level(logging.INFO), handed_over(tmp_path / "missing", zones) as fd:
        assert fd is not None
        assert taken_over(os.dup(fd)).keys() == zones.keys()
    assert "event=handover-written zones=1 kind=memfd " in caplog.text


def test_a_handover_that_cannot_be_made_leaves_the_workers_to_the_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(state_dir: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(handover, "_anonymous_file", refuse)
    with caplog.at_level(logging.WARNING), handed_over(_state(tmp_path), _zones(tmp_path, 1)) as fd:
        assert fd is None
    assert "event=handover-failed" in caplog.text


def _file_holding(data: bytes) -> int:
    """A descriptor of a file holding `data`, as a worker is given one."""
    with tempfile.TemporaryFile() as out:
        out.write(data)
        out.flush()
        return os.dup(out.fileno())


def test_a_truncated_handover_gives_no_zones(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with handed_over(_state(tmp_path), _zones(tmp_path, 2)) as fd:
        assert fd is not None
        data = os.pread(fd, os.fstat(fd).st_size, 0)
    with caplog.at_level(logging.WARNING):
        assert taken_over(_file_holding(data[: len(data) - 40])) == {}
    assert "event=handover-unread" in caplog.text


def test_a_handover_of_something_other_than_zones_gives_no_zones() -> None:
    assert taken_over(_file_holding(pickle.dumps({"not": "a zone"}))) == {}


def test_an_empty_handover_gives_no_zones() -> None:
    assert taken_over(_file_holding(b"")) == {}


def test_a_damaged_handover_gives_no_zones() -> None:
    assert taken_over(_file_holding(b"\x80\x05not a pickle at all")) == {}

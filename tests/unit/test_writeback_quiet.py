"""A large zone's file is written once its edits pause (`WriteBack`'s quiet period): a burst
of edits costs one write, of its newest version; `flush` does not wait for the pause. While
a file is written, threads hand over the GIL often."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import dns.zone

from dynmx.control.writeback import SWITCH_SECONDS, WriteBack
from dynmx.zone.soa import serial_of

ZONE = "$ORIGIN example.test.\n@ 300 SOA ns1 host 7 3600 600 86400 300\n@ 300 NS ns1\nns1 300 A 192.0.2.1\n"


def _zone(serial: int) -> dns.zone.Zone:
    return dns.zone.from_text(ZONE.replace(" 7 ", f" {serial} "), relativize=False)


class Writes:
    def __init__(self) -> None:
        self.serials: list[int] = []
        self.done = threading.Event()

    def __call__(self, path: Path, zone: dns.zone.Zone) -> None:
        self.serials.append(serial_of(zone))
        self.done.set()


def test_a_burst_of_edits_to_a_large_zone_is_written_once_after_it(tmp_path: Path) -> None:
    writes = Writes()
    back = WriteBack(writes, quiet=0.3, quiet_from=0)  # every zone counts as large here
    path = tmp_path / "example.test.zone"
    started = time.monotonic()
    for serial in range(8, 13):
        back.submit(path, _zone(serial))
        time.sleep(0.05)
    assert writes.done.wait(5.0)
    assert time.monotonic() - started >= 0.3 + 4 * 0.05  # not before the burst ended
    assert back.flush(5.0)
    assert writes.serials == [12]


def test_a_small_zone_is_written_at_once(tmp_path: Path) -> None:
    writes = Writes()
    back = WriteBack(writes, quiet=30.0)  # the default size threshold: this zone is small
    back.submit(tmp_path / "example.test.zone", _zone(8))
    assert writes.done.wait(5.0)


def test_a_flush_writes_a_large_zone_without_waiting_for_the_pause(tmp_path: Path) -> None:
    writes = Writes()
    back = WriteBack(writes, quiet=30.0, quiet_from=0)
    back.submit(tmp_path / "example.test.zone", _zone(8))
    started = time.monotonic()
    assert back.flush(5.0)
    assert writes.serials == [8] and time.monotonic() - started < 5.0


def test_threads_hand_over_the_gil_more_often_while_a_file_is_written(tmp_path: Path) -> None:
    """The event loop waits for the GIL after each packet: while the writer holds it for
    seconds of Python, it gets it back within `SWITCH_SECONDS`, not Python's 5 ms."""
    seen: list[float] = []
    back = WriteBack(lambda path, zone: seen.append(sys.getswitchinterval()))
    before = sys.getswitchinterval()
    back.submit(tmp_path / "example.test.zone", _zone(8))
    assert back.flush(5.0)
    assert seen == [SWITCH_SECONDS] and sys.getswitchinterval() == before

"""Many zone files parse over several processes to exactly what parsing them here gives."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import dynmx.zone.batch
from dynmx.zone.batch import parse_many
from dynmx.zone.loader import LoadedZone

GOOD = "$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.{}\n"
BAD = "$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\nwww A 192.0.2.300\n"


def _files(tmp_path: Path, count: int) -> list[tuple[Path, bytes]]:
    files = []
    for i in range(count):
        path = tmp_path / f"z{i}.test.zone"
        text = BAD if i % 7 == 3 else GOOD.format(i % 250 + 1)
        path.write_text(text)
        files.append((path, text.encode()))
    return files


def _view(parsed: dict[Path, LoadedZone | list]) -> dict[Path, object]:  # type: ignore[type-arg]
    return {
        path: (zone.origin, zone.digest, zone.zone) if isinstance(zone, LoadedZone) else zone
        for path, zone in parsed.items()
    }


def test_zones_parsed_over_processes_equal_zones_parsed_here(tmp_path: Path) -> None:
    files = _files(tmp_path, 600)  # more than one chunk per process
    here = parse_many(files, processes=1)
    spread = parse_many(files, processes=2, min_files=1)
    assert list(spread) == [path for path, _ in files]
    assert _view(spread) == _view(here)
    assert sum(isinstance(zone, list) for zone in spread.values()) == len(range(3, 600, 7))


def test_a_process_pool_that_cannot_start_leaves_the_parsing_to_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_processes(*args: object, **kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(dynmx.zone.batch, "ProcessPoolExecutor", no_processes)
    files = _files(tmp_path, 20)
    with caplog.at_level(logging.WARNING, logger="dynmx.zone"):
        spread = parse_many(files, processes=4, min_files=1)
    assert _view(spread) == _view(parse_many(files, processes=1))
    assert "event=parallel-parse-failed" in caplog.text

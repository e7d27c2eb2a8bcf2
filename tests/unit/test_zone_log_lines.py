"""Which lines a load logs: one per new zone version, or one for all when there are many."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dns.name
import pytest

from dynmx.app import loading
from dynmx.app.publisher import ZoneState
from dynmx.zone.loader import LoadedZone, parse_zone


def _zone(index: int) -> tuple[Path, LoadedZone]:
    origin = f"z{index}.test."
    text = (
        f"@ 3600 IN SOA ns.{origin} host.{origin} 7 3600 600 86400 300\n"
        f"@ 3600 IN NS ns.{origin}\nns 3600 IN A 192.0.2.1\n"
    )
    path = Path(f"/zones/{origin}zone")
    return path, parse_zone(path, text.encode(), dns.name.from_text(origin))


def _load(count: int, caplog: pytest.LogCaptureFixture) -> list[str]:
    app: Any = SimpleNamespace(state=ZoneState(), metrics=SimpleNamespace(observe_load=lambda *a: None))
    zones = dict(_zone(index) for index in range(count))
    with caplog.at_level(logging.INFO, logger="dynmx.app"):
        loading.after_load(app, zones, [], 1.5)
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]


def test_each_new_zone_gets_its_own_line(caplog: pytest.LogCaptureFixture) -> None:
    expected = [f"event=zone-loaded zone=z{i}.test. serial=7 file=/zones/z{i}.test.zone" for i in range(3)]
    assert _load(3, caplog) == expected


def test_a_load_of_more_zones_than_the_limit_logs_one_summary_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loading, "ZONE_LINES", 2)
    assert _load(3, caplog) == ["event=zones-loaded zones=3 seconds=1.50"]

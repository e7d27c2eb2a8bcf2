"""A zone of at least STAGE_FROM_NAMES names is served before it is compiled: at start-up,
and after a reload under a changed config. An UPDATE renders only the names it touches
(it waited for the whole compile: about 3 minutes for 1,000,000 records)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from dynmx.app.publisher import STAGE_FROM_NAMES
from tests.conftest import EDITS, RunningServer, write_config
from tests.interop.test_update_server import ZONE, _lookup, _update

Serve = Callable[..., RunningServer]


def _large_zone(tmp_path: Path, server: str = "") -> Path:
    hosts = "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(STAGE_FROM_NAMES))
    return write_config(tmp_path, ZONE + hosts, server + EDITS)


def _count(server: RunningServer, needle: str, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = sum(needle in line for line in list(server.lines))
        if seen >= at_least:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} seen fewer than {at_least} times; log:\n{server.log_text()}")


def test_a_large_zone_is_answered_from_start_up_while_it_compiles(serve: Serve, tmp_path: Path) -> None:
    server = serve("--config", str(_large_zone(tmp_path)))
    assert "pending=1" in server.wait_for_log("event=serving")
    assert _lookup(server, "h7.example.test") == ["192.0.2.8"]
    assert "zones=1" in server.wait_for_log("event=compiled", timeout=120)
    assert _lookup(server, "h7.example.test") == ["192.0.2.8"]


def test_an_update_to_a_large_compiled_zone_renders_only_its_names_and_is_answered_once_acknowledged(
    serve: Serve, tmp_path: Path
) -> None:
    """The edit is compiled name by name (`recompile_names`): the table serves it when the
    UPDATE is acknowledged, no zone is left pending, and every NODATA of the zone carries
    the new serial (RFC 2308 3). How long it takes is measured by benchmarks/bigzone_update.py."""
    server = serve("--config", str(_large_zone(tmp_path)))
    _count(server, "event=compiled", 1, timeout=120)
    assert _update(server, www="192.0.2.10").rcode() == dns.rcode.NOERROR
    assert _lookup(server, "www.example.test") == ["192.0.2.10"]
    assert _lookup(server, "h7.example.test") == ["192.0.2.8"]
    assert "pending=0" in server.wait_for_log("event=edit-served")
    nodata = dns.query.udp(
        dns.message.make_query("h7.example.test", "TXT"), "127.0.0.1", port=server.dns_port, timeout=2
    )
    assert not nodata.answer and nodata.authority[0][0].serial == 101


def test_a_reload_under_a_changed_config_stages_a_large_zone(serve: Serve, tmp_path: Path) -> None:
    """Everything compiles again under a new config: behind, not inside the reload."""
    config = _large_zone(tmp_path)
    server = serve("--config", str(config))
    _count(server, "event=compiled", 1, timeout=120)
    config.write_text(config.read_text().replace('serial = "increment"', 'serial = "unixtime"'))
    server.process.send_signal(signal.SIGHUP)
    assert "incremental=no" in server.wait_for_log("event=reloaded", timeout=60)
    assert _lookup(server, "h7.example.test") == ["192.0.2.8"]
    assert _count(server, "event=compiled", 2, timeout=120) == 2


def test_workers_stage_a_large_zone_at_start_up_and_after_an_update(serve: Serve, tmp_path: Path) -> None:
    """Each worker compiles behind too (`event=worker-compiled`), after its start and after
    the edit reaches it, instead of compiling the whole zone before it answers."""
    server = serve("--config", str(_large_zone(tmp_path, "workers = 2\n")))
    _count(server, "event=worker-compiled", 2, timeout=120)
    # The control process compiles nothing with workers (its table stays staged), so an
    # edit waits for no slice of it: only for each worker to stage the edited zone.
    assert "event=compiled" not in server.log_text()
    assert _update(server, www="192.0.2.10").rcode() == dns.rcode.NOERROR
    assert _count(server, "event=worker-compiled", 4, timeout=120) == 4
    assert _lookup(server, "www.example.test") == ["192.0.2.10"]
    assert _lookup(server, "h7.example.test") == ["192.0.2.8"]

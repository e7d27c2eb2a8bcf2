"""A start-up with many zones serves at once and compiles behind (dynmx.app STAGE_FROM_ZONES):
answers are right from the first query, an edit during the compile is served, and the
server says when the compile is done."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from dynmx.app.publisher import STAGE_FROM_ZONES
from tests.conftest import EDITS, RunningServer, write_config
from tests.interop.test_update_server import ZONE, _lookup, _update

Serve = Callable[..., RunningServer]


def _many_zones(tmp_path: Path) -> Path:
    config = write_config(tmp_path, ZONE, EDITS)
    zones = tmp_path / "zones"
    for i in range(STAGE_FROM_ZONES - 1):
        (zones / f"z{i}.test.zone").write_text(
            f"$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\n"
            f"www A 198.51.{i // 250}.{i % 250 + 1}\n"
        )
    return config


def test_many_zones_are_answered_from_start_up_while_they_compile(serve: Serve, tmp_path: Path) -> None:
    server = serve("--config", str(_many_zones(tmp_path)))
    assert f"pending={STAGE_FROM_ZONES}" in server.wait_for_log("event=serving")
    assert _update(server, www="192.0.2.10").rcode() == dns.rcode.NOERROR
    for i in range(0, STAGE_FROM_ZONES - 1, 37):
        assert _lookup(server, f"www.z{i}.test") == [f"198.51.{i // 250}.{i % 250 + 1}"]
    missing = dns.message.make_query("nothing.z5.test", "A")
    reply = dns.query.udp(missing, "127.0.0.1", port=server.dns_port, timeout=2)
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert _lookup(server, "www.example.test") == ["192.0.2.10"]
    assert f"zones={STAGE_FROM_ZONES}" in server.wait_for_log("event=compiled", timeout=60)
    assert _lookup(server, "www.z1.test") == ["198.51.0.2"]
    assert _lookup(server, "www.example.test") == ["192.0.2.10"]

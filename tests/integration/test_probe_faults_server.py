"""Probe targets that hang, reset or flood garbage never stall the DNS path or the other probes."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.conftest import RunningServer, wait_until
from tests.control_token import authorized
from tests.fake_servers import banner, fake_server_thread, flood, hang, reset

Serve = Callable[..., RunningServer]
BEHAVIOURS = {
    "good": ("127.0.0.2", banner("220 good.example.test ESMTP\r\n")),
    "hangs": ("127.0.0.3", hang()),
    "floods": ("127.0.0.4", flood(size=50 * 1024 * 1024)),
    "resets": ("127.0.0.5", reset()),
}
QUERIES = 300


@pytest.fixture
def targets() -> Iterator[dict[str, int]]:
    with contextlib.ExitStack() as stack:
        ports = {
            name: stack.enter_context(fake_server_thread(behaviour, host=host, lifetime=60)).port
            for name, (host, behaviour) in BEHAVIOURS.items()
        }
        yield ports


@pytest.fixture
def server(serve: Serve, tmp_path: Path, targets: dict[str, int]) -> RunningServer:
    zones = tmp_path / "zones"
    zones.mkdir()
    zone = "$ORIGIN example.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\n"
    zone += "ns1 A 127.0.0.1\n" + "".join(f"{n} A {h}\n" for n, (h, _) in BEHAVIOURS.items())
    zone += "".join(f"@ MX {10 * (i + 1)} {n}\n" for i, n in enumerate(BEHAVIOURS))
    (zones / "example.test.zone").write_text(zone)
    members = "".join(
        f'[[pool.member]]\nhost = "{name}.example.test."\npreference = {10 * (index + 1)}\nprobe = "smtp"\n'
        f"port = {targets[name]}\ninterval = 0.5\ntimeout = 0.5\nfall = 1\nrise = 1\n"
        for index, name in enumerate(BEHAVIOURS)
    )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        f'[[pool]]\nname = "example.test."\nstrategy = "round-robin"\nttl = 30\n{members}'
    )
    return serve("--config", str(config))


def _probe_counts(server: RunningServer) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("dynmx_health_probes_total{"):
            member = line.split('member="', 1)[1].split(".", 1)[0]
            counts[member] = counts.get(member, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def _states(server: RunningServer) -> dict[str, str]:
    with urllib.request.urlopen(authorized(server, "/status"), timeout=5) as reply:
        pool = json.load(reply)["pools"][0]
    return {m["host"].split(".")[0]: m["state"] for m in pool["members"]}


def test_faulty_targets_go_down_while_dns_and_the_good_probe_go_on(server: RunningServer) -> None:
    wait_until(lambda: _states(server) == {"good": "up", "hangs": "down", "floods": "down", "resets": "down"})
    before = _probe_counts(server)["good"]
    slowest = 0.0
    started = time.monotonic()
    for index in range(QUERIES):  # bounded: QUERIES queries, each with a 2 s timeout
        sent = time.monotonic()
        query = dns.message.make_query("example.test", "MX", id=index)
        reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
        slowest = max(slowest, time.monotonic() - sent)
        assert [str(r.exchange) for r in reply.answer[0]] == ["good.example.test."]
    elapsed = time.monotonic() - started
    wait_until(lambda: _probe_counts(server)["good"] >= before + 3, timeout=5)
    assert slowest < 0.5, f"a query waited {slowest:.3f} s while probes ran"
    assert elapsed < 15

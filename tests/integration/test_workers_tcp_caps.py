"""The TCP caps with `workers = N` are the server's, not each worker's: each worker holds
cap // N connections (at least one), overall and per source. Before, every worker held the
whole cap, so `workers = 2` held 400 connections where the README promised 200 (issue 23,
item 14)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import pytest

from dynmx.server.tcp import TcpLimits
from tests.conftest import RunningServer, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
ns1   A   127.0.0.1
"""
WORKERS = 2
CONNECTIONS = 40  # from one source, hashed by the kernel over the workers

Serve = Callable[..., RunningServer]


def _held_open(server: RunningServer, count: int) -> int:
    """Open `count` TCP connections at once and return how many of them are answered, all
    kept open until every one is counted."""
    connections = []
    try:
        for _ in range(count):
            connections.append(socket.create_connection(server.address, timeout=5))
        time.sleep(0.5)  # every worker accepts its share and closes those over its cap
        query = dns.message.make_query("ns1.example.test", "A").to_wire()
        answered = 0
        for sock in connections:
            try:
                sock.sendall(len(query).to_bytes(2, "big") + query)
                answered += len(sock.recv(2)) == 2
            except OSError:  # reset: refused over the cap
                pass
        return answered
    finally:
        for sock in connections:
            sock.close()


@pytest.mark.parametrize(
    ("limits", "cap"),
    [
        ("tcp_max_connections = 10\ntcp_max_per_source = 1000\n", 10),
        ("tcp_max_connections = 1000\ntcp_max_per_source = 6\n", 6),
    ],
    ids=["overall", "per-source"],
)
def test_no_more_than_the_configured_connections_are_held_open_over_all_workers(
    serve: Serve, tmp_path: Path, limits: str, cap: int
) -> None:
    config = write_config(tmp_path, ZONE, f"workers = {WORKERS}\n{limits}")
    server = serve("--config", str(config))
    answered = _held_open(server, CONNECTIONS)
    assert cap // WORKERS <= answered <= cap


def test_one_process_holds_the_whole_cap(serve: Serve, tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE, "tcp_max_connections = 10\n")
    assert _held_open(serve("--config", str(config)), 20) == 10


def test_each_worker_gets_its_share_and_at_least_one() -> None:
    limits = TcpLimits(max_connections=200, max_per_source=20)
    assert limits.share(0) == limits.share(1) == limits
    assert (limits.share(2).max_connections, limits.share(2).max_per_source) == (100, 10)
    assert (limits.share(3).max_connections, limits.share(3).max_per_source) == (66, 6)
    assert (limits.share(256).max_connections, limits.share(256).max_per_source) == (1, 1)

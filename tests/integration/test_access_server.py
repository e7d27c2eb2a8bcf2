"""Access pools end to end: real IMAP-over-TLS servers on loopback, probed by a real dynmx.

Two healthy IMAPS servers and one with an expired certificate back both an address
pool (imap.example.test A) and an SRV pool (_imaps._tcp, RFC 6186). A client resolves
the SRV RRset through dynmx, picks a target as RFC 2782 says, and logs in over TLS
with imaplib.
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import random
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.resolver
import pytest

from tests.conftest import RunningServer, wait_until
from tests.control_token import authorized
from tests.fake_servers import FakeServer, certificate, fake_server_thread, imap, server_context, tls

SERVERS = {"imap1": "127.0.0.2", "imap2": "127.0.0.3", "imap3": "127.0.0.4"}
Serve = Callable[..., RunningServer]


@pytest.fixture
def imap_servers(tmp_path: Path) -> Iterator[dict[str, tuple[FakeServer, contextlib.ExitStack]]]:
    good = server_context(*certificate(tmp_path, 365))
    expired = server_context(*certificate(tmp_path, -2))
    running: dict[str, tuple[FakeServer, contextlib.ExitStack]] = {}
    for name, address in SERVERS.items():
        stack = contextlib.ExitStack()
        context = expired if name == "imap3" else good
        server = stack.enter_context(fake_server_thread(tls(context, imap()), host=address, lifetime=60))
        running[name] = (server, stack)
    yield running
    for _, stack in running.values():
        stack.close()


def _config(tmp_path: Path, ports: dict[str, int]) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    zone = (
        "$ORIGIN example.test.\n$TTL 3600\n@ SOA ns1 h 1 7200 3600 1209600 300\n@ NS ns1\nns1 A 127.0.0.1\n"
    )
    for name, address in SERVERS.items():
        zone += f"imap A {address}\n{name} A {address}\n_imaps._tcp SRV 0 1 {ports[name]} {name}\n"
    (zones / "example.test.zone").write_text(zone)
    probe = 'probe = "imaps"\ninterval = 0.5\ntimeout = 0.5\nfall = 2\nrise = 2\n'
    address_members = "".join(
        f'[[pool.member]]\nhost = "{address}"\nport = {ports[name]}\n{probe}'
        for name, address in SERVERS.items()
    )
    srv_members = "".join(
        f'[[pool.member]]\nhost = "{name}.example.test."\nport = {ports[name]}\n{probe}' for name in SERVERS
    )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        '[[pool]]\nname = "imap.example.test."\nkind = "address"\nstrategy = "round-robin"\n'
        + address_members
        + '[[pool]]\nname = "_imaps._tcp.example.test."\nkind = "srv"\nstrategy = "round-robin"\n'
        + srv_members
    )
    return config


@pytest.fixture
def server(
    serve: Serve, tmp_path: Path, imap_servers: dict[str, tuple[FakeServer, contextlib.ExitStack]]
) -> RunningServer:
    ports = {name: entry[0].port for name, entry in imap_servers.items()}
    return serve("--config", str(_config(tmp_path, ports)))


def _answer(server: RunningServer, name: str, rdtype: str) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=server.dns_port, timeout=2)
    return [r.to_text() for r in reply.answer[0]] if reply.answer else []


def _states(server: RunningServer, pool: str) -> dict[str, tuple[str, str]]:
    with urllib.request.urlopen(authorized(server, "/status"), timeout=5) as response:
        status = json.loads(response.read())
    members = next(p for p in status["pools"] if p["name"] == pool)["members"]
    return {m["host"]: (m["state"], m["reason"]) for m in members}


def test_expired_certificate_marks_the_server_down(server: RunningServer) -> None:
    wait_until(lambda: _states(server, "imap.example.test.")["127.0.0.4"][0] == "down")
    assert _states(server, "imap.example.test.")["127.0.0.4"] == ("down", "tls-expired")
    wait_until(lambda: "127.0.0.4" not in _answer(server, "imap.example.test", "A"))
    # The SRV pool probes its members on its own schedule.
    wait_until(lambda: not any("imap3" in r for r in _answer(server, "_imaps._tcp.example.test", "SRV")))


def test_killed_server_leaves_a_and_srv_answers(
    server: RunningServer, imap_servers: dict[str, tuple[FakeServer, contextlib.ExitStack]]
) -> None:
    wait_until(lambda: _states(server, "imap.example.test.")["127.0.0.3"][0] == "up")
    imap_servers["imap2"][1].close()
    took = wait_until(lambda: "127.0.0.3" not in _answer(server, "imap.example.test", "A"))
    assert took < 2 * 0.5 + 0.5 + 1.0  # fall x interval + timeout, with slack
    wait_until(lambda: not any("imap2" in r for r in _answer(server, "_imaps._tcp.example.test", "SRV")))


def test_rfc2782_clients_spread_over_healthy_servers_by_srv(
    server: RunningServer, imap_servers: dict[str, tuple[FakeServer, contextlib.ExitStack]]
) -> None:
    wait_until(lambda: len(_answer(server, "_imaps._tcp.example.test", "SRV")) == 2)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.dns_port
    rng = random.Random(4)
    client_tls = ssl.create_default_context()
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE
    for _ in range(20):
        records = list(resolver.resolve("_imaps._tcp.example.test", "SRV"))
        best = min(r.priority for r in records)
        candidates = [r for r in records if r.priority == best]
        chosen = rng.choices(candidates, weights=[r.weight or 1 for r in candidates])[0]  # RFC 2782
        address = str(resolver.resolve(chosen.target, "A")[0])
        with imaplib.IMAP4_SSL(address, chosen.port, ssl_context=client_tls, timeout=5) as client:
            client.logout()
    clients = {name: _client_logouts(entry[0]) for name, entry in imap_servers.items()}
    assert clients == {"imap1": 10, "imap2": 10, "imap3": 0}  # round-robin over the healthy two


def _client_logouts(server: FakeServer) -> int:
    """LOGOUTs sent by imaplib (its tags are not the probe's a1/a2)."""
    return sum(
        1 for line in server.received if line.upper().endswith(b"LOGOUT") and not line.startswith(b"a2 ")
    )

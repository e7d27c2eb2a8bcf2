"""EDNS Client Subnet (RFC 7871) chooses the client action only in queries from the resolvers
in `client_subnet_sources` (PowerDNS's `edns-subnet-allow-list`); from anyone else the option
is ignored and the peer's address decides. Before, any client could step out of a `refuse`
rule by adding `+subnet=` to its query (issue 23, item 6)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.edns
import dns.message
import dns.rcode
import pytest

from tests.conftest import ROOT, RunningServer

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@      SOA ns1 hostmaster 1 7200 3600 1209600 300
@      NS  ns1
ns1    A   127.0.0.1
mx1    A   127.0.0.2
mx2    A   127.0.0.3
rr     MX  10 mx1
rr     MX  20 mx2
"""
CONFIG = """\
[server]
listen = ["127.0.0.1:0"]
zones_dir = "{zones}"
state_dir = "{state}"
workers = {workers}
client_subnet = true
client_subnet_sources = ["127.0.0.53/32"]
[[pool]]
name = "rr.example.test."
strategy = "static"
[[pool.member]]
host = "mx1.example.test."
preference = 10
probe = "none"
[[pool.member]]
host = "mx2.example.test."
preference = 20
probe = "none"
[[pool.hint]]
label = "urgent"
order = ["mx2.example.test."]
[[client]]
prefix = "127.0.0.0/8"
action = "refuse"
[[client]]
prefix = "198.51.100.0/24"
action = "hint"
hint = "urgent"
"""
RESOLVER = "127.0.0.53"  # the one trusted source
ANYONE = "127.0.0.1"

Serve = Callable[..., RunningServer]


def _config(tmp_path: Path, workers: int = 0, body: str = CONFIG) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir(exist_ok=True)
    (zones / "example.test.zone").write_text(ZONE)
    config = tmp_path / "dynmx.toml"
    config.write_text(body.format(zones=zones, state=tmp_path / "state", workers=workers))
    return config


@pytest.fixture(params=[0, 2], ids=["one-process", "workers"])
def server(request: pytest.FixtureRequest, serve: Serve, tmp_path: Path) -> RunningServer:
    return serve("--config", str(_config(tmp_path, request.param)))


def _ask(server: RunningServer, source: str, subnet: str | None) -> dns.message.Message:
    options = [dns.edns.ECSOption(subnet.split("/")[0], int(subnet.split("/")[1]))] if subnet else []
    query = dns.message.make_query("rr.example.test", "MX", use_edns=0, options=options)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(3)
        sock.sendto(query.to_wire(), server.address)
        return dns.message.from_wire(sock.recvfrom(65535)[0])


def _exchanges(reply: dns.message.Message) -> list[str]:
    assert reply.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(reply.rcode())
    return [str(r.exchange) for r in reply.answer[0]]


def test_a_client_subnet_from_anyone_does_not_lift_its_refuse_rule(server: RunningServer) -> None:
    assert _ask(server, ANYONE, None).rcode() == dns.rcode.REFUSED
    assert _ask(server, ANYONE, "198.51.100.0/24").rcode() == dns.rcode.REFUSED


def test_a_client_subnet_from_a_trusted_resolver_chooses_the_client_action(server: RunningServer) -> None:
    assert _exchanges(_ask(server, RESOLVER, "198.51.100.0/24")) == ["mx2.example.test."]
    assert _ask(server, RESOLVER, "127.0.0.9/32").rcode() == dns.rcode.REFUSED
    assert sorted(_exchanges(_ask(server, RESOLVER, "203.0.113.0/24"))) == [
        "mx1.example.test.",
        "mx2.example.test.",
    ]
    assert _ask(server, RESOLVER, None).rcode() == dns.rcode.REFUSED  # its own address, as anyone's


def _check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", "check", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_client_subnet_without_sources_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    config = _config(tmp_path, body=CONFIG.replace('client_subnet_sources = ["127.0.0.53/32"]\n', ""))
    checked = _check(config)
    assert checked.returncode == 1
    expected = f"{config}:6: server.client_subnet: true needs client_subnet_sources, the resolvers whose"
    assert expected in checked.stdout

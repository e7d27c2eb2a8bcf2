"""Per-zone gates: `allow_query` (as BIND's allow-query), SERVFAIL for a secondary zone without a current
copy (as NSD), and `allow_notify` (RFC 1996 §3.10)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path

import dns.edns
import dns.message
import dns.name
import dns.rcode
import pytest

from dynmx.answer.acl import ZoneGate, address_in
from dynmx.app.secondary import SecondaryService
from dynmx.config import from_mapping
from tests.conftest import RunningServer, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
ns1   A   127.0.0.1
www   A   192.0.2.1
"""
INNER = dns.name.from_text("example.test.").to_digestable()


def _wire(name: str) -> bytes:
    return dns.name.from_text(name).to_digestable()


LISTED = {INNER: [ipaddress.ip_network("192.0.2.0/24")]}


def test_a_zone_without_a_list_answers_everyone() -> None:
    assert ZoneGate(LISTED).refusal(_wire("www.other.test."), ("198.51.100.1", 53)) == 0


def test_a_listed_zone_answers_only_its_networks_at_every_depth() -> None:
    gate = ZoneGate(LISTED)
    assert gate.refusal(_wire("a.b.www.example.test."), ("192.0.2.9", 5353)) == 0
    assert gate.refusal(_wire("a.b.www.example.test."), ("198.51.100.1", 5353)) == dns.rcode.REFUSED


def test_the_deepest_listed_zone_decides() -> None:
    gate = ZoneGate({**LISTED, _wire("sub.example.test."): [ipaddress.ip_network("::1/128")]})
    assert gate.refusal(_wire("www.sub.example.test."), ("::1", 53, 0, 0)) == 0
    assert gate.refusal(_wire("www.sub.example.test."), ("192.0.2.1", 53)) == dns.rcode.REFUSED


def test_an_unavailable_zone_answers_servfail_at_every_depth() -> None:
    gate = ZoneGate({}, unavailable=[INNER])
    assert gate.refusal(INNER, ("198.51.100.1", 53)) == dns.rcode.SERVFAIL
    assert gate.refusal(_wire("a.b.example.test."), ("198.51.100.1", 53)) == dns.rcode.SERVFAIL
    assert gate.refusal(_wire("www.other.test."), ("198.51.100.1", 53)) == 0


def test_an_unavailable_zone_refuses_before_it_fails_a_client_outside_its_list() -> None:
    """The query list is checked first, so outsiders learn nothing of the zone's state."""
    gate = ZoneGate(LISTED, unavailable=[INNER])
    assert gate.refusal(_wire("www.example.test."), ("198.51.100.1", 53)) == dns.rcode.REFUSED
    assert gate.refusal(_wire("www.example.test."), ("192.0.2.1", 53)) == dns.rcode.SERVFAIL


def test_a_zone_served_inside_an_unavailable_one_answers_from_its_data() -> None:
    gate = ZoneGate({}, unavailable=[INNER], served_below=[_wire("sub.example.test.")])
    assert gate.refusal(_wire("www.sub.example.test."), ("198.51.100.1", 53)) == 0
    assert gate.refusal(_wire("www.example.test."), ("198.51.100.1", 53)) == dns.rcode.SERVFAIL


def test_an_unparsable_peer_address_is_not_permitted() -> None:
    assert not address_in("not-an-address", [ipaddress.ip_network("0.0.0.0/0")])


def _ask(server: RunningServer, source: str, with_cookie: bool = False) -> dns.message.Message:
    query = dns.message.make_query("www.example.test", "A")
    if with_cookie:  # an EDNS option takes the query off the fast path
        query.use_edns(0, options=[dns.edns.GenericOption(dns.edns.COOKIE, b"12345678")])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(2)
        sock.sendto(query.to_wire(), server.address)
        return dns.message.from_wire(sock.recvfrom(65535)[0])


@pytest.fixture
def server(serve: Callable[..., RunningServer], tmp_path: Path) -> RunningServer:
    extra = '[[zone]]\nname = "example.test."\nallow_query = ["127.0.0.2/32"]\n'
    return serve("--config", str(write_config(tmp_path, ZONE, extra)))


@pytest.mark.parametrize("with_cookie", [False, True], ids=["fast-path", "slow-path"])
def test_allow_query_refuses_other_clients(server: RunningServer, with_cookie: bool) -> None:
    reply = _ask(server, "127.0.0.1", with_cookie)
    assert reply.rcode() == dns.rcode.REFUSED
    assert not reply.answer


@pytest.mark.parametrize("with_cookie", [False, True], ids=["fast-path", "slow-path"])
def test_allow_query_answers_listed_clients(server: RunningServer, with_cookie: bool) -> None:
    reply = _ask(server, "127.0.0.2", with_cookie)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer[0][0].address == "192.0.2.1"


def _secondary(allow_notify: list[str]) -> SecondaryService:
    config = from_mapping(
        {"zone": [{"name": "example.test.", "primary": "127.0.0.5:5300", "allow_notify": allow_notify}]}
    )
    return SecondaryService(config, Path("."), dict, lambda zone: None)


def test_notify_is_accepted_from_the_primary_only_by_default() -> None:
    """RFC 1996 §3.10: a NOTIFY from an unknown source is ignored (REFUSED)."""
    service = _secondary([])
    origin = dns.name.from_text("example.test.")
    service.wake[origin] = asyncio.Event()
    assert service.notified(origin, "127.0.0.5")
    assert not service.notified(origin, "127.0.0.6")


def test_allow_notify_adds_senders_besides_the_primary() -> None:
    service = _secondary(["127.0.0.0/29"])
    origin = dns.name.from_text("example.test.")
    service.wake[origin] = asyncio.Event()
    assert service.notified(origin, "127.0.0.6")
    assert not service.notified(origin, "127.0.0.9")

"""Public-IP discovery against real loopback peers: HTTP echo services, a DNS whoami resolver, the kernel.

127.0.0.0/8 stands in for "the Internet" through `allowed_prefixes`; without it a loopback
answer is rejected like any other non-global address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from dynmx.selfcheck.discovery import (
    Discovery,
    DnsWhoamiSource,
    HttpEchoSource,
    InterfaceSource,
    Source,
    discover,
    is_acceptable,
    rejection,
    safe_url,
    tally,
)
from tests.selfcheck_fakes import LOCAL, echo_server, fake_resolver

T = TypeVar("T")
TESTS = ["127.0.0.0/8"]
WHOAMI = "whoami.example.test."


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def ask(sources: Sequence[Source], family: int = 4, quorum: int = 2, timeout: float = 2.0) -> Discovery:
    return await discover(sources, family, quorum, TESTS, timeout)


async def from_echoes(*bodies: str, quorum: int = 2, **options: Any) -> Discovery:
    """Discovery over one text echo server per body."""
    async with contextlib.AsyncExitStack() as exits:
        servers = [await exits.enter_async_context(echo_server(body, **options)) for body in bodies]
        return await ask([HttpEchoSource(server.url) for server in servers], quorum=quorum)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCAL, 0))
        return int(probe.getsockname()[1])


# -- HTTP echo services --------------------------------------------------------------------------


def test_two_agreeing_echo_services_give_the_address() -> None:
    found = run(from_echoes("127.0.0.1\n", "  127.0.0.1"))
    assert (found.address, found.reason) == ("127.0.0.1", "agreed by 2 of 2 sources")
    assert set(found.by_source.values()) == {"127.0.0.1"}


def test_disagreeing_echo_services_give_no_address() -> None:
    found = run(from_echoes("127.0.0.1", "127.0.0.2"))
    assert found.address is None
    assert found.reason == "sources disagree: 127.0.0.1 (1), 127.0.0.2 (1)"


def test_a_majority_that_meets_the_quorum_outvotes_one_dissenter() -> None:
    found = run(from_echoes("127.0.0.1", "127.0.0.1", "127.0.0.2"))
    assert (found.address, found.reason) == ("127.0.0.1", "agreed by 2 of 3 sources")


def test_one_answer_is_not_a_quorum_of_two() -> None:
    found = run(from_echoes("127.0.0.1"))
    assert (found.address, found.reason) == (None, "no quorum: 2 sources needed, 1 answered")


def test_quorum_of_one_believes_a_single_source() -> None:
    assert run(from_echoes("127.0.0.1", quorum=1)).address == "127.0.0.1"


def test_private_address_from_an_echo_is_rejected() -> None:
    found = run(from_echoes("10.0.0.1", "127.0.0.1"))
    assert "rejected: 10.0.0.1 is private" in found.by_source.values()
    assert found.reason == "no quorum: 2 sources needed, 1 answered"


def test_address_of_the_other_family_is_rejected() -> None:
    found = run(from_echoes("::1"))
    assert list(found.by_source.values()) == ["rejected: ::1 is IPv6, wanted IPv4"]


def test_junk_body_is_reported_not_raised() -> None:
    found = run(from_echoes("abc"))
    assert list(found.by_source.values()) == ["junk: 'abc'"]


def test_long_junk_is_cut_and_escaped_in_the_report() -> None:
    found = run(from_echoes("\x00" + "x" * 100))
    (said,) = found.by_source.values()
    assert said.startswith("junk: '\\x00xxx") and said.endswith("...") and len(said) < 60


def test_oversized_body_is_junk() -> None:
    found = run(from_echoes("1" * 5000))
    assert list(found.by_source.values()) == ["junk: body over 4096 bytes"]


def test_non_2xx_status_is_an_error() -> None:
    found = run(from_echoes("127.0.0.1", status=503))
    assert list(found.by_source.values()) == ["error: HTTP 503"]


def test_refused_connection_is_an_error() -> None:
    found = run(ask([HttpEchoSource(f"http://{LOCAL}:{free_port()}/ip")], quorum=1))
    assert list(found.by_source.values()) == ["error: ConnectError"]


def test_silent_echo_service_times_out_within_the_budget() -> None:
    async def scenario() -> tuple[Discovery, float]:
        async with echo_server("127.0.0.1", hang=True) as silent, echo_server("127.0.0.1") as good:
            started = time.monotonic()
            found = await ask([HttpEchoSource(silent.url), HttpEchoSource(good.url)], timeout=0.3)
            return found, time.monotonic() - started

    found, took = run(scenario())
    assert sorted(found.by_source.values()) == ["127.0.0.1", "error: timeout"]
    assert took < 2.0


def test_json_echo_reads_the_dotted_field() -> None:
    async def scenario() -> Discovery:
        body = json.dumps({"client": {"ip": "127.0.0.1"}, "ip": "ignored"})
        async with echo_server(body, content_type="application/json") as server:
            return await ask([HttpEchoSource(server.url, "json", "client.ip")], quorum=1)

    assert run(scenario()).address == "127.0.0.1"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("{not json", "junk: '{not json'"),
        ('{"other": "127.0.0.1"}', "junk: no field 'ip' in '{\"other\": \"127.0.0.1\"}'"),
        ('{"ip": 2130706433}', "junk: ip='2130706433'"),
    ],
)
def test_json_echo_without_a_usable_field_is_junk(body: str, said: str) -> None:
    async def scenario() -> Discovery:
        async with echo_server(body, content_type="application/json") as server:
            return await ask([HttpEchoSource(server.url, "json", "ip")], quorum=1)

    assert list(run(scenario()).by_source.values()) == [said]


def test_an_echo_source_for_one_family_is_not_asked_for_the_other() -> None:
    found = run(ask([HttpEchoSource("http://127.0.0.1:9/ip", family=4)], family=6))
    assert (found.address, found.by_source, found.reason) == (None, {}, "no sources for IPv6")


def test_echo_url_secrets_stay_out_of_the_label() -> None:
    source = HttpEchoSource("https://user:pw@echo.example/ip?token=s3cret")
    assert source.label == "http https://echo.example/ip?***"
    assert safe_url("http://[::1") == "<unparsable url>"


def test_bad_echo_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="url"):
        HttpEchoSource("ftp://echo.example/")
    with pytest.raises(ValueError, match="field"):
        HttpEchoSource("https://echo.example/", "json")
    with pytest.raises(ValueError, match="family"):
        HttpEchoSource("https://echo.example/", family=5)


# -- DNS whoami ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rdtype", "texts"),
    [
        ("A", ["127.0.0.1"]),
        ("TXT", ['"127.0.0.1"']),
        ("TXT", ['"edns0-client-subnet" "none"', '"ip: 127.0.0.1"']),
    ],
)
def test_dns_whoami_answer_gives_the_address(rdtype: str, texts: list[str]) -> None:
    async def scenario() -> Discovery:
        async with fake_resolver({(WHOAMI, rdtype): texts}) as resolver:
            return await ask([DnsWhoamiSource(resolver.address, WHOAMI, rdtype)], quorum=1)  # type: ignore[arg-type]

    assert run(scenario()).address == "127.0.0.1"


@pytest.mark.parametrize(
    ("records", "mode", "said"),
    [
        ({(WHOAMI, "TXT"): ['"no address here"']}, "answer", "junk: 'no address here'"),
        ({(WHOAMI, "A"): ["127.0.0.1"]}, "answer", "error: no TXT answer"),
        ({}, "answer", "error: NXDOMAIN"),
        ({}, "servfail", "error: SERVFAIL"),
        ({}, "silent", "error: timeout"),
    ],
)
def test_dns_whoami_faults_are_reported(
    records: dict[tuple[str, str], list[str]], mode: str, said: str
) -> None:
    async def scenario() -> Discovery:
        async with fake_resolver(records, mode) as resolver:
            return await ask([DnsWhoamiSource(resolver.address, WHOAMI, "TXT")], quorum=1, timeout=0.3)

    assert list(run(scenario()).by_source.values()) == [said]


def test_dns_whoami_for_a_is_not_asked_for_ipv6() -> None:
    assert not DnsWhoamiSource((LOCAL, 53), WHOAMI, "A").serves(6)
    assert DnsWhoamiSource((LOCAL, 53), WHOAMI, "TXT").serves(6)


# -- interface addresses ------------------------------------------------------------------------


def test_interface_source_gives_the_kernels_source_address() -> None:
    found = run(ask([InterfaceSource(4, "127.0.0.2")], quorum=1))
    assert found.address == "127.0.0.1"
    assert list(found.by_source) == ["interface IPv4 route to 127.0.0.2"]


def test_interface_address_outside_the_allowed_prefixes_is_rejected() -> None:
    found = run(discover([InterfaceSource(4, "127.0.0.2")], 4, 1, [], 1.0))
    assert list(found.by_source.values()) == ["rejected: 127.0.0.1 is loopback"]


def test_interface_source_defaults_to_a_public_route_target() -> None:
    assert InterfaceSource(4).target == "198.41.0.4"
    with pytest.raises(ValueError, match="route_target"):
        InterfaceSource(6, "127.0.0.1")


def test_sources_are_asked_together_and_labelled_apart() -> None:
    async def scenario() -> Discovery:
        async with echo_server("127.0.0.1") as server:
            same = HttpEchoSource(server.url)
            return await ask([same, same, InterfaceSource(4, "127.0.0.2")], quorum=3)

    found = run(scenario())
    assert found.reason == "agreed by 3 of 3 sources"
    assert len(found.by_source) == 3


# -- what counts as a public address ------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("8.8.8.8", None),
        ("2a00:1450:4001::1", None),
        ("10.0.0.1", "10.0.0.1 is private"),
        ("192.168.1.10", "192.168.1.10 is private"),
        ("fd00::1", "fd00::1 is private"),
        ("100.64.0.1", "100.64.0.1 is shared address space (CGNAT)"),
        ("127.0.0.1", "127.0.0.1 is loopback"),
        ("::1", "::1 is loopback"),
        ("169.254.1.1", "169.254.1.1 is link-local"),
        ("fe80::1", "fe80::1 is link-local"),
        ("224.0.0.1", "224.0.0.1 is multicast"),
        ("0.0.0.0", "0.0.0.0 is unspecified"),
        ("::", ":: is unspecified"),
        ("192.0.2.1", "192.0.2.1 is documentation"),
        ("2001:db8::1", "2001:db8::1 is documentation"),
        ("::ffff:8.8.8.8", "::ffff:808:808 is IPv4-mapped"),
        ("240.0.0.1", "240.0.0.1 is reserved"),
        ("192.0.0.1", "192.0.0.1 is private"),
        ("abc", "'abc' is not an IP address"),
    ],
)
def test_only_global_unicast_addresses_are_acceptable(address: str, why: str | None) -> None:
    assert rejection(address) == why
    assert is_acceptable(address) == (why is None)


def test_an_allowed_prefix_admits_addresses_inside_it_only() -> None:
    assert is_acceptable("127.0.0.9", ["127.0.0.0/8"])
    assert not is_acceptable("10.0.0.1", ["127.0.0.0/8"])
    with pytest.raises(ValueError, match="allowed_prefixes"):
        is_acceptable("127.0.0.1", ["not a prefix"])


def test_tally_needs_a_majority_as_well_as_the_quorum() -> None:
    assert tally(Counter({"a": 2, "b": 2}), 4, 2) == (None, "sources disagree: a (2), b (2)")
    assert tally(Counter({"a": 2, "b": 1, "c": 1}), 4, 2)[0] is None
    assert tally(Counter(), 2, 2) == (None, "no quorum: 2 sources needed, 0 answered")

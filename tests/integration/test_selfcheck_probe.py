"""Resolving our own name through resolvers, and sending the probe, against real loopback peers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from dynmx.selfcheck.nonce import NonceBook
from dynmx.selfcheck.probe import ProbeError, ResolveError, resolve_published, send_probe, where
from tests.selfcheck_fakes import fake_resolver, probe_listener

T = TypeVar("T")
NAME = "ns1.example.test."


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_published_addresses_per_family_come_from_the_resolver() -> None:
    async def scenario() -> dict[int, list[str]]:
        records = {(NAME, "A"): ["127.0.0.3", "127.0.0.1"], (NAME, "AAAA"): ["2001:db8::0:1"]}
        async with fake_resolver(records) as resolver:
            return await resolve_published(NAME, [resolver.address], 1.0)

    assert run(scenario()) == {4: ["127.0.0.1", "127.0.0.3"], 6: ["2001:db8::1"]}


def test_unknown_name_or_missing_type_is_empty_not_an_error() -> None:
    async def scenario() -> tuple[dict[int, list[str]], dict[int, list[str]]]:
        async with fake_resolver({(NAME, "A"): ["127.0.0.1"]}) as resolver:
            known = await resolve_published(NAME, [resolver.address], 1.0)
            unknown = await resolve_published("nx.example.test.", [resolver.address], 1.0)
            return known, unknown

    assert run(scenario()) == ({4: ["127.0.0.1"], 6: []}, {4: [], 6: []})


def test_a_failing_resolver_is_skipped_for_the_next_one() -> None:
    async def scenario() -> dict[int, list[str]]:
        async with (
            fake_resolver({}, mode="servfail") as broken,
            fake_resolver({(NAME, "A"): ["127.0.0.1"]}) as good,
        ):
            return await resolve_published(NAME, [broken.address, good.address], 1.0)

    assert run(scenario())[4] == ["127.0.0.1"]


def test_every_resolver_failing_is_a_resolve_error_naming_each() -> None:
    async def scenario() -> None:
        async with fake_resolver({}, mode="silent") as silent, fake_resolver({}, mode="servfail") as broken:
            await resolve_published(NAME, [silent.address, broken.address], 0.2)

    with pytest.raises(ResolveError) as caught:
        run(scenario())
    assert re.search(r"127\.0\.0\.1:\d+ timeout after 0\.2s; 127\.0\.0\.1:\d+ SERVFAIL", str(caught.value))


def test_no_resolvers_is_a_resolve_error() -> None:
    with pytest.raises(ResolveError, match="no resolvers"):
        run(resolve_published(NAME, [], 1.0))


def test_probe_reaches_a_listener_as_a_non_recursive_query_for_the_nonce() -> None:
    async def scenario() -> tuple[list[str], bool]:
        book = NonceBook()
        async with probe_listener(book) as listener:
            qname = book.issue("example.test.")
            await send_probe("127.0.0.1", listener.port, qname)
            return listener.received, await book.wait(qname, 1.0)

    received, arrived = run(scenario())
    assert arrived and len(received) == 1 and "._selfcheck.example.test." in received[0]


def test_probe_to_a_port_where_nothing_listens_is_silently_lost() -> None:
    async def scenario() -> None:
        async with probe_listener(NonceBook()) as listener:
            port = listener.port
        await send_probe("127.0.0.1", port, "x._selfcheck.example.test.")
        await asyncio.sleep(0.05)  # an ICMP error, if any came, would have arrived by now

    run(scenario())


def test_probe_to_an_unusable_address_is_a_probe_error() -> None:
    with pytest.raises(ProbeError, match="cannot probe"):
        run(send_probe("not-an-ip", 53, "x._selfcheck.example.test."))


def test_where_brackets_ipv6() -> None:
    assert (where("::1", 53), where("127.0.0.1", 53)) == ("[::1]:53", "127.0.0.1:53")

"""Whole self-check rounds against real loopback peers: a resolver, our own listener, HTTP echo services.

The listener is bound to 127.0.0.1 only, so a probe sent to 127.0.0.3 (an address that is no
longer ours) is lost, exactly as one sent to a stale public address would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from dynmx.selfcheck.decide import Action
from dynmx.selfcheck.discovery import HttpEchoSource
from dynmx.selfcheck.nonce import NonceBook
from dynmx.selfcheck.round import RoundReport, SelfChecker, SelfCheckSettings
from tests.selfcheck_fakes import (
    EchoServer,
    FakeResolver,
    ProbeListener,
    echo_server,
    fake_resolver,
    probe_listener,
)

T = TypeVar("T")
NAME = "ns1.example.test."
ZONE = "example.test."
OURS = "127.0.0.1"  # where the listener is
STALE = "127.0.0.3"  # where nothing listens
INTERVAL = 300.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Lab:
    """The peers of one test and the checker wired to them."""

    resolver: FakeResolver
    listener: ProbeListener
    echoes: list[EchoServer]
    checker: SelfChecker
    clock: Clock
    repairs: list[tuple[str, int, str]] = field(default_factory=list)
    repair_error: Exception | None = None

    def publish(self, name: str, address: str) -> None:
        """What a zone change does, once it reaches the resolvers."""
        self.resolver.records[(name, "A")] = [address]

    async def rounds(self, count: int) -> list[RoundReport]:
        reports = []
        for _ in range(count):
            reports.append(await self.checker.run_round())
            self.clock.now += INTERVAL
        return reports


@contextlib.asynccontextmanager
async def lab(
    published: dict[str, str],
    echoed: tuple[str, ...] = (OURS, OURS),
    resolver_mode: str = "answer",
    names: tuple[str, ...] = (),
) -> AsyncIterator[Lab]:
    """Resolver answering `published` (name -> address), one echo server per `echoed` address.

    The checker checks `names`, by default the published ones.
    """
    names = names or tuple(published)
    book = NonceBook()
    records = {(name, "A"): [address] for name, address in published.items()}
    async with contextlib.AsyncExitStack() as exits:
        resolver = await exits.enter_async_context(fake_resolver(records, resolver_mode))
        listener = await exits.enter_async_context(probe_listener(book))
        echoes = [await exits.enter_async_context(echo_server(address)) for address in echoed]
        settings = SelfCheckSettings(
            names=names,
            zones=dict.fromkeys(names, ZONE),
            resolvers=(resolver.address,),
            dns_port=listener.port,
            interval=INTERVAL,
            timeout=0.3,
            allowed_prefixes=("127.0.0.0/8",),
            sources=tuple(HttpEchoSource(echo.url) for echo in echoes),
        )
        clock = Clock()
        the_lab: Lab

        async def repair(name: str, family: int, address: str) -> None:
            the_lab.repairs.append((name, family, address))
            if the_lab.repair_error is not None:
                raise the_lab.repair_error

        the_lab = Lab(resolver, listener, echoes, SelfChecker(settings, book, repair, clock=clock), clock)
        yield the_lab


def actions(reports: list[RoundReport], name: str = NAME, family: int = 4) -> list[Action | None]:
    return [decision.action if (decision := r.decision(name, family)) else None for r in reports]


def test_probe_arriving_is_ok_and_asks_no_discovery_source() -> None:
    async def scenario() -> tuple[RoundReport, Lab]:
        async with lab({NAME: OURS}) as the_lab:
            return (await the_lab.rounds(1))[0], the_lab

    report, the_lab = run(scenario())
    assert actions([report]) == [Action.OK]
    assert report.discoveries == {}
    assert [echo.requests for echo in the_lab.echoes] == [0, 0]
    assert the_lab.repairs == []


def test_moved_address_is_pending_then_repaired_once_then_ok_when_published() -> None:
    async def scenario() -> tuple[list[RoundReport], list[list[tuple[str, int, str]]]]:
        async with lab({NAME: STALE}) as the_lab:
            reports = await the_lab.rounds(2)
            after_two = list(the_lab.repairs)
            the_lab.publish(NAME, OURS)
            reports += await the_lab.rounds(1)
            return reports, [after_two, the_lab.repairs]

    reports, (after_two, after_three) = run(scenario())
    assert actions(reports) == [Action.PENDING, Action.UPDATE, Action.OK]
    assert after_two == [(NAME, 4, OURS)]
    assert after_three == after_two
    assert reports[1].names[0].repaired == {4: OURS}


def test_hairpin_is_reported_without_repair_and_warned_once_over_three_rounds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dynmx.selfcheck")

    async def scenario() -> tuple[list[RoundReport], Lab]:
        async with lab({NAME: OURS}) as the_lab:
            the_lab.listener.drop = True
            return await the_lab.rounds(3), the_lab

    reports, the_lab = run(scenario())
    assert actions(reports) == [Action.HAIRPIN] * 3
    assert the_lab.repairs == []
    assert len(the_lab.listener.received) == 3  # the probes did reach us; the path "lost" them
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "action=hairpin" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "hairpin/firewall: probe lost but address correct" in warnings[0].getMessage()


def test_disagreeing_discovery_backs_off_growing_and_repairs_nothing() -> None:
    async def scenario() -> tuple[list[RoundReport], Lab]:
        async with lab({NAME: STALE}, echoed=(OURS, "127.0.0.2")) as the_lab:
            return await the_lab.rounds(2), the_lab

    reports, the_lab = run(scenario())
    assert actions(reports) == [Action.BACKOFF, Action.BACKOFF]
    assert [r.next_round_in for r in reports] == [2 * INTERVAL, 4 * INTERVAL]
    assert "sources disagree" in reports[0].discoveries[4].reason
    assert the_lab.repairs == []


def test_failing_repair_is_reported_and_tried_again_next_round() -> None:
    async def scenario() -> tuple[list[RoundReport], Lab]:
        async with lab({NAME: STALE}) as the_lab:
            the_lab.repair_error = RuntimeError("registrar down")
            return await the_lab.rounds(3), the_lab

    reports, the_lab = run(scenario())
    assert actions(reports) == [Action.PENDING, Action.UPDATE, Action.UPDATE]
    assert reports[1].names[0].repair_errors == {4: "RuntimeError: registrar down"}
    assert "repair failed: RuntimeError: registrar down" in reports[1].names[0].steps
    assert len(the_lab.repairs) == 2


def test_discovery_runs_once_per_family_per_round_for_all_names() -> None:
    async def scenario() -> Lab:
        async with lab({NAME: STALE, "ns2.example.test.": STALE}) as the_lab:
            await the_lab.rounds(1)
            return the_lab

    assert [echo.requests for echo in run(scenario()).echoes] == [1, 1]


def test_unresolvable_name_backs_off_for_the_name_as_a_whole() -> None:
    async def scenario() -> list[RoundReport]:
        async with lab({NAME: OURS}, resolver_mode="silent") as the_lab:
            return await the_lab.rounds(2)

    reports = run(scenario())
    assert actions(reports, family=0) == [Action.BACKOFF, Action.BACKOFF]
    assert reports[0].names[0].steps[0].startswith(f"resolve: cannot resolve {NAME}")
    assert reports[1].next_round_in == 4 * INTERVAL


def test_name_without_addresses_backs_off_and_sends_no_probe() -> None:
    async def scenario() -> tuple[RoundReport, Lab]:
        async with lab({"other.example.test.": OURS}, names=(NAME,)) as the_lab:
            return (await the_lab.rounds(1))[0], the_lab

    report, the_lab = run(scenario())
    assert actions([report], family=0) == [Action.BACKOFF]
    assert "has no A or AAAA record" in report.names[0].decisions[0].message
    assert the_lab.listener.received == []


def test_report_prints_every_step_and_serialises_to_json() -> None:
    async def scenario() -> RoundReport:
        async with lab({NAME: STALE}) as the_lab:
            return (await the_lab.rounds(1))[0]

    report = run(scenario())
    text = "\n".join(report.lines())
    for needle in (
        NAME,
        "resolve: A 127.0.0.3",
        "not seen within 0.3s",
        "discover IPv4: 127.0.0.1",
        "decision: pending",
    ):
        assert needle in text
    data = json.loads(json.dumps(report.to_json()))
    assert data["names"][0]["decisions"]["4"]["action"] == "pending"
    assert data["discoveries"]["4"]["address"] == OURS
    assert data["started"] == "2023-11-14T22:13:20+00:00"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"names": ()}, "names"),
        ({"zones": {}}, "zones"),
        ({"resolvers": ()}, "resolvers"),
        ({"resolvers": (("127.0.0.1", 0),)}, "resolvers"),
        ({"dns_port": 70000}, "dns_port"),
        ({"timeout": 0}, "timeout"),
        ({"interval": float("nan")}, "interval"),
        ({"backoff_cap": 10.0}, "backoff_cap"),
        ({"quorum": 0}, "quorum"),
        ({"allowed_prefixes": ("nope",)}, "allowed_prefixes"),
    ],
)
def test_unusable_settings_are_refused_naming_the_key(change: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"names": (NAME,), "zones": {NAME: ZONE}, "resolvers": (("127.0.0.1", 53),)}
    with pytest.raises(ValueError, match=message):
        SelfCheckSettings(**{**base, **change})


def test_zone_of_ignores_case_and_the_trailing_dot() -> None:
    settings = SelfCheckSettings(
        names=("NS1.example.test",), zones={NAME: ZONE}, resolvers=(("127.0.0.1", 53),)
    )
    assert settings.zone_of("ns1.EXAMPLE.test") == ZONE

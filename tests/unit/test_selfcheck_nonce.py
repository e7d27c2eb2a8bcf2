"""The probe nonce book: what the DNS engine recognises as our own probe, and for how long."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import dns.name
import pytest

from dynmx.selfcheck.nonce import NonceBook, has_label, normalise

ZONE = "example.test."


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_issued_name_is_a_fresh_lower_case_label_under_selfcheck_in_the_zone() -> None:
    book = NonceBook()
    first, second = book.issue("Example.TEST"), book.issue(ZONE)
    assert re.fullmatch(r"[0-9a-f]{20}\._selfcheck\.example\.test\.", first)
    assert first != second


def test_arrival_of_an_issued_name_is_ours_in_any_case_with_or_without_the_dot() -> None:
    book = NonceBook()
    qname = book.issue(ZONE)
    assert book.arrived(qname.upper().rstrip("."))
    assert book.arrived(qname)


def test_arrival_as_wire_format_bytes_is_recognised() -> None:
    book = NonceBook()
    qname = book.issue(ZONE)
    wire = dns.name.from_text(qname).to_wire()
    assert wire is not None and book.arrived(wire)
    assert not book.arrived(b"\x40broken")


def test_names_never_issued_are_not_ours_and_not_stored() -> None:
    book = NonceBook()
    for n in range(2000):
        assert not book.arrived(f"{n:020x}._selfcheck.{ZONE}")
    assert len(book) == 0


def test_outstanding_names_are_bounded_oldest_dropped_first() -> None:
    book = NonceBook(limit=3)
    names = [book.issue(ZONE) for _ in range(5)]
    assert len(book) == 3
    assert [book.arrived(name) for name in names] == [False, False, True, True, True]


def test_names_expire_after_max_age() -> None:
    clock = Clock()
    book = NonceBook(max_age=60.0, clock=clock)
    old = book.issue(ZONE)
    clock.now = 61.0
    assert not book.arrived(old)
    book.issue(ZONE)
    assert len(book) == 1


def test_forgotten_name_is_no_longer_ours() -> None:
    book = NonceBook()
    qname = book.issue(ZONE)
    book.forget(qname)
    assert not book.arrived(qname)


def test_a_token_source_that_repeats_itself_is_refused() -> None:
    book = NonceBook(token=lambda n: "ab" * n)
    book.issue(ZONE)
    with pytest.raises(RuntimeError, match="repeated"):
        book.issue(ZONE)


def test_wait_returns_true_when_the_probe_arrives_while_waiting() -> None:
    async def scenario() -> bool:
        book = NonceBook()
        qname = book.issue(ZONE)
        asyncio.get_running_loop().call_later(0.05, book.arrived, qname)
        return await book.wait(qname, 2.0)

    assert asyncio.run(scenario())


def test_wait_returns_true_at_once_when_the_probe_came_first() -> None:
    async def scenario() -> bool:
        book = NonceBook()
        qname = book.issue(ZONE)
        book.arrived(qname)
        return await book.wait(qname, 0.0)

    assert asyncio.run(scenario())


def test_wait_gives_up_after_the_timeout() -> None:
    async def scenario() -> tuple[bool, float]:
        book = NonceBook()
        qname = book.issue(ZONE)
        started = time.monotonic()
        return await book.wait(qname, 0.1), time.monotonic() - started

    came, took = asyncio.run(scenario())
    assert not came and 0.05 < took < 1.0


def test_wait_for_a_name_never_issued_is_false_at_once() -> None:
    assert not asyncio.run(NonceBook().wait(f"x._selfcheck.{ZONE}", 5.0))


def test_arrival_from_another_thread_wakes_the_waiter() -> None:
    async def scenario() -> bool:
        book = NonceBook()
        qname = book.issue(ZONE)
        timer = threading.Timer(0.05, book.arrived, args=(qname,))
        timer.start()
        try:
            return await book.wait(qname, 2.0)
        finally:
            timer.join(2.0)

    assert asyncio.run(scenario())


@pytest.mark.parametrize(
    ("qname", "expected"),
    [
        ("abc._selfcheck.example.test.", True),
        ("ABC._SelfCheck.example.test", True),
        ("abc._selfcheckx.example.test.", False),
        ("selfcheck.example.test.", False),
    ],
)
def test_has_label_finds_the_selfcheck_label_in_any_case(qname: str, expected: bool) -> None:
    assert has_label(qname) is expected


def test_normalise_lower_cases_and_drops_the_trailing_dot() -> None:
    assert normalise("NS1.Example.Test.") == "ns1.example.test"

"""The log limiter of per-packet refusals (`dynmx.control.ratelog`), by plain calls with an
injected clock: at most N lines per kind and second, then one summary line
`event=KIND suppressed=K` (issue 23 item 5: 5 s of spoofed datagrams wrote 63,453 lines)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dynmx.control.ratelog import LogLimiter, RefusalLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_limiter_admits_n_lines_per_window() -> None:
    limiter = LogLimiter(per_window=3, window=1.0)
    verdicts = [limiter.admit("update-refused", 10.0 + i * 0.01) for i in range(5)]
    assert [write for write, _ in verdicts] == [True, True, True, False, False]
    assert [ended for _, ended in verdicts] == [0, 0, 0, 0, 0]


def test_limiter_reports_what_it_suppressed_when_the_next_window_begins() -> None:
    limiter = LogLimiter(per_window=2, window=1.0)
    for _ in range(7):
        limiter.admit("notify-refused", 10.0)
    assert limiter.admit("notify-refused", 11.0) == (True, 5)
    assert limiter.admit("notify-refused", 11.1) == (True, 0)  # reported once


def test_limiter_counts_each_kind_apart() -> None:
    limiter = LogLimiter(per_window=1, window=1.0)
    assert limiter.admit("update-refused", 5.0) == (True, 0)
    assert limiter.admit("tsig-refused", 5.0) == (True, 0)
    assert limiter.admit("update-refused", 5.5) == (False, 0)


def test_limiter_due_lists_ended_windows_with_suppressed_lines_once() -> None:
    limiter = LogLimiter(per_window=1, window=1.0)
    for _ in range(4):
        limiter.admit("transfer-refused", 1.0)
    limiter.admit("tsig-refused", 1.5)  # nothing suppressed: no summary
    assert limiter.due(1.9) == []
    assert limiter.suppressing()
    assert limiter.due(2.6) == [("transfer-refused", 3)]
    assert limiter.due(3.0) == [] and not limiter.suppressing()


def test_limiter_starts_again_when_the_clock_goes_back() -> None:
    limiter = LogLimiter(per_window=1, window=1.0)
    limiter.admit("update-refused", 50.0)
    assert limiter.admit("update-refused", 50.2) == (False, 0)
    assert limiter.admit("update-refused", 49.0) == (True, 1)


def test_refusal_log_writes_n_lines_then_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    refusals = RefusalLog(LogLimiter(per_window=3, window=1.0), clock)
    logger = logging.getLogger("dynmx.test-ratelog")
    with caplog.at_level(logging.INFO, logger="dynmx.test-ratelog"):
        for index in range(1000):
            refusals.refused(logger, logging.INFO, "update-refused", "zone=%s n=%d", "example.test.", index)
        clock.now += 1.0
        refusals.refused(logger, logging.INFO, "update-refused", "zone=%s n=%d", "example.test.", 1000)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "event=update-refused zone=example.test. n=0",
        "event=update-refused zone=example.test. n=1",
        "event=update-refused zone=example.test. n=2",
        "event=update-refused suppressed=997",
        "event=update-refused zone=example.test. n=1000",
    ]
    assert refusals.counts["update-refused"] == 1001  # the metric counts every one


def test_refusal_log_flush_summarises_a_flood_that_stopped(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    refusals = RefusalLog(LogLimiter(per_window=1, window=1.0), clock)
    logger = logging.getLogger("dynmx.test-ratelog")
    with caplog.at_level(logging.INFO, logger="dynmx.test-ratelog"):
        for _ in range(10):
            refusals.refused(logger, logging.WARNING, "tsig-refused", "peer=%s", "192.0.2.7")
        refusals.flush()  # the window is not over: nothing yet
        clock.now += 1.5
        refusals.flush()
        refusals.flush()
    lines = [(record.levelno, record.getMessage()) for record in caplog.records]
    assert lines == [
        (logging.WARNING, "event=tsig-refused peer=192.0.2.7"),
        (logging.WARNING, "event=tsig-refused suppressed=9"),
    ]


def test_refusal_log_schedules_its_summary_on_the_running_loop(caplog: pytest.LogCaptureFixture) -> None:
    """In the server the summary comes about a window after the flood stops, with no later refusal."""
    refusals = RefusalLog(LogLimiter(per_window=1, window=0.05))
    logger = logging.getLogger("dynmx.test-ratelog")

    async def flood() -> None:
        for _ in range(5):
            refusals.refused(logger, logging.INFO, "notify-refused", "peer=%s", "192.0.2.8")
        await asyncio.sleep(0.2)

    with caplog.at_level(logging.INFO, logger="dynmx.test-ratelog"):
        asyncio.run(flood())
    assert [record.getMessage() for record in caplog.records] == [
        "event=notify-refused peer=192.0.2.8",
        "event=notify-refused suppressed=4",
    ]

"""`WorkerPool.applied`: how long an edit's reply waits for the answer processes, by plain calls."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dynmx.app.workers.pool import WorkerHandle, WorkerPool


def _pool(acked: list[int], ready: list[bool]) -> WorkerPool:
    pool = WorkerPool(len(acked), lambda data, peer, tcp: None, lambda qname: None, lambda: None)  # type: ignore[arg-type,return-value]
    pool.workers = [WorkerHandle(index, []) for index in range(len(acked))]
    for worker, seq, running in zip(pool.workers, acked, ready, strict=True):
        worker.acked = seq
        if running:
            worker.ready.set()
    return pool


def test_a_change_every_running_worker_acknowledged_is_applied_at_once() -> None:
    assert asyncio.run(_pool([3, 4], [True, True]).applied(3, timeout=0.01)) is True


def test_a_worker_that_is_not_running_is_not_waited_for() -> None:
    """A dead worker starts again from every change sent so far: nothing waits for it."""
    assert asyncio.run(_pool([3, 0], [True, False]).applied(3, timeout=0.01)) is True


def test_a_worker_that_does_not_acknowledge_is_given_up_after_the_timeout_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dynmx.workers"):
        assert asyncio.run(_pool([3, 2], [True, True]).applied(3, timeout=0.05)) is False
    assert "event=workers-behind seq=3 workers=[1] waited=0.1" in caplog.text

"""A worker's acknowledgements: an ack of N tells the control process that every change up
to N is answered from (`WorkerPool.synced`), so none may cover a table still compiling."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from dynmx.app.workers.worker import Worker


class RecordingWorker(Worker):
    """A worker whose messages to the control process are kept instead of sent."""

    def __init__(self, channel_sock: socket.socket) -> None:
        super().__init__(channel_sock, [])
        self.sent: list[tuple[object, ...]] = []

    def _send(self, *message: object) -> None:
        self.sent.append(message)


@pytest.fixture
def worker() -> Iterator[RecordingWorker]:
    left, right = socket.socketpair()
    with left, right:
        yield RecordingWorker(left)


def _highest(worker: RecordingWorker) -> int:
    """The change the control process now takes as answered from by this worker."""
    return max((int(str(seq)) for _, seq in worker.sent), default=0)


def test_a_fact_is_acknowledged_at_once_when_nothing_compiles(worker: RecordingWorker) -> None:
    worker._applied(3)
    assert worker.sent == [("ack", 3)]


def test_a_fact_after_a_compiling_change_is_acknowledged_with_it(worker: RecordingWorker) -> None:
    """An edit (5) compiles while a drain (6) is applied at once: acking 6 would tell the
    control process that the edit is answered from, and its client could read stale data."""
    worker.compiling.add(5)
    worker._applied(6)
    assert _highest(worker) < 5
    worker._applied(5)
    assert _highest(worker) == 6


def test_changes_are_acknowledged_up_to_the_oldest_still_compiling(worker: RecordingWorker) -> None:
    worker.compiling.update({4, 7})
    worker._applied(5)
    assert _highest(worker) < 4
    worker._applied(4)
    assert _highest(worker) == 6

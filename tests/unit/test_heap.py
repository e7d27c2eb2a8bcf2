"""The start-up heap is frozen after one collection (`heap.loading`)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from dynmx.app import heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_what_loading_builds_is_frozen_out_of_later_collections() -> None:
    with heap.loading():
        kept = [Node() for _ in range(100)]
    assert gc.get_freeze_count() >= len(kept)
    assert gc.isenabled()


def test_a_reference_cycle_dropped_while_loading_is_collected_not_frozen() -> None:
    """Freezing garbage would leak it for good: the one collection comes first."""
    with heap.loading():
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        assert gone() is not None  # the collector is off while loading
    assert gone() is None


def test_a_frozen_object_replaced_later_is_still_freed_by_reference_counting() -> None:
    with heap.loading():
        table = {"entry": Node()}
    old = weakref.ref(table["entry"])
    table["entry"] = Node()
    assert old() is None

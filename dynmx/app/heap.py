"""The collector and a server's start-up heap.

Loading builds millions of objects that live as long as their zones. The cyclic collector
scans all of them again every time the heap grows by a quarter: 19 full collections,
6 s of a 34 s parse of 30,000 zones, and after start-up a full collection of a
1,000,000-record zone's heap (2.5 s) left every zone unanswered while an edit compiled.
So the start-up load runs with the collector off, collects once, and freezes what
survives (`gc.freeze`): later collections skip it, and reference counting still frees
any of it that is replaced.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def loading() -> Iterator[None]:
    """Build without collections; then collect once (no garbage is frozen) and freeze."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.freeze()
        if enabled:
            gc.enable()

"""The collector and a server's start-up heap.

Loading builds millions of objects that live as long as their zones. The cyclic collector
scans all of them again every time the heap grows by a quarter, a large share of a big
start-up. After start-up, each full collection of a large heap holds the GIL for a
noticeable time, and no zone is answered meanwhile. So the start-up load runs with the
collector off, collects once, and freezes what survives (`gc.freeze`): later collections
skip it, and reference counting still frees any of it that is replaced. Versions loaded
later (reloads, edits) are not frozen.
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

"""Rate-limited log lines for per-packet refusals, and their counts.

Anyone can send a datagram that is refused (an unsigned UPDATE, a NOTIFY from a stranger,
a TSIG with an unknown key), from any source address: a line per packet lets a spoofed
flood fill the disk. Each refusal is counted (exported as
`dynmx_control_refused_requests_total{kind=...}`) and logged at most `per_window` times per
kind and window (1 s); the lines past that are counted, and once the window is over one
summary line says how many were left out: `event=update-refused suppressed=K`.

    LogLimiter (sans-IO: a kind and a time in, a verdict out; the clock is the caller's)
    RefusalLog (a LogLimiter, a logger, the counts; what the control modules call)

The summary of a window is written by the first refusal of that kind after it, or by
`flush` (which RefusalLog schedules on the running event loop, if any, when a window
begins to suppress: a flood that stops still gets its summary).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

PER_WINDOW = 10  # lines per kind and window
WINDOW = 1.0  # seconds


@dataclass(slots=True)
class _Window:
    start: float
    logged: int = 0
    suppressed: int = 0


class LogLimiter:
    """At most `per_window` lines per kind in each window of `window` seconds."""

    def __init__(self, per_window: int = PER_WINDOW, window: float = WINDOW) -> None:
        self.per_window = per_window
        self.window = window
        self._windows: dict[str, _Window] = {}

    def admit(self, kind: str, now: float) -> tuple[bool, int]:
        """Whether this line of `kind` is written now, and how many lines of the window before
        it were suppressed (to be summarised first; 0 when none or already summarised)."""
        current = self._windows.get(kind)
        ended = 0
        if current is None or now - current.start >= self.window or now < current.start:
            ended = current.suppressed if current is not None else 0
            current = self._windows[kind] = _Window(now)
        if current.logged < self.per_window:
            current.logged += 1
            return True, ended
        current.suppressed += 1
        return False, ended

    def due(self, now: float) -> list[tuple[str, int]]:
        """Kinds whose window is over with lines suppressed, and how many: each summarised once."""
        found: list[tuple[str, int]] = []
        for kind, current in list(self._windows.items()):
            if now - current.start >= self.window or now < current.start:
                if current.suppressed:
                    found.append((kind, current.suppressed))
                del self._windows[kind]
        return found

    def suppressing(self) -> bool:
        """Whether some window holds suppressed lines not yet summarised."""
        return any(current.suppressed for current in self._windows.values())


class RefusalLog:
    """Counts every refusal by kind and writes its line within the limiter's bounds."""

    def __init__(
        self, limiter: LogLimiter | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limiter = limiter or LogLimiter()
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._loggers: dict[str, tuple[logging.Logger, int]] = {}
        self._flush_scheduled = False

    def refused(self, logger: logging.Logger, level: int, kind: str, fields: str, *args: object) -> None:
        """Count one refusal of `kind` and log `event=KIND FIELDS` (a %-format with `args`) unless
        this window has had its share; the summary of an earlier window comes first."""
        self.counts[kind] += 1
        self._loggers[kind] = (logger, level)
        write, ended = self.limiter.admit(kind, self.clock())
        if ended:
            logger.log(level, "event=%s suppressed=%d", kind, ended)
        if write:
            logger.log(level, "event=" + kind + " " + fields, *args)
        elif not self._flush_scheduled:
            self._schedule_flush()

    def flush(self) -> None:
        """Write the summary of every window that is over (`event=KIND suppressed=K`)."""
        self._flush_scheduled = False
        for kind, count in self.limiter.due(self.clock()):
            logger, level = self._loggers[kind]
            logger.log(level, "event=%s suppressed=%d", kind, count)
        if self.limiter.suppressing():  # a window that began later is not over yet
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a plain call, a thread): the next refusal summarises
            return
        self._flush_scheduled = True
        loop.call_later(self.limiter.window, self.flush)


# The process's refusals: the control modules log through it, metrics read its counts.
REFUSALS = RefusalLog()

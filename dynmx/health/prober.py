"""Runs probes on schedule and hands each result on; builds no DNS answers.

One task per target: the first probe at once (jittered over a tenth of the interval so
that a restart does not hit every server in the same millisecond), then every
`interval` with ±10% jitter. A semaphore bounds how many probes run at a time, and
every probe has its own timeout, so a target that hangs, resets or floods garbage
never stalls the DNS path or the other probes. Time, sleep and randomness are
parameters so that tests are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dynmx.health.probes import ProbeResult, run_probe
from dynmx.health.spec import ProbeSpec

log = logging.getLogger("dynmx.health")

JITTER = 0.1


@dataclass(frozen=True, slots=True)
class Target:
    """One member to watch: who it is (pool, host), how to probe it, how often."""

    pool: str
    host: str
    spec: ProbeSpec
    interval: float


ResultSink = Callable[[Target, ProbeResult], None]
Probe = Callable[[ProbeSpec], Awaitable[ProbeResult]]


class Prober:
    """Probes every target forever (until `stop`), calling `on_result` for each result."""

    def __init__(
        self,
        targets: list[Target],
        on_result: ResultSink,
        *,
        concurrency: int = 64,
        probe: Probe | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.targets = targets
        self.on_result = on_result
        self.probe = probe or run_probe
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.semaphore = asyncio.Semaphore(concurrency)
        self.tasks: dict[Target, asyncio.Task[None]] = {}
        self.probes_run = 0

    def start(self) -> None:
        for target in self.targets:
            self._begin(target)

    def _begin(self, target: Target) -> None:
        self.tasks[target] = asyncio.create_task(self._watch(target), name=f"probe {target.host}")

    def retarget(self, targets: list[Target]) -> int:
        """Watch `targets` from now on: those that are new or changed start, those gone stop, the
        rest go on undisturbed. Returns how many started or stopped."""
        wanted = set(targets)
        gone = [target for target in self.tasks if target not in wanted]
        for target in gone:
            self.tasks.pop(target).cancel()
        new = [target for target in targets if target not in self.tasks]
        for target in new:
            self._begin(target)
        self.targets = list(targets)
        return len(gone) + len(new)

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()

    async def probe_once(self, target: Target) -> ProbeResult:
        async with self.semaphore:
            self.probes_run += 1
            return await self.probe(target.spec)

    async def _watch(self, target: Target) -> None:
        await self.sleep(self.rng.uniform(0, JITTER * target.interval))
        while True:
            started = time.monotonic()
            try:
                result = await self.probe_once(target)
                self.on_result(target, result)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours must not end the watch
                log.exception("event=probe-error pool=%s host=%s", target.pool, target.host)
            spent = time.monotonic() - started
            delay = target.interval * self.rng.uniform(1 - JITTER, 1 + JITTER) - spent
            await self.sleep(max(0.0, delay))

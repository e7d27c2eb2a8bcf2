"""The DS of the zones dynmx signs, pushed to their parents when it changes (Knot's `ds-push`).

For each zone a `[[registrar]]` lists in `ds_zones`, the DS set the parent should hold (one
per key whose CDS the zone serves: `current_ds`) is offered to that adapter every few
seconds; the registrar rules (`push_all`) send it only when it differs from what the adapter
last got through: the first key, each rollover step that changes the CDS set. The adapters'
state is kept in `state_dir/dspush.sqlite`, apart from the address pushes'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import dns.name

from dynmx.app.selfcheck_service import build_adapter
from dynmx.config import Config
from dynmx.errors import ConfigError
from dynmx.selfcheck.ds_push import DS, DsAdapter, current_ds, ds_text
from dynmx.selfcheck.registrar import Adapter, AdapterStateStore, PushReport, RegistrarScheduler, push_all
from dynmx.zone.keys import key_path

log = logging.getLogger("dynmx.dspush")
DS_FAMILY = 0  # the state store's family column: a DS set, not an address
INTERVAL = 5.0  # between looks at the key files (a stat each; the rules decide what is sent)


class DsPushService:
    """Offers each listed zone's DS set to its adapters every `interval` seconds until stopped."""

    def __init__(
        self,
        config: Config,
        secrets: dict[str, tuple[str, str]],
        state_path: Path,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.time,
        observe: Callable[[list[tuple[str, str]]], None] = lambda pushes: None,
    ) -> None:
        self.state_dir = config.path(config.server.state_dir)
        self.interval = interval
        self.clock = clock
        self.observe = observe  # (adapter, outcome) of each push sent, for the metrics
        self.scheduler = RegistrarScheduler(config.selfcheck.min_interval, config.selfcheck.max_interval)
        self.targets: dict[dns.name.Name, list[Adapter]] = {}
        for registrar in config.registrar:
            if not registrar.ds_zones:
                continue
            adapter = build_adapter(registrar, secrets)
            for zone in registrar.ds_zones:
                self.targets.setdefault(dns.name.from_text(zone), []).append(adapter)
        self.store = AdapterStateStore(state_path) if self.targets else None
        self.task: asyncio.Task[None] | None = None
        self._read: dict[dns.name.Name, tuple[tuple[int, int, int], list[DS]]] = {}
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self.store is not None and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop())

    def request(self) -> None:
        """Look at the key files now (a rollover step changed one)."""
        self._wake.set()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        if self.store is not None:
            self.store.close()

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

    def _ds(self, origin: dns.name.Name) -> list[DS]:
        """The zone's DS set, read again only when its key file changed."""
        try:
            info = os.stat(key_path(self.state_dir, origin))
        except FileNotFoundError:
            return []
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self._read.get(origin)
        if cached is None or cached[0] != stamp:
            cached = (stamp, current_ds(self.state_dir, origin))
            self._read[origin] = cached
        return cached[1]

    async def run_once(self) -> list[PushReport]:
        """Offer every listed zone's DS set to its adapters; a zone with no key yet is skipped
        (an empty set would delete the parent's DS: that is never done unasked)."""
        assert self.store is not None
        reports: list[PushReport] = []
        for origin, adapters in self.targets.items():
            try:
                ds = self._ds(origin)
            except ConfigError as error:
                log.warning("event=ds-push-skipped zone=%s reason=%r", origin, str(error))
                continue
            if not ds:
                continue
            wrapped = [DsAdapter(adapter, origin, ds) for adapter in adapters]
            now = self.clock()
            reports += await push_all(
                wrapped, self.store, origin.to_text(), DS_FAMILY, ds_text(ds), None, now, self.scheduler
            )
        self.observe([(r.adapter, r.result.outcome.value) for r in reports if r.result is not None])
        return reports

    def status(self) -> list[dict[str, object]]:
        """For /status: each adapter's DS state per zone; no secrets."""
        if self.store is None:
            return []
        return [
            {
                "adapter": state.adapter,
                "zone": state.hostname,
                "last_ds": state.last_address,
                "last_result": state.last_result,
                "last_attempt": state.last_attempt,
                "stopped": state.stopped_reason,
                "backoff_until": state.backoff_until,
            }
            for state in self.store.all()
        ]

"""One answer process of `dynmx serve --workers N`, started by the control process.

It serves queries from its own copy of the table on sockets it inherits (SO_REUSEPORT,
so the kernel spreads clients over the workers) and keeps that table in step with the
control process: pool plans, committed zones and reloads arrive over the channel and
are applied at once. What needs the one writer or the prober — UPDATE, NOTIFY, zone
transfers, self-check nonces — is forwarded to the control process and answered from
there. A worker whose control process goes away exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import dns.name

from dynmx.answer.compiler import AnswerTable
from dynmx.answer.engine import Engine
from dynmx.app import heap
from dynmx.app.answerconfig import answers_alike
from dynmx.app.listeners import HotStats, Listeners, SocketSet, make_engine, zone_gate
from dynmx.app.publisher import STAGE_FROM_NAMES, fill_slice, worth_staging
from dynmx.app.workers import channel
from dynmx.app.workers.handover import taken_over
from dynmx.app.zonescan import changed_origins, scan_zones, zone_data
from dynmx.config import Config, PoolConfig
from dynmx.logs import setup_logging
from dynmx.policy.served import PoolPlans, build_table, plan_all, refresh_pool
from dynmx.wire.query import Query
from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.worker")

STATS_EVERY = 1.0  # seconds between counter reports (metrics are scraped far less often)
FORWARD_TIMEOUT = 10.0  # a forwarded request the control process does not answer is dropped
MAX_FORWARDED = 1024  # requests waiting on the control process; beyond it, silence (clients retry)
SHUTDOWN_GRACE = 4.0


class Worker:
    def __init__(
        self, channel_sock: socket.socket, sockets: list[SocketSet], handover: int | None = None
    ) -> None:
        self.channel_sock = channel_sock
        self.sockets = sockets
        self.handover = handover  # descriptor of the control process's start-up zones (`handover`)
        self.index = 0
        self.config = Config()
        self.plans: dict[str, PoolPlans] = {}
        self.zones: dict[Path, LoadedZone] = {}
        self.engine: Engine | None = None
        self.listeners: Listeners | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.ids = itertools.count(1)
        self.rebuilding: asyncio.Task[None] | None = None
        self.filling = False  # a fill step is queued in `rebuilding`
        self.zone_edits = 0  # zone messages applied; a rescan keeps a zone that arrived while it read
        self.zone_edited: dict[Path, int] = {}
        self.unavailable: frozenset[dns.name.Name] = frozenset()  # secondary zones answering SERVFAIL
        # Acknowledgements: the control process takes an ack of N to mean every change up to N
        # is answered from, so a fact applied at once is not acknowledged past a table still
        # compiling for an earlier change.
        self.compiling: set[int] = set()  # changes whose table is not served yet
        self.received = 0  # the newest change applied
        self.acked = 0
        self.writer: asyncio.StreamWriter | None = None
        self.stopping = asyncio.Event()

    def plan_of(self, pool: PoolConfig) -> PoolPlans:
        return self.plans.get(pool.name) or plan_all(pool, {})

    def _build(
        self,
        previous: dict[Path, LoadedZone],
        table: AnswerTable | None = None,
        keep: frozenset[Path] = frozenset(),
        written: dict[Path, bytes] | None = None,
    ) -> tuple[Engine, dict[Path, LoadedZone], int]:
        """Read the zone directory and compile (any thread: touches no state of the worker);
        the engine, the zones, and how many of them are not the versions in `previous`.

        `keep` and `written` are the control process's word on the files (`scan_zones`): the
        version in `previous` of a file behind it is kept. With the `table` of an unchanged
        config, only zones whose files changed compile again; large ones, and everything
        from many zones or names on, are staged, as in the control process, for `_fill_step`
        to compile.
        """
        directory = self.config.path(self.config.server.zones_dir)
        limit = self.config.server.max_zone_file_size
        serving = self.engine is not None  # a reload: large files are checked apart first
        zones, _problems = scan_zones(
            directory, previous, keep=keep, written=written, max_size=limit, serving=serving
        )
        changed = changed_origins(previous, zones)
        staged = table is None and worth_staging(zones)
        table = build_table(
            self.config,
            zone_data(zones),
            self.plan_of,
            self._rng(),
            table,
            changed,
            staged=staged,
            stage_from=STAGE_FROM_NAMES,
        )
        return make_engine(self.config, table), zones, len(changed)

    def _rng(self) -> Callable[[], float] | None:
        """Each worker draws on its own; a seed (tests) stays reproducible per worker."""
        seed = self.config.server.random_seed
        return random.Random(seed + self.index).random if seed else None

    async def run(self) -> int:
        reader, writer = await asyncio.open_connection(sock=self.channel_sock)
        self.writer = writer
        init = await channel.receive(reader)
        if init is None or init[0] != "init":
            log.error("event=worker-init-failed")
            return 1
        _, self.index, self.config, plans, behind, self.unavailable = init
        setup_logging(self.config.log.level)
        self.plans = {p.pool.name: p for p in plans}
        with heap.loading():
            # The control process's versions, kept by the scan for every file they still match,
            # and always for a file behind its version.
            previous = (taken_over(self.handover) if self.handover is not None else {}) | behind
            self.handover = None  # read and closed
            engine, self.zones, _ = self._build(previous, keep=frozenset(behind))
        self._attach(engine)
        self.listeners = Listeners.for_engine(self.config, engine)
        await self.listeners.serve(engine.handle, self.sockets)
        self._keep_filling()
        channel.send(writer, "ready", self.index, len(engine.table.entries))
        log.info(
            "event=worker-ready worker=%d pid=%d entries=%d zones=%d handed=%d",
            self.index,
            os.getpid(),
            len(engine.table.entries),
            len(self.zones),
            sum(1 for path, zone in self.zones.items() if previous.get(path) is zone),
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        for ignored in (signal.SIGINT, signal.SIGHUP):  # the control process acts on these for all
            loop.add_signal_handler(ignored, lambda: None)
        reporter = loop.create_task(self._report())
        serving = loop.create_task(self._serve_channel(reader))
        stopping = loop.create_task(self.stopping.wait())
        try:
            await asyncio.wait((serving, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reporter, serving, stopping):
                task.cancel()
            await self._stop()
        return 0

    def _attach(self, engine: Engine) -> None:
        engine.control = self._forward_control
        engine.transfer = self._forward_transfer
        engine.on_selfcheck = self._selfcheck_seen
        if self.engine is not None:
            engine.rrl = self.engine.rrl  # the buckets outlive a new table, as in one process
        self._apply_gate(engine)
        self.engine = engine

    def _apply_gate(self, engine: Engine) -> None:
        served = [zone.origin for zone in self.zones.values()] if self.unavailable else []
        engine.gate = zone_gate(self.config, self.unavailable, served)

    async def _serve_channel(self, reader: asyncio.StreamReader) -> None:
        while (message := await channel.receive(reader)) is not None:
            kind = message[0]
            if kind == "stop":
                return
            if kind == "reply":
                future = self.pending.pop(message[1], None)
                if future is not None and not future.done():
                    future.set_result(message[2])
            elif kind == "plans":
                _, seq, plans = message
                self.plans[plans.pool.name] = plans
                assert self.engine is not None
                refresh_pool(self.engine.table, plans)
                self._applied(seq)
            elif kind == "zone":
                _, seq, zone = message
                self.zones[zone.path] = zone
                self.zone_edits += 1
                self.zone_edited[zone.path] = self.zone_edits
                self._rebuild(seq, changed=(zone.origin,))
            elif kind == "drop":  # a zone removed (`dynmx zone rm`)
                _, seq, path = message
                self.zones.pop(path, None)
                self.zone_edits += 1
                self.zone_edited.pop(path, None)
                self._rebuild(seq)
            elif kind == "unavailable":
                _, seq, self.unavailable = message
                assert self.engine is not None
                self._apply_gate(self.engine)
                self._applied(seq)
            elif kind == "reload":
                config = self.config
                _, seq, self.config, plans, keep, written = message
                self.plans = {p.pool.name: p for p in plans}
                self._rebuild(seq, rescan=(keep, written), incremental=answers_alike(config, self.config))
        log.info("event=worker-channel-closed worker=%d", self.index)

    def _rebuild(
        self,
        seq: int,
        rescan: tuple[frozenset[Path], dict[Path, bytes]] | None = None,
        changed: tuple[dns.name.Name, ...] = (),
        incremental: bool = False,
    ) -> None:
        """Compile a new table off the loop; queries go on being answered from the old one.
        A `rescan` reads the zone files again, with the control process's word on them."""
        loop = asyncio.get_running_loop()
        self.compiling.add(seq)

        async def rebuild() -> None:
            try:
                await build()
            except Exception:  # acknowledged all the same: a later change must not wait behind it
                log.exception("event=worker-rebuild-failed worker=%d seq=%d", self.index, seq)
            self._applied(seq)
            self._keep_filling()

        async def build() -> None:
            if rescan is not None:
                mark = self.zone_edits
                table = self.engine.table if incremental and self.engine is not None else None
                build = functools.partial(self._build, dict(self.zones), table, *rescan)
                engine, zones, changed_count = await loop.run_in_executor(None, build)
                log.info(
                    "event=worker-reloaded worker=%d zones=%d changed=%d",
                    self.index,
                    len(zones),
                    changed_count,
                )
                for path, edit in self.zone_edited.items():
                    if edit > mark and path in zones and path in self.zones:
                        zones[path] = self.zones[path]  # committed while the files were read
                self.zones = zones
            else:
                assert self.engine is not None
                previous = self.engine.table
                snapshot = dict(self.zones)  # the loop may add zones while this compiles
                table = await loop.run_in_executor(
                    None,
                    lambda: build_table(
                        self.config,
                        zone_data(snapshot),
                        self.plan_of,
                        self._rng(),
                        previous,
                        changed,
                        stage_from=STAGE_FROM_NAMES,
                    ),
                )
                assert self.engine is not None
                self.engine.swap(table)
                engine = self.engine
            for plans in self.plans.values():  # facts that came in while it compiled
                refresh_pool(engine.table, plans)
            if engine is not self.engine:
                self._attach(engine)
                assert self.listeners is not None
                self.listeners.tcp.handler = engine.handle_tcp
                for udp in self.listeners.udp:
                    udp.handler = engine.handle

        self._in_turn(rebuild)

    def _applied(self, seq: int) -> None:
        """Change `seq` is answered from: acknowledge up to the oldest change still compiling."""
        self.compiling.discard(seq)
        self.received = max(self.received, seq)
        done = min(self.compiling) - 1 if self.compiling else self.received
        if done > self.acked:
            self.acked = done
            self._send("ack", done)

    def _in_turn(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` after the rebuilds and fill steps before it: one table is built at a time."""
        previous = self.rebuilding

        async def in_turn() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await step()

        self.rebuilding = asyncio.get_running_loop().create_task(in_turn())

    def _keep_filling(self) -> None:
        if self.engine is not None and self.engine.table.pending and not self.filling:
            self.filling = True
            self._in_turn(self._fill_step)

    async def _fill_step(self) -> None:
        """Compile one slice of the pending zones, then queue the next behind whatever
        arrived meanwhile (a zone or reload builds on what is compiled so far)."""
        self.filling = False
        engine = self.engine
        if engine is None or not engine.table.pending:
            return
        filled = await asyncio.get_running_loop().run_in_executor(None, fill_slice, engine.table)
        engine.swap(filled)
        if filled.pending:
            self._keep_filling()
        else:
            log.info("event=worker-compiled worker=%d entries=%d", self.index, len(filled.entries))

    def _send(self, *message: object) -> None:
        if self.writer is not None:
            channel.send(self.writer, *message)

    def _forward(self, data: bytes, peer: object, tcp: bool) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if len(self.pending) >= MAX_FORWARDED:  # an UPDATE flood must not queue without bound
            future.set_result(None)
            return future
        request = next(self.ids)
        self.pending[request] = future
        self._send("forward", request, data, peer, tcp)
        loop.call_later(FORWARD_TIMEOUT, self._expire, request)
        return future

    def _expire(self, request: int) -> None:
        future = self.pending.pop(request, None)
        if future is not None and not future.done():
            future.set_result(None)

    def _forward_control(self, data: bytes, query: Query, tcp: bool, peer: object) -> asyncio.Future[Any]:
        return self._forward(data, peer, tcp)

    def _forward_transfer(self, data: bytes, query: Query, peer: object) -> asyncio.Future[Any]:
        return self._forward(data, peer, True)

    def _selfcheck_seen(self, qname: bytes) -> None:
        self._send("nonce", qname)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY)
            if self.engine is not None:
                self._send("stats", HotStats.read(self.engine, self.listeners))

    async def _stop(self) -> None:
        if self.listeners is not None:
            self.listeners.close()
            await self.listeners.tcp.drain(SHUTDOWN_GRACE)
        for future in self.pending.values():
            future.cancel()
        if self.writer is not None:
            self.writer.close()


def _socket_set(text: str) -> SocketSet:
    host, port, udp, tcp = text.rsplit(",", 3)
    return SocketSet(host, int(port), socket.socket(fileno=int(udp)), socket.socket(fileno=int(tcp)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynmx-worker", description="an answer process (started by serve)")
    parser.add_argument("--channel", type=int, required=True, help="file descriptor of the control channel")
    parser.add_argument("--socket", action="append", default=[], help="HOST,PORT,UDP_FD,TCP_FD")
    parser.add_argument("--handover", type=int, help="file descriptor of the start-up zones")
    args = parser.parse_args(argv)
    setup_logging("info")
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    worker = Worker(socket.socket(fileno=args.channel), [_socket_set(s) for s in args.socket], args.handover)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(worker.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())

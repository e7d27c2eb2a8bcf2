"""The control process's side of `--workers N`: start answer processes, keep them in step.

The control process binds every listen address once per worker (SO_REUSEPORT) and
hands each worker its sockets, so the kernel spreads clients over the workers and no
port is ever unbound between start and serve. Facts and tables travel as messages
(`dynmx.app.workers.channel`); each carries a sequence number the worker acknowledges, and the
time from send to the slowest acknowledgement is what `/status` reports as the lag.
A worker that dies is started again on the same sockets (queries wait in the kernel's
buffer meanwhile); one that keeps dying is given up after `MAX_RESTARTS` a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.name

from dynmx.app.listeners import HotStats, SocketSet, bind_all
from dynmx.app.workers import channel
from dynmx.config import Config
from dynmx.policy.served import PoolPlans
from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.workers")

READY_TIMEOUT = 300.0  # seconds for a worker to load and compile (100,000 zones take a while)
# An edit is acknowledged once every worker answers from it; a worker slower than this (or
# wedged) is logged and the client gets its reply all the same: the edit is committed.
APPLY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
MAX_RESTARTS = 5  # per worker and minute


@dataclass
class WorkerHandle:
    index: int
    sockets: list[SocketSet]
    process: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stats: HotStats = field(default_factory=HotStats)
    acked: int = 0
    restarts: list[float] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


# What the control process does with what workers forward: (data, peer, tcp) -> reply.
Answer = Callable[[bytes, object, bool], object]


class WorkerPool:
    """N answer processes fed by this (control) process."""

    def __init__(
        self,
        count: int,
        answer: Answer,
        on_nonce: Callable[[bytes], None],
        current: Callable[
            [], tuple[Config, list[PoolPlans], dict[Path, LoadedZone], frozenset[dns.name.Name]]
        ],
    ) -> None:
        self.count = count
        self.answer = answer
        self.on_nonce = on_nonce
        # What a (re)started worker begins from: the config, the pools' plans, the versions
        # of the zones whose files are behind them, and the secondary zones answering SERVFAIL.
        self.current = current
        self.workers: list[WorkerHandle] = []
        self.seq = 0
        self.sent_at: dict[int, float] = {}
        self.last_lag = 0.0  # seconds from send to the last worker's acknowledgement
        self.worst_lag = 0.0
        self.restarted = 0
        self.stopping = False
        self.replying: set[asyncio.Task[None]] = set()  # forwarded requests being answered
        self.handover: int | None = None  # descriptor of the start-up zones' file (`start`)
        self._progress: list[asyncio.Future[None]] = []  # woken by an ack, a ready or an exit

    def bind(self, config: Config) -> list[tuple[str, int]]:
        copies = bind_all(config, self.count)
        self.workers = [WorkerHandle(index, sockets) for index, sockets in enumerate(copies)]
        return [(pair.host, pair.port) for pair in copies[0]]

    async def start(self, handover: int | None = None) -> None:
        """Start every worker; `handover`, an open file with no name (`dynmx.app.workers.handover`),
        holds the control process's zones as they started, for these workers and any started
        again later: each is given the descriptor, as it is given its sockets."""
        self.handover = handover
        for worker in self.workers:
            await self._spawn(worker)
        waits = [asyncio.wait_for(worker.ready.wait(), READY_TIMEOUT) for worker in self.workers]
        await asyncio.gather(*waits)

    async def _spawn(self, worker: WorkerHandle) -> None:
        parent, child = socket.socketpair()
        fds = [child.fileno()]
        args = [sys.executable, "-m", "dynmx.app.workers.worker", "--channel", str(child.fileno())]
        if self.handover is not None:
            fds.append(self.handover)
            args += ["--handover", str(self.handover)]
        for pair in worker.sockets:
            fds += [pair.udp.fileno(), pair.tcp.fileno()]
            args += ["--socket", f"{pair.host},{pair.port},{pair.udp.fileno()},{pair.tcp.fileno()}"]
        worker.ready.clear()
        worker.process = await asyncio.create_subprocess_exec(*args, pass_fds=fds)
        child.close()
        reader, writer = await asyncio.open_connection(sock=parent)
        worker.writer = writer
        config, plans, behind, unavailable = self.current()  # once the writer is set: later edits reach it
        channel.send(writer, "init", worker.index, config, plans, behind, unavailable)
        worker.acked = self.seq  # it starts from every change sent so far
        worker.task = asyncio.get_running_loop().create_task(self._serve(worker, reader))
        log.info("event=worker-started worker=%d pid=%d", worker.index, worker.process.pid)

    async def _serve(self, worker: WorkerHandle, reader: asyncio.StreamReader) -> None:
        while (message := await channel.receive(reader)) is not None:
            kind = message[0]
            if kind == "forward":
                # Answered in a task of its own: an UPDATE waits for its compile, and the
                # worker's acknowledgements and other requests must not wait behind it.
                _, request, data, peer, tcp = message
                task = asyncio.get_running_loop().create_task(self._reply(worker, request, data, peer, tcp))
                self.replying.add(task)
                task.add_done_callback(self.replying.discard)
            elif kind == "stats":
                worker.stats = message[1]
            elif kind == "nonce":
                self.on_nonce(message[1])
            elif kind == "ack":
                self._acked(worker, message[1])
            elif kind == "ready":
                worker.ready.set()
                log.info("event=worker-ready worker=%d entries=%d", worker.index, message[2])
            self._wake()
        await self._exited(worker)

    async def _reply(self, worker: WorkerHandle, request: int, data: bytes, peer: object, tcp: bool) -> None:
        reply = await self._answer(data, peer, tcp)
        if worker.writer is not None:
            channel.send(worker.writer, "reply", request, reply)

    async def _answer(self, data: bytes, peer: object, tcp: bool) -> Any:
        reply = self.answer(data, peer, tcp)
        if asyncio.isfuture(reply) or asyncio.iscoroutine(reply):
            return await reply
        return reply

    def _acked(self, worker: WorkerHandle, seq: int) -> None:
        worker.acked = max(worker.acked, seq)
        sent = self.sent_at.get(seq)
        if sent is None or any(w.acked < seq for w in self.workers if w.ready.is_set()):
            return
        self.last_lag = time.monotonic() - sent
        self.worst_lag = max(self.worst_lag, self.last_lag)
        for old in [s for s in self.sent_at if s <= seq]:
            del self.sent_at[old]

    async def _exited(self, worker: WorkerHandle) -> None:
        code = await worker.process.wait() if worker.process is not None else None
        worker.ready.clear()  # answers nothing until started again: no change waits for it
        self._wake()
        if self.stopping:
            return
        now = time.monotonic()
        worker.restarts = [t for t in worker.restarts if now - t < 60] + [now]
        if len(worker.restarts) > MAX_RESTARTS:
            log.error("event=worker-given-up worker=%d code=%s restarts=%d", worker.index, code, MAX_RESTARTS)
            return
        log.error("event=worker-exited worker=%d code=%s action=restart", worker.index, code)
        self.restarted += 1
        await self._spawn(worker)

    # -- keeping workers in step ---------------------------------------------------------

    def broadcast(self, kind: str, *payload: object) -> int:
        """Send one change to every worker; returns its sequence number."""
        self.seq += 1
        self.sent_at[self.seq] = time.monotonic()
        for worker in self.workers:
            if worker.writer is not None:
                channel.send(worker.writer, kind, self.seq, *payload)
        return self.seq

    def synced(self, seq: int) -> bool:
        """Every running worker has applied change `seq`."""
        return all(w.acked >= seq for w in self.workers if w.ready.is_set())

    async def applied(self, seq: int, timeout: float = APPLY_TIMEOUT) -> bool:
        """Wait until every running worker answers from change `seq`; False after `timeout`
        seconds (logged), so a wedged worker cannot hold a client's reply for ever."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.synced(seq):
            progress = loop.create_future()
            self._progress.append(progress)
            try:
                await asyncio.wait_for(progress, deadline - loop.time())
            except TimeoutError:
                behind = [w.index for w in self.workers if w.ready.is_set() and w.acked < seq]
                log.warning("event=workers-behind seq=%d workers=%s waited=%.1f", seq, behind, timeout)
                return False
        return True

    def _wake(self) -> None:
        waiting, self._progress = self._progress, []
        for progress in waiting:
            if not progress.done():
                progress.set_result(None)

    def hot_stats(self) -> HotStats:
        total = HotStats()
        for worker in self.workers:
            total = total.add(worker.stats)
        total.counters["workers"] = sum(1 for w in self.workers if w.ready.is_set())
        total.counters["worker_restarts"] = self.restarted
        # Each worker holds a whole table of its own: the size of one, not the sum.
        total.counters["entries"] = max((w.stats.counters.get("entries", 0) for w in self.workers), default=0)
        return total

    def status(self) -> dict[str, object]:
        return {
            "count": self.count,
            "fact_lag_ms": round(self.last_lag * 1000, 2),
            "worst_fact_lag_ms": round(self.worst_lag * 1000, 2),
            "restarts": self.restarted,
            "workers": [
                {
                    "index": w.index,
                    "pid": w.process.pid if w.process else None,
                    "ready": w.ready.is_set(),
                    "entries": w.stats.counters.get("entries", 0),
                    "queries": w.stats.counters.get("udp", 0) + w.stats.counters.get("tcp", 0),
                }
                for w in self.workers
            ],
        }

    async def stop(self) -> None:
        """Workers drain their TCP and exit; any still there after the deadline are killed."""
        self.stopping = True
        for worker in self.workers:
            if worker.writer is not None:
                channel.send(worker.writer, "stop")
        processes = [w.process for w in self.workers if w.process is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), STOP_TIMEOUT)
        except TimeoutError:
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for worker in self.workers:
            if worker.task is not None:
                worker.task.cancel()
            for pair in worker.sockets:
                pair.udp.close()
                pair.tcp.close()

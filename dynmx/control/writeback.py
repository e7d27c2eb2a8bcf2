"""Zone files written behind the journal, on one background thread.

Writing a zone file costs the whole zone (28 s for 1,000,000 records); done on the event
loop it silenced every zone for that long. The journal is the durability point (an
acknowledged edit is in it; start-up replays it onto an older file), so the running
server writes files on a thread of their own, in commit order; a file with several
versions waiting is written once, at its newest. An acknowledgement still waits for the
file (`written`), so a client that reads the file after NOERROR finds its change.
"""

from __future__ import annotations

import logging
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import dns.zone

log = logging.getLogger("dynmx.writeback")

WriteFile = Callable[[Path, dns.zone.Zone], object]  # `write_atomically`: returns the file's digest


class WriteBack:
    """Queues zone versions for their files; `written` and `flush` wait for them."""

    def __init__(self, write: WriteFile) -> None:
        self._write = write
        self._newest: dict[Path, dns.zone.Zone] = {}  # waiting to be written
        self._waiters: dict[Path, list[Future[None]]] = {}  # of the waiting and the one being written
        self._writing: Path | None = None
        self._failed: set[Path] = set()  # the last write failed: the file is behind the journal
        # What the last write of each file wrote: (that version, the digest of its bytes).
        self._digests: dict[Path, tuple[weakref.ref[dns.zone.Zone], bytes]] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.SimpleQueue[Path] = queue.SimpleQueue()
        # A daemon: a stop does not wait for a large file (the journal has its edits).
        self._thread = threading.Thread(target=self._run, name="dynmx-writeback", daemon=True)
        self._thread.start()

    def submit(self, path: Path, zone: dns.zone.Zone) -> None:
        with self._lock:
            queued = path in self._newest
            self._newest[path] = zone
        if not queued:
            self._queue.put(path)

    def written(self, path: Path) -> Future[None]:
        """Done when `path` holds the version submitted last (or its write failed, logged)."""
        done: Future[None] = Future()
        with self._lock:
            if path in self._newest or path == self._writing:
                self._waiters.setdefault(path, []).append(done)
                return done
        done.set_result(None)
        return done

    def flush(self, timeout: float | None = None) -> bool:
        """Block until nothing is waiting or being written; False if `timeout` ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._newest and self._writing is None, timeout)

    def behind(self) -> frozenset[Path]:
        """Files older than their zone in memory: waiting, being written, or failed. A reload
        keeps the version in memory for them rather than reading the file back."""
        with self._lock:
            return frozenset({*self._newest, *self._failed, *([self._writing] if self._writing else [])})

    def digests(self, versions: dict[Path, dns.zone.Zone]) -> dict[Path, bytes]:
        """The digest of each file's bytes as last written, where they were written from the
        version given for that file: a reload that finds those bytes keeps the version."""
        with self._lock:
            written = dict(self._digests)
        return {
            path: digest
            for path, (version, digest) in written.items()
            if path in versions and version() is versions[path]
        }

    def _run(self) -> None:
        while True:
            path = self._queue.get()
            with self._lock:
                zone = self._newest.pop(path)
                self._writing = path
            digest: object = None
            try:
                digest = self._write(path, zone)
            except Exception as error:  # the journal has the edit: start-up replays it onto the file
                log.error("event=write-back-failed file=%s error=%r", path, str(error))
                failed = True
            else:
                failed = False
            with self._idle:
                if not failed and isinstance(digest, bytes):
                    self._digests[path] = (weakref.ref(zone), digest)
                self._writing = None
                (self._failed.add if failed else self._failed.discard)(path)
                # A waiter for a version submitted during this write waits for the next one.
                waiters = [] if path in self._newest else self._waiters.pop(path, [])
                self._idle.notify_all()
            for waiter in waiters:
                waiter.set_result(None)

"""Zone files written behind the journal, on one background thread.

Writing a zone file costs the whole zone; done on the event loop it would silence every
zone for that long. The journal is the durability point (an acknowledged edit is in it;
start-up replays it onto an older file, and the journal keeps every change its file
lacks), so the running server writes files on a thread of their own, in commit order; a
file with several versions waiting is written once, at its newest. A large zone's file
(`QUIET_FROM` nodes or more) is written once its edits have paused for `QUIET_SECONDS`
(at most `MAX_WAIT_SECONDS` after its first waiting version), so a burst of edits costs
one write, made after the burst rather than beside it (as Knot's `zonefile-sync` delay
and BIND's periodic dumps of dynamic zones); `flush` does not wait.

While a file is written, threads hand over the GIL every `SWITCH_SECONDS` instead of
Python's 5 ms: writing a large zone is seconds of Python on this thread, and the event
loop, which wants the GIL back after every wait for a packet, would otherwise wait up to
5 ms each time (every answer late, an UPDATE's reply, which crosses threads several
times, by tens of milliseconds).

A write that fails is tried again every `RETRY_SECONDS`; meanwhile `blocked` says why,
and the owner acknowledges no edit of that zone (what cannot be kept is not promised).
A file changed on disk since dynmx last read or wrote it (a hand edit racing an edit
through dynmx) is not overwritten blindly: it is kept beside as `NAME.zone.conflict-TIME`
and logged, and the file gets the served version.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import dns.zone

from dynmx.zone.filebytes import file_digest

log = logging.getLogger("dynmx.writeback")

WriteFile = Callable[[Path, dns.zone.Zone], object]  # `write_atomically`: returns the file's digest
Written = Callable[[Path, dns.zone.Zone], None]  # told (on the write-back thread) of each file written
RETRY_SECONDS = 5.0
QUIET_FROM = 100_000
QUIET_SECONDS = 2.0
MAX_WAIT_SECONDS = 30.0
SWITCH_SECONDS = 0.0005


class WriteBack:
    """Queues zone versions for their files; `flush` waits for them."""

    def __init__(
        self,
        write: WriteFile,
        on_written: Written = lambda path, zone: None,
        retry: float = RETRY_SECONDS,
        quiet: float = QUIET_SECONDS,
        quiet_from: int = QUIET_FROM,
    ) -> None:
        self._write = write
        self._on_written = on_written
        self._retry = retry
        self._quiet = quiet
        self._quiet_from = quiet_from
        self._submitted: dict[Path, float] = {}  # when the newest waiting version came
        self._flushing = 0  # flushes waiting: no quiet period is waited for
        self._newest: dict[Path, dns.zone.Zone] = {}  # waiting to be written
        self._writing: Path | None = None
        self._failed: dict[Path, tuple[dns.zone.Zone, str]] = {}  # the file is behind: (version, why)
        # What the last write of each file wrote: (that version, the digest of its bytes).
        self._digests: dict[Path, tuple[weakref.ref[dns.zone.Zone], bytes]] = {}
        self._expected: dict[Path, bytes] = {}  # the digest each file had when dynmx last saw it
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
            self._submitted[path] = time.monotonic()
        if not queued:
            self._queue.put(path)

    def expect(self, path: Path, digest: bytes) -> None:
        """The file holds these bytes as dynmx read them: a write finding others keeps those."""
        if digest:
            with self._lock:
                self._expected[path] = digest

    def flush(self, timeout: float | None = None) -> bool:
        """Block until nothing is waiting or being written; False if `timeout` ran out first."""
        with self._idle:
            self._flushing += 1
            self._idle.notify_all()
            try:
                return self._idle.wait_for(lambda: not self._newest and self._writing is None, timeout)
            finally:
                self._flushing -= 1

    def behind(self) -> frozenset[Path]:
        """Files older than their zone in memory: waiting, being written, or failed. A reload
        keeps the version in memory for them rather than reading the file back."""
        with self._lock:
            return frozenset({*self._newest, *self._failed, *([self._writing] if self._writing else [])})

    def forget(self, path: Path) -> None:
        """The file's zone is gone: write nothing more to it, and return once a write of it
        under way has ended (blocks: call it off the loop)."""
        with self._idle:
            self._newest.pop(path, None)
            self._failed.pop(path, None)
            self._expected.pop(path, None)
            self._digests.pop(path, None)
            self._idle.wait_for(lambda: self._writing != path)

    def blocked(self, path: Path) -> str | None:
        """Why `path` cannot be written now (its last write failed), or None."""
        with self._lock:
            failed = self._failed.get(path)
        return None if failed is None else f"the zone file cannot be written ({failed[1]})"

    def failing(self) -> int:
        with self._lock:
            return len(self._failed)

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
            try:
                path = self._queue.get(timeout=self._retry if self._failed else None)
            except queue.Empty:
                self._requeue_failed()
                continue
            self._wait_quiet(path)
            with self._lock:
                zone = self._newest.pop(path, None)
                if zone is None:  # forgotten since it was queued
                    continue
                self._writing = path
            error = self._write_one(path, zone)
            with self._idle:
                self._writing = None
                if error is None:
                    self._failed.pop(path, None)
                elif path not in self._newest:
                    self._failed[path] = (zone, error)
                self._idle.notify_all()

    def _wait_quiet(self, path: Path) -> None:
        """Before writing a large zone's file: wait until its edits pause (see the module)."""
        with self._idle:
            first = time.monotonic()
            while True:
                zone = self._newest.get(path)
                if zone is None or self._flushing or not self._large(zone):
                    return
                now = time.monotonic()
                wait = min(self._submitted.get(path, now) + self._quiet, first + MAX_WAIT_SECONDS) - now
                if wait <= 0:
                    return
                self._idle.wait(wait)

    def _large(self, zone: dns.zone.Zone) -> bool:
        if not getattr(zone, "parsed", True):  # a zone still unread from the answer store
            return False
        return len(zone.nodes) >= self._quiet_from

    def _write_one(self, path: Path, zone: dns.zone.Zone) -> str | None:
        """Write one file; the error's text when it failed."""
        try:
            self._keep_conflict(path)
            switch = sys.getswitchinterval()
            sys.setswitchinterval(min(switch, SWITCH_SECONDS))
            try:
                digest = self._write(path, zone)
            finally:
                sys.setswitchinterval(switch)
        except Exception as error:  # the journal has the edit: it stays there until the file has it
            reason = str(error) or type(error).__name__
            log.error("event=write-back-failed file=%s error=%r retry_seconds=%g", path, reason, self._retry)
            return reason
        with self._lock:
            if isinstance(digest, bytes):
                self._digests[path] = (weakref.ref(zone), digest)
                self._expected[path] = digest
            recovered = path in self._failed
        if recovered:
            log.warning("event=write-back-recovered file=%s", path)
        self._on_written(path, zone)
        return None

    def _keep_conflict(self, path: Path) -> None:
        """A file changed since dynmx last saw it is moved aside before it is replaced."""
        with self._lock:
            expected = self._expected.get(path)
        if expected is None:
            return
        try:
            found = file_digest(path.read_bytes())
        except FileNotFoundError:
            return
        if found == expected:
            return
        kept = path.with_name(f"{path.name}.conflict-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, kept)
        log.error(
            "event=zone-file-conflict file=%s kept=%s reason=%r",
            path,
            kept,
            "changed on disk while dynmx had an edit of it to write; merge the kept file by hand and reload",
        )

    def _requeue_failed(self) -> None:
        """Try the failed files again, each at the version that failed (unless a newer waits)."""
        with self._lock:
            failed = [(path, zone) for path, (zone, _) in self._failed.items() if path not in self._newest]
        for path, zone in failed:
            self.submit(path, zone)

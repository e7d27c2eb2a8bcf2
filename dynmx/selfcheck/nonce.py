"""The nonces of self-connect probes: issued by a round, recognised by the DNS engine when they arrive.

A round asks `issue(zone)` for a fresh name `<nonce>._selfcheck.<zone>`, sends a query for it
to the address its own name resolves to, and `wait`s. The engine calls `arrived(qname)` for
every query whose name holds a `_selfcheck` label, on whichever listener it came in. Only
issued names are stored, at most `limit` of them and none older than `max_age`, so a flood
of made-up `_selfcheck` queries cannot grow memory: `arrived` never adds an entry.

`arrived` is plain (not async): the engine calls it from its datagram callback. A waiter's
event is made lazily inside `wait`, on the waiter's running loop; an arrival on another
thread is handed to that loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.name

LABEL = "_selfcheck"
NONCE_BYTES = 10  # 80 random bits, 20 hex characters: one DNS label, already lower-case
DEFAULT_LIMIT = 1024
TOKEN_TRIES = 8
DEFAULT_MAX_AGE = 600.0  # seconds; far longer than any round waits


@dataclass(slots=True)
class _Entry:
    issued: float
    seen: bool = False
    event: asyncio.Event | None = None
    loop: asyncio.AbstractEventLoop | None = None


def normalise(qname: str | bytes) -> str:
    """Lower-case text without the trailing dot, the form names are compared in; bytes are wire format.

    The engine hands over the question's name as it found it on the wire; a name that is not
    valid wire format becomes "", which matches nothing.
    """
    if isinstance(qname, bytes):
        try:
            qname = dns.name.from_wire(qname, 0)[0].to_text()
        except dns.exception.DNSException:
            return ""
    return qname.lower().rstrip(".")


def has_label(qname: str | bytes) -> bool:
    """True when `qname` holds a `_selfcheck` label (any case): the engine's cue to call `arrived`."""
    return LABEL in normalise(qname).split(".")


class NonceBook:
    """Outstanding probe names; bounded in count (oldest dropped first) and in age."""

    def __init__(
        self,
        *,
        limit: int = DEFAULT_LIMIT,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
        token: Callable[[int], str] = secrets.token_hex,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit: expected at least 1, got {limit}")
        if not max_age > 0:
            raise ValueError(f"max_age: expected a positive number of seconds, got {max_age!r}")
        self._limit = limit
        self._max_age = max_age
        self._clock = clock
        self._token = token
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # oldest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def issue(self, zone: str) -> str:
        """A fresh absolute name `<nonce>._selfcheck.<zone>.`, lower-case, remembered as outstanding."""
        origin = normalise(zone)
        now = self._clock()
        with self._lock:
            self._expire(now)
            for _ in range(TOKEN_TRIES):  # a repeat of 80 random bits is next to impossible; never reuse one
                key = f"{self._token(NONCE_BYTES).lower()}.{LABEL}.{origin}".rstrip(".")
                if key not in self._entries:
                    break
            else:
                raise RuntimeError(f"token source repeated itself {TOKEN_TRIES} times")
            while len(self._entries) >= self._limit:
                self._entries.popitem(last=False)
            self._entries[key] = _Entry(issued=now)
        return key + "."

    def arrived(self, qname: str | bytes) -> bool:
        """Mark `qname` seen; True if it is one of ours and still outstanding (issued, not expired)."""
        key = normalise(qname)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            if self._clock() - entry.issued > self._max_age:
                del self._entries[key]
                return False
            entry.seen = True
            event, loop = entry.event, entry.loop
        if event is not None and loop is not None:
            _wake(event, loop)
        return True

    async def wait(self, qname: str, timeout: float) -> bool:
        """True once `qname` has arrived (at once if it already has); False after `timeout` seconds."""
        key = normalise(qname)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False
            if entry.seen:
                return True
            if entry.event is None:
                entry.event = asyncio.Event()
                entry.loop = asyncio.get_running_loop()
            event = entry.event
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return False
        return True

    def forget(self, qname: str) -> None:
        """Drop `qname`: its round is over, so a late arrival is no longer ours."""
        with self._lock:
            self._entries.pop(normalise(qname), None)

    def _expire(self, now: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now - oldest.issued <= self._max_age:
                return
            self._entries.popitem(last=False)


def _wake(event: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
    """Set `event` on its own loop: directly from that loop's thread, else through the loop."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        event.set()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(event.set)

"""Guessing slowed per source address: failed dyndns2 logins and the waits they earn.

Checked before a request reaches the zone data: after `FREE_FAILURES` wrong logins from
one address (an IPv6 client by its /64), each further one makes it wait twice as long
(1 s, 2 s, 4 s ... up to `MAX_WAIT`); while it waits, its requests are answered
`429 badauth` with `Retry-After` and their credentials are not even looked at, so a
right password guessed meanwhile is no use (logged `reason=waiting`). A right login from
the address forgets its failures, as does an hour without one. As fail2ban's jails, it
is per address, not per account: a stranger cannot lock a router out by guessing its
user's password from elsewhere.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from dynmx.control.dyndns2_parse import (
    DynHost,
    DynResult,
    _badauth,
    _credentials,
    _matches,
    _refused,
    _requested,
)
from dynmx.control.ratelog import REFUSALS, RefusalLog

FREE_FAILURES = 3  # wrong logins from one source before it has to wait
FIRST_WAIT = 1.0  # seconds, after the first failure past those; doubled by each further one
MAX_WAIT = 300.0  # seconds a source waits at most between two tries
FORGET_AFTER = 3600.0  # seconds without a failure after which a source starts afresh
MAX_SOURCES = 10_000  # sources remembered; the one that failed longest ago goes first
IPV6_PREFIX = 64  # an IPv6 client counts by its /64: it may hold every address in it


def source_key(client: str) -> str:
    """Who a failure is counted against: an IPv4 address (also when mapped into IPv6), an IPv6
    client's /64, else the text as it is."""
    try:
        ip = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_PREFIX}", strict=False))
    return str(ip)


@dataclass(slots=True)
class _Source:
    failures: int = 0
    last: float = 0.0  # when it last failed
    until: float = 0.0  # no login of it is looked at before this


@dataclass(frozen=True, slots=True)
class Login:
    """What `Logins.check` decided: `refusal` to send, or None when the credentials are right."""

    refusal: DynResult | None
    source: str = ""  # the address or prefix the failures are counted against
    user: str = ""  # the user name tried (shortened); never the password
    failures: int = 0  # wrong logins of the source so far
    wait: float = 0.0  # seconds the source now waits before its next login is looked at
    reason: str = ""  # of a refusal that is logged: "badauth" (a wrong login), "waiting" (not looked at)


class Logins:
    """Failed logins per source and the waits they earn; safe to call from many threads.
    Each refused login is logged through `refusals` (`reason=badauth` or `reason=waiting`)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        free: int = FREE_FAILURES,
        first: float = FIRST_WAIT,
        ceiling: float = MAX_WAIT,
        max_sources: int = MAX_SOURCES,
        refusals: RefusalLog = REFUSALS,
    ) -> None:
        self.clock = clock
        self.free = free
        self.first = first
        self.ceiling = ceiling
        self.max_sources = max_sources
        self.refusals = refusals
        self.counts: Counter[str] = Counter()  # ok, badauth, blocked, unauthenticated
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, client: str, authorization: str | None, hosts: list[DynHost], query: str = "") -> Login:
        """Look at a request's credentials unless its source must wait; count the outcome and
        log a refusal (`query` names the hosts in its line)."""
        login = self._check(client, authorization, hosts)
        if login.reason:
            extra = f" counted={login.source} failures={login.failures} wait={login.wait:.0f}"
            user = login.user.encode("utf-8", "replace")
            with self._lock:  # the refusal log is the loop's too: one thread of ours at a time
                _refused(self.refusals, login.reason, _requested(query), client, user, extra)
        return login

    def _check(self, client: str, authorization: str | None, hosts: list[DynHost]) -> Login:
        key = source_key(client)
        with self._lock:
            now = self.clock()
            entry = self._sources.get(key)
            if entry is not None and now - entry.last >= FORGET_AFTER:
                del self._sources[key]
                entry = None
            if entry is not None and now < entry.until:
                self.counts["blocked"] += 1
                retry = str(max(1, math.ceil(entry.until - now)))
                refusal = DynResult(429, "badauth", headers={"Retry-After": retry})
                credentials = _credentials(authorization)  # for the log line only
                shown = credentials[0][:64].decode("utf-8", "replace") if credentials else ""
                return Login(refusal, key, shown, entry.failures, entry.until - now, "waiting")
            credentials = _credentials(authorization)
            if credentials is None:  # asked without credentials (a client's first try): no guess
                self.counts["unauthenticated"] += 1
                return Login(_badauth(), key)
            user, password = credentials
            if any([_matches(host, user, password) for host in hosts]):  # all compared, always
                self.counts["ok"] += 1
                self._sources.pop(key, None)
                return Login(None, key)
            self.counts["badauth"] += 1
            if entry is None:
                entry = self._sources[key] = _Source()
                if len(self._sources) > self.max_sources:
                    self._sources.popitem(last=False)
            self._sources.move_to_end(key)
            entry.failures += 1
            entry.last = now
            wait = 0.0
            if entry.failures >= self.free:
                wait = min(self.first * 2 ** min(entry.failures - self.free, 30), self.ceiling)
                entry.until = now + wait
            shown = user[:64].decode("utf-8", "replace")
            return Login(_badauth(), key, shown, entry.failures, wait, "badauth")

    def snapshot(self) -> dict[str, int]:
        """The counts now: ok, badauth, blocked, unauthenticated."""
        with self._lock:
            return dict(self.counts)

    def waiting(self) -> int:
        """Sources that must wait now."""
        with self._lock:
            now = self.clock()
            return sum(1 for entry in self._sources.values() if now < entry.until)

"""Pushing our new public address to the registrar or parent: adapters, their state, the rules.

Rules of this module (sans-IO: `RegistrarScheduler` takes facts and a clock, returns decisions):

* Never send when the address the adapter last confirmed is the address now.
* At most one attempt per `min_interval` (300 s), successes and failures alike.
* A forced refresh every `max_interval` (25 days) even when nothing changed, so providers
  that expire idle hosts keep ours (ddclient's `max-interval`).
* STOP (badauth, nohost, REFUSED, 401, ...) holds the adapter until its config changes: the
  state keeps a fingerprint of the config, and a new fingerprint clears the stop.
* BACKOFF (911, dnserr, 5xx, timeouts) waits 30 min, doubling up to 24 h; a success resets it.
* A dyndns2 `nochg` when we believed the address changed is fine once; the second in a row is
  the abuse the dyndns2 spec warns of, and holds the adapter until the address changes.
  `nochg` on a forced refresh is expected and not counted.

Clocks are wall-clock seconds (`time.time()`): the state outlives the process.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields, replace
from pathlib import Path
from typing import Protocol

import dns.exception
import dns.name
import httpx

from dynmx import __version__
from dynmx.errors import ConfigError

log = logging.getLogger("dynmx.selfcheck.registrar")

FIELDS = "adapter=%s kind=%s hostname=%s family=%d address=%s"  # the log fields of every push line
FINGERPRINT_ROUNDS = 20_000  # slow hash: the state file must not make a weak password cheap to guess


class Outcome(enum.Enum):
    """What an adapter's attempt means for the next one."""

    SUCCESS = "success"  # the peer holds the address now
    STOP = "stop"  # our config is wrong or we are blocked: stop until the config changes
    BACKOFF = "backoff"  # the peer is in trouble: wait 30 min, growing
    RETRY = "retry"  # transient on our side (network down): try again after min_interval


@dataclass(frozen=True, slots=True)
class PushResult:
    """An adapter's verdict on one push; `message` is for operators and holds no secrets."""

    outcome: Outcome
    message: str
    nochg: bool = False  # dyndns2 `nochg`: the peer already had this address


class Adapter(Protocol):
    """One way to tell a registrar or parent our address (dyndns2, rfc2136, webhook)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def fingerprint(self) -> str:
        """Changes whenever the config changes (secrets included, slowly hashed)."""
        ...

    async def push(self, hostname: str, family: int, address: str, previous: str | None) -> PushResult:
        """Send one update; map every failure to a PushResult, never raise for the peer's faults."""
        ...


def fingerprint_of(kind: str, public: Sequence[object], secret: str) -> str:
    """A config fingerprint that changes with any field, without storing a fast hash of `secret`."""
    salt = hashlib.sha256(repr((kind, tuple(public))).encode()).digest()
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8", "surrogatepass"), salt, FINGERPRINT_ROUNDS)
    return digest.hex()[:32]


def user_agent(contact: str = "") -> str:
    """`dynmx/0.1.0 contact`: dyndns2 providers block clients that do not name themselves."""
    return f"dynmx/{__version__} {contact}".strip()


def redact(text: str, *secrets: str) -> str:
    """`text` with every non-empty secret replaced, for messages built from a peer's answer."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def check_settings(name: str, url: str | None, timeout: float) -> None:
    """The checks every adapter's settings share; messages name the key (`registrar.NAME.url`)."""
    if not name or len(name) > 63 or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(f"registrar name {name!r}: expected one label of letters, digits, '-' or '_'")
    if not 0 < timeout <= 300:
        raise ConfigError(f"registrar.{name}.timeout: expected 0 < seconds <= 300, got {timeout}")
    if url is None:
        return
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ConfigError(f"registrar.{name}.url: not a URL ({error})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"registrar.{name}.url: expected an http:// or https:// URL with a host")
    if parsed.userinfo:
        raise ConfigError(
            f"registrar.{name}.url: credentials belong in username/password or token, not the URL"
        )
    if parsed.scheme == "http" and parsed.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("event=registrar-insecure adapter=%s reason=%r", name, "credentials sent over plain http")


def http_client(timeout: float, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    """A client with explicit timeouts that never follows redirects (they would carry credentials)."""
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout), follow_redirects=False)


async def read_bounded(response: httpx.Response, limit: int = 64 * 1024) -> str:
    """At most `limit` bytes of a streamed body, as text: a misdirected URL may stream forever."""
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode("utf-8", "replace")


def excerpt(text: str, limit: int = 80) -> str:
    """One line of at most `limit` characters of a peer's answer, for a result message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class AdapterState:
    """What survives a restart about one adapter pushing one hostname and address family."""

    adapter: str
    hostname: str
    family: int
    fingerprint: str = ""
    last_address: str | None = None  # the address the peer last confirmed
    last_success: float | None = None
    last_attempt: float | None = None
    last_result: str = ""
    stopped_reason: str | None = None
    stopped_address: str | None = None  # set: the stop lasts until the address changes, not the config
    backoff_until: float | None = None
    backoff_seconds: float = 0.0
    nochg_count: int = 0

    def reconfigured(self, fingerprint: str) -> AdapterState:
        """A new config: forget stops, back-off and what the old peer held; keep the rate limit."""
        return AdapterState(
            self.adapter, self.hostname, self.family, fingerprint, last_attempt=self.last_attempt
        )


@dataclass(frozen=True, slots=True)
class RegistrarScheduler:
    """The sending rules as two pure functions: `due` before a push, `record` after it."""

    min_interval: float = 300.0
    max_interval: float = 25 * 86400.0
    backoff_initial: float = 1800.0
    backoff_max: float = 86400.0

    def due(self, state: AdapterState, address: str, now: float) -> tuple[bool, str]:
        """Whether to push `address` now, and why (or why not) in a few words."""
        if state.stopped_reason is not None:
            if state.stopped_address is None:
                return False, f"stopped until the config changes: {state.stopped_reason}"
            if state.stopped_address == address:
                return False, f"stopped until the address changes: {state.stopped_reason}"
        refresh = False
        if state.last_address == address:
            if state.last_success is not None and now - state.last_success < self.max_interval:
                return False, "unchanged"
            refresh = True
        if state.backoff_until is not None and now < state.backoff_until:
            return False, f"backing off for {state.backoff_until - now:.0f} s more"
        if state.last_attempt is not None and now - state.last_attempt < self.min_interval:
            return False, f"rate limited: last attempt {now - state.last_attempt:.0f} s ago"
        return True, "forced refresh" if refresh else "address changed"

    def record(self, state: AdapterState, address: str, result: PushResult, now: float) -> AdapterState:
        """The state after pushing `address` at `now` gave `result`."""
        base = replace(
            state,
            last_attempt=now,
            last_result=f"{result.outcome.value}: {result.message}",
            stopped_reason=None,
            stopped_address=None,
        )
        if result.outcome is Outcome.SUCCESS:
            nochg = 0
            if result.nochg:  # a nochg on a forced refresh (same address) is expected, not counted
                nochg = state.nochg_count + (state.last_address != address)
            stopped = None
            if nochg >= 2:
                stopped = (
                    "repeated nochg: the peer already had every address we sent (dyndns2 calls it abuse)"
                )
            return replace(
                base,
                last_address=address,
                last_success=now,
                backoff_until=None,
                backoff_seconds=0.0,
                nochg_count=nochg,
                stopped_reason=stopped,
                stopped_address=address if stopped else None,
            )
        if result.outcome is Outcome.STOP:
            return replace(base, stopped_reason=result.message, backoff_until=None, backoff_seconds=0.0)
        if result.outcome is Outcome.BACKOFF:
            step = self.backoff_initial if state.backoff_seconds <= 0 else state.backoff_seconds * 2
            step = min(max(step, self.backoff_initial), self.backoff_max)
            return replace(base, backoff_seconds=step, backoff_until=now + step)
        return base


COLUMNS = [f.name for f in fields(AdapterState)]
SCHEMA = """
CREATE TABLE IF NOT EXISTS registrar_state (
    adapter TEXT NOT NULL,
    hostname TEXT NOT NULL,
    family INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    last_address TEXT,
    last_success REAL,
    last_attempt REAL,
    last_result TEXT NOT NULL,
    stopped_reason TEXT,
    stopped_address TEXT,
    backoff_until REAL,
    backoff_seconds REAL NOT NULL,
    nochg_count INTEGER NOT NULL,
    PRIMARY KEY (adapter, hostname, family)
);
"""


class AdapterStateStore:
    """Adapter state in SQLite (WAL); one connection, used from the one thread that made it."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)  # autocommit: one statement, one transaction
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def load(self, adapter: str, hostname: str, family: int) -> AdapterState:
        """The stored state, or a fresh one for an adapter never used with this hostname."""
        row = self.db.execute(
            f"SELECT {', '.join(COLUMNS)} FROM registrar_state"
            " WHERE adapter = ? AND hostname = ? AND family = ?",
            (adapter, hostname, family),
        ).fetchone()
        return AdapterState(*row) if row else AdapterState(adapter, hostname, family)

    def save(self, state: AdapterState) -> None:
        marks = ", ".join("?" * len(COLUMNS))
        self.db.execute(
            f"INSERT OR REPLACE INTO registrar_state ({', '.join(COLUMNS)}) VALUES ({marks})", astuple(state)
        )

    def all(self) -> list[AdapterState]:
        """Every stored state, for /status."""
        rows = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM registrar_state ORDER BY 1, 2, 3")
        return [AdapterState(*row) for row in rows]

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True, slots=True)
class PushReport:
    """What `push_all` did for one adapter: sent or not, why, and the state it saved."""

    adapter: str
    sent: bool
    reason: str
    state: AdapterState
    result: PushResult | None = None


async def push_all(
    adapters: Sequence[Adapter],
    store: AdapterStateStore,
    hostname: str,
    family: int,
    address: str,
    previous: str | None,
    now: float,
    scheduler: RegistrarScheduler | None = None,
) -> list[PushReport]:
    """Offer `address` to every adapter; each pushes only when the rules say so.

    Call it on every self-check round, not only on a change: retries, back-off ends and
    forced refreshes happen here. `previous` is the old value in our zone; an adapter is
    given the address it last confirmed instead when it knows one.
    """
    rules = scheduler or RegistrarScheduler()

    async def one(adapter: Adapter) -> PushReport:
        state = store.load(adapter.name, hostname, family)
        fingerprint = adapter.fingerprint()
        if state.fingerprint != fingerprint:
            state = state.reconfigured(fingerprint)
            store.save(state)
        send, reason = rules.due(state, address, now)
        where = (adapter.name, adapter.kind, hostname, family, address)
        if not send:
            log.debug("event=registrar-skip " + FIELDS + " why=%r", *where, reason)
            return PushReport(adapter.name, False, reason, state)
        known = state.last_address if state.last_address is not None else previous
        try:
            result = await adapter.push(hostname, family, address, known)
        except Exception as error:  # an adapter bug must not stop the others or the self-check loop
            bug = type(error).__name__
            log.error("event=registrar-adapter-bug " + FIELDS + " error=%s", *where, bug, exc_info=True)
            result = PushResult(Outcome.BACKOFF, f"internal error in the {adapter.kind} adapter: {bug}")
        state = rules.record(state, address, result, now)
        store.save(state)
        level = logging.INFO if result.outcome is Outcome.SUCCESS else logging.WARNING
        text = "event=registrar-push " + FIELDS + " why=%r outcome=%s message=%r"
        log.log(level, text, *where, reason, result.outcome.value, result.message)
        return PushReport(adapter.name, True, reason, state, result)

    return list(await asyncio.gather(*(one(adapter) for adapter in adapters)))


def glue_warning(name: str, zone: str, ns_names: Sequence[str]) -> str | None:
    """A warning when `name` is a name server of `zone` inside it: the parent holds glue for it."""
    try:
        host = dns.name.from_text(name).canonicalize()
        apex = dns.name.from_text(zone).canonicalize()
        servers = {dns.name.from_text(ns).canonicalize() for ns in ns_names}
    except dns.exception.DNSException:
        return None
    if host not in servers or not host.is_subdomain(apex):
        return None
    parent = apex.parent().to_text() if apex != dns.name.root else "the root"
    return (
        f"{host} is a name server of {apex} inside that zone, so the parent ({parent}) holds glue "
        f"A/AAAA records for it; our own zone changes and dyndns2 updates do not change glue. "
        f"At most registrars glue (a 'host object') changes only through their API or web panel: "
        f"configure a webhook adapter that calls it, or the delegation of {apex} breaks "
        "when the address changes."
    )

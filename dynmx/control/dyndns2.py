"""The dyndns2 update endpoint (`GET /nic/update?hostname=...&myip=...`) as a plain function.

Sans-IO: the caller parses the HTTP request line and headers, calls `handle` with the query
string, the `Authorization` header and the peer address, sends back `DynResult` (status,
headers, body) and commits `DynResult.changes` through the one writer (`to_changes` builds
the record changes). Answers follow the dyndns2 return codes that ddclient and inadyn parse:

    good IP     the address changed                   nochg IP    it already was IP
    badauth     no or wrong credentials (HTTP 401)    nohost      not a host of this user
    notfqdn     not a fully qualified name            numhost     more than 20 names, or a
    abuse       changed again within min_interval                 round robin (2+ addresses)
    dnserr      myip is not unicast addresses (HTTP 400)          911  our own fault

Host-specific codes come one line per hostname in the order asked (dyn.com's rule, which
ddclient reads by position); account and request codes (badauth, notfqdn with no hostname
at all, numhost for too many, dnserr, 911) come once. `myip` may name one IPv4 and one
IPv6 address, comma-separated (`myip=198.51.100.9,2001:db8::9`, as ddclient 3.11+ and
routers send a dual-stack host), and `myipv6` one more IPv6 address (inadyn, routers): each
host's line then carries both (`good 198.51.100.9 2001:db8::9`) and says `good` when either
record changed, `nochg` when neither did; a host is refused or changed as a whole. With no
address given, the client's own is used. An invalid address, or two of one family, is a
malformed request: 400 with `dnserr` and nothing changed. `offline`, `wildcard`, `mx`,
`backmx` and `system` are ignored. The password never enters a repr, a body, a log line or
an exception message.

`min_interval` is per host and address family: an A change followed by an AAAA change of
the same host is not `abuse` (they come from two runs of ddclient 3.10, one per family).
`nochg` costs nothing (no write, no serial) and neither starts nor extends the interval; a
client that lost its cache and repeats its address is not locked out.

Every refusal is logged through the process's `RefusalLog` (rate-limited and counted as
`event=dyndns2-refused`): `reason=... host=... source=... user=...`, never the password.

Guessing is slowed per source address (`Logins`, checked before a request reaches the
zone data): after `FREE_FAILURES` wrong logins from one address (an IPv6 client by its
/64), each further one makes it wait twice as long (1 s, 2 s, 4 s ... up to
`MAX_WAIT`); while it waits, its requests are answered `429 badauth` with `Retry-After`
and their credentials are not even looked at, so a right password guessed meanwhile is
no use (logged `reason=waiting`). A right login from the address forgets its failures, as
does an hour without one. As fail2ban's jails, it is per address, not per account: a
stranger cannot lock a router out by guessing its user's password from elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import math
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qs

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynmx.control.ratelog import REFUSALS, RefusalLog
from dynmx.control.update import Change, Op

log = logging.getLogger(__name__)

A = int(dns.rdatatype.A)
AAAA = int(dns.rdatatype.AAAA)
MAX_HOSTS = 20  # dyndns2: more names than this in one request answers `numhost`
MAX_FIELDS = 64  # query parameters parsed before the request is called malformed
WWW_AUTHENTICATE = 'Basic realm="dynmx", charset="UTF-8"'
FREE_FAILURES = 3  # wrong logins from one source before it has to wait
FIRST_WAIT = 1.0  # seconds, after the first failure past those; doubled by each further one
MAX_WAIT = 300.0  # seconds a source waits at most between two tries
FORGET_AFTER = 3600.0  # seconds without a failure after which a source starts afresh
MAX_SOURCES = 10_000  # sources remembered; the one that failed longest ago goes first
REFUSED = "dyndns2-refused"  # the event (and the refusal kind counted) of every refusal's line
IPV6_PREFIX = 64  # an IPv6 client counts by its /64: it may hold every address in it


@dataclass(frozen=True, slots=True)
class DynHost:
    """A hostname that `username` may point at its own address."""

    hostname: str  # absolute, lower-case, e.g. "home.example.test."
    username: str
    password: str = field(repr=False)


class Swap(NamedTuple):
    """One record of a host replaced: `old` (None when there was none) by `new`."""

    new: str
    old: str | None

    @property
    def rdtype(self) -> int:
        return rdtype_of(self.new)


@dataclass
class DynState:
    """When each host last changed, per address family, kept by the caller between requests."""

    last_update: dict[tuple[str, int], float] = field(default_factory=dict)  # (hostname, A|AAAA) -> time

    def forget(self, hostname: str, swaps: Iterable[Swap]) -> None:
        """Drop the times `swaps` set (their commit failed: the client may try again at once)."""
        for swap in swaps:
            self.last_update.pop((hostname, swap.rdtype), None)


@dataclass(frozen=True, slots=True)
class DynResult:
    """What to send back, and the address changes the caller commits."""

    status: int  # 200 protocol answer, 401 badauth, 400 malformed request
    body: str  # answer lines joined by "\n"
    changes: dict[str, tuple[Swap, ...]] = field(default_factory=dict)  # host -> its A and/or AAAA swap
    headers: dict[str, str] = field(default_factory=dict)  # WWW-Authenticate on 401


def rdtype_of(address: str) -> int:
    """A for an IPv4 address, AAAA for an IPv6 one."""
    return A if ipaddress.ip_address(address).version == 4 else AAAA


def to_changes(hostname: str, swaps: Iterable[Swap], ttl: int) -> list[Change]:
    """The record changes that replace each swap's `old` (if any) by its `new` at `hostname`:
    one transaction, so a dual-stack host's A and AAAA change under one serial."""
    name = dns.name.from_text(hostname)
    changes = []
    for new, old in swaps:
        rdtype = dns.rdatatype.RdataType.make(rdtype_of(new))
        if old is not None:
            changes.append(Change(Op.DELETE, name, ttl, dns.rdata.from_text(dns.rdataclass.IN, rdtype, old)))
        changes.append(Change(Op.ADD, name, ttl, dns.rdata.from_text(dns.rdataclass.IN, rdtype, new)))
    return changes


def _address(text: str) -> str | None:
    """The canonical text of one unicast address (IPv4-mapped IPv6 as IPv4), else None."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id is not None:
            return None
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return None
    return str(ip)


def _credentials(authorization: str | None) -> tuple[bytes, bytes] | None:
    """(username, password) from `Basic base64(user:password)`, else None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        return None
    return user.encode(), password.encode()


def _matches(host: DynHost, user: bytes, password: bytes) -> bool:
    """Both compared in constant time, always both (no early exit on the user name)."""
    user_ok = hmac.compare_digest(user, host.username.encode("utf-8", "surrogatepass"))
    password_ok = hmac.compare_digest(password, host.password.encode("utf-8", "surrogatepass"))
    return user_ok and password_ok


def _hostname(text: str) -> str | None:
    """The absolute lower-case form of a fully qualified name, else None (`notfqdn`)."""
    text = text.strip().lower()
    if "." not in text.rstrip("."):
        return None
    try:
        name = dns.name.from_text(text)
    except (dns.exception.DNSException, ValueError):
        return None
    return str(name.canonicalize()) if len(name.labels) > 2 else None


def _badauth() -> DynResult:
    return DynResult(401, "badauth", headers={"WWW-Authenticate": WWW_AUTHENTICATE})


def handle(
    query: str,
    authorization: str | None,
    client_ip: str,
    hosts: list[DynHost],
    current: Callable[[str, int], list[str]],
    state: DynState,
    now: float,
    min_interval: float = 60.0,
    refusals: RefusalLog = REFUSALS,
) -> DynResult:
    """Answer one dyndns2 update request, logging each refusal through `refusals`.

    `query` is the part after "?"; `authorization` the raw header or None; `client_ip`
    the peer address, used when the request names no address; `current(hostname, rdtype)`
    the addresses now in the zone; `now` a monotonic clock. Records the time of every
    `good` per host and family in `state.last_update`; a caller whose commit then fails
    answers 911 and calls `state.forget`.
    """
    try:
        params = parse_qs(query.removeprefix("?"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        _refused(refusals, "dnserr", "-", client_ip)
        return DynResult(400, "dnserr")
    requested = [part for value in params.get("hostname", []) for part in value.split(",") if part.strip()]
    shown = _printable(",".join(requested))
    credentials = _credentials(authorization)
    if credentials is None:
        return _badauth()  # a client's first try, before it sends credentials: no refusal
    user, password = credentials
    account = [host for host in hosts if _matches(host, user, password)]
    if not account:
        _refused(refusals, "badauth", shown, client_ip, user)
        return _badauth()

    addresses = _wanted(params)
    if addresses is None:
        _refused(refusals, "dnserr", shown, client_ip, user)
        return DynResult(400, "dnserr")
    if not addresses:
        own = _address(client_ip)
        if own is None:
            _refused(refusals, "911", shown, client_ip, user)
            return DynResult(200, "911")
        addresses = [own]

    if not requested:
        _refused(refusals, "notfqdn", "-", client_ip, user)
        return DynResult(200, "notfqdn")
    if len(requested) > MAX_HOSTS:
        _refused(refusals, "numhost", shown, client_ip, user)
        return DynResult(200, "numhost")

    mine = {_hostname(host.hostname) or host.hostname for host in account}
    lines: list[str] = []
    changes: dict[str, tuple[Swap, ...]] = {}
    for text in requested:
        hostname = _hostname(text)
        if hostname is None:
            line = "notfqdn"
        elif hostname not in mine:
            line = "nohost"
        elif hostname in changes:  # named twice in one request: the first answer stands
            line = "nochg " + " ".join(addresses)
        else:
            line, swaps = _one(hostname, addresses, current, state, now, min_interval)
            if swaps:
                changes[hostname] = swaps
        if line in REFUSAL_LINES:
            _refused(refusals, line, _printable(text), client_ip, user)
        lines.append(line)
    return DynResult(200, "\n".join(lines), changes)


REFUSAL_LINES = frozenset({"notfqdn", "nohost", "numhost", "abuse"})  # a host's own refusals


def _wanted(params: dict[str, list[str]]) -> list[str] | None:
    """The addresses a request names, A's first: `myip` (comma-separated, at most one per
    family) and `myipv6` (IPv6 only); [] when it names none, None when one is malformed."""
    found: dict[int, str] = {}
    for key, only in (("myip", None), ("myipv6", AAAA)):
        for value in params.get(key, []):
            for part in value.split(","):
                if not part.strip():
                    continue
                address = _address(part)
                if address is None:
                    return None
                rdtype = rdtype_of(address)
                if (only is not None and rdtype != only) or found.setdefault(rdtype, address) != address:
                    return None
    return [found[rdtype] for rdtype in (A, AAAA) if rdtype in found]


def _one(
    hostname: str,
    addresses: list[str],
    current: Callable[[str, int], list[str]],
    state: DynState,
    now: float,
    min_interval: float,
) -> tuple[str, tuple[Swap, ...]]:
    """One host's answer line and the swaps to commit; all of its families or none."""
    swaps: list[Swap] = []
    for address in addresses:
        rdtype = rdtype_of(address)
        present = [_address(text) or text for text in current(hostname, rdtype)]
        if len(present) > 1:
            return "numhost", ()  # a round robin is not a dynamic host
        old = present[0] if present else None
        if old == address:
            continue  # nochg: neither starts nor extends the interval
        last = state.last_update.get((hostname, rdtype))
        if last is not None and now - last < min_interval:
            return "abuse", ()
        swaps.append(Swap(address, old))
    for swap in swaps:
        state.last_update[(hostname, swap.rdtype)] = now
    return ("good " if swaps else "nochg ") + " ".join(addresses), tuple(swaps)


def _requested(query: str) -> str:
    """The hostnames a request asks for, fit for a log line ("-" when none or unreadable)."""
    try:
        params = parse_qs(query.removeprefix("?"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        return "-"
    return _printable(",".join(params.get("hostname", [])))


_UNSAFE = re.compile(r"[^A-Za-z0-9._*,:-]")
_SHOWN = 120  # characters of a requested name kept in a log line


def _printable(text: str) -> str:
    """A client's text fit for a key=value log line: nothing but name characters, bounded."""
    text = _UNSAFE.sub("?", text)
    return (text[:_SHOWN] + "...") if len(text) > _SHOWN else (text or "-")


def _refused(
    refusals: RefusalLog, reason: str, host: str, source: str, user: bytes = b"", extra: str = ""
) -> None:
    """Log (rate-limited) and count one refusal; the user name shortened, never the password."""
    shown = user[:64].decode("utf-8", "replace")
    refusals.refused(
        log, logging.WARNING, REFUSED, "reason=%s host=%s source=%s user=%r%s",
        reason, host, _printable(source), shown, extra,
    )  # fmt: skip


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

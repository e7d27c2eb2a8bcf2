"""The dyndns2 update endpoint (`GET /nic/update?hostname=...&myip=...`) as a plain function.

Sans-IO: the caller parses the HTTP request line and headers, calls `handle` with the query
string, the `Authorization` header and the peer address, sends back `DynResult` (status,
headers, body) and commits `DynResult.changes` through the one writer (`to_changes` builds
the record changes). Answers follow the dyndns2 return codes that ddclient and inadyn parse:

    good IP     the address changed                   nochg IP    it already was IP
    badauth     no or wrong credentials (HTTP 401)    nohost      not a host of this user
    notfqdn     not a fully qualified name            numhost     more than 20 names, or a
    abuse       changed again within min_interval                 round robin (2+ addresses)
    dnserr      myip is not one unicast address (HTTP 400)        911  our own fault

Host-specific codes come one line per hostname in the order asked; account and request
codes (badauth, notfqdn with no hostname at all, numhost for too many, dnserr, 911) come
once. An invalid `myip` is a malformed request: 400 with `dnserr` and nothing changed (we
do not guess and fall back to the client address; a dual-stack `myip=v4,v6` is refused the
same way). `offline`, `wildcard`, `mx`, `backmx` and `system` are ignored. The password
never enters a repr, a body or an exception message.

Guessing is slowed per source address (`Logins`, checked before a request reaches the
zone data): after `FREE_FAILURES` wrong logins from one address (an IPv6 client by its
/64), each further one makes it wait twice as long (1 s, 2 s, 4 s ... up to
`MAX_WAIT`); while it waits, its requests are answered `429 badauth` with `Retry-After`
and their credentials are not even looked at, so a right password guessed meanwhile is
no use. A right login from the address forgets its failures, as does an hour without
one. Failed logins are logged, at most `LOG_PER_WINDOW` lines a minute (then a count of
those left out). As fail2ban's jails, it is per address, not per account: a stranger
cannot lock a router out by guessing its user's password from elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynmx.control.update import Change, Op

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
LOG_PER_WINDOW = 10  # failed-login lines per window
LOG_WINDOW = 60.0  # seconds
IPV6_PREFIX = 64  # an IPv6 client counts by its /64: it may hold every address in it


@dataclass(frozen=True, slots=True)
class DynHost:
    """A hostname that `username` may point at its own address."""

    hostname: str  # absolute, lower-case, e.g. "home.example.test."
    username: str
    password: str = field(repr=False)


@dataclass
class DynState:
    """Per-host runtime state kept by the caller between requests."""

    last_update: dict[str, float] = field(default_factory=dict)  # hostname -> time of last `good`


@dataclass(frozen=True, slots=True)
class DynResult:
    """What to send back, and the address changes the caller commits."""

    status: int  # 200 protocol answer, 401 badauth, 400 malformed request
    body: str  # answer lines joined by "\n"
    changes: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # host -> (new, old)
    headers: dict[str, str] = field(default_factory=dict)  # WWW-Authenticate on 401


def rdtype_of(address: str) -> int:
    """A for an IPv4 address, AAAA for an IPv6 one."""
    return A if ipaddress.ip_address(address).version == 4 else AAAA


def to_changes(hostname: str, new: str, old: str | None, ttl: int) -> list[Change]:
    """The record changes that replace `old` (if any) by `new` at `hostname`."""
    name = dns.name.from_text(hostname)
    rdtype = dns.rdatatype.RdataType.make(rdtype_of(new))
    changes = []
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
) -> DynResult:
    """Answer one dyndns2 update request.

    `query` is the part after "?"; `authorization` the raw header or None; `client_ip`
    the peer address, used when `myip` is absent or empty; `current(hostname, rdtype)`
    the addresses now in the zone; `now` a monotonic clock. Records the time of every
    `good` in `state.last_update`; a caller whose commit then fails answers 911 and
    should drop those entries again.
    """
    try:
        params = parse_qs(query.removeprefix("?"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        return DynResult(400, "dnserr")
    credentials = _credentials(authorization)
    if credentials is None:
        return _badauth()
    user, password = credentials
    account = [host for host in hosts if _matches(host, user, password)]
    if not account:
        return _badauth()

    myip = ",".join(params.get("myip", [])).strip()
    address = _address(myip) if myip else _address(client_ip)
    if address is None:
        return DynResult(400, "dnserr") if myip else DynResult(200, "911")
    rdtype = rdtype_of(address)

    requested = [part for value in params.get("hostname", []) for part in value.split(",") if part.strip()]
    if not requested:
        return DynResult(200, "notfqdn")
    if len(requested) > MAX_HOSTS:
        return DynResult(200, "numhost")

    mine = {_hostname(host.hostname) or host.hostname for host in account}
    lines: list[str] = []
    changes: dict[str, tuple[str, str | None]] = {}
    for text in requested:
        hostname = _hostname(text)
        if hostname is None:
            lines.append("notfqdn")
        elif hostname not in mine:
            lines.append("nohost")
        elif hostname in changes:  # named twice in one request: the first answer stands
            lines.append(f"nochg {address}")
        else:
            lines.append(_one(hostname, address, rdtype, current, state, now, min_interval, changes))
    return DynResult(200, "\n".join(lines), changes)


def _one(
    hostname: str,
    address: str,
    rdtype: int,
    current: Callable[[str, int], list[str]],
    state: DynState,
    now: float,
    min_interval: float,
    changes: dict[str, tuple[str, str | None]],
) -> str:
    present = [_address(text) or text for text in current(hostname, rdtype)]
    if len(present) > 1:
        return "numhost"  # a round robin is not a dynamic host
    old = present[0] if present else None
    if old == address:
        return f"nochg {address}"
    last = state.last_update.get(hostname)
    if last is not None and now - last < min_interval:
        return "abuse"
    state.last_update[hostname] = now
    changes[hostname] = (address, old)
    return f"good {address}"


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
    user: str = ""  # the user name tried (shortened), for the log line; never the password
    failures: int = 0  # wrong logins of the source so far
    wait: float = 0.0  # seconds the source now waits before its next login is looked at
    log: bool = False  # write this failure's line (within the log's rate)
    suppressed: int = 0  # failure lines left out since the last one written


class Logins:
    """Failed logins per source and the waits they earn; safe to call from many threads."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        free: int = FREE_FAILURES,
        first: float = FIRST_WAIT,
        ceiling: float = MAX_WAIT,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        self.clock = clock
        self.free = free
        self.first = first
        self.ceiling = ceiling
        self.max_sources = max_sources
        self.counts: Counter[str] = Counter()  # ok, badauth, blocked, unauthenticated
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._lock = threading.Lock()
        self._window = -math.inf
        self._logged = 0
        self._suppressed = 0

    def check(self, client: str, authorization: str | None, hosts: list[DynHost]) -> Login:
        """Look at a request's credentials unless its source must wait; count the outcome."""
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
                return Login(refusal, key, failures=entry.failures, wait=entry.until - now)
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
            log, suppressed = self._admit_line(now)
            shown = user[:64].decode("utf-8", "replace")
            return Login(_badauth(), key, shown, entry.failures, wait, log, suppressed)

    def _admit_line(self, now: float) -> tuple[bool, int]:
        if now - self._window >= LOG_WINDOW:
            self._window, self._logged = now, 0
        if self._logged < LOG_PER_WINDOW:
            self._logged += 1
            suppressed, self._suppressed = self._suppressed, 0
            return True, suppressed
        self._suppressed += 1
        return False, 0

    def snapshot(self) -> dict[str, int]:
        """The counts now: ok, badauth, blocked, unauthenticated."""
        with self._lock:
            return dict(self.counts)

    def waiting(self) -> int:
        """Sources that must wait now."""
        with self._lock:
            now = self.clock()
            return sum(1 for entry in self._sources.values() if now < entry.until)

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

Guessing is slowed per source address (`Logins`, in `dyndns2_logins`, checked before a
request reaches the zone data); the request's parts are read in `dyndns2_parse`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynmx.control.dyndns2_logins import Logins
from dynmx.control.dyndns2_parse import (
    MAX_FIELDS,
    MAX_HOSTS,
    DynHost,
    DynResult,
    Swap,
    _address,
    _badauth,
    _credentials,
    _hostname,
    _matches,
    _printable,
    _refused,
    _wanted,
    rdtype_of,
)
from dynmx.control.ratelog import REFUSALS, RefusalLog
from dynmx.control.update import Change, Op

# The endpoint as the app knows it: these names are its, wherever they are defined.
__all__ = ["DynHost", "DynResult", "DynState", "Logins", "handle", "to_changes"]


@dataclass
class DynState:
    """When each host last changed, per address family, kept by the caller between requests."""

    last_update: dict[tuple[str, int], float] = field(default_factory=dict)  # (hostname, A|AAAA) -> time

    def forget(self, hostname: str, swaps: Iterable[Swap]) -> None:
        """Drop the times `swaps` set (their commit failed: the client may try again at once)."""
        for swap in swaps:
            self.last_update.pop((hostname, swap.rdtype), None)


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

"""The dyndns2 request read and checked: Basic credentials, hostnames, addresses, the answer.

Sans-IO pieces shared by the endpoint (`dyndns2.handle`) and the login guard
(`dyndns2_logins.Logins`): what a request names, the result types, and the one refusal
log line. Every refusal is logged through the process's `RefusalLog` (rate-limited and
counted as `event=dyndns2-refused`): `reason=... host=... source=... user=...`, never the
password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import parse_qs

import dns.exception
import dns.name
import dns.rdatatype

from dynmx.control.ratelog import RefusalLog

log = logging.getLogger("dynmx.control.dyndns2")  # the endpoint's one logger, whichever part logs

A = int(dns.rdatatype.A)
AAAA = int(dns.rdatatype.AAAA)
MAX_HOSTS = 20  # dyndns2: more names than this in one request answers `numhost`
MAX_FIELDS = 64  # query parameters parsed before the request is called malformed
WWW_AUTHENTICATE = 'Basic realm="dynmx", charset="UTF-8"'
REFUSED = "dyndns2-refused"  # the event (and the refusal kind counted) of every refusal's line


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

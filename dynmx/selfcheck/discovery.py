"""Public-IP discovery: ask several independent sources what our address is, and believe a quorum.

A lost self-probe is only a signal (hairpin NAT drops it too), so before anything is changed
the address is found out independently, per family: from the kernel's choice of source
address (`InterfaceSource`), from HTTP echo services (`HttpEchoSource`) and from a DNS
"whoami" name asked of a resolver (`DnsWhoamiSource`). Only global addresses count, so a
box behind NAT that reports 192.168.1.10 is not believed; tests allow 127.0.0.0/8 by name.

Every source runs concurrently under the one `timeout`; whatever a source does (junk body,
non-2xx, silence, an address of the wrong family) becomes a line in `Discovery.by_source`,
never an exception. An address is agreed when at least `quorum` sources give it and they are
a majority of the sources that gave any usable address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import dns.exception
import dns.rcode
import httpx

from dynmx.selfcheck.probe import FAMILY_TYPES, answer_records, ask, where

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_BODY = 4096  # an echo service answers with one address; more than this is junk
JUNK_SHOWN = 40  # characters of a junk answer kept for the report
DEFAULT_ROUTE_TARGETS = {4: "198.41.0.4", 6: "2001:503:ba3e::2:30"}  # a.root-servers.net
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_DOCUMENTATION = tuple(
    ipaddress.ip_network(net)
    for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)
_WILDCARD = {4: "0.0.0.0", 6: "::"}  # bind our own HTTP client to one family
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NOT_PUBLIC: tuple[tuple[str, Callable[[Address], bool]], ...] = (  # first match names the rejection
    ("IPv4-mapped", lambda ip: isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None),
    ("unspecified", lambda ip: ip.is_unspecified),
    ("loopback", lambda ip: ip.is_loopback),
    ("link-local", lambda ip: ip.is_link_local),
    ("multicast", lambda ip: ip.is_multicast),
    ("shared address space (CGNAT)", lambda ip: ip in _CGNAT),
    ("documentation", lambda ip: any(ip.version == net.version and ip in net for net in _DOCUMENTATION)),
    ("reserved", lambda ip: ip.is_reserved),
    ("private", lambda ip: ip.is_private),
    ("not global", lambda ip: not ip.is_global),  # whatever else a Python version knows of
)


class _Fault(Exception):
    """A source's answer could not be used; the text is what the report shows."""


@dataclass(frozen=True, slots=True)
class HttpEchoSource:
    """An HTTP service that echoes the caller's address: the whole body (text) or a JSON field."""

    url: str
    format: Literal["text", "json"] = "text"
    field: str = ""  # json: dotted path to the address, e.g. "ip" or "client.address"
    family: int = 0  # 4 or 6 to use only for that family; 0 for both

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"url: expected an http:// or https:// URL, got {safe_url(self.url)!r}")
        if self.format not in ("text", "json"):
            raise ValueError(f"format: expected 'text' or 'json', got {self.format!r}")
        if self.format == "json" and not self.field:
            raise ValueError("field: a json source needs the field holding the address")
        _check_family(self.family, allow_both=True)

    @property
    def label(self) -> str:
        return f"http {safe_url(self.url)}"

    def serves(self, family: int) -> bool:
        return self.family in (0, family)


@dataclass(frozen=True, slots=True)
class DnsWhoamiSource:
    """A name whose answer, asked of `resolver`, is the asker's address (A/AAAA, or TXT holding one)."""

    resolver: tuple[str, int]
    name: str
    rdtype: Literal["A", "AAAA", "TXT"]

    def __post_init__(self) -> None:
        if self.rdtype not in ("A", "AAAA", "TXT"):
            raise ValueError(f"rdtype: expected A, AAAA or TXT, got {self.rdtype!r}")
        host, port = self.resolver
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"resolver: expected an IP literal, got {host!r}") from None
        if not 1 <= port <= 65535:
            raise ValueError(f"resolver: expected a port 1-65535, got {port}")

    @property
    def label(self) -> str:
        return f"dns {self.name} {self.rdtype} @{where(*self.resolver)}"

    def serves(self, family: int) -> bool:
        return self.rdtype in ("TXT", FAMILY_TYPES[family])


@dataclass(frozen=True, slots=True)
class InterfaceSource:
    """The source address the kernel would use towards `route_target` (connected UDP socket, nothing sent)."""

    family: int
    route_target: str = ""  # empty: a root server's address, i.e. "the Internet"

    def __post_init__(self) -> None:
        _check_family(self.family, allow_both=False)
        try:
            version = ipaddress.ip_address(self.target).version
        except ValueError:
            raise ValueError(f"route_target: expected an IP literal, got {self.route_target!r}") from None
        if version != self.family:
            raise ValueError(f"route_target: expected an IPv{self.family} address, got {self.route_target!r}")

    @property
    def target(self) -> str:
        return self.route_target or DEFAULT_ROUTE_TARGETS[self.family]

    @property
    def label(self) -> str:
        return f"interface IPv{self.family} route to {self.target}"

    def serves(self, family: int) -> bool:
        return self.family == family


Source = HttpEchoSource | DnsWhoamiSource | InterfaceSource


@dataclass(frozen=True, slots=True)
class Discovery:
    """What the sources said for one family, and the address they agreed on (None: no agreement)."""

    family: int
    address: str | None
    by_source: dict[str, str] = field(default_factory=dict)  # label -> address, or "error: ..." etc.
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "family": self.family,
            "address": self.address,
            "by_source": self.by_source,
            "reason": self.reason,
        }


def safe_url(url: str) -> str:
    """`url` without userinfo and with the query masked: echo URLs may carry tokens."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "***" if parts.query else "", ""))
    except ValueError:
        return "<unparsable url>"


def parse_prefixes(prefixes: Iterable[str | Network]) -> tuple[Network, ...]:
    """Networks from text like "127.0.0.0/8"; raises ValueError naming the bad one."""
    found: list[Network] = []
    for prefix in prefixes:
        try:
            found.append(ipaddress.ip_network(prefix, strict=False))
        except ValueError:
            raise ValueError(
                f"allowed_prefixes: expected a network like 127.0.0.0/8, got {prefix!r}"
            ) from None
    return tuple(found)


def rejection(address: str, allowed_prefixes: Iterable[str | Network] = ()) -> str | None:
    """Why `address` cannot be our public address ("10.0.0.1 is private"), or None if it can."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    if any(ip.version == net.version and ip in net for net in parse_prefixes(allowed_prefixes)):
        return None
    for what, applies in _NOT_PUBLIC:
        if applies(ip):
            return f"{ip} is {what}"
    return None


def is_acceptable(address: str, allowed_prefixes: Iterable[str | Network] = ()) -> bool:
    """True for a global unicast address, or one inside an explicitly allowed prefix."""
    return rejection(address, allowed_prefixes) is None


async def discover(
    sources: Sequence[Source],
    family: int,
    quorum: int,
    allowed_prefixes: Iterable[str | Network],
    timeout: float,
    http_client: httpx.AsyncClient | None = None,
) -> Discovery:
    """Ask every source serving `family` at once (each within `timeout`) and count their answers.

    An injected `http_client` is used as it is: its transport decides which family HTTP goes over.
    """
    _check_family(family, allow_both=False)
    if quorum < 1:
        raise ValueError(f"quorum: expected at least 1, got {quorum}")
    allowed = parse_prefixes(allowed_prefixes)
    chosen = [source for source in sources if source.serves(family)]

    async def ask_all(client: httpx.AsyncClient | None) -> list[tuple[str | None, str]]:
        return list(
            await asyncio.gather(*(_ask(source, family, allowed, timeout, client) for source in chosen))
        )

    if http_client is not None or not any(isinstance(source, HttpEchoSource) for source in chosen):
        results = await ask_all(http_client)
    else:  # our own client, bound to the family: an IPv4 echo answer says nothing about IPv6
        transport = httpx.AsyncHTTPTransport(local_address=_WILDCARD[family])
        async with httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False) as own:
            results = await ask_all(own)
    by_source: dict[str, str] = {}
    for source, (_, text) in zip(chosen, results, strict=True):
        label, n = source.label, 2
        while label in by_source:  # bounded by len(chosen): each pass tries a new suffix
            label, n = f"{source.label} #{n}", n + 1
        by_source[label] = text
    votes = Counter(address for address, _ in results if address is not None)
    address, reason = tally(votes, len(chosen), quorum, family)
    return Discovery(family, address, by_source, reason)


def tally(votes: Counter[str], asked: int, quorum: int, family: int = 4) -> tuple[str | None, str]:
    """The agreed address and why: `quorum` votes that are also a majority of the usable answers."""
    if asked == 0:
        return None, f"no sources for IPv{family}"
    answered = sum(votes.values())
    ranked = sorted(votes.items(), key=lambda item: (-item[1], item[0]))
    if ranked:
        top, count = ranked[0]
        if count >= quorum and count * 2 > answered:
            return top, f"agreed by {count} of {asked} sources"
    if len(ranked) > 1:
        return None, "sources disagree: " + ", ".join(f"{address} ({count})" for address, count in ranked)
    return None, f"no quorum: {quorum} sources needed, {answered} answered"


async def _ask(
    source: Source,
    family: int,
    allowed: tuple[Network, ...],
    timeout: float,
    client: httpx.AsyncClient | None,
) -> tuple[str | None, str]:
    """(address, address) when usable; else (None, "error: ..." / "rejected: ..." / "junk: ...")."""
    try:
        async with asyncio.timeout(timeout):
            if isinstance(source, HttpEchoSource):
                assert client is not None  # discover() makes one whenever an HTTP source is asked
                raw = await _http(source, timeout, client)
            elif isinstance(source, DnsWhoamiSource):
                raw = await _whoami(source, family, timeout)
            else:
                raw = _interface(source)
    except TimeoutError:
        return None, "error: timeout"
    except _Fault as fault:
        return None, str(fault)
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        return None, f"junk: {_shown(raw)}"
    if ip.version != family:
        return None, f"rejected: {ip} is IPv{ip.version}, wanted IPv{family}"
    why = rejection(str(ip), allowed)
    if why is not None:
        return None, f"rejected: {why}"
    return str(ip), str(ip)


async def _http(source: HttpEchoSource, timeout: float, client: httpx.AsyncClient) -> str:
    """The candidate address text from one GET; faults raise _Fault."""
    accept = "application/json" if source.format == "json" else "text/plain"
    headers = {"Accept": accept, "Accept-Encoding": "identity"}
    body = bytearray()
    try:
        async with client.stream(
            "GET", source.url, headers=headers, timeout=httpx.Timeout(timeout)
        ) as response:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > MAX_BODY:
                    raise _Fault(f"junk: body over {MAX_BODY} bytes")
            status = response.status_code
    except httpx.TimeoutException:
        raise _Fault("error: timeout") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as exc:
        raise _Fault(f"error: {type(exc).__name__}") from None  # the text may repeat the URL and its token
    if not 200 <= status < 300:
        raise _Fault(f"error: HTTP {status}")
    text = body.decode("utf-8", errors="replace")
    if source.format == "text":
        return text.strip()
    try:
        node: object = json.loads(text)
    except (ValueError, RecursionError):
        raise _Fault(f"junk: {_shown(text)}") from None
    for part in source.field.split("."):
        if not isinstance(node, dict) or part not in node:
            raise _Fault(f"junk: no field {source.field!r} in {_shown(text)}")
        node = node[part]
    if not isinstance(node, str):
        raise _Fault(f"junk: {source.field}={_shown(json.dumps(node))}")
    return node.strip()


async def _whoami(source: DnsWhoamiSource, family: int, timeout: float) -> str:
    """The candidate address from the whoami answer; for TXT, the first token that is an address."""
    host, port = source.resolver
    try:
        response = await ask(source.name, source.rdtype, host, port, timeout)
        if response.rcode() != dns.rcode.NOERROR:
            raise _Fault(f"error: {dns.rcode.to_text(response.rcode())}")
        records = answer_records(response, source.rdtype)
    except dns.exception.Timeout:
        raise _Fault("error: timeout") from None
    except (dns.exception.DNSException, OSError, EOFError, ValueError) as exc:
        raise _Fault(f"error: {type(exc).__name__}") from None
    if not records:
        raise _Fault(f"error: no {source.rdtype} answer")
    if source.rdtype != "TXT":
        return str(records[0].to_text())
    texts = [b"".join(getattr(record, "strings", ())).decode("ascii", errors="replace") for record in records]
    tokens = [token.strip("\"',;") for text in texts for token in text.split()]
    addresses = [token for token in tokens if _version(token) is not None]
    ours = [token for token in addresses if _version(token) == family]
    if ours or addresses:
        return (ours or addresses)[0]
    return " ".join(texts)


def _interface(source: InterfaceSource) -> str:
    """The kernel's source address towards `source.target`; connecting a UDP socket sends nothing."""
    family = socket.AF_INET if source.family == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((source.target, 9))
            return str(sock.getsockname()[0]).partition("%")[0]
    except OSError as exc:
        raise _Fault(f"error: no route to {source.target}: {exc.strerror or type(exc).__name__}") from None


def _version(token: str) -> int | None:
    try:
        return ipaddress.ip_address(token).version
    except ValueError:
        return None


def _shown(text: str) -> str:
    """A junk answer for the report: ASCII-escaped and cut, so logs stay printable and short."""
    return ascii(text[:JUNK_SHOWN]) + ("..." if len(text) > JUNK_SHOWN else "")


def _check_family(family: int, *, allow_both: bool) -> None:
    allowed = (0, 4, 6) if allow_both else (4, 6)
    if family not in allowed:
        raise ValueError(f"family: expected one of {', '.join(map(str, allowed))}, got {family!r}")

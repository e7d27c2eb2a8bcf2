"""TOML configuration into frozen dataclasses; unknown keys and bad values name their path.

Each section is a dataclass whose fields are the allowed keys; a field's `check`
metadata validates its value, and a class's `problems()` checks fields together. An
error reads like `dynmx.toml:12: pool[0].member[1].preference: expected 0-65535, got 70000`
(the line of the key, or of the table that lacks it: see `config_lines`).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dns.exception
import dns.name
import dns.rdatatype

from dynmx.config_choices import POOL_KINDS as POOL_KINDS
from dynmx.config_choices import PROBES as PROBES
from dynmx.config_choices import ROLES as ROLES
from dynmx.config_choices import STRATEGIES as STRATEGIES
from dynmx.config_choices import TSIG_ALGORITHMS as TSIG_ALGORITHMS
from dynmx.config_lines import key_line, parse_path, shown_key, toml_error
from dynmx.errors import ConfigError
from dynmx.health.kinds import DEFAULT_PORTS as PROBE_PORTS
from dynmx.zone.limits import DEFAULT_MAX_FILE_SIZE

T = TypeVar("T")
Check = Callable[[Any], object]


def parse_hostport(text: str, default_port: int = 53) -> tuple[str, int]:
    """`127.0.0.1:5353`, `[::1]:5353`, `::1` or `127.0.0.1` -> (host, port)."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"expected [IPv6]:PORT, got {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"expected [IPv6]:PORT, got {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"expected an IP address, got {host!r} in {text!r}") from None
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"expected a port 0-65535, got {port_text!r} in {text!r}")
        port = int(port_text)
    return host, port


def absolute_name(text: str) -> str:
    """A domain name as configured, made absolute and lower-case (names compare so)."""
    relative = text[:-1] if text.endswith(".") else text
    labels = relative.split(".")
    if not relative or " " in text or any(not label or len(label) > 63 for label in labels):
        raise ValueError(f"expected a domain name, got {text!r}")
    try:  # dnspython reads it later, alone and inside record text: its text must need no escapes
        if not text.isascii() or dns.name.from_text(relative + ".").to_text() != relative + ".":
            raise ValueError
    except (dns.exception.DNSException, ValueError):  # also: longer than 255 octets
        raise ValueError(f"expected a domain name (IDNA names in xn-- form), got {text!r}") from None
    return relative.lower() + "."


def _label(value: str) -> str:
    """One DNS label, as used in `<label>._hint.<pool>`."""
    if not value or len(value) > 63 or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError(f"expected one label of letters, digits, '-' or '_', got {value!r}")
    return value.lower()


def _fail(message: str) -> str:
    raise ValueError(message)


def _choice(*allowed: str) -> Check:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    return check


def _between(low: float, high: float) -> Check:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"expected {low:g}-{high:g}, got {value!r}")
        return value

    return check


def _prefix(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"expected an address prefix like 192.0.2.0/24, got {value!r}") from None


def _prefix_or_key(value: str) -> str:
    """An address prefix (`127.0.0.0/8`) or a TSIG key name (`ops-key.`)."""
    try:
        return _prefix(value)
    except ValueError:
        if "/" in value:  # a mistyped prefix, not a key name
            raise
        return absolute_name(value)


def _rdtype(value: str) -> str:
    try:
        dns.rdatatype.from_text(value)
    except (dns.exception.DNSException, ValueError):
        raise ValueError(f"expected a record type like A or AAAA, got {value!r}") from None
    return value


MAX_NSID = 128  # octets: the identifier rides in every reply that asks for it


def nsid_octets(value: str) -> bytes:
    """The NSID (RFC 5001) as configured: `0x` and hex digits, or printable ASCII as is (as Knot
    reads its `nsid`)."""
    if value[:2].lower() == "0x":
        try:
            octets = bytes.fromhex(value[2:])
        except ValueError:
            raise ValueError(f"expected 0x and an even number of hex digits, got {value!r}") from None
    elif value.isascii() and value.isprintable():
        octets = value.encode()
    else:
        raise ValueError(f"expected printable ASCII or 0x and hex digits, got {value!r}")
    if len(octets) > MAX_NSID:
        raise ValueError(f"expected at most {MAX_NSID} octets, got {len(octets)}")
    return octets


def _key(check: Check | None = None, *, restart: bool, **kwargs: Any) -> Any:
    """One key of a section. `check` validates (and may normalise) its value; `restart` is the
    key's reload decision, made for every key: True when the running server reads it only at
    start (a reload keeps the running value and names the key in `event=config-restart-needed`),
    False when a reload applies it. `tests/unit/test_config_reload.py` refuses a key without one."""
    metadata: dict[str, object] = {"restart": restart}
    if check is not None:
        metadata["check"] = check
    return field(metadata=metadata, **kwargs)


REQUIRED: Any = dataclasses.MISSING


@dataclass(frozen=True)
class ServerConfig:
    # restart=True: read once at start, by the sockets and their TCP limits, the answer engine
    # (CH TXT, NSID, its cache, Client Subnet, the draw's seed), the state files and the journal.
    listen: tuple[str, ...] = _key(parse_hostport, default=("127.0.0.1:5353",), restart=True)
    zones_dir: str = _key(default="zones", restart=False)
    # bytes; a larger zone file is refused unread (`file:0:`), so a bad one costs bounded work
    max_zone_file_size: int = _key(_between(1, 1 << 40), default=DEFAULT_MAX_FILE_SIZE, restart=False)
    state_dir: str = _key(default="state", restart=True)
    tcp_idle_timeout: float = _key(_between(0.1, 3600), default=10.0, restart=True)
    tcp_max_connections: int = _key(_between(1, 100000), default=200, restart=True)
    tcp_max_per_source: int = _key(_between(1, 100000), default=20, restart=True)
    # a begun message must finish
    tcp_message_timeout: float = _key(_between(0.1, 3600), default=5.0, restart=True)
    # pipelined replies being decided
    tcp_max_in_flight: int = _key(_between(1, 65535), default=32, restart=True)
    # answer processes (SO_REUSEPORT); 0 = in-process
    workers: int = _key(_between(0, 256), default=0, restart=True)
    cache_size: int = _key(_between(0, 10_000_000), default=10000, restart=True)
    # newest changes kept per zone
    journal_keep: int = _key(_between(1, 10_000_000), default=1000, restart=True)
    # answer CH TXT version.bind with this; empty keeps it REFUSED
    version: str = _key(default="", restart=True)
    identity: str = _key(default="", restart=True)  # answer CH TXT id.server with this
    # RFC 5001 identifier, to queries asking; "" = none
    nsid: str = _key(nsid_octets, default="", restart=True)
    pid_file: str = _key(default="", restart=True)
    # use EDNS Client Subnet (RFC 7871) for client actions, in queries from client_subnet_sources
    client_subnet: bool = _key(default=False, restart=True)
    # the resolvers whose Client Subnet is honoured; from anyone else it is ignored
    client_subnet_sources: tuple[str, ...] = _key(_prefix, default=(), restart=True)
    # seed of the weighted draw, for reproducible tests; 0 = unpredictable
    random_seed: int = _key(default=0, restart=True)
    # answer CH TXT status.<pool name> with the pool's health
    chaos_status: bool = _key(default=False, restart=False)
    probe_concurrency: int = _key(_between(1, 10000), default=64, restart=False)
    # records (prerequisites + updates) one UPDATE may carry; more are REFUSED before parsing
    max_update_records: int = _key(_between(1, 65535), default=1000, restart=False)
    # EHLO name of the SMTP probe
    probe_name: str = _key(absolute_name, default="dynmx.invalid.", restart=False)

    def problems(self) -> list[str]:
        if self.client_subnet and not self.client_subnet_sources:
            # Trusted from anyone, ECS lets every client choose the client action it gets.
            return [
                "client_subnet: true needs client_subnet_sources, the resolvers whose Client Subnet"
                ' is honoured (e.g. ["192.0.2.53/32"])'
            ]
        return []


def _listener(value: str) -> str:
    """An HTTP listener's address, IP:PORT or [IPv6]:PORT; "" for none."""
    if value:
        parse_hostport(value)
    return value


def _hostname(value: str) -> str:
    """A name (or address) the control listener is reached by, as it comes in a Host header."""
    text = value.strip().lower().rstrip(".")
    if not text or any(c in text for c in " /:@[]") or not text.isascii() or not text.isprintable():
        raise ValueError(f"expected a host name or IPv4 address without port, got {value!r}")
    return text


@dataclass(frozen=True)
class HttpConfig:
    """The control listener. Every key is applied by a reload: the listener moves or closes,
    its limits apply to the next connection, the checks to the next request."""

    listen: str = _key(_listener, default="", restart=False)  # "" = off
    # serve GET /status, /routes and /explain without the token (they show the configuration)
    public_status: bool = _key(default=False, restart=False)
    # Host names it is reached by besides its address and localhost (a Prometheus scraping
    # "ns1.example.net:9153"); any other Host is refused (DNS rebinding)
    allowed_hosts: tuple[str, ...] = _key(_hostname, default=(), restart=False)
    max_connections: int = _key(_between(1, 10000), default=64, restart=False)  # served at once
    max_per_source: int = _key(_between(1, 10000), default=16, restart=False)  # an IPv6 /64 is one
    timeout: float = _key(_between(0.5, 600), default=10.0, restart=False)  # for a request to arrive


@dataclass(frozen=True)
class LogConfig:
    # Set once in each process at its start (the control process and every worker).
    level: str = _key(_choice("debug", "info", "warning", "error"), default="info", restart=True)


# The probe's usual port; http/load take theirs from the url (80 when it has none).
DEFAULT_PORTS = {**PROBE_PORTS, "http": 80, "load": 80, "none": 0}


def _host(value: str) -> str:
    """A member: a domain name (MX exchange, SRV target) or an IP literal (address pools)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return absolute_name(value)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class MemberConfig:
    host: str = _key(_host, default=REQUIRED, restart=False)
    preference: int = _key(_between(0, 65535), default=10, restart=False)
    weight: float = _key(_between(0, 1e6), default=1.0, restart=False)
    role: str = _key(_choice(*ROLES), default="primary", restart=False)
    # Health probing (defaults as gdnsd/HAProxy operators know them: 10 s, 3 s, fall 3, rise 2).
    probe: str = _key(_choice(*PROBES), default="smtp", restart=False)
    # default: the host's A/AAAA
    address: str = _key(lambda v: v and ipaddress.ip_address(v), default="", restart=False)
    # 0: the probe kind's usual port; SRV port too
    port: int = _key(_between(0, 65535), default=0, restart=False)
    url: str = _key(default="", restart=False)  # http and load probes
    interval: float = _key(_between(0.05, 86400), default=10.0, restart=False)
    timeout: float = _key(_between(0.05, 600), default=3.0, restart=False)
    fall: int = _key(_between(1, 1000), default=3, restart=False)
    rise: int = _key(_between(1, 1000), default=2, restart=False)
    starttls: bool = _key(default=False, restart=False)  # smtp: require STARTTLS in the EHLO reply
    # http: empty = any 2xx
    expect_status: tuple[int, ...] = _key(_between(100, 599), default=(), restart=False)
    body_match: str = _key(default="", restart=False)  # http: substring the body must contain
    load_field: str = _key(default="load", restart=False)  # load: JSON field (dotted path)
    load_metric: str = _key(default="", restart=False)  # load: Prometheus metric name instead of JSON
    # prefixes this member resolves from (relays)
    sources: tuple[str, ...] = _key(_prefix, default=(), restart=False)
    # imaps/pop3s/submissions: warn this early
    tls_warn_days: int = _key(_between(0, 3650), default=14, restart=False)
    server_name: str = _key(default="", restart=False)  # TLS probes: SNI to send (default: none)
    # smtp: check STARTTLS and the certificate against our TLSA at _25._tcp.<host> (RFC 7672)
    tlsa: bool = _key(default=False, restart=False)

    @property
    def ip(self) -> str:
        """The member's address when configured (address pools), else ''."""
        return self.address or (self.host if is_ip(self.host) else "")

    def problems(self) -> list[str]:
        if self.probe in ("http", "load") and not self.url:
            return [f"url: a {self.probe} probe needs a url"]
        if self.timeout > self.interval:
            return [f"timeout: {self.timeout:g}s is longer than the interval {self.interval:g}s"]
        if self.tlsa and (self.probe != "smtp" or is_ip(self.host)):
            return ['tlsa: needs probe = "smtp" and a host name (TLSA is at _25._tcp.<host>)']
        return []

    @property
    def probe_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.probe]


@dataclass(frozen=True)
class HintConfig:
    label: str = _key(lambda v: _label(v), default=REQUIRED, restart=False)
    order: tuple[str, ...] = _key(_host, default=(), restart=False)

    def problems(self) -> list[str]:
        return [] if self.order else ["order: a hint needs at least one host"]


@dataclass(frozen=True)
class PoolConfig:
    name: str = _key(absolute_name, default=REQUIRED, restart=False)
    kind: str = _key(
        _choice(*POOL_KINDS), default="mx", restart=False
    )  # the RRset rewritten: MX, A/AAAA, or SRV
    strategy: str = _key(_choice(*STRATEGIES), default="static", restart=False)
    # address pools: at most N addresses (0: all)
    answer_count: int = _key(_between(0, 64), default=0, restart=False)
    ttl: int = _key(_between(0, 2147483647), default=30, restart=False)
    # least-load: within this of the lowest
    tie_band: float = _key(_between(0, 1e9), default=0.05, restart=False)
    # primaries down this long: standbys up
    promote_after: float = _key(_between(0, 1e7), default=120.0, restart=False)
    # a primary up this long: standbys back
    demote_after: float = _key(_between(0, 1e7), default=120.0, restart=False)
    # command and arguments run once per promotion
    on_promote: tuple[str, ...] = _key(default=(), restart=False)
    on_promote_url: str = _key(default="", restart=False)  # or a webhook POSTed once per promotion (httpx)
    member: tuple[MemberConfig, ...] = ()
    hint: tuple[HintConfig, ...] = ()

    def problems(self) -> list[str]:
        found: list[str] = []
        if not self.member:
            found.append("member: a pool needs at least one member")
        for index, member in enumerate(self.member):
            if self.kind == "address" and not member.ip:
                found.append(f"member[{index}]: an address pool member needs an IP host or an address")
            if self.kind != "address" and is_ip(member.host):
                found.append(f"member[{index}].host: a {self.kind} pool member is a name, not {member.host}")
            if self.kind == "srv" and not member.probe_port:
                found.append(f"member[{index}].port: an SRV member needs the service port")
        hosts = [m.host for m in self.member]
        for index, host in enumerate(hosts):
            if host in hosts[:index]:
                found.append(f"member[{index}].host: {host} is listed twice")
        if self.strategy == "weighted" and not any(m.weight > 0 for m in self.member if m.role == "primary"):
            found.append("member: weighted needs a primary with weight > 0")
        labels = [h.label for h in self.hint]
        for index, hint in enumerate(self.hint):
            if hint.label in labels[:index]:
                found.append(f"hint[{index}].label: {hint.label!r} is defined twice")
            for position, host in enumerate(hint.order):
                if host in hint.order[:position]:
                    found.append(f"hint[{index}].order[{position}]: {host} is listed twice")
                elif host not in hosts:
                    found.append(f"hint[{index}].order[{position}]: {host} is not a member of this pool")
        return found


@dataclass(frozen=True)
class ClientConfig:
    prefix: str = _key(_prefix, default=REQUIRED, restart=False)
    action: str = _key(_choice("answer", "refuse", "drop", "hint"), default="answer", restart=False)
    hint: str = _key(lambda v: v and _label(v), default="", restart=False)

    def problems(self) -> list[str]:
        if self.action == "hint" and not self.hint:
            return ["hint: action 'hint' needs the hint label to answer with"]
        if self.action != "hint" and self.hint:
            return [f"hint: only used with action 'hint', not {self.action!r}"]
        return []


@dataclass(frozen=True)
class NameConfig:
    name: str = _key(absolute_name, default=REQUIRED, restart=False)
    action: str = _key(_choice("null-mx", "nxdomain", "refuse"), default=REQUIRED, restart=False)

    def problems(self) -> list[str]:
        return []


@dataclass(frozen=True)
class KeyConfig:
    """A TSIG key (RFC 8945); the secret is never logged or shown in /status."""

    name: str = _key(absolute_name, default=REQUIRED, restart=False)
    algorithm: str = _key(_choice(*TSIG_ALGORITHMS), default="hmac-sha256", restart=False)
    secret: str = _key(default="", repr=False, restart=False)  # base64
    secret_file: str = _key(default="", restart=False)  # or a file holding the base64 secret
    # "host.example.test." or "*.dyn.example.test."
    names: tuple[str, ...] = _key(absolute_name, default=(), restart=False)
    # types this key may change, e.g. ["A"]; empty = any
    types: tuple[str, ...] = _key(_rdtype, default=(), restart=False)

    def problems(self) -> list[str]:
        if bool(self.secret) == bool(self.secret_file):
            return ["secret: give exactly one of secret and secret_file"]
        try:
            base64.b64decode(self.secret, validate=True)
        except ValueError:
            return ["secret: not base64"]  # the secret itself is never shown
        return []


# `dnssec_algorithm` values: ECDSA P-256 (13, RFC 6605) and Ed25519 (15, RFC 8080).
DNSSEC_ALGORITHMS = ("ecdsap256sha256", "ed25519")


@dataclass(frozen=True)
class ZoneConfig:
    """Per-zone settings; zones without a block get the defaults."""

    name: str = _key(absolute_name, default=REQUIRED, restart=False)
    serial: str = _key(_choice("unixtime", "dateserial", "increment"), default="unixtime", restart=False)
    # TSIG key names that may UPDATE
    allow_update: tuple[str, ...] = _key(absolute_name, default=(), restart=False)
    # prefixes and/or keys
    allow_transfer: tuple[str, ...] = _key(lambda v: _prefix_or_key(v), default=(), restart=False)
    # secondaries to NOTIFY on change
    notify: tuple[str, ...] = _key(parse_hostport, default=(), restart=False)
    # HOST:PORT: follow it
    primary: str = _key(lambda v: v == "" or parse_hostport(v), default="", restart=False)
    # TSIG key signing our transfer requests
    primary_key: str = _key(absolute_name, default="", restart=False)
    # prefixes that may query; empty = all
    allow_query: tuple[str, ...] = _key(_prefix, default=(), restart=False)
    # NOTIFY senders besides the primary
    allow_notify: tuple[str, ...] = _key(_prefix, default=(), restart=False)
    # sign the zone when it is compiled, with a key made on first start in state_dir/keys
    dnssec: bool = _key(default=False, restart=False)
    dnssec_algorithm: str = _key(_choice(*DNSSEC_ALGORITHMS), default="ecdsap256sha256", restart=False)
    # NSEC3: RFC 9276 parameters (SHA-1, no extra iterations, no salt, no opt-out)
    denial: str = _key(_choice("nsec", "nsec3"), default="nsec", restart=False)
    # key rollover waits (RFC 7583), seconds: DprpC (BIND's zone-propagation-delay), TTLds
    # (parent-ds-ttl) and DprpP (parent-propagation-delay), with BIND's defaults
    dnssec_propagation_delay: int = _key(_between(0, 30 * 86400), default=300, restart=False)
    dnssec_parent_ds_ttl: int = _key(_between(0, 2147483647), default=86400, restart=False)
    dnssec_parent_propagation_delay: int = _key(_between(0, 30 * 86400), default=3600, restart=False)

    def problems(self) -> list[str]:
        found = ["primary_key: needs primary"] if self.primary_key and not self.primary else []
        if self.dnssec and self.primary:
            found.append("dnssec: a secondary zone is served as its primary signed it; sign it there")
        return found


@dataclass(frozen=True)
class DynHostConfig:
    hostname: str = _key(absolute_name, default=REQUIRED, restart=False)
    username: str = _key(lambda v: v or _fail("a username is required"), default=REQUIRED, restart=False)
    password: str = _key(default="", repr=False, restart=False)

    def problems(self) -> list[str]:
        return [] if self.password else ["password: required"]


@dataclass(frozen=True)
class Dyndns2Config:
    """`GET /nic/update` for routers, ddclient and inadyn (off unless enabled)."""

    enabled: bool = _key(default=False, restart=False)
    ttl: int = _key(_between(0, 86400), default=60, restart=False)  # TTL of the records it writes
    min_interval: float = _key(_between(0, 86400), default=60.0, restart=False)  # per host, else "abuse"
    # its own listener, serving /nic/update only ("" = on the control listener, [http] listen);
    # applied by a reload, as are the limits and the certificate files (read again each reload)
    listen: str = _key(_listener, default="", restart=False)
    tls_cert: str = _key(default="", restart=False)  # PEM certificate (chain) file: HTTPS
    tls_key: str = _key(default="", restart=False)  # PEM private key file
    max_connections: int = _key(_between(1, 10000), default=64, restart=False)
    max_per_source: int = _key(_between(1, 10000), default=8, restart=False)
    timeout: float = _key(_between(0.5, 600), default=10.0, restart=False)
    host: tuple[DynHostConfig, ...] = ()

    def problems(self) -> list[str]:
        if bool(self.tls_cert) != bool(self.tls_key):
            return ["tls_cert: tls_cert and tls_key go together"]
        if self.tls_cert and not self.listen:
            return ["tls_cert: needs listen (TLS is served on the dyndns2 listener only)"]
        return []


@dataclass(frozen=True)
class RrlConfig:
    """Response rate limiting for UDP, on by default with NSD's defaults; loopback is exempt.
    Read at start: the limiter and its buckets live in the answer engine until it stops."""

    enabled: bool = _key(default=True, restart=True)
    rate: float = _key(_between(1, 1e6), default=200.0, restart=True)  # replies per second per bucket
    slip: int = _key(_between(0, 100), default=2, restart=True)  # every n-th limited reply is sent truncated
    ipv4_prefix: int = _key(_between(8, 32), default=24, restart=True)
    ipv6_prefix: int = _key(_between(16, 128), default=56, restart=True)
    # sources never limited (loopback always)
    exempt: tuple[str, ...] = _key(_prefix, default=(), restart=True)

    def problems(self) -> list[str]:
        return []


@dataclass(frozen=True)
class DefaultsConfig:
    """What `dynmx zone add` writes into a new zone's SOA and NS."""

    ns: tuple[str, ...] = _key(absolute_name, default=(), restart=False)  # name servers of new zones
    # SOA RNAME, e.g. "hostmaster.example.test."; default: hostmaster.<zone>
    hostmaster: str = _key(default="", restart=False)
    ttl: int = _key(_between(0, 2147483647), default=3600, restart=False)
    refresh: int = _key(default=7200, restart=False)
    retry: int = _key(default=3600, restart=False)
    expire: int = _key(default=1209600, restart=False)
    minimum: int = _key(default=300, restart=False)  # negative-caching TTL (RFC 2308)
    # For every zone without a [[zone]] block (one `zone add` made among them), as Knot's
    # `template: default`: TSIG keys that may UPDATE, who may transfer, whom to NOTIFY.
    allow_update: tuple[str, ...] = _key(absolute_name, default=(), restart=False)
    allow_transfer: tuple[str, ...] = _key(lambda v: _prefix_or_key(v), default=(), restart=False)
    notify: tuple[str, ...] = _key(parse_hostport, default=(), restart=False)

    def problems(self) -> list[str]:
        return []


@dataclass(frozen=True)
class CatalogConfig:
    """A catalog zone (RFC 9432, version 2). Without `primary` this server produces it: every
    zone it is primary for is a member, and the operator's pool decisions ride along as
    custom properties under `ext` (drains, loads, pool definitions). With `primary` it
    consumes one: every member is served as a secondary of that primary, and the pool
    decisions found under `ext` are applied here. Read at start."""

    name: str = _key(lambda v: v and absolute_name(v), default="", restart=True)  # "" = no catalog
    allow_transfer: tuple[str, ...] = _key(lambda v: _prefix_or_key(v), default=(), restart=True)
    notify: tuple[str, ...] = _key(parse_hostport, default=(), restart=True)
    # consumer: HOST:PORT of the primary of the catalog and of every member
    primary: str = _key(lambda v: v == "" or parse_hostport(v), default="", restart=True)
    primary_key: str = _key(absolute_name, default="", restart=True)  # TSIG key for those transfers
    allow_notify: tuple[str, ...] = _key(_prefix, default=(), restart=True)  # NOTIFY senders besides it

    def problems(self) -> list[str]:
        if not self.name and (self.primary or self.allow_transfer or self.notify):
            return ['name: a catalog needs its zone name, e.g. "catalog.invalid."']
        if self.primary_key and not self.primary:
            return ["primary_key: needs primary"]
        if self.primary and (self.allow_transfer or self.notify):
            return ["primary: a consumer (primary set) neither offers transfers of nor notifies the catalog"]
        return []

    def block(self) -> ZoneConfig:
        """The catalog zone's own settings, as a [[zone]] block: transferred and NOTIFYed as
        configured here (a producer, serial `increment`), or followed from `primary` (a consumer)."""
        if self.primary:
            return ZoneConfig(
                self.name, primary=self.primary, primary_key=self.primary_key, allow_notify=self.allow_notify
            )
        transfer, notify = self.allow_transfer, self.notify
        # answered only to those who may transfer it (by address), else to loopback: its pool
        # definitions are the operator's, not the Internet's
        readers = tuple(p for p in transfer if "/" in p) or ("127.0.0.0/8", "::1/128")
        return ZoneConfig(
            self.name, serial="increment", allow_transfer=transfer, notify=notify, allow_query=readers
        )


def _family(value: int) -> int:
    return value if value in (0, 4, 6) else int(_fail(f"expected 0 (both), 4 or 6, got {value}"))


@dataclass(frozen=True)
class SelfCheckSourceConfig:
    """One way to learn our public address: an HTTP echo, a DNS "whoami" name, an interface."""

    kind: str = _key(_choice("http", "dns", "interface"), default=REQUIRED, restart=False)
    url: str = _key(default="", restart=False)  # http: an echo service answering with the caller's address
    format: str = _key(_choice("text", "json"), default="text", restart=False)  # http: body format
    field: str = _key(default="", restart=False)  # http, json: the (dotted) field holding the address
    family: int = _key(_family, default=0, restart=False)  # 4, 6, or 0 for both (http); 4 or 6 (interface)
    # dns: HOST:PORT to ask
    resolver: str = _key(lambda v: v == "" or parse_hostport(v), default="", restart=False)
    name: str = _key(default="", restart=False)  # dns: the whoami name, e.g. "o-o.myaddr.l.google.com."
    rdtype: str = _key(_choice("A", "AAAA", "TXT"), default="A", restart=False)  # dns
    # interface: an address whose route picks the interface ("" = a root server)
    route_target: str = _key(default="", restart=False)

    def problems(self) -> list[str]:
        needed = {"http": ("url",), "dns": ("resolver", "name"), "interface": ()}[self.kind]
        found = [f"{key}: required for kind = {self.kind!r}" for key in needed if not getattr(self, key)]
        if self.kind == "http" and self.format == "json" and not self.field:
            found.append("field: required for format = 'json'")
        if self.kind == "interface" and self.family == 0:
            found.append("family: expected 4 or 6 for kind = 'interface'")
        return found


@dataclass(frozen=True)
class SelfCheckConfig:
    """The self-connect check: are our own names still pointing at us? (off unless enabled)"""

    enabled: bool = _key(default=False, restart=False)
    names: tuple[str, ...] = _key(absolute_name, default=(), restart=False)  # our own published names
    # what the world sees (never only us)
    resolvers: tuple[str, ...] = _key(parse_hostport, default=(), restart=False)
    dns_port: int = _key(_between(1, 65535), default=53, restart=False)  # where probes are sent
    interval: float = _key(_between(1, 86400), default=300.0, restart=False)
    timeout: float = _key(_between(0.1, 60), default=5.0, restart=False)
    quorum: int = _key(_between(1, 16), default=2, restart=False)  # discovery sources that must agree
    # accepted as public (test labs)
    allowed_prefixes: tuple[str, ...] = _key(_prefix, default=(), restart=False)
    # between registrar updates
    min_interval: float = _key(_between(0, 86400 * 30), default=300.0, restart=False)
    # forced refresh
    max_interval: float = _key(_between(60, 86400 * 365), default=25 * 86400.0, restart=False)
    source: tuple[SelfCheckSourceConfig, ...] = ()

    def problems(self) -> list[str]:
        if not self.enabled:
            return []
        found = []
        if not self.names:
            found.append("names: at least one name to check")
        if not self.resolvers:
            found.append("resolvers: at least one resolver (the check must see what the world sees)")
        if len(self.source) < self.quorum:
            found.append(f"source: {self.quorum} sources needed for quorum = {self.quorum}")
        return found


@dataclass(frozen=True)
class RegistrarConfig:
    """Where a changed address of ours is pushed: registrar, DNS provider or parent zone."""

    name: str = _key(_label, default=REQUIRED, restart=False)  # a label for logs, /status and the saved state
    adapter: str = _key(_choice("dyndns2", "rfc2136", "webhook"), default=REQUIRED, restart=False)
    # own names it pushes; empty = all
    names: tuple[str, ...] = _key(absolute_name, default=(), restart=False)
    # dyndns2: the update URL (https://.../nic/update); webhook: where to POST
    url: str = _key(default="", restart=False)
    username: str = _key(default="", restart=False)  # dyndns2
    password: str = _key(default="", repr=False, restart=False)  # dyndns2
    # dyndns2: send these instead of the changed name
    hostnames: tuple[str, ...] = _key(default=(), restart=False)
    contact: str = _key(default="", restart=False)  # appended to the User-Agent (dyndns2, webhook)
    # rfc2136: HOST:PORT
    server: str = _key(lambda v: v == "" or parse_hostport(v), default="", restart=False)
    # rfc2136: the zone to UPDATE
    zone: str = _key(lambda v: v == "" or absolute_name(v), default="", restart=False)
    # rfc2136: a [[key]] name
    key: str = _key(lambda v: v == "" or absolute_name(v), default="", restart=False)
    ttl: int = _key(_between(0, 86400), default=300, restart=False)  # rfc2136
    token: str = _key(default="", repr=False, restart=False)  # webhook: bearer token
    timeout: float = _key(_between(0.1, 300), default=30.0, restart=False)
    # zones dynmx signs whose DS this adapter pushes (rfc2136: children of `zone`; webhook)
    ds_zones: tuple[str, ...] = _key(absolute_name, default=(), restart=False)

    def problems(self) -> list[str]:
        needed = {
            "dyndns2": ("url", "username", "password"),
            "rfc2136": ("server", "zone", "key"),
            "webhook": ("url", "token"),
        }[self.adapter]
        found = [
            f"{key}: required for adapter = {self.adapter!r}" for key in needed if not getattr(self, key)
        ]
        if self.ds_zones and self.adapter == "dyndns2":
            found.append("ds_zones: dyndns2 carries only a hostname and an address, never DS records")
        for index, child in enumerate(self.ds_zones):
            if self.adapter == "rfc2136" and self.zone and not _strictly_below(child, self.zone):
                found.append(f"ds_zones[{index}]: {child} is not a child zone of zone = {self.zone}")
        return found


def _strictly_below(child: str, parent: str) -> bool:
    """Whether the domain name `child` is below `parent` (and not `parent` itself)."""
    c, p = child.lower().rstrip("."), parent.lower().rstrip(".")
    return c != p and (not p or c.endswith("." + p))


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    pool: tuple[PoolConfig, ...] = ()
    client: tuple[ClientConfig, ...] = ()
    name: tuple[NameConfig, ...] = ()
    key: tuple[KeyConfig, ...] = ()
    zone: tuple[ZoneConfig, ...] = ()
    defaults: DefaultsConfig = field(default_factory=DefaultsConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    dyndns2: Dyndns2Config = field(default_factory=Dyndns2Config)
    rrl: RrlConfig = field(default_factory=RrlConfig)
    selfcheck: SelfCheckConfig = field(default_factory=SelfCheckConfig)
    registrar: tuple[RegistrarConfig, ...] = ()
    base_dir: Path = Path(".")  # relative paths in the file are relative to the file
    source: Path | None = None  # the file it was read from (`load_config`), for `readable_secrets`

    def path(self, value: str) -> Path:
        candidate = Path(value)
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def zone_settings(self, origin: str) -> ZoneConfig:
        """The settings of zone `origin`: its [[zone]] block, else [defaults]' update, transfer
        and notify lists (a zone `zone add` made, or one a catalog brought, is edited, transferred
        and NOTIFYed without a config edit)."""
        name = absolute_name(origin).lower()
        block = next((z for z in self.zone if z.name.lower() == name), None)
        if block is not None:
            return block
        d = self.defaults
        return ZoneConfig(name, allow_update=d.allow_update, allow_transfer=d.allow_transfer, notify=d.notify)

    def listen_addresses(self) -> list[tuple[str, int]]:
        return [parse_hostport(item) for item in self.server.listen]

    def problems(self) -> list[str]:
        found: list[str] = []
        pools = [p.name for p in self.pool]
        for index, name in enumerate(pools):
            if name in pools[:index]:
                found.append(f"pool[{index}].name: {name} is a pool twice")
        labels = {h.label for p in self.pool for h in p.hint}
        for index, client in enumerate(self.client):
            if client.action == "hint" and client.hint not in labels:
                found.append(f"client[{index}].hint: no pool defines hint {client.hint!r}")
        keys = {k.name for k in self.key}
        if self.catalog.primary_key and self.catalog.primary_key not in keys:
            found.append(f"catalog.primary_key: no [[key]] named {self.catalog.primary_key}")
        if self.catalog.name and self.catalog.name in {z.name for z in self.zone}:
            found.append(f"catalog.name: {self.catalog.name} has a [[zone]] block (settings go in [catalog])")
        for index, zone in enumerate(self.zone):
            for position, key in enumerate(zone.allow_update):
                if absolute_name(key) not in keys:
                    found.append(f"zone[{index}].allow_update[{position}]: no [[key]] named {key}")
            if zone.primary_key and zone.primary_key not in keys:
                found.append(f"zone[{index}].primary_key: no [[key]] named {zone.primary_key}")
        for position, key in enumerate(self.defaults.allow_update):
            if absolute_name(key) not in keys:
                found.append(f"defaults.allow_update[{position}]: no [[key]] named {key}")
        for index, registrar in enumerate(self.registrar):
            if registrar.key and registrar.key not in keys:
                found.append(f"registrar[{index}].key: no [[key]] named {registrar.key}")
            if registrar.name in [r.name for r in self.registrar[:index]]:
                found.append(f"registrar[{index}].name: {registrar.name} is a registrar twice")
            signed = {z.name.lower() for z in self.zone if z.dnssec}
            for position, child in enumerate(registrar.ds_zones):
                if child.lower() not in signed:
                    found.append(
                        f"registrar[{index}].ds_zones[{position}]: {child} is not a zone dynmx signs"
                        " (no [[zone]] block with dnssec = true): its DS is not dynmx's to give"
                    )
        prefixes = [c.prefix for c in self.client]
        for index, prefix in enumerate(prefixes):
            if prefix in prefixes[:index]:
                found.append(f"client[{index}].prefix: {prefix} is listed twice")
        return found


def _coerce(value: Any, hint: Any, check: Check | None, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_hint, _) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_hint, check, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)  # type: ignore[arg-type]
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        value = float(value)
    elif hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: expected {hint.__name__}, got {value!r}")
    else:  # pragma: no cover - a field type this loader does not know
        raise ConfigError(f"{path}: unsupported type {hint!r}")
    if check is not None:
        try:
            normalised = check(value)
        except ValueError as error:
            raise ConfigError(f"{path}: {error}") from None
        if isinstance(normalised, str) and isinstance(value, str):
            value = normalised
    return value


def _build(cls: type[T], table: Any, path: str) -> T:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in _keys(cls)}
    values: dict[str, Any] = {}
    prefix = f"{path}." if path else ""
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(f"{prefix}{shown_key(key)}: unknown key (allowed: {', '.join(sorted(fields))})")
        values[key] = _coerce(value, hints[key], fields[key].metadata.get("check"), f"{prefix}{key}")
    for name, spec in fields.items():
        if name not in values and spec.default is REQUIRED and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}{name}: required")
    built = cls(**values)
    problems = getattr(built, "problems", None)
    if problems is not None:
        for problem in problems():
            raise ConfigError(f"{prefix}{problem}")
    return built


def load_config(path: Path) -> Config:
    """Read and validate a config file; every error reads `file:line: key: reason`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}:0: cannot read: {error.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text: byte 0x{data[error.start]:02x}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line, reason = toml_error(str(error), text)
        raise ConfigError(f"{path}:{line}: {reason}") from None
    try:
        config = from_mapping(raw, base_dir=path.parent)
    except ConfigError as error:
        raise ConfigError(f"{path}:{key_line(text, parse_path(str(error)))}: {error}") from None
    return dataclasses.replace(config, source=path)


def readable_secrets(config: Config) -> list[tuple[Path, int]]:
    """The files holding secrets that others may read (mode o+r), each with its mode: the
    config file when it holds one (a TSIG secret, a password, a token: the keys declared with
    `repr=False`), and every key's `secret_file`. `serve` logs them at start and `dynmx check`
    prints them; the secrets themselves are never shown."""
    files = [config.source] if config.source is not None and _holds_secret(config) else []
    files += [config.path(key.secret_file) for key in config.key if key.secret_file]
    found: list[tuple[Path, int]] = []
    for path in files:
        try:
            mode = path.stat().st_mode  # of the file read: a symlink's target
        except OSError:
            continue  # reading it is where that is reported
        if mode & 0o004:
            found.append((path, mode & 0o7777))
    return found


def _holds_secret(section: Any) -> bool:
    for spec in _keys(type(section)):
        value = getattr(section, spec.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if dataclasses.is_dataclass(item):
                if _holds_secret(item):
                    return True
            elif not spec.repr and item:
                return True
    return False


def pool_from_mapping(raw: Any, path: str = "pool") -> PoolConfig:
    """One [[pool]] table, checked as the config file's are (a definition carried by a catalog)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a table, got {raw!r}")
    return _build(PoolConfig, raw, path)


def from_mapping(raw: dict[str, Any], base_dir: Path = Path(".")) -> Config:
    """Build a Config from parsed TOML (also what tests use)."""
    config = _build(Config, raw, "")
    if config.catalog.name:  # served, transferred, NOTIFYed or followed as a zone with a block
        config = dataclasses.replace(config, zone=(*config.zone, config.catalog.block()))
    return dataclasses.replace(config, base_dir=base_dir)


# -- reload: which keys a running server applies, and which only a restart does ----------


def _keys(cls: type[Any]) -> list[dataclasses.Field[Any]]:
    """The fields of a section that are keys of the file (`Config.base_dir`, `source` are not)."""
    outside = ("base_dir", "source") if cls is Config else ()
    return [spec for spec in dataclasses.fields(cls) if spec.name not in outside]


def _section(hint: Any) -> type[Any] | None:
    """The section a key holds when it is a table (`[server]`), else None."""
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _array_of(hint: Any) -> type[Any] | None:
    """The section of each item when a key is an array of tables (`[[pool]]`), else None."""
    return _section(typing.get_args(hint)[0]) if typing.get_origin(hint) is tuple else None


def reload_decisions(cls: type[Any] = Config, path: str = "") -> dict[str, bool | None]:
    """Every key of the schema by dotted path (`server.listen`, `pool[].member[].host`) with
    its reload decision: True, only a restart applies it; False, a reload applies it; None,
    undecided (a field declared without `_key`, which the schema's test refuses)."""
    found: dict[str, bool | None] = {}
    hints = typing.get_type_hints(cls)
    for spec in _keys(cls):
        where = f"{path}{spec.name}"
        section, items = _section(hints[spec.name]), _array_of(hints[spec.name])
        if section is not None:
            found |= reload_decisions(section, f"{where}.")
        elif items is not None:
            found |= reload_decisions(items, f"{where}[].")
        else:
            found[where] = spec.metadata.get("restart")
    return found


def restart_keys(running: Config, new: Config) -> list[str]:
    """The keys that `new` changes and only a restart applies, as dotted paths in schema order
    (`server.listen`, `rrl.rate`). Only tables hold such keys, never arrays of tables (whose
    items have no identity to keep a running value by; the schema's test holds to that)."""
    return _changed(running, new, "")


def _changed(running: Any, new: Any, path: str) -> list[str]:
    found: list[str] = []
    hints = typing.get_type_hints(type(new))
    for spec in _keys(type(new)):
        was, now = getattr(running, spec.name), getattr(new, spec.name)
        if _section(hints[spec.name]) is not None:
            found += _changed(was, now, f"{path}{spec.name}.")
        elif spec.metadata.get("restart") and was != now:
            found.append(f"{path}{spec.name}")
    return found


def keep_running(running: Config, new: Config) -> Config:
    """`new` with every restart key at its value in `running`: what a reload goes on with."""
    kept: Config = _kept(running, new)
    return kept


def _kept(running: Any, new: Any) -> Any:
    hints = typing.get_type_hints(type(new))
    changes: dict[str, Any] = {}
    for spec in _keys(type(new)):
        if _section(hints[spec.name]) is not None:
            changes[spec.name] = _kept(getattr(running, spec.name), getattr(new, spec.name))
        elif spec.metadata.get("restart"):
            changes[spec.name] = getattr(running, spec.name)
    return dataclasses.replace(new, **changes)

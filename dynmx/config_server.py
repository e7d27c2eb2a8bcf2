"""The server's own sections: [server] (sockets, state, limits), [http] (the control listener),
[log], [rrl] (response rate limiting) and [dyndns2] (the update endpoint for routers)."""

from __future__ import annotations

from dataclasses import dataclass

from dynmx.config_keys import REQUIRED, setting
from dynmx.config_values import (
    absolute_name,
    address_prefix,
    between,
    fail,
    host_name,
    listener_address,
    nsid_octets,
    one_of,
    parse_hostport,
)
from dynmx.zone.limits import DEFAULT_MAX_FILE_SIZE


@dataclass(frozen=True)
class ServerConfig:
    # restart=True: read once at start, by the sockets and their TCP limits, the answer engine
    # (CH TXT, NSID, its cache, Client Subnet, the draw's seed), the state files and the journal.
    listen: tuple[str, ...] = setting(parse_hostport, default=("127.0.0.1:5353",), restart=True)
    zones_dir: str = setting(default="zones", restart=False)
    # bytes; a larger zone file is refused unread (`file:0:`), so a bad one costs bounded work
    max_zone_file_size: int = setting(between(1, 1 << 40), default=DEFAULT_MAX_FILE_SIZE, restart=False)
    state_dir: str = setting(default="state", restart=True)
    tcp_idle_timeout: float = setting(between(0.1, 3600), default=10.0, restart=True)
    tcp_max_connections: int = setting(between(1, 100000), default=200, restart=True)
    tcp_max_per_source: int = setting(between(1, 100000), default=20, restart=True)
    # a begun message must finish
    tcp_message_timeout: float = setting(between(0.1, 3600), default=5.0, restart=True)
    # pipelined replies being decided
    tcp_max_in_flight: int = setting(between(1, 65535), default=32, restart=True)
    # answer processes (SO_REUSEPORT); 0 = in-process
    workers: int = setting(between(0, 256), default=0, restart=True)
    cache_size: int = setting(between(0, 10_000_000), default=10000, restart=True)
    # newest changes kept per zone
    journal_keep: int = setting(between(1, 10_000_000), default=1000, restart=True)
    # answer CH TXT version.bind with this; empty keeps it REFUSED
    version: str = setting(default="", restart=True)
    identity: str = setting(default="", restart=True)  # answer CH TXT id.server with this
    # RFC 5001 identifier, to queries asking; "" = none
    nsid: str = setting(nsid_octets, default="", restart=True)
    pid_file: str = setting(default="", restart=True)
    # use EDNS Client Subnet (RFC 7871) for client actions, in queries from client_subnet_sources
    client_subnet: bool = setting(default=False, restart=True)
    # the resolvers whose Client Subnet is honoured; from anyone else it is ignored
    client_subnet_sources: tuple[str, ...] = setting(address_prefix, default=(), restart=True)
    # seed of the weighted draw, for reproducible tests; 0 = unpredictable
    random_seed: int = setting(default=0, restart=True)
    # answer CH TXT status.<pool name> with the pool's health
    chaos_status: bool = setting(default=False, restart=False)
    probe_concurrency: int = setting(between(1, 10000), default=64, restart=False)
    # records (prerequisites + updates) one UPDATE may carry; more are REFUSED before parsing
    max_update_records: int = setting(between(1, 65535), default=1000, restart=False)
    # EHLO name of the SMTP probe
    probe_name: str = setting(absolute_name, default="dynmx.invalid.", restart=False)

    def problems(self) -> list[str]:
        if self.client_subnet and not self.client_subnet_sources:
            # Trusted from anyone, ECS lets every client choose the client action it gets.
            return [
                "client_subnet: true needs client_subnet_sources, the resolvers whose Client Subnet"
                ' is honoured (e.g. ["192.0.2.53/32"])'
            ]
        return []


@dataclass(frozen=True)
class HttpConfig:
    """The control listener. Every key is applied by a reload: the listener moves or closes,
    its limits apply to the next connection, the checks to the next request."""

    listen: str = setting(listener_address, default="", restart=False)  # "" = off
    # serve GET /status, /routes and /explain without the token (they show the configuration)
    public_status: bool = setting(default=False, restart=False)
    # Host names it is reached by besides its address and localhost (a Prometheus scraping
    # "ns1.example.net:9153"); any other Host is refused (DNS rebinding)
    allowed_hosts: tuple[str, ...] = setting(host_name, default=(), restart=False)
    max_connections: int = setting(between(1, 10000), default=64, restart=False)  # served at once
    max_per_source: int = setting(between(1, 10000), default=16, restart=False)  # an IPv6 /64 is one
    timeout: float = setting(between(0.5, 600), default=10.0, restart=False)  # for a request to arrive


@dataclass(frozen=True)
class LogConfig:
    # Set once in each process at its start (the control process and every worker).
    level: str = setting(one_of("debug", "info", "warning", "error"), default="info", restart=True)


@dataclass(frozen=True)
class RrlConfig:
    """Response rate limiting for UDP, on by default with NSD's defaults; loopback is exempt.
    Read at start: the limiter and its buckets live in the answer engine until it stops."""

    enabled: bool = setting(default=True, restart=True)
    rate: float = setting(between(1, 1e6), default=200.0, restart=True)  # replies per second per bucket
    slip: int = setting(
        between(0, 100), default=2, restart=True
    )  # every n-th limited reply is sent truncated
    ipv4_prefix: int = setting(between(8, 32), default=24, restart=True)
    ipv6_prefix: int = setting(between(16, 128), default=56, restart=True)
    # sources never limited (loopback always)
    exempt: tuple[str, ...] = setting(address_prefix, default=(), restart=True)

    def problems(self) -> list[str]:
        return []


@dataclass(frozen=True)
class DynHostConfig:
    hostname: str = setting(absolute_name, default=REQUIRED, restart=False)
    username: str = setting(lambda v: v or fail("a username is required"), default=REQUIRED, restart=False)
    password: str = setting(default="", repr=False, restart=False)

    def problems(self) -> list[str]:
        return [] if self.password else ["password: required"]


@dataclass(frozen=True)
class Dyndns2Config:
    """`GET /nic/update` for routers, ddclient and inadyn (off unless enabled)."""

    enabled: bool = setting(default=False, restart=False)
    ttl: int = setting(between(0, 86400), default=60, restart=False)  # TTL of the records it writes
    min_interval: float = setting(between(0, 86400), default=60.0, restart=False)  # per host, else "abuse"
    # its own listener, serving /nic/update only ("" = on the control listener, [http] listen);
    # applied by a reload, as are the limits and the certificate files (read again each reload)
    listen: str = setting(listener_address, default="", restart=False)
    tls_cert: str = setting(default="", restart=False)  # PEM certificate (chain) file: HTTPS
    tls_key: str = setting(default="", restart=False)  # PEM private key file
    max_connections: int = setting(between(1, 10000), default=64, restart=False)
    max_per_source: int = setting(between(1, 10000), default=8, restart=False)
    timeout: float = setting(between(0.5, 600), default=10.0, restart=False)
    host: tuple[DynHostConfig, ...] = ()

    def problems(self) -> list[str]:
        if bool(self.tls_cert) != bool(self.tls_key):
            return ["tls_cert: tls_cert and tls_key go together"]
        if self.tls_cert and not self.listen:
            return ["tls_cert: needs listen (TLS is served on the dyndns2 listener only)"]
        return []

"""What a process that answers queries needs: the engine, its sockets, its transports.

Shared by the single-process server and by each `--workers` answer process, so both
answer with the same settings. Sockets are made here (SO_REUSEPORT when several
processes share a port) and handed to the event loop as ready-made objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

import dns.name

from dynmx.answer.acl import ZoneGate
from dynmx.answer.compiler import AnswerTable
from dynmx.answer.engine import Engine
from dynmx.answer.hooks import ChaosConfig
from dynmx.answer.rrl import RateLimiter, RrlSettings
from dynmx.app.update_service import load_keyring
from dynmx.config import Config, nsid_octets
from dynmx.control.tsig import Signer
from dynmx.server import mmsg
from dynmx.server.bind import ListenFailed, naming
from dynmx.server.tcp import TcpConnections, TcpLimits
from dynmx.server.udp import Handler, UdpServer

UDP_BUFFER = 4 << 20  # absorbs bursts while the loop is busy (a reload compiling, a scrape)
TCP_BACKLOG = 1024


def _socket(family: socket.AddressFamily, kind: socket.SocketKind, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return sock


def udp_socket(family: socket.AddressFamily, host: str, port: int, reuse_port: bool = False) -> socket.socket:
    sock = _socket(family, socket.SOCK_DGRAM, reuse_port)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        # The kernel caps this at net.core.rmem_max; the default size still works.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_BUFFER)
    try:
        with naming(host, port, "udp", "dns"):
            sock.bind((host, port))
    except ListenFailed:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def tcp_socket(family: socket.AddressFamily, host: str, port: int, reuse_port: bool = False) -> socket.socket:
    sock = _socket(family, socket.SOCK_STREAM, reuse_port)
    try:
        with naming(host, port, "tcp", "dns"):
            sock.bind((host, port))
            sock.listen(TCP_BACKLOG)
    except ListenFailed:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


@dataclass
class SocketSet:
    """The UDP and TCP socket of one listen address (one pair per answer process)."""

    host: str
    port: int
    udp: socket.socket
    tcp: socket.socket


def bind_all(config: Config, copies: int) -> list[list[SocketSet]]:
    """`copies` socket pairs per listen address on one port each (port 0 resolved once)."""
    found: list[list[SocketSet]] = [[] for _ in range(copies)]
    reuse = copies > 1
    for host, port in config.listen_addresses():
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for index in range(copies):
            tcp = tcp_socket(family, host, port, reuse)
            port = tcp.getsockname()[1]  # port 0: the first copy picks, the others follow
            found[index].append(SocketSet(host, port, udp_socket(family, host, port, reuse), tcp))
    return found


def zone_gate(
    config: Config, unavailable: Iterable[dns.name.Name] = (), served: Iterable[dns.name.Name] = ()
) -> ZoneGate | None:
    """The zones answered with an error instead of data (`allow_query` lists, and the
    `unavailable` secondary zones), or None when every zone answers everyone from data.
    `served`: the zones held, of which those inside an unavailable one still answer."""
    allow_query = {
        dns.name.from_text(zone.name).to_digestable(): [ipaddress.ip_network(p) for p in zone.allow_query]
        for zone in config.zone
        if zone.allow_query
    }
    dark = frozenset(unavailable)
    below = [o for o in served if o not in dark and any(o.is_subdomain(d) for d in dark)] if dark else []
    if not allow_query and not dark:
        return None
    return ZoneGate(allow_query, [o.to_digestable() for o in dark], [o.to_digestable() for o in below])


def make_engine(config: Config, table: AnswerTable) -> Engine:
    cfg = config.server
    engine = Engine(
        table,
        chaos=ChaosConfig(version=cfg.version, identity=cfg.identity),
        lru_size=cfg.cache_size,
        client_subnet=cfg.client_subnet,
        client_subnet_sources=[ipaddress.ip_network(prefix) for prefix in cfg.client_subnet_sources],
        nsid=nsid_octets(cfg.nsid),
    )
    engine.gate = zone_gate(config)  # the app adds the unavailable secondary zones
    # RFC 8945: signed queries are verified and answered signed; with no [[key]], BADKEY.
    engine.tsig = Signer(load_keyring(config))
    if config.rrl.enabled:
        limits = config.rrl
        engine.rrl = RateLimiter(
            RrlSettings(
                limits.rate,
                limits.slip,
                limits.ipv4_prefix,
                limits.ipv6_prefix,
                tuple(ipaddress.ip_network(prefix) for prefix in limits.exempt),
            )
        )
    return engine


@dataclass
class Listeners:
    """The transports of one answer process, and their counters."""

    tcp: TcpConnections
    udp: list[UdpServer | mmsg.BatchedUdp] = field(default_factory=list)
    transports: list[asyncio.BaseTransport] = field(default_factory=list)
    tcp_servers: list[asyncio.base_events.Server] = field(default_factory=list)

    @classmethod
    def for_engine(cls, config: Config, engine: Engine) -> Listeners:
        """With `workers` answer processes, each holds its share of the TCP caps: the configured
        numbers are the server's, not each worker's."""
        cfg = config.server
        limits = TcpLimits(
            cfg.tcp_idle_timeout,
            cfg.tcp_max_connections,
            cfg.tcp_max_per_source,
            cfg.tcp_message_timeout,
            cfg.tcp_max_in_flight,
        )
        return cls(TcpConnections(engine.handle_tcp, limits.share(cfg.workers)))

    async def serve(self, handler: Handler, sockets: list[SocketSet]) -> None:
        """UDP in batches (`recvmmsg`/`sendmmsg`) where the system has them, else through the
        loop's datagram endpoint; TCP through the loop."""
        loop = asyncio.get_running_loop()
        for pair in sockets:
            tcp_server = await loop.create_server(self.tcp.protocol, sock=pair.tcp)
            self.tcp_servers.append(tcp_server)
            if mmsg.available():
                batched = mmsg.BatchedUdp(pair.udp, handler)
                batched.start(loop)
                self.udp.append(batched)
                continue
            protocol = UdpServer(handler)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: protocol,  # noqa: B023 - called before the loop moves on
                sock=pair.udp,
            )
            self.udp.append(protocol)
            self.transports.append(transport)

    def close(self) -> None:
        for server in self.tcp_servers:
            server.close()
        for transport in self.transports:
            transport.close()
        for udp in self.udp:
            if isinstance(udp, mmsg.BatchedUdp):
                udp.close()


@dataclass
class HotStats:
    """The hot path's plain counters of one answer process; several add up (workers)."""

    counters: dict[str, int] = field(default_factory=dict)
    firsts: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (pool, name, member)

    @classmethod
    def read(cls, engine: Engine, listeners: Listeners | None) -> HotStats:
        counters = {f"slow_{result}": value for result, value in engine.stats.items()}
        counters["cache"] = engine.cache_len()
        counters["entries"] = len(engine.table.entries)
        if engine.rrl is not None:
            counters["rrl_limited"] = engine.rrl.limited
            counters["rrl_slipped"] = engine.rrl.slipped
        if listeners is not None:
            tcp = listeners.tcp
            counters |= {
                "udp": sum(p.received for p in listeners.udp),
                "tcp": tcp.messages,
                "tcp_open": len(tcp.open),
                "tcp_refused": tcp.refused,
                "tcp_slow_senders": tcp.slow_senders,
            }
        firsts: dict[tuple[str, str, str], int] = {}
        for (owner, _), selector in engine.table.selectors.items():
            for member, count in selector.first_counts().items():
                firsts[(selector.name, owner.to_text(), member)] = count
        return cls(counters, firsts)

    def add(self, other: HotStats) -> HotStats:
        counters = dict(self.counters)
        for key, value in other.counters.items():
            counters[key] = counters.get(key, 0) + value
        firsts = dict(self.firsts)
        for first, count in other.firsts.items():
            firsts[first] = firsts.get(first, 0) + count
        return HotStats(counters, firsts)

"""The self-connect check's sections: [selfcheck] with its address sources, and the
[[registrar]] adapters a changed address (or a DS) is pushed through."""

from __future__ import annotations

from dataclasses import dataclass

from dynmx.config_keys import REQUIRED, setting
from dynmx.config_values import (
    absolute_name,
    address_family,
    address_prefix,
    between,
    one_label,
    one_of,
    parse_hostport,
    strictly_below,
)


@dataclass(frozen=True)
class SelfCheckSourceConfig:
    """One way to learn our public address: an HTTP echo, a DNS "whoami" name, an interface."""

    kind: str = setting(one_of("http", "dns", "interface"), default=REQUIRED, restart=False)
    url: str = setting(default="", restart=False)  # http: an echo service answering with the caller's address
    format: str = setting(one_of("text", "json"), default="text", restart=False)  # http: body format
    field: str = setting(default="", restart=False)  # http, json: the (dotted) field holding the address
    family: int = setting(
        address_family, default=0, restart=False
    )  # 4, 6, or 0 for both (http); 4 or 6 (interface)
    # dns: HOST:PORT to ask
    resolver: str = setting(lambda v: v == "" or parse_hostport(v), default="", restart=False)
    name: str = setting(default="", restart=False)  # dns: the whoami name, e.g. "o-o.myaddr.l.google.com."
    rdtype: str = setting(one_of("A", "AAAA", "TXT"), default="A", restart=False)  # dns
    # interface: an address whose route picks the interface ("" = a root server)
    route_target: str = setting(default="", restart=False)

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

    enabled: bool = setting(default=False, restart=False)
    names: tuple[str, ...] = setting(absolute_name, default=(), restart=False)  # our own published names
    # what the world sees (never only us)
    resolvers: tuple[str, ...] = setting(parse_hostport, default=(), restart=False)
    dns_port: int = setting(between(1, 65535), default=53, restart=False)  # where probes are sent
    interval: float = setting(between(1, 86400), default=300.0, restart=False)
    timeout: float = setting(between(0.1, 60), default=5.0, restart=False)
    quorum: int = setting(between(1, 16), default=2, restart=False)  # discovery sources that must agree
    # accepted as public (test labs)
    allowed_prefixes: tuple[str, ...] = setting(address_prefix, default=(), restart=False)
    # between registrar updates
    min_interval: float = setting(between(0, 86400 * 30), default=300.0, restart=False)
    # forced refresh
    max_interval: float = setting(between(60, 86400 * 365), default=25 * 86400.0, restart=False)
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

    name: str = setting(
        one_label, default=REQUIRED, restart=False
    )  # a label for logs, /status and the saved state
    adapter: str = setting(one_of("dyndns2", "rfc2136", "webhook"), default=REQUIRED, restart=False)
    # own names it pushes; empty = all
    names: tuple[str, ...] = setting(absolute_name, default=(), restart=False)
    # dyndns2: the update URL (https://.../nic/update); webhook: where to POST
    url: str = setting(default="", restart=False)
    username: str = setting(default="", restart=False)  # dyndns2
    password: str = setting(default="", repr=False, restart=False)  # dyndns2
    # dyndns2: send these instead of the changed name
    hostnames: tuple[str, ...] = setting(default=(), restart=False)
    contact: str = setting(default="", restart=False)  # appended to the User-Agent (dyndns2, webhook)
    # rfc2136: HOST:PORT
    server: str = setting(lambda v: v == "" or parse_hostport(v), default="", restart=False)
    # rfc2136: the zone to UPDATE
    zone: str = setting(lambda v: v == "" or absolute_name(v), default="", restart=False)
    # rfc2136: a [[key]] name
    key: str = setting(lambda v: v == "" or absolute_name(v), default="", restart=False)
    ttl: int = setting(between(0, 86400), default=300, restart=False)  # rfc2136
    token: str = setting(default="", repr=False, restart=False)  # webhook: bearer token
    timeout: float = setting(between(0.1, 300), default=30.0, restart=False)
    # zones dynmx signs whose DS this adapter pushes (rfc2136: children of `zone`; webhook)
    ds_zones: tuple[str, ...] = setting(absolute_name, default=(), restart=False)

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
            if self.adapter == "rfc2136" and self.zone and not strictly_below(child, self.zone):
                found.append(f"ds_zones[{index}]: {child} is not a child zone of zone = {self.zone}")
        return found

"""The sections that shape answers per name and per client: [[pool]] with its members and
hints, [[client]] actions and [[name]] actions."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from dynmx.config_choices import POOL_KINDS, PROBES, ROLES, STRATEGIES
from dynmx.config_keys import REQUIRED, setting
from dynmx.config_values import absolute_name, address_prefix, between, is_ip, member_host, one_label, one_of
from dynmx.health.kinds import DEFAULT_PORTS as PROBE_PORTS

# The probe's usual port; http/load take theirs from the url (80 when it has none).
DEFAULT_PORTS = {**PROBE_PORTS, "http": 80, "load": 80, "none": 0}


@dataclass(frozen=True)
class MemberConfig:
    host: str = setting(member_host, default=REQUIRED, restart=False)
    preference: int = setting(between(0, 65535), default=10, restart=False)
    weight: float = setting(between(0, 1e6), default=1.0, restart=False)
    role: str = setting(one_of(*ROLES), default="primary", restart=False)
    # Health probing (defaults as gdnsd/HAProxy operators know them: 10 s, 3 s, fall 3, rise 2).
    probe: str = setting(one_of(*PROBES), default="smtp", restart=False)
    # default: the host's A/AAAA
    address: str = setting(lambda v: v and ipaddress.ip_address(v), default="", restart=False)
    # 0: the probe kind's usual port; SRV port too
    port: int = setting(between(0, 65535), default=0, restart=False)
    url: str = setting(default="", restart=False)  # http and load probes
    interval: float = setting(between(0.05, 86400), default=10.0, restart=False)
    timeout: float = setting(between(0.05, 600), default=3.0, restart=False)
    fall: int = setting(between(1, 1000), default=3, restart=False)
    rise: int = setting(between(1, 1000), default=2, restart=False)
    starttls: bool = setting(default=False, restart=False)  # smtp: require STARTTLS in the EHLO reply
    # http: empty = any 2xx
    expect_status: tuple[int, ...] = setting(between(100, 599), default=(), restart=False)
    body_match: str = setting(default="", restart=False)  # http: substring the body must contain
    load_field: str = setting(default="load", restart=False)  # load: JSON field (dotted path)
    load_metric: str = setting(default="", restart=False)  # load: Prometheus metric name instead of JSON
    # prefixes this member resolves from (relays)
    sources: tuple[str, ...] = setting(address_prefix, default=(), restart=False)
    # imaps/pop3s/submissions: warn this early
    tls_warn_days: int = setting(between(0, 3650), default=14, restart=False)
    server_name: str = setting(default="", restart=False)  # TLS probes: SNI to send (default: none)
    # smtp: check STARTTLS and the certificate against our TLSA at _25._tcp.<host> (RFC 7672)
    tlsa: bool = setting(default=False, restart=False)

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
    label: str = setting(lambda v: one_label(v), default=REQUIRED, restart=False)
    order: tuple[str, ...] = setting(member_host, default=(), restart=False)

    def problems(self) -> list[str]:
        return [] if self.order else ["order: a hint needs at least one host"]


@dataclass(frozen=True)
class PoolConfig:
    name: str = setting(absolute_name, default=REQUIRED, restart=False)
    kind: str = setting(
        one_of(*POOL_KINDS), default="mx", restart=False
    )  # the RRset rewritten: MX, A/AAAA, or SRV
    strategy: str = setting(one_of(*STRATEGIES), default="static", restart=False)
    # address pools: at most N addresses (0: all)
    answer_count: int = setting(between(0, 64), default=0, restart=False)
    ttl: int = setting(between(0, 2147483647), default=30, restart=False)
    # least-load: within this of the lowest
    tie_band: float = setting(between(0, 1e9), default=0.05, restart=False)
    # primaries down this long: standbys up
    promote_after: float = setting(between(0, 1e7), default=120.0, restart=False)
    # a primary up this long: standbys back
    demote_after: float = setting(between(0, 1e7), default=120.0, restart=False)
    # command and arguments run once per promotion
    on_promote: tuple[str, ...] = setting(default=(), restart=False)
    on_promote_url: str = setting(default="", restart=False)  # or a webhook POSTed once per promotion (httpx)
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
    prefix: str = setting(address_prefix, default=REQUIRED, restart=False)
    action: str = setting(one_of("answer", "refuse", "drop", "hint"), default="answer", restart=False)
    hint: str = setting(lambda v: v and one_label(v), default="", restart=False)

    def problems(self) -> list[str]:
        if self.action == "hint" and not self.hint:
            return ["hint: action 'hint' needs the hint label to answer with"]
        if self.action != "hint" and self.hint:
            return [f"hint: only used with action 'hint', not {self.action!r}"]
        return []


@dataclass(frozen=True)
class NameConfig:
    name: str = setting(absolute_name, default=REQUIRED, restart=False)
    action: str = setting(one_of("null-mx", "nxdomain", "refuse"), default=REQUIRED, restart=False)

    def problems(self) -> list[str]:
        return []

"""The sections about zones and who may touch them: [[key]] (TSIG), [[zone]], [defaults] (new
zones and zones without a block) and [catalog] (RFC 9432)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from dynmx.config_choices import TSIG_ALGORITHMS
from dynmx.config_keys import REQUIRED, setting
from dynmx.config_values import (
    absolute_name,
    address_prefix,
    between,
    one_of,
    parse_hostport,
    prefix_or_key_name,
    record_type,
)


@dataclass(frozen=True)
class KeyConfig:
    """A TSIG key (RFC 8945); the secret is never logged or shown in /status."""

    name: str = setting(absolute_name, default=REQUIRED, restart=False)
    algorithm: str = setting(one_of(*TSIG_ALGORITHMS), default="hmac-sha256", restart=False)
    secret: str = setting(default="", repr=False, restart=False)  # base64
    secret_file: str = setting(default="", restart=False)  # or a file holding the base64 secret
    # "host.example.test." or "*.dyn.example.test."
    names: tuple[str, ...] = setting(absolute_name, default=(), restart=False)
    # types this key may change, e.g. ["A"]; empty = any
    types: tuple[str, ...] = setting(record_type, default=(), restart=False)

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

    name: str = setting(absolute_name, default=REQUIRED, restart=False)
    serial: str = setting(one_of("unixtime", "dateserial", "increment"), default="unixtime", restart=False)
    # TSIG key names that may UPDATE
    allow_update: tuple[str, ...] = setting(absolute_name, default=(), restart=False)
    # prefixes and/or keys
    allow_transfer: tuple[str, ...] = setting(lambda v: prefix_or_key_name(v), default=(), restart=False)
    # secondaries to NOTIFY on change
    notify: tuple[str, ...] = setting(parse_hostport, default=(), restart=False)
    # HOST:PORT: follow it
    primary: str = setting(lambda v: v == "" or parse_hostport(v), default="", restart=False)
    # TSIG key signing our transfer requests
    primary_key: str = setting(absolute_name, default="", restart=False)
    # prefixes that may query; empty = all
    allow_query: tuple[str, ...] = setting(address_prefix, default=(), restart=False)
    # NOTIFY senders besides the primary
    allow_notify: tuple[str, ...] = setting(address_prefix, default=(), restart=False)
    # sign the zone when it is compiled, with a key made on first start in state_dir/keys
    dnssec: bool = setting(default=False, restart=False)
    dnssec_algorithm: str = setting(one_of(*DNSSEC_ALGORITHMS), default="ecdsap256sha256", restart=False)
    # NSEC3: RFC 9276 parameters (SHA-1, no extra iterations, no salt, no opt-out)
    denial: str = setting(one_of("nsec", "nsec3"), default="nsec", restart=False)
    # key rollover waits (RFC 7583), seconds: DprpC (BIND's zone-propagation-delay), TTLds
    # (parent-ds-ttl) and DprpP (parent-propagation-delay), with BIND's defaults
    dnssec_propagation_delay: int = setting(between(0, 30 * 86400), default=300, restart=False)
    dnssec_parent_ds_ttl: int = setting(between(0, 2147483647), default=86400, restart=False)
    dnssec_parent_propagation_delay: int = setting(between(0, 30 * 86400), default=3600, restart=False)

    def problems(self) -> list[str]:
        found = ["primary_key: needs primary"] if self.primary_key and not self.primary else []
        if self.dnssec and self.primary:
            found.append("dnssec: a secondary zone is served as its primary signed it; sign it there")
        return found


@dataclass(frozen=True)
class DefaultsConfig:
    """What `dynmx zone add` writes into a new zone's SOA and NS."""

    ns: tuple[str, ...] = setting(absolute_name, default=(), restart=False)  # name servers of new zones
    # SOA RNAME, e.g. "hostmaster.example.test."; default: hostmaster.<zone>
    hostmaster: str = setting(default="", restart=False)
    ttl: int = setting(between(0, 2147483647), default=3600, restart=False)
    refresh: int = setting(default=7200, restart=False)
    retry: int = setting(default=3600, restart=False)
    expire: int = setting(default=1209600, restart=False)
    minimum: int = setting(default=300, restart=False)  # negative-caching TTL (RFC 2308)
    # For every zone without a [[zone]] block (one `zone add` made among them), as Knot's
    # `template: default`: TSIG keys that may UPDATE, who may transfer, whom to NOTIFY.
    allow_update: tuple[str, ...] = setting(absolute_name, default=(), restart=False)
    allow_transfer: tuple[str, ...] = setting(lambda v: prefix_or_key_name(v), default=(), restart=False)
    notify: tuple[str, ...] = setting(parse_hostport, default=(), restart=False)

    def problems(self) -> list[str]:
        return []


@dataclass(frozen=True)
class CatalogConfig:
    """A catalog zone (RFC 9432, version 2). Without `primary` this server produces it: every
    zone it is primary for is a member, and the operator's pool decisions ride along as
    custom properties under `ext` (drains, loads, pool definitions). With `primary` it
    consumes one: every member is served as a secondary of that primary, and the pool
    decisions found under `ext` are applied here. Read at start."""

    name: str = setting(lambda v: v and absolute_name(v), default="", restart=True)  # "" = no catalog
    allow_transfer: tuple[str, ...] = setting(lambda v: prefix_or_key_name(v), default=(), restart=True)
    notify: tuple[str, ...] = setting(parse_hostport, default=(), restart=True)
    # consumer: HOST:PORT of the primary of the catalog and of every member
    primary: str = setting(lambda v: v == "" or parse_hostport(v), default="", restart=True)
    primary_key: str = setting(absolute_name, default="", restart=True)  # TSIG key for those transfers
    allow_notify: tuple[str, ...] = setting(
        address_prefix, default=(), restart=True
    )  # NOTIFY senders besides it

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

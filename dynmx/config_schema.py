"""The whole config file as one frozen dataclass: its sections as fields, and the checks that
need more than one section (a hint a client names must be a pool's, a key named must exist)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dynmx.config_keys import NOT_IN_FILE
from dynmx.config_pools import ClientConfig, NameConfig, PoolConfig
from dynmx.config_selfcheck import RegistrarConfig, SelfCheckConfig
from dynmx.config_server import Dyndns2Config, HttpConfig, LogConfig, RrlConfig, ServerConfig
from dynmx.config_values import absolute_name, parse_hostport
from dynmx.config_zones import CatalogConfig, DefaultsConfig, KeyConfig, ZoneConfig


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
    # relative paths in the file are relative to the file
    base_dir: Path = field(default=Path("."), metadata=NOT_IN_FILE)
    # the file it was read from (`load_config`), for `readable_secrets`
    source: Path | None = field(default=None, metadata=NOT_IN_FILE)

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

"""The config file: `load_config` reads and checks it into a `Config`.

Each section is a frozen dataclass whose fields are the allowed keys (`config_keys`), in its
own module: `config_server`, `config_pools`, `config_zones`, `config_selfcheck`, joined by
`config_schema`'s `Config`; single values are checked by `config_values`, tables built by
`config_build`, and what a reload applies is `config_reload`'s. An error reads like
`dynmx.toml:12: pool[0].member[1].preference: expected 0-65535, got 70000` (the line of the
key, or of the table that lacks it: see `config_lines`).

The names importers use most are re-exported here, so `from dynmx.config import Config` and
the sections keep working; new code may import from where a name lives.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from dynmx.config_build import build_section
from dynmx.config_keys import file_keys
from dynmx.config_lines import key_line, parse_path, toml_error
from dynmx.config_pools import MemberConfig as MemberConfig
from dynmx.config_pools import PoolConfig as PoolConfig
from dynmx.config_reload import keep_running as keep_running
from dynmx.config_reload import restart_keys as restart_keys
from dynmx.config_schema import Config as Config
from dynmx.config_selfcheck import RegistrarConfig as RegistrarConfig
from dynmx.config_selfcheck import SelfCheckSourceConfig as SelfCheckSourceConfig
from dynmx.config_server import Dyndns2Config as Dyndns2Config
from dynmx.config_server import HttpConfig as HttpConfig
from dynmx.config_server import LogConfig as LogConfig
from dynmx.config_values import absolute_name as absolute_name
from dynmx.config_values import nsid_octets as nsid_octets
from dynmx.config_values import parse_hostport as parse_hostport
from dynmx.config_zones import ZoneConfig as ZoneConfig
from dynmx.errors import ConfigError


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
    for spec in file_keys(type(section)):
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
    return build_section(PoolConfig, raw, path)


def from_mapping(raw: dict[str, Any], base_dir: Path = Path(".")) -> Config:
    """Build a Config from parsed TOML (also what tests use)."""
    config = build_section(Config, raw, "")
    if config.catalog.name:  # served, transferred, NOTIFYed or followed as a zone with a block
        config = dataclasses.replace(config, zone=(*config.zone, config.catalog.block()))
    return dataclasses.replace(config, base_dir=base_dir)

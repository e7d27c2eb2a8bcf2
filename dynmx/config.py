"""TOML configuration into frozen dataclasses; unknown keys and bad values name their path.

Each section is a dataclass whose fields are the allowed keys. `_build` checks every
key against the fields' types, so an error reads like
`dynmx.toml: server.listen[1]: expected HOST:PORT, got '127.0.0.1'`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dynmx.errors import ConfigError

T = TypeVar("T")


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


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[str, ...] = ("127.0.0.1:5353",)
    zones_dir: str = "zones"
    state_dir: str = "state"
    tcp_idle_timeout: float = 10.0
    tcp_max_connections: int = 200
    tcp_max_per_source: int = 20
    cache_size: int = 10000
    version: str = ""  # answer CH TXT version.bind with this; empty keeps it REFUSED
    identity: str = ""  # answer CH TXT id.server with this
    pid_file: str = ""


@dataclass(frozen=True)
class HttpConfig:
    listen: str = ""  # "127.0.0.1:9153" serves /metrics, /status, /reload; empty: off


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    log: LogConfig = field(default_factory=LogConfig)
    base_dir: Path = Path(".")  # relative paths in the file are relative to the file

    def path(self, value: str) -> Path:
        candidate = Path(value)
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def listen_addresses(self) -> list[tuple[str, int]]:
        return [parse_hostport(item) for item in self.server.listen]


_VALIDATORS: dict[tuple[str, str], typing.Callable[[Any], object]] = {
    ("server", "listen"): parse_hostport,
    ("http", "listen"): lambda v: v == "" or parse_hostport(v),
    ("log", "level"): lambda v: _choice(v, ("debug", "info", "warning", "error")),
}


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
    return value


def _coerce(value: Any, hint: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_hint, _) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_hint, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if hint in (int, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: expected {hint.__name__}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{path}: unsupported type")  # pragma: no cover - no such fields yet
    raise ConfigError(f"{path}: unsupported type {hint!r}")  # pragma: no cover


def _build(cls: type[T], table: Any, path: str) -> T:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            raise ConfigError(f"{path}.{key}: unknown key (allowed: {', '.join(sorted(names))})")
        coerced = _coerce(value, hints[key], f"{path}.{key}")
        validator = _VALIDATORS.get((path, key))
        if validator is not None:
            items = coerced if isinstance(coerced, tuple) else (coerced,)
            for index, item in enumerate(items):
                where = f"{path}.{key}[{index}]" if isinstance(coerced, tuple) else f"{path}.{key}"
                try:
                    validator(item)
                except ValueError as error:
                    raise ConfigError(f"{where}: {error}") from None
        values[key] = coerced
    return cls(**values)


def load_config(path: Path) -> Config:
    """Read and validate a config file; every error names the file and the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None
    try:
        return from_mapping(raw, base_dir=path.parent)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def from_mapping(raw: dict[str, Any], base_dir: Path = Path(".")) -> Config:
    sections = {"server": ServerConfig, "http": HttpConfig, "log": LogConfig}
    built: dict[str, Any] = {}
    for key, value in raw.items():
        cls = sections.get(key)
        if cls is None:
            raise ConfigError(f"{key}: unknown section (allowed: {', '.join(sorted(sections))})")
        built[key] = _build(cls, value, key)
    return Config(**built, base_dir=base_dir)

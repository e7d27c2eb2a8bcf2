"""Parsed TOML into a section: every value coerced to its field's type and checked, unknown and
missing keys refused, then the section's own `problems()`; each error names the key's path."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from dynmx.config_keys import REQUIRED, file_keys
from dynmx.config_lines import shown_key
from dynmx.config_values import Check
from dynmx.errors import ConfigError

T = TypeVar("T")


def _coerce(value: Any, hint: Any, check: Check | None, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_hint, _) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_hint, check, f"{path}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return build_section(hint, value, path)  # type: ignore[arg-type]
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


def build_section(cls: type[T], table: Any, path: str) -> T:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in file_keys(cls)}
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

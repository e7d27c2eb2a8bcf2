"""Reload: which keys a running server applies, and which only a restart does (each key's
`restart` decision, declared with `setting`)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from dynmx.config_keys import array_of, file_keys, section_of
from dynmx.config_schema import Config


def reload_decisions(cls: type[Any] = Config, path: str = "") -> dict[str, bool | None]:
    """Every key of the schema by dotted path (`server.listen`, `pool[].member[].host`) with
    its reload decision: True, only a restart applies it; False, a reload applies it; None,
    undecided (a field declared without `setting`, which the schema's test refuses)."""
    found: dict[str, bool | None] = {}
    hints = typing.get_type_hints(cls)
    for spec in file_keys(cls):
        where = f"{path}{spec.name}"
        section, items = section_of(hints[spec.name]), array_of(hints[spec.name])
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
    for spec in file_keys(type(new)):
        was, now = getattr(running, spec.name), getattr(new, spec.name)
        if section_of(hints[spec.name]) is not None:
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
    for spec in file_keys(type(new)):
        if section_of(hints[spec.name]) is not None:
            changes[spec.name] = _kept(getattr(running, spec.name), getattr(new, spec.name))
        elif spec.metadata.get("restart"):
            changes[spec.name] = getattr(running, spec.name)
    return dataclasses.replace(new, **changes)

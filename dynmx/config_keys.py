"""How a section of the config declares its keys: a frozen dataclass whose fields are the
allowed keys, each made by `setting` with its check and its reload decision."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from typing import Any

from dynmx.config_values import Check


def setting(check: Check | None = None, *, restart: bool, **kwargs: Any) -> Any:
    """One key of a section. `check` validates (and may normalise) its value; `restart` is the
    key's reload decision, made for every key: True when the running server reads it only at
    start (a reload keeps the running value and names the key in `event=config-restart-needed`),
    False when a reload applies it. `tests/unit/test_config_reload.py` refuses a key without one."""
    metadata: dict[str, object] = {"restart": restart}
    if check is not None:
        metadata["check"] = check
    return field(metadata=metadata, **kwargs)


REQUIRED: Any = dataclasses.MISSING


# A field of a section that the file does not set (where the file was read from).
NOT_IN_FILE = {"in_file": False}


def file_keys(cls: type[Any]) -> list[dataclasses.Field[Any]]:
    """The fields of a section that are keys of the file (`Config.base_dir`, `source` are not)."""
    return [spec for spec in dataclasses.fields(cls) if spec.metadata.get("in_file", True)]


def section_of(hint: Any) -> type[Any] | None:
    """The section a key holds when it is a table (`[server]`), else None."""
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def array_of(hint: Any) -> type[Any] | None:
    """The section of each item when a key is an array of tables (`[[pool]]`), else None."""
    return section_of(typing.get_args(hint)[0]) if typing.get_origin(hint) is tuple else None

"""Which config file a command reads when `-c/--config` is not given.

As NSD and Knot read `/etc/nsd/nsd.conf` and `/etc/knot/knot.conf` unless `-c` names
another: `-c FILE` wins, else the file `$DYNMX_CONFIG` names (an error when it is missing:
it was asked for), else `/etc/dynmx/dynmx.toml` when it exists, else none. `serve`,
`check` and `reload` given `--zones` without `-c` read no config file: a directory served
on its own does not pick up the system server's settings (its state_dir above all).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

CONFIG_ENV = "DYNMX_CONFIG"
DEFAULT_CONFIG = Path("/etc/dynmx/dynmx.toml")
NEEDS_CONFIG = "_config_needed"  # set on the parsers whose --config was `required=True`


def default_config(environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file used when `-c` is not given, or None."""
    named = (os.environ if environ is None else environ).get(CONFIG_ENV)
    if named:
        return Path(named)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def describe() -> str:
    """The `--help` words for the default: where it comes from, and which file it is now."""
    found = default_config()
    if found is None:
        now = "none now"
    elif os.environ.get(CONFIG_ENV):
        now = f"now {found}, from ${CONFIG_ENV}"
    else:
        now = f"now {found}"
    return f"default: ${CONFIG_ENV}, else {DEFAULT_CONFIG} if it exists; {now}"


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                yield from _parsers(child)


def install(parser: argparse.ArgumentParser) -> None:
    """Make every `--config` of the tree optional, its help naming the default; a parser whose
    `--config` was required is marked, so `apply` can say that none was found."""
    text = describe()
    parser.epilog = f"Commands that read a config take -c FILE ({text})."
    for each in _parsers(parser):
        for action in each._actions:
            if action.dest != "config" or not action.option_strings:
                continue
            if action.required:
                action.required = False
                each.set_defaults(**{NEEDS_CONFIG: True})
            action.help = f"{action.help or 'TOML config file'} ({text.replace('%', '%%')})"


def apply(args: argparse.Namespace) -> str | None:
    """Fill in `args.config` from the default; return an error message when the command needs a
    config file and none was given or found."""
    if not hasattr(args, "config"):
        return None
    if args.config is None and not getattr(args, "zones", None):
        found = default_config()
        args.config = str(found) if found is not None else None
    if getattr(args, NEEDS_CONFIG, False) and not args.config:
        return (
            f"{args.command}: needs a config file: -c FILE, ${CONFIG_ENV}, or {DEFAULT_CONFIG}"
            " (none of them is there)"
        )
    return None

"""The config a command runs with: the config file (`--config`), with the command line's
`--zones`, `--listen`, `--workers`, `--pid-file`, `--http` and `--log-level` laid over it."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from dynmx.errors import ConfigError

if TYPE_CHECKING:
    from dynmx.cli.client import ControlClient
    from dynmx.config import Config

PID_FILE = "dynmx.pid"  # in state_dir unless server.pid_file or --pid-file names another


def config_from_args(args: argparse.Namespace) -> Config:
    """`--config FILE`, with `--zones`/`--listen`/`--http` overriding (or standing alone)."""
    from dynmx.config import Config, load_config
    from dynmx.config_server import HttpConfig, LogConfig
    from dynmx.config_values import parse_hostport

    config = load_config(Path(args.config)) if args.config else Config()
    server = config.server
    http = config.http
    overrides: dict[str, object] = {}
    if getattr(args, "zones", None):
        overrides["zones_dir"] = str(Path(args.zones).resolve())
        if not args.config:  # beside the zones: two servers of two directories share no state
            overrides["state_dir"] = str(Path(args.zones).resolve().parent / "state")
    if getattr(args, "listen", None):
        for item in args.listen:
            try:
                parse_hostport(item)
            except ValueError as error:
                raise ConfigError(f"--listen: {error}") from None
        overrides["listen"] = tuple(args.listen)
    if getattr(args, "workers", None) is not None:
        if not 0 <= args.workers <= 256:
            raise ConfigError(f"--workers: expected 0-256, got {args.workers}")
        overrides["workers"] = args.workers
    pid_file = getattr(args, "pid_file", None)
    if pid_file is not None:  # `--pid-file ''`: none
        overrides["pid_file"] = str(Path(pid_file).resolve()) if pid_file else ""
    if overrides:
        server = dataclasses.replace(server, **overrides)  # type: ignore[arg-type]
    if pid_file is None and not server.pid_file:  # NSD's pidfile default, in the server's own state_dir
        server = dataclasses.replace(
            server, pid_file=str((config.path(server.state_dir) / PID_FILE).resolve())
        )
    if getattr(args, "http", None) is not None:
        if args.http:
            try:
                parse_hostport(args.http, 9153)
            except ValueError as error:
                raise ConfigError(f"--http: {error}") from None
        http = HttpConfig(listen=args.http)
    level = getattr(args, "log_level", None)
    log_config = LogConfig(level=level) if level else config.log
    return dataclasses.replace(config, server=server, http=http, log=log_config)


def client(args: argparse.Namespace) -> ControlClient:
    from dynmx.cli.client import ControlClient

    return ControlClient(config_from_args(args), args.http)

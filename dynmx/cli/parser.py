"""The command line: every command's arguments and the function that runs it.

Building it loads only the argument definitions and the light modules of the commands: each
command imports what it runs (the server, httpx, dnspython's zone code) inside the function
that runs it, so that `--version`, `--help` and completion start fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dynmx import __version__
from dynmx.cli import (
    completion,
    configpath,
    dnssec,
    ds_push,
    fleet,
    keys,
    pool_parser,
    record_parser,
    registrar,
    zone_parser,
)
from dynmx.cli.check import run_check
from dynmx.cli.options import PID_FILE
from dynmx.cli.running import (
    run_explain,
    run_member_drain,
    run_member_load,
    run_reload,
    run_routes,
    run_selfcheck,
    run_status,
)
from dynmx.cli.serve import run_serve


def _cmd_pool(args: argparse.Namespace) -> int:
    from dynmx.cli.pools import run_pool

    return run_pool(args)


def _cmd_zone(args: argparse.Namespace) -> int:
    from dynmx.cli.zones import run_zone
    from dynmx.config import load_config

    return run_zone(args, load_config(Path(args.config)))


def _cmd_record(args: argparse.Namespace) -> int:
    from dynmx.cli.records import run_record
    from dynmx.config import load_config

    return run_record(args, load_config(Path(args.config)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynmx", description="Authoritative DNS for mail domains")
    parser.add_argument("--version", action="version", version=f"dynmx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", help="TOML config file")
        p.add_argument(
            "--zones",
            help="directory of *.zone files (overrides server.zones_dir; without -c, no config file is read"
            " and state_dir is DIR/../state)",
        )

    serve = sub.add_parser("serve", help="serve the zones")
    common(serve)
    serve.add_argument("--listen", action="append", help="HOST:PORT for UDP and TCP, repeatable; [::1]:5353")
    serve.add_argument(
        "--http",
        help="HOST:PORT of the control listener (/metrics, /status); default: [http] listen, else off"
        " (the control socket in state_dir is always there); '' for off",
    )
    serve.add_argument(
        "--pid-file",
        help=f"write the process ID here (default: server.pid_file, else STATE_DIR/{PID_FILE}); '' for none",
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="answer processes on the same ports (SO_REUSEPORT); 0 = in-process",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=run_serve)

    check = sub.add_parser("check", help="validate config and zones; exit 1 on problems")
    common(check)
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.add_argument(
        "files",
        nargs="*",
        metavar="ZONEFILE",
        help="check these zone files alone, as nsd-checkzone/kzonecheck (no config, no pools)",
    )
    check.add_argument("--origin", help="with ZONEFILE: its zone (default: its $ORIGIN, else the file name)")
    check.set_defaults(func=run_check)

    reload_ = sub.add_parser("reload", help="make the running server re-read its zones")
    common(reload_)
    reload_.add_argument("--http", help="HOST:PORT of the control listener")
    reload_.add_argument(
        "--pid-file",
        help=f"without a control socket or listener, signal the process in this pid file (default: the"
        f" config's, else STATE_DIR/{PID_FILE})",
    )
    reload_.set_defaults(func=run_reload)

    status = sub.add_parser("status", help="show the running server's zones and pools")
    status.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
    status.add_argument("--http", help="HOST:PORT of the control listener")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.set_defaults(func=run_status)

    selfcheck = sub.add_parser("selfcheck", help="run one self-connect round on the running server now")
    selfcheck.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
    selfcheck.add_argument("--http", help="HOST:PORT of the control listener")
    selfcheck.add_argument("--json", action="store_true", help="print the raw JSON")
    selfcheck.set_defaults(func=run_selfcheck)

    member = sub.add_parser("member", help="act on a pool member of the running server")
    member_sub = member.add_subparsers(dest="member_command", required=True)
    load = member_sub.add_parser("load", help="set a member's load reading (least-load strategy)")
    load.add_argument("pool")
    load.add_argument("host")
    load.add_argument("value", type=float)
    load.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
    load.add_argument("--http", help="HOST:PORT of the control listener")
    load.set_defaults(func=run_member_load)
    for verb, text in (("down", "drain a member (admin-down; survives restarts)"), ("up", "undo a drain")):
        drain = member_sub.add_parser(verb, help=text)
        drain.add_argument("pool")
        drain.add_argument("host")
        drain.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
        drain.add_argument("--http", help="HOST:PORT of the control listener")
        drain.set_defaults(func=run_member_drain)

    explain = sub.add_parser("explain", help="show the answer a query would get now, and why")
    explain.add_argument("name", help="a pool name or a hint name")
    explain.add_argument("--from", dest="source", help="the asking address (client actions, relay view)")
    explain.add_argument("--hint", help="a hint label")
    explain.add_argument("--json", action="store_true")
    explain.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
    explain.add_argument("--http", help="HOST:PORT of the control listener")
    explain.set_defaults(func=run_explain)
    record_parser.add_parser(sub, _cmd_record)
    zone_parser.add_parser(sub, _cmd_zone)
    pool_parser.add_parser(sub, _cmd_pool)
    registrar.add_parser(sub)
    ds_push.add_verb(dnssec.add_parser(sub))
    fleet.add_parser(sub)

    routes = sub.add_parser("routes", help="print the mail routing table (e.g. a Postfix transport map)")
    routes.add_argument("--format", choices=["postfix", "json"], default="postfix")
    routes.add_argument("--json", dest="format", action="store_const", const="json", help="--format json")
    routes.add_argument(
        "--since",
        nargs="?",
        const="",
        metavar="CURSOR",
        help="only domains whose route changed after CURSOR (the cursor an earlier call printed: "
        "'# cursor: ...' line, or JSON 'cursor'); removed ones are listed as removed; an unknown, "
        "expired or pre-restart cursor (or none) gives the whole table marked full",
    )
    routes.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
    routes.add_argument("--http", help="HOST:PORT of the control listener")
    routes.set_defaults(func=run_routes)
    keys.add_parser(sub)
    completion.add_parser(sub, parser)
    configpath.install(parser)
    return parser

"""The `dynmx` command: serve, check, reload.

Building the parser loads only the argument definitions: each command imports what it runs
(the server, httpx, dnspython's zone code) inside the function that runs it, so that
`--version`, `--help` and completion start fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dynmx import __version__
from dynmx.cli import (
    completion,
    configpath,
    dnssec,
    ds_push,
    fleet,
    keys,
    pool_parser,
    pooltext,
    record_parser,
    registrar,
    zone_parser,
)
from dynmx.errors import ConfigError, ControlError, DynmxError

if TYPE_CHECKING:
    from dynmx.cli.client import ControlClient
    from dynmx.config import Config

log = logging.getLogger("dynmx.cli")
PID_FILE = "dynmx.pid"  # in state_dir unless server.pid_file or --pid-file names another


def _config_from_args(args: argparse.Namespace) -> Config:
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


def _cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from dynmx.control.lock import StateDirBusy
    from dynmx.logs import setup_logging
    from dynmx.server.bind import ListenFailed

    config = _config_from_args(args)
    setup_logging(config.log.level)
    from dynmx.app import App

    try:
        import uvloop

        uvloop.install()
        log.debug("event=event-loop kind=uvloop")
    except ImportError:
        log.info("event=event-loop kind=asyncio reason=uvloop-missing")
    try:
        app = App(config, (lambda: _config_from_args(args)) if args.config else None)
    except StateDirBusy as error:
        log.error("event=start-refused state_dir=%s holder=%r", error.state_dir, error.holder)
        print(f"dynmx: {error}: one server per state_dir; stop it or give this one another", file=sys.stderr)
        return 1
    try:
        asyncio.run(app.serve_forever())
    except ListenFailed as error:
        log.error(
            "event=listen-failed addr=%s proto=%s service=%s error=%r",
            error.address,
            error.proto,
            error.service,
            error.reason,
        )
        print(
            f"dynmx: cannot listen on {error.address} ({error.proto}, {error.service}): {error.reason}",
            file=sys.stderr,
        )
        return 1
    except OSError as error:
        log.error("event=start-failed error=%r", str(error))
        print(f"dynmx: cannot start: {error}", file=sys.stderr)
        return 1
    return 0


def _check_files(args: argparse.Namespace) -> int:
    """Check zone files on their own, as `nsd-checkzone` and `kzonecheck` do: no config, no server."""
    import dns.name

    from dynmx.errors import ZoneLoadError
    from dynmx.zone.loader import load_zone_file

    origin = dns.name.from_text(args.origin) if args.origin else None
    reports = []
    for file in args.files:
        try:
            zone = load_zone_file(Path(file), origin)
        except ZoneLoadError as error:
            reports.append(
                {"file": file, "ok": False, "problems": [str(problem) for problem in error.problems]}
            )
            continue
        soa = zone.zone.get_rdataset(zone.origin, "SOA")
        serial = soa[0].serial if soa else None
        records = sum(len(rdataset) for _, rdataset in zone.zone.iterate_rdatasets())
        reports.append(
            {"file": file, "ok": True, "zone": zone.origin.to_text(), "serial": serial, "records": records}
        )
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for report in reports:
            if report["ok"]:
                zone_line = f"zone {report['zone']} serial {report['serial']}, {report['records']} records"
                print(f"ok: {report['file']}: {zone_line}")
            for problem in report.get("problems", []):
                print(problem)
    return 0 if all(report["ok"] for report in reports) else 1


def _cmd_check(args: argparse.Namespace) -> int:
    """Validate everything `serve` would load; exit 1 with `file:line: reason` lines."""
    from dynmx.app import scan_zones, zone_data
    from dynmx.config import readable_secrets
    from dynmx.policy.checks import check_policy
    from dynmx.policy.signing_check import config_problems

    if args.files:
        return _check_files(args)
    if args.origin:
        raise ConfigError("--origin: only with zone files to check (dynmx check --origin ZONE FILE)")
    try:
        config = _config_from_args(args)
    except ConfigError as error:
        if args.json:
            print(json.dumps({"ok": False, "config": args.config, "problems": [str(error)]}, indent=2))
        else:
            print(error)
        return 1
    zones_dir = config.path(config.server.zones_dir)
    zones, zone_problems = scan_zones(zones_dir, {}, max_size=config.server.max_zone_file_size)
    policy_problems, policy_warnings = check_policy(config, zone_data(zones))
    source = f"{args.config}: " if args.config else ""
    problems = [str(problem) for problem in zone_problems] + [f"{source}{text}" for text in policy_problems]
    problems += [str(problem) for problem in config_problems(config, zones.values())]  # dnssec = true
    warnings = [f"{source}warning: {text}" for text in policy_warnings] + [
        f"{path}: warning: holds secrets and is readable by others (mode {mode:04o}): chmod o-r"
        for path, mode in readable_secrets(config)
    ]
    names = sorted(z.origin.to_text() for z in zones.values())
    if args.json:
        report = {
            "ok": not problems,
            "config": args.config,
            "zones_dir": str(zones_dir),
            "zones": names,
            "pools": [pool.name for pool in config.pool],
            "problems": problems,
            "warnings": warnings,
        }
        print(json.dumps(report, indent=2))
        return 1 if problems else 0
    for line in problems + warnings:
        print(line)
    if problems:
        return 1
    pools = f", {len(config.pool)} pool(s)" if config.pool else ""
    print(f"ok: {len(zones)} zone(s): {', '.join(names)}{pools}" if zones else f"ok: no zones in {zones_dir}")
    return 0


def _cmd_reload(args: argparse.Namespace) -> int:
    """Ask the running server to re-read its zones: over its control socket or listener, else
    SIGHUP to the pid file."""
    from dynmx.cli.client import ControlClient
    from dynmx.control.lock import StateLock

    config = _config_from_args(args)
    client = ControlClient(config, args.http)
    if client.available():
        body = client.request("POST", "/reload", timeout=300).json()
        problems = body.get("problems")
        for problem in problems if isinstance(problems, list) else []:
            print(problem)
        print("reloaded" if body.get("ok") else "reloaded; refused zones keep their previous version")
        return 0 if body.get("ok") else 1
    pid_file = config.path(config.server.pid_file) if config.server.pid_file else None
    if pid_file is None or not pid_file.exists():
        raise ControlError(
            f"no running server to reach: {client.socket} is missing, no [http] listen or --http,"
            f" and {f'no pid file {pid_file}' if pid_file else 'no pid file (--pid-file)'}"
        )
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as error:
        raise ControlError(f"cannot read a process ID from {pid_file}: {error}") from None
    if args.pid_file is None:  # the config's pid file: its pid must be the server holding state_dir
        holder = StateLock(config.path(config.server.state_dir)).holder()
        if holder is None or not holder.startswith(f"pid {pid} "):
            raise ControlError(
                f"{pid_file} names pid {pid}, but {holder or 'no server'} holds"
                f" {config.path(config.server.state_dir)}: a stale pid file, left by a server that"
                " did not stop cleanly; nothing was signalled"
            )
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as error:
        raise ControlError(f"cannot signal the server from {pid_file}: {error}") from None
    print(f"sent SIGHUP to {pid}")
    return 0


def _client(args: argparse.Namespace) -> ControlClient:
    from dynmx.cli.client import ControlClient

    return ControlClient(_config_from_args(args), args.http)


def _cmd_member_load(args: argparse.Namespace) -> int:
    """Set a member's load reading (the least-load strategy) on the running server."""
    query = {"pool": args.pool, "host": args.host, "value": args.value}
    _client(args).checked("POST", "/members/load", query)
    print(f"load of {args.host} in {args.pool} set to {args.value}")
    return 0


def _cmd_member_drain(args: argparse.Namespace) -> int:
    """`member down` drains a member (admin-down, survives restarts); `member up` undoes it."""
    drained = args.member_command == "down"
    query = {"pool": args.pool, "host": args.host, "drained": str(int(drained))}
    _client(args).checked("POST", "/members/drain", query)
    print(f"{args.host} in {args.pool}: {'admin-down' if drained else 'back in service'}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    """Print the answer a query for NAME would get now, and why."""
    query = {"name": args.name, "from": args.source or "", "hint": args.hint or ""}
    result: dict[str, Any] = _client(args).checked("GET", "/explain", query).json()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("\n".join(pooltext.explain_lines(result)))
    return 0


def _cmd_selfcheck(args: argparse.Namespace) -> int:
    """Run one self-check round on the running server now and print each step's result."""
    result: dict[str, Any] = _client(args).checked("POST", "/selfcheck", timeout=300).json()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for line in result["lines"]:
        print(line)
    for state in result["status"]["registrars"]:
        stopped = f" STOPPED: {state['stopped']}" if state["stopped"] else ""
        line = f"registrar {state['adapter']} {state['hostname']} IPv{state['family']}"
        print(f"{line}: {state['last_address'] or '-'} ({state['last_result'] or 'never sent'}){stopped}")
    for warning in result["status"]["warnings"]:
        print(f"warning: {warning}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    """Print the running server's /status: zones, pools, members, current first choice."""
    status: dict[str, Any] = _client(args).checked("GET", "/status").json()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"uptime {status['uptime_seconds']}s, listening on {', '.join(status['listen'])}")
    for zone in status["zones"]:
        print(f"zone {zone['name']} serial {zone['serial']}")
    for pool in status.get("pools", []):  # what a query now gets first: as `explain` says it
        print("\n".join(pooltext.pool_lines(pool)))
    for problem in status.get("problems", []):
        print(f"problem: {problem}")
    return 0


def _cmd_routes(args: argparse.Namespace) -> int:
    """Print the mail routing table of the running server (Postfix transport lines or JSON); with
    `--since CURSOR` only the domains whose route changed after it, and the cursor for next time."""
    since = {"since": args.since} if args.since is not None else {}
    reply = _client(args).checked("GET", "/routes", {"format": args.format, **since})
    print(reply.body.decode(), end="")
    return 0


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
    serve.set_defaults(func=_cmd_serve)

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
    check.set_defaults(func=_cmd_check)

    reload_ = sub.add_parser("reload", help="make the running server re-read its zones")
    common(reload_)
    reload_.add_argument("--http", help="HOST:PORT of the control listener")
    reload_.add_argument(
        "--pid-file",
        help=f"without a control socket or listener, signal the process in this pid file (default: the"
        f" config's, else STATE_DIR/{PID_FILE})",
    )
    reload_.set_defaults(func=_cmd_reload)

    status = sub.add_parser("status", help="show the running server's zones and pools")
    status.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
    status.add_argument("--http", help="HOST:PORT of the control listener")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.set_defaults(func=_cmd_status)

    selfcheck = sub.add_parser("selfcheck", help="run one self-connect round on the running server now")
    selfcheck.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
    selfcheck.add_argument("--http", help="HOST:PORT of the control listener")
    selfcheck.add_argument("--json", action="store_true", help="print the raw JSON")
    selfcheck.set_defaults(func=_cmd_selfcheck)

    member = sub.add_parser("member", help="act on a pool member of the running server")
    member_sub = member.add_subparsers(dest="member_command", required=True)
    load = member_sub.add_parser("load", help="set a member's load reading (least-load strategy)")
    load.add_argument("pool")
    load.add_argument("host")
    load.add_argument("value", type=float)
    load.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
    load.add_argument("--http", help="HOST:PORT of the control listener")
    load.set_defaults(func=_cmd_member_load)
    for verb, text in (("down", "drain a member (admin-down; survives restarts)"), ("up", "undo a drain")):
        drain = member_sub.add_parser(verb, help=text)
        drain.add_argument("pool")
        drain.add_argument("host")
        drain.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
        drain.add_argument("--http", help="HOST:PORT of the control listener")
        drain.set_defaults(func=_cmd_member_drain)

    explain = sub.add_parser("explain", help="show the answer a query would get now, and why")
    explain.add_argument("name", help="a pool name or a hint name")
    explain.add_argument("--from", dest="source", help="the asking address (client actions, relay view)")
    explain.add_argument("--hint", help="a hint label")
    explain.add_argument("--json", action="store_true")
    explain.add_argument("--config", "-c", help="TOML config file (for [http] listen)")
    explain.add_argument("--http", help="HOST:PORT of the control listener")
    explain.set_defaults(func=_cmd_explain)
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
    routes.set_defaults(func=_cmd_routes)
    keys.add_parser(sub)
    completion.add_parser(sub, parser)
    configpath.install(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = configpath.apply(args)
    if missing is not None:
        parser.exit(2, f"dynmx: {missing}\n")
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except DynmxError as error:
        print(f"dynmx: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _stdout_closed() -> int:
    """The reader of stdout went away (`dynmx status | head -1`): exit quietly, as `cat` does,
    with the status a process killed by SIGPIPE has; what is left unwritten goes nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())

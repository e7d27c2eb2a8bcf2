"""The commands that act on the running server: reload, member load/down/up, explain,
selfcheck, status and routes. Each reaches it through `ControlClient` (reload falls back to
SIGHUP)."""

from __future__ import annotations

import argparse
import json
import os
import signal
from typing import Any

from dynmx.cli import pooltext
from dynmx.cli.options import client, config_from_args
from dynmx.errors import CommandError


def run_reload(args: argparse.Namespace) -> int:
    """Ask the running server to re-read its zones: over its control socket or listener, else
    SIGHUP to the pid file."""
    from dynmx.cli.client import ControlClient
    from dynmx.control.lock import StateLock

    config = config_from_args(args)
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
        raise CommandError(
            f"no running server to reach: {client.socket} is missing, no [http] listen or --http,"
            f" and {f'no pid file {pid_file}' if pid_file else 'no pid file (--pid-file)'}"
        )
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read a process ID from {pid_file}: {error}") from None
    if args.pid_file is None:  # the config's pid file: its pid must be the server holding state_dir
        holder = StateLock(config.path(config.server.state_dir)).holder()
        if holder is None or not holder.startswith(f"pid {pid} "):
            raise CommandError(
                f"{pid_file} names pid {pid}, but {holder or 'no server'} holds"
                f" {config.path(config.server.state_dir)}: a stale pid file, left by a server that"
                " did not stop cleanly; nothing was signalled"
            )
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as error:
        raise CommandError(f"cannot signal the server from {pid_file}: {error}") from None
    print(f"sent SIGHUP to {pid}")
    return 0


def run_member_load(args: argparse.Namespace) -> int:
    """Set a member's load reading (the least-load strategy) on the running server."""
    query = {"pool": args.pool, "host": args.host, "value": args.value}
    client(args).checked("POST", "/members/load", query)
    print(f"load of {args.host} in {args.pool} set to {args.value}")
    return 0


def run_member_drain(args: argparse.Namespace) -> int:
    """`member down` drains a member (admin-down, survives restarts); `member up` undoes it."""
    drained = args.member_command == "down"
    query = {"pool": args.pool, "host": args.host, "drained": str(int(drained))}
    client(args).checked("POST", "/members/drain", query)
    print(f"{args.host} in {args.pool}: {'admin-down' if drained else 'back in service'}")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    """Print the answer a query for NAME would get now, and why."""
    query = {"name": args.name, "from": args.source or "", "hint": args.hint or ""}
    result: dict[str, Any] = client(args).checked("GET", "/explain", query).json()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("\n".join(pooltext.explain_lines(result)))
    return 0


def run_selfcheck(args: argparse.Namespace) -> int:
    """Run one self-check round on the running server now and print each step's result."""
    result: dict[str, Any] = client(args).checked("POST", "/selfcheck", timeout=300).json()
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


def run_status(args: argparse.Namespace) -> int:
    """Print the running server's /status: zones, pools, members, current first choice."""
    status: dict[str, Any] = client(args).checked("GET", "/status").json()
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


def run_routes(args: argparse.Namespace) -> int:
    """Print the mail routing table of the running server (Postfix transport lines or JSON); with
    `--since CURSOR` only the domains whose route changed after it, and the cursor for next time."""
    since = {"since": args.since} if args.since is not None else {}
    reply = client(args).checked("GET", "/routes", {"format": args.format, **since})
    print(reply.body.decode(), end="")
    return 0

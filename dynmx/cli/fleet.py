"""`dynmx fleet`: each secondary of the running primary, and per zone whether it serves the
serial served here (asked over DNS by the server, `dynmx.app.fleet`), with the last NOTIFY
and transfer `zone status` knows. Exit 0 when every secondary is current, 1 otherwise
(a monitoring check can run it as it runs `check_soa`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """`dynmx fleet [--json]`; sets `func=run`."""
    fleet = subparsers.add_parser(
        "fleet", help="every secondary: does it serve each zone's current serial (SOA asked now)"
    )
    fleet.add_argument("--config", "-c", required=True, help="TOML config file")
    fleet.add_argument("--http", help="HOST:PORT of the control listener")
    fleet.add_argument("--json", action="store_true", help="print the JSON")
    fleet.set_defaults(func=run)
    return fleet


def zone_line(row: dict[str, Any]) -> str:
    from dynmx.app.fleet import CURRENT  # here, not at the top: building the parser loads no server code
    from dynmx.cli.zones import peer_text

    here, there = row["serial_here"], row["serial_there"]
    if row["state"] == CURRENT:
        head = f"serial {there}: current"
    elif there is not None:
        head = f"serial {there}, {here} here: {row['state'].upper()}"
    else:
        head = f"{row['state'].upper()} ({row['answer']}), {here} here"
    return f"  {row['zone']}  {head}; {peer_text(row)}"


def lines(result: dict[str, Any]) -> list[str]:
    if not result["secondaries"]:
        return [
            "no secondaries: no zone has notify targets (notify = [...] in [defaults], [[zone]] or [catalog])"
        ]
    out = []
    for secondary in result["secondaries"]:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(secondary["counts"].items()))
        out.append(f"secondary {secondary['target']}: {len(secondary['zones'])} zone(s): {counts}")
        out += [zone_line(row) for row in secondary["zones"]]
    return out


def run(args: argparse.Namespace) -> int:
    from dynmx.app.fleet import ROUTE_TIMEOUT
    from dynmx.cli.client import ControlClient
    from dynmx.config import load_config

    config = load_config(Path(args.config))
    client = ControlClient(config, args.http)
    result = client.checked("GET", "/fleet", timeout=ROUTE_TIMEOUT + 5).json()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines(result)))
    return 0 if result["ok"] else 1

"""`dynmx dnssec push-ds ZONE`: send the zone's DS to its parent through the registrar adapters.

It runs beside the server, not through it, as `dynmx dnssec ds` does: it reads the config's
`[[registrar]]` blocks and `[[key]]` secrets and the zone's key in `state_dir/keys`, and
pushes once, now. The adapters used are those whose `ds_zones` lists ZONE, or the one
`--registrar NAME` names. Like `keymgr ds` followed by `knsupdate` to the parent.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_verb(dnssec: argparse.ArgumentParser) -> None:
    """Adds `push-ds` to the verbs of `dynmx dnssec` (the parser `cli.dnssec` built)."""
    verbs = next(a for a in dnssec._actions if isinstance(a, argparse._SubParsersAction))
    parser = verbs.add_parser(
        "push-ds",
        help="send the zone's DS to its parent through the [[registrar]] adapters (rfc2136, webhook)",
    )
    parser.add_argument("zone", help="the zone, e.g. example.com")
    parser.add_argument("--config", "-c", required=True, help="TOML config file")
    parser.add_argument(
        "--registrar", help="push through this [[registrar]] only (default: those listing ZONE)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """0: every adapter took the DS; 1: one did not, or the zone has no key yet; 2: bad config."""
    import asyncio
    from pathlib import Path

    import dns.name

    from dynmx.app.selfcheck_service import build_adapter
    from dynmx.app.update_service import key_secrets
    from dynmx.config import load_config
    from dynmx.errors import ConfigError
    from dynmx.selfcheck.ds_push import current_ds, push_ds
    from dynmx.selfcheck.registrar import PushResult

    config = load_config(Path(args.config))
    origin = dns.name.from_text(args.zone)
    zone = origin.to_text()
    if args.registrar:
        chosen = [r for r in config.registrar if r.name == args.registrar]
        if not chosen:
            raise ConfigError(f"--registrar: no [[registrar]] named {args.registrar} in {args.config}")
    else:
        chosen = [r for r in config.registrar if zone.lower() in (z.lower() for z in r.ds_zones)]
        if not chosen:
            raise ConfigError(
                f"no [[registrar]] in {args.config} lists {zone} in ds_zones (or name one with --registrar)"
            )
    state_dir = config.path(config.server.state_dir)
    ds = current_ds(state_dir, origin)
    if not ds:
        print(
            f"dynmx: {zone} has no DNSSEC key in {state_dir / 'keys'}: start the server to make it",
            file=sys.stderr,
        )
        return 1
    secrets = key_secrets(config)
    adapters = [build_adapter(registrar, secrets) for registrar in chosen]

    async def push_all() -> list[PushResult]:
        return list(await asyncio.gather(*(push_ds(adapter, origin, ds) for adapter in adapters)))

    results = asyncio.run(push_all())
    reports = [
        {
            "registrar": adapter.name,
            "adapter": adapter.kind,
            "outcome": result.outcome.value,
            "message": result.message,
        }
        for adapter, result in zip(adapters, results, strict=True)
    ]
    if args.json:
        print(
            json.dumps({"zone": zone, "ds": [rdata.to_text() for rdata in ds], "pushes": reports}, indent=2)
        )
    else:
        for rdata in ds:
            print(f"{zone} IN DS {rdata.to_text()}")
        for report in reports:
            said = f"{report['outcome']}: {report['message']}"
            print(f"registrar {report['registrar']} ({report['adapter']}): {said}")
    return 0 if all(report["outcome"] == "success" for report in reports) else 1

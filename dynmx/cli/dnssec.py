"""`dynmx dnssec ds|keys|rollover ZONE`: what the parent zone needs, and a CSK rollover.

`ds` and `keys` read the keys in `state_dir/keys` (the server makes the first on its first
start with `[[zone]] dnssec = true`); neither makes one nor ever prints a private key. `ds`
prints the DS records (SHA-256, RFC 4509) of the keys whose CDS is served, to hand the
registrar, as `ZONE. IN DS ...` (BIND's `dnssec-dsfromkey`, Knot's `keymgr ds`). `keys`
shows each key's rollover state and when the next step may run. `rollover ZONE STEP` runs
one step of a CSK rollover (`dynmx.zone.rollover`) through the running server, which
refuses a step whose RFC 7583 waiting time has not passed (exit 3, naming the earliest time).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dns.name
    import dns.zone

    from dynmx.config import Config
    from dynmx.zone.keys import ZoneKey


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """`dynmx dnssec ds|keys ZONE`; sets `func=run`."""
    dnssec = subparsers.add_parser("dnssec", help="DS records and keys of the zones dynmx signs")
    verbs = dnssec.add_subparsers(dest="dnssec_command", required=True)
    for verb, text in (
        ("ds", "print the zone's DS records (SHA-256) for its parent: ZONE. IN DS ..."),
        ("keys", "list the zone's signing keys, their rollover states and the next step"),
        ("rollover", "one step of a CSK rollover: start, ds-seen, switch, finish (RFC 7583 waits kept)"),
    ):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("zone", help="the zone, e.g. example.com")
        if verb == "rollover":
            parser.add_argument("step", choices=STEPS, help="the step to run")
        parser.add_argument("--config", "-c", required=True, help="TOML config file (for state_dir)")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=run)
    return dnssec


STEPS = ("start", "ds-seen", "switch", "finish")
TOO_EARLY = 3  # exit status of a step refused for its waiting time: run it again later


def run(args: argparse.Namespace) -> int:
    """0: printed (or the step ran); 1: the zone has no key yet, or the step cannot run in this
    phase; 2: bad config; 3: the step's waiting time has not passed."""
    if args.dnssec_command == "rollover":
        return _rollover(args)
    import warnings
    from pathlib import Path

    with warnings.catch_warnings():  # dnspython loads DSA support, which cryptography deprecates
        warnings.filterwarnings("ignore", message="DSA is deprecated")
        import dns.dnssec
    import dns.name

    from dynmx.config import load_config
    from dynmx.zone.keys import load_key, load_keys

    config = load_config(Path(args.config))
    origin = dns.name.from_text(args.zone)
    state_dir = config.path(config.server.state_dir)
    key = load_key(state_dir, origin)
    if key is None:
        configured = any(dns.name.from_text(z.name) == origin and z.dnssec for z in config.zone)
        why = (
            "start the server to make it"
            if configured
            else "set dnssec = true in its [[zone]] and start the server"
        )
        print(f"dynmx: {origin} has no DNSSEC key in {state_dir / 'keys'}: {why}", file=sys.stderr)
        return 1
    name = origin.to_text()
    keys = load_keys(state_dir, origin)
    if args.dnssec_command == "ds":
        texts = [dns.dnssec.make_ds(origin, k.dnskey, "SHA256").to_text() for k in keys if k.role.in_cds]
        print(
            json.dumps({"zone": name, "ds": texts})
            if args.json
            else "\n".join(f"{name} IN DS {t}" for t in texts)
        )
        return 0
    return _keys(args, config, origin, keys)


def _keys(args: argparse.Namespace, config: Config, origin: dns.name.Name, keys: tuple[ZoneKey, ...]) -> int:
    import time

    import dns.dnssec

    from dynmx.app.keyroll import describe, timing
    from dynmx.zone.keys import key_path

    state_dir = config.path(config.server.state_dir)
    zone = _zone(config, origin)
    plan = timing(config, origin, zone) if zone is not None and _signs(config, origin) else None
    shown = describe(origin, keys, plan, time.time())
    rows = shown["keys"]
    file = str(key_path(state_dir, origin))
    if args.json:
        extra = {"zone": origin.to_text(), "file": file}
        print(json.dumps([extra | row for row in rows], indent=2))
        return 0
    name = origin.to_text()
    for key, row in zip(keys, rows, strict=True):
        algorithm = dns.dnssec.algorithm_to_text(key.algorithm)
        role = "CSK" if key.flags == 257 else "ZSK"
        events = " ".join(f"{event}={when}" for event, when in row.get("events", {}).items())
        print(
            f"zone={name} tag={key.tag} algorithm={key.algorithm} ({algorithm}) flags={key.flags} ({role})"
            f" state={key.state} {events} file={file}"
        )
        if key.role.in_dnskey:
            print(f"{name} IN DNSKEY {key.dnskey.to_text()}")
    following = shown["next"]
    if following is not None:
        when = "now" if following["ready"] else f"not before {following['earliest']}"
        print(f"next: rollover {following['step']} {when}: {following['rule']}")
    return 0


def _signs(config: Config, origin: dns.name.Name) -> bool:
    import dns.name

    return any(dns.name.from_text(z.name) == origin and z.dnssec for z in config.zone)


def _zone(config: Config, origin: dns.name.Name) -> dns.zone.Zone | None:
    """The zone as its file holds it (for its TTLs), or None when it is not there."""
    from dynmx.app.zonescan import scan_zones

    zones, _ = scan_zones(config.path(config.server.zones_dir), {})
    found = [zone.zone for zone in zones.values() if zone.origin == origin]
    return found[0] if found else None


def _rollover(args: argparse.Namespace) -> int:
    """A step through the running server; with none, only `ds-seen` (an observation) is
    recorded: a step that changes what is served counts its waits from when it is served."""
    import time
    from pathlib import Path

    import dns.name

    from dynmx.app.keyroll import describe, step_keys, store, timing
    from dynmx.cli.client import ControlClient
    from dynmx.cli.owning import offline_owner, server_holder
    from dynmx.config import load_config
    from dynmx.control.lock import StateDirBusy
    from dynmx.zone.rollover import RolloverRefused

    config = load_config(Path(args.config))
    origin = dns.name.from_text(args.zone)
    if server_holder(config) is None:
        if args.step != "ds-seen":
            print(
                f"dynmx: rollover {args.step}: no server runs, and a step's RFC 7583 wait counts from"
                " when the zone is served so: start the server (dynmx serve) and run it again",
                file=sys.stderr,
            )
            return 1
        try:
            with offline_owner(config, "dynmx dnssec rollover") as edit:
                zone = edit.zones.get(origin)
                if zone is None:
                    print(f"dynmx: {origin} is not a zone in {config.server.zones_dir}", file=sys.stderr)
                    return 1
                now = time.time()
                try:
                    keys = step_keys(config, origin, zone.zone, args.step, now)
                except RolloverRefused as error:
                    return _refused(args, origin, str(error), error.earliest)
                store(config, origin, args.step, keys)
                return _done(args, describe(origin, keys, timing(config, origin, zone.zone), now))
        except StateDirBusy:
            pass  # a server started meanwhile: hand it the step
    reply = ControlClient(config).request(
        "POST", "/dnssec/rollover", {"zone": origin.to_text(), "step": args.step}, timeout=300.0, local=True
    )
    result = reply.json()
    if reply.status == 200 and result.get("ok"):
        return _done(args, result)
    earliest = result.get("earliest")
    return _refused(
        args,
        origin,
        str(result.get("error") or reply.text()),
        earliest if isinstance(earliest, int) else None,
    )


def _done(args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    states = ", ".join(f"{row['tag']} {row['state']}" for row in result["keys"])
    print(f"ok: {result['zone']} rollover {args.step}: keys {states}")
    following = result.get("next")
    if following is not None:
        when = "now" if following["ready"] else f"not before {following['earliest']}"
        print(f"next: rollover {following['step']} {when}: {following['rule']}")
    return 0


def _refused(args: argparse.Namespace, origin: dns.name.Name, reason: str, earliest: int | None) -> int:
    if args.json:
        print(json.dumps({"ok": False, "zone": origin.to_text(), "error": reason, "earliest": earliest}))
    print(f"dynmx: {origin} rollover {args.step} refused: {reason}", file=sys.stderr)
    return TOO_EARLY if earliest is not None else 1

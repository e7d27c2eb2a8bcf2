"""`dynmx record add|rm|set`: zone edits as RFC 2136 UPDATE messages, handed to the one owner.

With a server running, the edit goes to it over its control socket (so it is checked,
journaled, written and NOTIFYed there); `--server HOST:PORT` sends it as a TSIG-signed
UPDATE instead, as nsupdate would. `--offline` applies the very same UPDATE message to
the zone files as the owner of the state directory, and is refused while a server owns
it. Every path shares RFC 2136 semantics (dynmx.control.update) and the owner's commit.
"""

from __future__ import annotations

import argparse

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.update

from dynmx.app.update import load_keyring
from dynmx.app.zonescan import scan_zones
from dynmx.cli.args import domain
from dynmx.cli.client import ControlClient
from dynmx.cli.owning import offline_owner, server_holder
from dynmx.config import Config, parse_hostport
from dynmx.control.lock import StateDirBusy
from dynmx.control.update import UpdateRefused, evaluate
from dynmx.errors import ControlError, ZoneLoadError
from dynmx.zone.loader import LoadedZone

UPDATE_TIMEOUT = 10.0


def _zones(config: Config) -> dict[dns.name.Name, LoadedZone]:
    zones, problems = scan_zones(config.path(config.server.zones_dir), {})
    if problems:
        raise ControlError("zones do not load cleanly:\n" + "\n".join(str(p) for p in problems))
    return {zone.origin: zone for zone in zones.values()}


def _zone_of(name: dns.name.Name, zones: dict[dns.name.Name, LoadedZone], explicit: str | None) -> LoadedZone:
    if explicit:
        origin = dns.name.from_text(explicit)
        if origin not in zones:
            raise ControlError(f"unknown zone {origin}")
        return zones[origin]
    candidates = [origin for origin in zones if name.is_subdomain(origin)]
    if not candidates:
        raise ControlError(f"{name} is in no served zone")
    return zones[max(candidates, key=len)]


def build_update(
    args: argparse.Namespace, origin: dns.name.Name, keyring: object, keyname: object
) -> dns.update.UpdateMessage:
    """The UPDATE message for one CLI edit; bad record data is a clear error."""
    update = dns.update.UpdateMessage(origin, keyring=keyring, keyname=keyname)  # type: ignore[arg-type]
    name = domain(args.name)
    try:
        rdtype = dns.rdatatype.from_text(args.type)
        rdatas = [dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=origin) for text in args.data]
    except (dns.exception.DNSException, ValueError) as error:
        raise ControlError(f"bad record data for {args.type}: {error}") from None
    if args.verb == "add":
        for rdata in rdatas:
            update.add(name, args.ttl, rdata)
    elif args.verb == "set":
        update.delete(name, rdtype)
        for rdata in rdatas:
            update.add(name, args.ttl, rdata)
    elif rdatas:
        for rdata in rdatas:
            update.delete(name, rdata)
    else:
        update.delete(name, rdtype)
    return update


def _key_for(config: Config, origin: dns.name.Name) -> tuple[dict[dns.name.Name, object], dns.name.Name]:
    zone_config = config.zone_settings(origin.to_text())  # its [[zone]] block, else [defaults]
    if not zone_config.allow_update:
        raise ControlError(
            f"no [[zone]] block or [defaults] allows updates of {origin} (allow_update = [key names])"
        )
    keyring = load_keyring(config)
    keyname = dns.name.from_text(zone_config.allow_update[0])
    return dict(keyring), keyname


def run_record(args: argparse.Namespace, config: Config) -> int:
    if args.verb in ("add", "set") and not args.data:
        raise ControlError(f"record {args.verb} needs the record data")
    zones = _zones(config)
    zone = _zone_of(domain(args.name), zones, args.zone)
    _precheck(args, zone)
    if args.server:
        return _send(args, config, zone)
    holder = server_holder(config)
    if args.offline:
        if holder is not None:
            raise ControlError(_busy(config, holder))
        return _offline(args, config, zone.origin)
    if holder is None:
        raise ControlError(
            f"no running server owns {config.path(config.server.state_dir)}: start one, or edit the"
            " files with --offline"
        )
    update = build_update(args, zone.origin, None, None)
    reply = ControlClient(config).request("POST", "/update", body=update.to_wire(), timeout=300, local=True)
    result = reply.json()
    if result.get("rcode") != "NOERROR":
        print(f"refused: {result.get('rcode', reply.status)}: {result.get('reason') or reply.text()}")
        return 1
    print(f"ok: {args.verb} {args.name} {args.type} in {zone.origin}")
    return 0


def _busy(config: Config, holder: str) -> str:
    return (
        f"--offline refused: {config.path(config.server.state_dir)} is owned by {holder}; edit through"
        " the running server (drop --offline), which journals, writes and NOTIFYs the change"
    )


def _send(args: argparse.Namespace, config: Config, zone: LoadedZone) -> int:
    """RFC 2136 UPDATE with TSIG to `--server`, as nsupdate would (a server elsewhere)."""
    keyring, keyname = _key_for(config, zone.origin)
    update = build_update(args, zone.origin, keyring, keyname)
    host, port = parse_hostport(args.server)
    try:
        reply = dns.query.tcp(update, host, port=port, timeout=UPDATE_TIMEOUT)
    except (OSError, dns.exception.DNSException) as error:
        raise ControlError(f"cannot send the update to {host}:{port}: {error}") from None
    rcode = reply.rcode()
    if rcode != dns.rcode.NOERROR:
        print(f"refused: {dns.rcode.to_text(rcode)}")
        return 1
    print(f"ok: {args.verb} {args.name} {args.type} in {zone.origin}")
    return 0


def _precheck(args: argparse.Namespace, zone: LoadedZone) -> None:
    """Say clearly what RFC 2136 would silently ignore: data beside a CNAME, a CNAME beside data."""
    if args.verb not in ("add", "set"):
        return
    node = zone.zone.nodes.get(domain(args.name))
    if node is None:
        return
    types = {dns.rdatatype.to_text(r.rdtype) for r in node.rdatasets}
    wanted = args.type.upper()
    if wanted == "CNAME" and types - {"CNAME", "RRSIG", "NSEC"}:
        raise ControlError(
            f"CNAME conflict: {args.name} already has {', '.join(sorted(types))} (RFC 1034 3.6.2)"
        )
    if wanted != "CNAME" and "CNAME" in types:
        raise ControlError(
            f"CNAME conflict: {args.name} is a CNAME; it cannot have {wanted} too (RFC 1034 3.6.2)"
        )


def _offline(args: argparse.Namespace, config: Config, origin: dns.name.Name) -> int:
    """Edit the files with no server running: this command owns the state directory meanwhile,
    and commits through the same owner, with the same checks, as the server would."""
    try:
        with offline_owner(config, "dynmx record --offline") as edit:
            zone = edit.zones[origin]
            update = build_update(args, origin, None, None)
            message = dns.message.from_wire(update.to_wire())
            assert isinstance(message, dns.update.UpdateMessage)
            try:
                changes = evaluate(zone.zone, origin, message)
            except UpdateRefused as refused:
                print(f"refused: {dns.rcode.to_text(refused.rcode)}: {refused}")
                return 1
            if not changes:
                print("no change")
                return 0
            try:
                edit.owner.commit(zone, changes)
            except ZoneLoadError as error:
                print(f"refused: the zone would be invalid:\n{error}")
                return 1
    except StateDirBusy as busy:
        raise ControlError(_busy(config, busy.holder)) from None
    print(f"ok: {args.verb} {args.name} {args.type} in {origin} (offline)")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], func: object) -> None:
    record = sub.add_parser("record", help="add, remove or replace records (RFC 2136 UPDATE with TSIG)")
    verbs = record.add_subparsers(dest="verb", required=True)
    for verb, text in (
        ("add", "add records"),
        ("rm", "remove an RRset, or the records given"),
        ("set", "replace an RRset"),
    ):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("name")
        parser.add_argument("type")
        parser.add_argument("data", nargs="*", help="record data, one argument per record")
        parser.add_argument("--ttl", type=int, default=3600)
        parser.add_argument("--zone", help="the zone (default: the longest served zone containing NAME)")
        parser.add_argument(
            "--server",
            help="send a TSIG-signed RFC 2136 UPDATE to HOST:PORT (a key from the zone's allow_update)"
            " instead of handing the edit to the local server over its control socket",
        )
        parser.add_argument(
            "--offline",
            action="store_true",
            help="edit the zone files directly (refused while a server runs)",
        )
        parser.add_argument("--config", "-c", required=True, help="TOML config file")
        parser.set_defaults(func=func)

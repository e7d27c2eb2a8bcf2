"""`dynmx zone add|list|show|rm`: provision mail domains with SOA, NS, MX and the parent's delegation.

`zone add` builds the new zone from the config's `[defaults]` (SOA fields, name
servers) and the options, validates it exactly as `dynmx check` would, and, when a
served zone is the parent, adds the delegation (NS and in-domain glue) to the parent
through the one writer in the same command. Nothing is written when anything is
wrong. A running server is asked to reload (POST /reload) so the zone is served.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynmx.app import scan_zones
from dynmx.config import Config, absolute_name
from dynmx.control.journal import Journal
from dynmx.control.update import Change, Op
from dynmx.control.writer import ZoneWriter, serial_of, write_atomically
from dynmx.errors import ControlError, ZoneLoadError
from dynmx.zone.loader import LoadedZone, load_zone_file

IN = dns.rdataclass.IN


def _served(config: Config) -> dict[dns.name.Name, LoadedZone]:
    zones, problems = scan_zones(config.path(config.server.zones_dir), {})
    if problems:
        raise ControlError("zones do not load cleanly:\n" + "\n".join(str(p) for p in problems))
    return {zone.origin: zone for zone in zones.values()}


def _split(item: str, separator: str) -> tuple[str, str]:
    head, _, tail = item.partition(separator)
    return head, tail


def zone_text(config: Config, origin: dns.name.Name, args: argparse.Namespace) -> str:
    """The master file of a new zone; NS hosts as HOST or HOST=ADDR (glue for in-zone servers)."""
    defaults = config.defaults
    servers = [_split(item, "=") for item in args.ns] or [(ns, "") for ns in defaults.ns]
    if not servers:
        raise ControlError("no name servers: pass --ns HOST[=ADDR] or set [defaults] ns in the config")
    origin_text = origin.to_text()
    names = [absolute_name(host) for host, _ in servers]
    hostmaster = defaults.hostmaster or f"hostmaster.{origin_text}"
    serial = int(time.time())
    lines = [
        f"$ORIGIN {origin_text}",
        f"$TTL {defaults.ttl}",
        f"@ SOA {names[0]} {absolute_name(hostmaster)} {serial} {defaults.refresh} {defaults.retry} "
        f"{defaults.expire} {defaults.minimum}",
    ]
    lines += [f"@ NS {name}" for name in names]
    for (_, address), name in zip(servers, names, strict=True):
        if address:
            lines.append(f"{name} {_address_type(address)} {address}")
    for item in args.mx:
        host, pref = _split(item, ":")
        if pref and not pref.isdigit():
            raise ControlError(f"--mx {item}: expected HOST[:PREFERENCE]")
        lines.append(f"@ MX {pref or 10} {absolute_name(host)}")
    for address in args.a:
        lines.append(f"@ {_address_type(address)} {address}")
    return "\n".join(lines) + "\n"


def _address_type(address: str) -> str:
    try:
        return "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
    except ValueError:
        raise ControlError(f"{address!r} is not an IP address") from None


def delegation(child: LoadedZone) -> list[Change]:
    """NS records of the child at the cut, plus glue for name servers inside the child."""
    changes: list[Change] = []
    node = child.zone.nodes[child.origin]
    ns = node.get_rdataset(IN, dns.rdatatype.NS)
    assert ns is not None
    for rdata in ns:
        changes.append(Change(Op.ADD, child.origin, ns.ttl, rdata))
        target: dns.name.Name = rdata.target
        if target.is_subdomain(child.origin):
            glue = child.zone.nodes.get(target)
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                rds = glue.get_rdataset(IN, rdtype) if glue is not None else None
                for address in rds or []:
                    changes.append(Change(Op.ADD, target, rds.ttl, address))  # type: ignore[union-attr]
    return changes


def _reload(config: Config) -> str:
    if not config.http.listen:
        return "no [http] listen: run `dynmx reload` or send SIGHUP to serve it"
    host, _, port = config.http.listen.rpartition(":")
    url = f"http://{host}:{port}/reload"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method="POST", data=b""), timeout=60
        ) as reply:
            ok = json.loads(reply.read()).get("ok")
        return "the running server reloaded" if ok else "the running server reported problems on reload"
    except (urllib.error.URLError, OSError):
        return "no running server answered; it will serve the zone when started"


def add(args: argparse.Namespace, config: Config) -> int:
    origin = dns.name.from_text(absolute_name(args.domain))
    zones = _served(config)
    if origin in zones:
        raise ControlError(f"zone {origin} already exists ({zones[origin].path})")
    path = config.path(config.server.zones_dir) / f"{origin.to_text().rstrip('.')}.zone"
    text = zone_text(config, origin, args)
    with tempfile.TemporaryDirectory() as scratch:  # validate before anything is written
        probe = Path(scratch) / path.name
        probe.write_text(text)
        try:
            child = load_zone_file(probe, origin)
        except ZoneLoadError as error:
            raise ControlError(f"the new zone would be invalid:\n{error}") from None
    child = LoadedZone(child.origin, child.zone, path)
    parents = [z for o, z in zones.items() if origin.is_subdomain(o) and o != origin]
    parent = max(parents, key=lambda z: len(z.origin)) if parents else None
    state_dir = config.path(config.server.state_dir)
    journal = Journal(state_dir / "journal.sqlite", config.server.journal_keep)
    try:
        if parent is not None:
            writer = ZoneWriter(journal, {z.name: z.serial for z in config.zone})
            try:
                writer.commit(parent, delegation(child), time.time())
            except ZoneLoadError as error:
                raise ControlError(f"the delegation in {parent.origin} would be invalid:\n{error}") from None
        write_atomically(path, child.zone)
    finally:
        journal.close()
    print(f"ok: zone {origin} created in {path} (serial {serial_of(child.zone)})")
    if parent is not None:
        print(f"ok: delegation added to {parent.origin}")
    print(_reload(config))
    return 0


def list_zones(config: Config) -> int:
    for origin, zone in sorted(_served(config).items()):
        print(f"{origin} serial {serial_of(zone.zone)} {zone.path}")
    return 0


def show(args: argparse.Namespace, config: Config) -> int:
    origin = dns.name.from_text(absolute_name(args.domain))
    zone = _served(config).get(origin)
    if zone is None:
        raise ControlError(f"unknown zone {origin}")
    print(zone.zone.to_text(sorted=True, relativize=False), end="")
    return 0


def remove(args: argparse.Namespace, config: Config) -> int:
    """Remove a zone file (kept as FILE.removed) and its delegation in a served parent."""
    origin = dns.name.from_text(absolute_name(args.domain))
    zones = _served(config)
    zone = zones.get(origin)
    if zone is None:
        raise ControlError(f"unknown zone {origin}")
    parents = [z for o, z in zones.items() if origin.is_subdomain(o) and o != origin]
    if parents:
        parent = max(parents, key=lambda z: len(z.origin))
        removed = [
            Change(Op.DELETE, name, rds.ttl, rdata)
            for name, node in parent.zone.nodes.items()
            if name.is_subdomain(origin)
            for rds in node.rdatasets
            for rdata in rds
        ]
        journal = Journal(config.path(config.server.state_dir) / "journal.sqlite", config.server.journal_keep)
        try:
            ZoneWriter(journal, {z.name: z.serial for z in config.zone}).commit(parent, removed, time.time())
        finally:
            journal.close()
        print(f"ok: delegation removed from {parent.origin}")
    zone.path.rename(zone.path.with_suffix(".zone.removed"))
    print(f"ok: zone {origin} removed ({zone.path.name}.removed kept)")
    print(_reload(config))
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], func: object) -> None:
    zone = sub.add_parser("zone", help="add, list, show or remove zones")
    verbs = zone.add_subparsers(dest="verb", required=True)
    new = verbs.add_parser("add", help="create a zone (SOA/NS from [defaults]) and its parent delegation")
    new.add_argument("domain")
    new.add_argument("--mx", action="append", default=[], help="HOST[:PREFERENCE], repeatable")
    new.add_argument("--ns", action="append", default=[], help="HOST[=ADDR] (ADDR: glue), repeatable")
    new.add_argument("--a", action="append", default=[], help="an address of the apex, repeatable")
    for verb, text in (("list", "list the zones"), ("show", "print a zone"), ("rm", "remove a zone")):
        parser = verbs.add_parser(verb, help=text)
        if verb != "list":
            parser.add_argument("domain")
    for parser in verbs.choices.values():
        parser.add_argument("--config", "-c", required=True, help="TOML config file")
        parser.set_defaults(func=func)


def run_zone(args: argparse.Namespace, config: Config) -> int:
    if args.verb == "add":
        return add(args, config)
    if args.verb == "list":
        return list_zones(config)
    if args.verb == "show":
        return show(args, config)
    return remove(args, config)

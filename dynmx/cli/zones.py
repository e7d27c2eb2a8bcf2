"""`dynmx zone add|list|show|rm`: provision mail domains with SOA, NS, MX and the parent's delegation;
`dynmx zone status|notify|retransfer`: what a running server does with each zone, and two actions.

`zone add` builds the new zone from the config's `[defaults]` (SOA fields, name
servers) and the options; the one owner (`dynmx.control.zones`) validates it exactly as
`dynmx check` would, writes its file (never over another) and, when a served zone is
the parent, commits the delegation (NS and in-domain glue) there. Nothing is written
when anything is wrong. With a server running, the server does it (over its control
socket) and serves both at once; without one, the command owns the state directory
while it runs (`dynmx.cli.owning`).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import time
from pathlib import Path
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynmx.app.zonescan import scan_zones
from dynmx.cli.args import domain
from dynmx.cli.client import ControlClient
from dynmx.cli.owning import offline_owner, server_holder
from dynmx.config import Config
from dynmx.config_values import absolute_name
from dynmx.control.lock import StateDirBusy
from dynmx.control.zones import add_zone, remove_zone
from dynmx.errors import CommandError
from dynmx.zone.loader import LoadedZone
from dynmx.zone.soa import serial_of

IN = dns.rdataclass.IN
EDIT_TIMEOUT = 300.0  # seconds: the server answers once both zones are served


def _served(config: Config) -> dict[dns.name.Name, LoadedZone]:
    zones, problems = scan_zones(config.path(config.server.zones_dir), {})
    if problems:
        raise CommandError("zones do not load cleanly:\n" + "\n".join(str(p) for p in problems))
    return {zone.origin: zone for zone in zones.values()}


def _split(item: str, separator: str) -> tuple[str, str]:
    head, _, tail = item.partition(separator)
    return head, tail


def zone_text(config: Config, origin: dns.name.Name, args: argparse.Namespace) -> str:
    """The master file of a new zone; NS hosts as HOST or HOST=ADDR (glue for in-zone servers)."""
    defaults = config.defaults
    servers = [_split(item, "=") for item in args.ns] or [(ns, "") for ns in defaults.ns]
    if not servers:
        raise CommandError("no name servers: pass --ns HOST[=ADDR] or set [defaults] ns in the config")
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
            raise CommandError(f"--mx {item}: expected HOST[:PREFERENCE]")
        lines.append(f"@ MX {pref or 10} {absolute_name(host)}")
    for address in args.a:
        lines.append(f"@ {_address_type(address)} {address}")
    return "\n".join(lines) + "\n"


def _address_type(address: str) -> str:
    try:
        return "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
    except ValueError:
        raise CommandError(f"{address!r} is not an IP address") from None


def add(args: argparse.Namespace, config: Config) -> int:
    origin = domain(args.domain)
    text = zone_text(config, origin, args)
    if server_holder(config) is None:
        try:
            with offline_owner(config, "dynmx zone add") as edit:
                zones_dir = config.path(config.server.zones_dir)
                child, parent = add_zone(edit.owner, edit.zones, zones_dir, origin, text)
            parent_name = parent.origin.to_text() if parent else None
            _added(origin, str(child.path), serial_of(child.zone), parent_name)
            print("no server runs: it serves the zone when it starts")
            return 0
        except StateDirBusy:
            pass  # a server started meanwhile: hand it the edit
    result = _through_server(config, "/zones/add", origin, text.encode())
    _added(origin, str(result["file"]), int(str(result["serial"])), _opt(result.get("parent")))
    print("the running server serves it now")
    return 0


def _added(origin: dns.name.Name, file: str, serial: int, parent: str | None) -> None:
    print(f"ok: zone {origin} created in {file} (serial {serial})")
    if parent is not None:
        print(f"ok: delegation added to {parent}")


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _through_server(config: Config, path: str, origin: dns.name.Name, body: bytes = b"") -> dict[str, object]:
    reply = ControlClient(config).request(
        "POST", path, {"zone": origin.to_text()}, body, timeout=EDIT_TIMEOUT, local=True
    )
    result = reply.json()
    if reply.status != 200 or not result.get("ok"):
        raise CommandError(str(result.get("error") or reply.text()))
    return result


def list_zones(args: argparse.Namespace, config: Config) -> int:
    served = sorted(_served(config).items())
    if args.json:
        rows = [
            {"name": str(origin), "serial": serial_of(zone.zone), "file": str(zone.path)}
            for origin, zone in served
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for origin, zone in served:
        print(f"{origin} serial {serial_of(zone.zone)} {zone.path}")
    return 0


def show(args: argparse.Namespace, config: Config) -> int:
    origin = domain(args.domain)
    zone = _served(config).get(origin)
    if zone is None:
        raise CommandError(f"unknown zone {origin}")
    if args.json:
        records = [
            {
                "name": str(name),
                "ttl": rdataset.ttl,
                "type": dns.rdatatype.to_text(rdataset.rdtype),
                "data": rdata.to_text(),
            }
            for name, rdataset in sorted(
                zone.zone.iterate_rdatasets(),
                key=lambda item: (item[0], item[1].rdtype != dns.rdatatype.SOA, item[1].rdtype),
            )
            for rdata in rdataset
        ]
        print(json.dumps({"name": str(origin), "serial": serial_of(zone.zone), "records": records}, indent=2))
        return 0
    print(zone.zone.to_text(sorted=True, relativize=False), end="")
    return 0


def remove(args: argparse.Namespace, config: Config) -> int:
    """Remove a zone (its file kept as FILE.removed) and its delegation in a served parent."""
    origin = domain(args.domain)
    if server_holder(config) is None:
        try:
            with offline_owner(config, "dynmx zone rm") as edit:
                _, parent, kept = remove_zone(edit.owner, edit.zones, origin)
            _removed(origin, str(kept), parent.origin.to_text() if parent else None)
            return 0
        except StateDirBusy:
            pass
    result = _through_server(config, "/zones/remove", origin)
    _removed(origin, str(result["kept"]), _opt(result.get("parent")))
    return 0


def _removed(origin: dns.name.Name, kept: str, parent: str | None) -> None:
    if parent is not None:
        print(f"ok: delegation removed from {parent}")
    print(f"ok: zone {origin} removed ({Path(kept).name} kept)")


def _duration(seconds: float) -> str:
    """A span as an operator reads it: 45s, 12m 5s, 3h 5m, 13d 23h."""
    value = int(max(seconds, 0))
    for unit, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if value >= size:
            rest = (value % size) // small_size
            return f"{value // size}{unit}" + (f" {rest}{smaller}" if rest else "")
    return f"{value}s"


def _when(at: float | None, now: float) -> str:
    if at is None:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    return f"{stamp} ({_duration(now - at)} ago)"


def _serial(value: object) -> str:
    return "-" if value is None else str(value)


def peer_text(row: dict[str, Any]) -> str:
    """What a secondary was last told and last took: `notified serial N Ts ago: acked; took
    IXFR to serial N Ts ago` (zone status and fleet say it alike)."""
    notified = "never notified"
    if row["notified_serial"] is not None:
        ago = _duration(row["notified_ago"])
        notified = f"notified serial {row['notified_serial']} {ago} ago: {row['notify_result']}"
    took = "no transfer yet"
    if row["transferred_serial"] is not None:
        ago = _duration(row["transferred_ago"])
        took = f"took {row['transfer_kind']} to serial {row['transferred_serial']} {ago} ago"
    return f"{notified}; {took}"


def status_lines(entry: dict[str, Any], now: float) -> list[str]:
    """One zone of `dynmx zone status` as text: a head line, then its peers and problems."""
    role = entry["role"] + (f" of {entry['primary']}" if entry["role"] == "secondary" else "")
    file_serial = _serial(entry.get("file_serial")) + (" (write pending)" if entry.get("file_behind") else "")
    lines = [
        f"{entry['zone']}  {role}  serial {_serial(entry['serial'])}  file {file_serial}"
        f"  changed {_when(entry.get('last_change'), now)}"
    ]
    if entry["role"] == "secondary":
        expires = entry.get("expires_in")
        left = (
            "no copy" if expires is None else ("expired" if entry["expired"] else f"in {_duration(expires)}")
        )
        refreshed = entry.get("last_refresh")
        lines.append(f"  refreshed {_when(refreshed, now)}, expires {left}: {entry['state']}")
    for target in entry.get("notify", []):
        lines.append(f"  secondary {target['target']}: {peer_text(target)}")
    notified_hosts = {t["target"].rsplit(":", 1)[0].strip("[]") for t in entry.get("notify", [])}
    for seen in entry.get("transfers", []):
        if seen["peer"] not in notified_hosts:
            asked = f" from {seen['asked_from']}" if seen.get("asked_from") is not None else ""
            ago = _duration(seen["ago"])
            lines.append(
                f"  transfer to {seen['peer']}: {seen['kind']}{asked} to serial {seen['serial']} {ago} ago"
            )
    lines += [f"  problem: {problem}" for problem in entry["problems"]]
    return lines


def status(args: argparse.Namespace, config: Config) -> int:
    """`dynmx zone status [ZONE]`, as `knotc zone-status` / `nsd-control zonestatus`."""
    query = {"zone": domain(args.domain).to_text()} if args.domain else None
    result = ControlClient(config, args.http).checked("GET", "/zones/status", query).json()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for entry in result["zones"]:
        print("\n".join(status_lines(entry, float(result["now"]))))
    return 0


def notify(args: argparse.Namespace, config: Config) -> int:
    """`dynmx zone notify ZONE`: NOTIFY its targets now, as `nsd-control notify`."""
    origin = domain(args.domain)
    result = ControlClient(config, args.http).checked("POST", "/zones/notify", {"zone": origin.to_text()})
    body = result.json()
    targets: dict[str, str] = body["targets"]
    if not targets:
        print(f"{origin}: no notify targets (notify = [...] in its [[zone]] block or [defaults])")
        return 1
    words = {"acked": "answered", "failed": "no NOERROR answer", "pending": "no answer yet, still retrying"}
    for target, outcome in targets.items():
        print(f"{origin} serial {body['serial']}: NOTIFY to {target}: {words.get(outcome, outcome)}")
    return 0 if all(outcome == "acked" for outcome in targets.values()) else 1


def retransfer(args: argparse.Namespace, config: Config) -> int:
    """`dynmx zone retransfer ZONE`: a full AXFR of a secondary zone now, as `knotc zone-retransfer`."""
    origin = domain(args.domain)
    query = {"zone": origin.to_text()}
    body = ControlClient(config, args.http).checked("POST", "/zones/retransfer", query, timeout=60).json()
    print(f"{origin}: transferred in full (AXFR), serial {body['serial']} (held {_serial(body['was'])})")
    return 0


def run_zone(args: argparse.Namespace, config: Config) -> int:
    if args.verb == "add":
        return add(args, config)
    if args.verb == "list":
        return list_zones(args, config)
    if args.verb == "show":
        return show(args, config)
    if args.verb in ("status", "notify", "retransfer"):
        return {"status": status, "notify": notify, "retransfer": retransfer}[args.verb](args, config)
    return remove(args, config)

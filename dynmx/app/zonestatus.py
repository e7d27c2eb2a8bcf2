"""`dynmx zone status|notify|retransfer`: what each zone is doing, as `knotc zone-status` and
`nsd-control zonestatus` say it, and the two actions beside them.

A primary's secondaries are known by what they did: `PeerLog` keeps, per zone, the last
NOTIFY sent to each target (its serial and whether it was answered) and the last
transfer served to each address (its kind, the serial it carried, and for an IXFR the
serial the peer asked from, which is what it held). A secondary that is current asks
only for the SOA (UDP, the hot path): it shows as the serial of its last transfer.

The entries are assembled on the event loop from the running state (`collect`), then
finished in the caller's thread (`finish`: the serial in each zone file is read there,
the SOA only, streamed), so a large zone costs the loop nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.tokenizer
import dns.zone
import dns.zonefile

from dynmx.config import parse_hostport
from dynmx.control import transfer
from dynmx.zone.loader import LoadedZone
from dynmx.zone.soa import serial_of

if TYPE_CHECKING:
    from dynmx.app.root import App

log = logging.getLogger("dynmx.zonestatus")

PEERS_PER_ZONE = 64  # transfer peers remembered per zone; the oldest is dropped past it
NOTIFY_WAIT = 5.0  # seconds `zone notify` waits for answers before reporting the rest as pending


@dataclass(frozen=True, slots=True)
class TransferServed:
    kind: str  # AXFR | IXFR
    serial: int  # the serial the answer carried: the peer holds it once it applied it
    asked_from: int | None  # an IXFR's serial: what the peer held when it asked
    at: float


@dataclass(slots=True)
class NotifySent:
    serial: int
    at: float
    result: str = "pending"  # pending | acked | failed (no NOERROR answer after every retry)
    answered_at: float | None = None
    sequence: int = 0


@dataclass
class PeerLog:
    """What the primary side knows of its secondaries; lives as long as the server."""

    clock: Callable[[], float] = time.time
    transfers: dict[str, dict[str, TransferServed]] = field(default_factory=dict)
    notifies: dict[str, dict[str, NotifySent]] = field(default_factory=dict)
    _sequence: int = 0

    def served(self, query: dns.message.Message, zone: dns.zone.Zone, peer: str) -> None:
        """A transfer answered (`TransferService.on_transfer`): the peer holds the zone's serial now;
        an IXFR says which serial it held before."""
        kind = dns.rdatatype.to_text(query.question[0].rdtype) if query.question else "AXFR"
        asked = next((r[0].serial for r in query.authority if r.rdtype == dns.rdatatype.SOA and len(r)), None)
        assert zone.origin is not None
        asked_from = asked if kind == "IXFR" else None
        self.transferred(zone.origin.to_text(), peer, kind, serial_of(zone), asked_from)

    def transferred(self, zone: str, peer: str, kind: str, serial: int, asked_from: int | None) -> None:
        seen = self.transfers.setdefault(zone, {})
        seen.pop(peer, None)
        seen[peer] = TransferServed(kind, serial, asked_from, self.clock())
        while len(seen) > PEERS_PER_ZONE:
            seen.pop(next(iter(seen)))

    def notify_sent(self, zone: str, target: str, serial: int) -> int:
        self._sequence += 1
        self.notifies.setdefault(zone, {})[target] = NotifySent(serial, self.clock(), sequence=self._sequence)
        return self._sequence

    def notify_answered(self, zone: str, target: str, sequence: int, acked: bool) -> None:
        """The outcome of one NOTIFY; ignored when a newer one to that target was sent meanwhile."""
        sent = self.notifies.get(zone, {}).get(target)
        if sent is not None and sent.sequence == sequence:
            sent.result = "acked" if acked else "failed"
            sent.answered_at = self.clock()

    def forget(self, zone: str) -> None:
        self.transfers.pop(zone, None)
        self.notifies.pop(zone, None)


async def send_notify(peers: PeerLog, zone: LoadedZone, target: str) -> bool:
    """NOTIFY `zone` to one target (RFC 1996, retried by `transfer.notify`), noted in `peers`."""
    name = zone.origin.to_text()
    sequence = peers.notify_sent(name, target, serial_of(zone.zone))
    acked = False
    try:
        acked = await transfer.notify(zone.zone, parse_hostport(target))
    finally:
        peers.notify_answered(name, target, sequence, acked)
    return acked


def notify_targets(app: App, origin: dns.name.Name) -> tuple[str, ...]:
    return app.config.zone_settings(origin.to_text()).notify


async def notify_now(app: App, origin: dns.name.Name) -> dict[str, object]:
    """`dynmx zone notify`: NOTIFY every target of the zone now, whatever was sent before; wait
    up to NOTIFY_WAIT for the answers (the rest go on being retried in the background)."""
    zone = app.zones_by_origin().get(origin)
    if zone is None:
        raise LookupError(f"{origin} is not served")
    targets = notify_targets(app, origin)
    tasks = {}
    for target in targets:
        task = asyncio.get_running_loop().create_task(send_notify(app.peers, zone, target))
        app.background.add(task)
        task.add_done_callback(app.background.discard)
        tasks[target] = task
    if tasks:
        await asyncio.wait(tasks.values(), timeout=NOTIFY_WAIT)
    log.info("event=notify-forced zone=%s targets=%d", origin, len(targets))
    results = {}
    for target, task in tasks.items():
        if not task.done():
            results[target] = "pending"
        elif task.exception() is not None:
            results[target] = "failed"
        else:
            results[target] = "acked" if task.result() else "failed"
    return {"zone": origin.to_text(), "serial": serial_of(zone.zone), "targets": results}


def _origins(app: App, wanted: dns.name.Name | None) -> list[dns.name.Name]:
    served = set(app.zones_by_origin()) | set(app.secondary.primaries)
    if wanted is not None:
        if wanted not in served:
            raise LookupError(f"{wanted} is not served")
        return [wanted]
    return sorted(served)


def _journal_facts(app: App) -> tuple[dict[str, float], dict[str, tuple[int, str]]]:
    """Per zone: the time of its newest journaled change; and the changes set aside since the
    server started with the reason of the last (older set-asides are history, not a problem
    now). Two queries for every zone at once (SQLite takes a bare column from the MAX row)."""
    db = app.journal.db
    newest = dict(db.execute("SELECT zone, MAX(at) FROM journal GROUP BY zone"))
    rows = db.execute(
        "SELECT zone, COUNT(*), reason, MAX(quarantined_at) FROM journal_quarantine"
        " WHERE quarantined_at >= ? GROUP BY zone",
        (app.started,),
    )
    return newest, {zone: (int(count), str(reason)) for zone, count, reason, _ in rows}


def _expected_path(app: App, origin: dns.name.Name) -> Path:
    """Where a secondary zone without a copy yet will be written (a catalog names its own file)."""
    return app.secondary.paths.get(origin) or app.zones_dir / f"{origin.to_text().rstrip('.')}.zone"


def collect(app: App, wanted: dns.name.Name | None) -> list[dict[str, Any]]:
    """Every zone's entry as the running state has it (on the loop; no file is read here)."""
    now = time.time()
    zones = app.zones_by_origin()
    problems_by_file: dict[str, list[str]] = {}
    for problem in app.state.problems:
        where = f"line {problem.line}: " if problem.line else ""
        problems_by_file.setdefault(problem.file, []).append(f"last load: {where}{problem.reason}")
    behind = app.writeback.behind()
    changed, set_aside = _journal_facts(app)
    entries = []
    for origin in _origins(app, wanted):
        name = origin.to_text()
        zone = zones.get(origin)
        path = zone.path if zone is not None else _expected_path(app, origin)
        problems = list(problems_by_file.get(str(path), []))
        blocked = app.writeback.blocked(path)
        if blocked is not None:
            problems.append(f"write-back blocked: {blocked}; edits are refused until it can be written")
        if name in set_aside:
            count, reason = set_aside[name]
            problems.append(
                f"journal set aside ({count} change(s)): {reason}; secondaries asking IXFR get AXFR"
            )
        entry: dict[str, Any] = {
            "zone": name,
            "role": "secondary" if app.secondary.is_secondary(origin) else "primary",
            "serial": serial_of(zone.zone) if zone is not None else None,
            "file": str(path),
            "file_behind": path in behind,  # the served version is not written yet
            "last_change": changed.get(name),
            "problems": problems,
        }
        if entry["role"] == "secondary":
            entry.update(_secondary_facts(app, origin, zone, now))
        else:
            entry["notify"] = _notify_facts(app, name, notify_targets(app, origin), now)
            entry["transfers"] = _transfer_facts(app, name, now)
        entries.append(entry)
    return entries


def _age(at: float | None, now: float) -> float | None:
    return None if at is None else round(now - at, 1)


def _transfer_facts(app: App, name: str, now: float) -> list[dict[str, Any]]:
    return [
        {**dataclasses.asdict(seen), "peer": peer, "ago": _age(seen.at, now)}
        for peer, seen in app.peers.transfers.get(name, {}).items()
    ]


def _notify_facts(app: App, name: str, targets: Iterable[str], now: float) -> list[dict[str, Any]]:
    """Each NOTIFY target with the last NOTIFY sent to it and the last transfer its address took."""
    sent = app.peers.notifies.get(name, {})
    taken = app.peers.transfers.get(name, {})
    found = []
    for target in targets:
        host = parse_hostport(target)[0]
        last = sent.get(target)
        transfer_seen = taken.get(host)
        found.append(
            {
                "target": target,
                "notified_serial": last.serial if last else None,
                "notify_result": last.result if last else "never sent",
                "notified_ago": _age(last.at if last else None, now),
                "transferred_serial": transfer_seen.serial if transfer_seen else None,
                "transfer_kind": transfer_seen.kind if transfer_seen else None,
                "transferred_ago": _age(transfer_seen.at if transfer_seen else None, now),
            }
        )
    return found


def _secondary_facts(app: App, origin: dns.name.Name, zone: LoadedZone | None, now: float) -> dict[str, Any]:
    host, port = app.secondary.primaries[origin]
    verified = app.secondary.verified.get(origin)
    left = app.secondary.expires_in(origin, zone, now)
    refresh = _soa_number(zone, "refresh")
    facts: dict[str, Any] = {
        "primary": f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",
        "last_refresh": verified,
        "refreshed_ago": _age(verified, now),
        "expires_in": None if math.isinf(left) else round(max(left, 0.0), 1),
        "expired": left <= 0,
        "available": origin not in app.unavailable,
    }
    if zone is None:
        facts["state"] = "no copy yet: answers SERVFAIL until the first transfer"
    elif left <= 0:
        facts["state"] = "expired: answers SERVFAIL until the primary answers again"
    else:
        facts["state"] = "ok"
    problems: list[str] = []
    if facts["state"] != "ok":
        problems.append(str(facts["state"]))
    elif verified is not None and refresh is not None and now - verified > 2 * refresh:
        silent = f"{now - verified:.0f}s (SOA refresh {refresh:.0f}s)"
        problems.append(f"the primary has not answered for {silent}")
    return {"secondary_problems": problems, **facts}


def _soa_number(zone: LoadedZone | None, field_name: str) -> float | None:
    if zone is None:
        return None
    soa = zone.zone.nodes[zone.origin].get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
    return float(getattr(soa[0], field_name)) if soa is not None else None


def finish(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add each file's serial (read here, off the loop) and the problems only it shows."""
    for entry in entries:
        entry["problems"] = entry["problems"] + entry.pop("secondary_problems", [])
        path = Path(entry["file"])
        file_serial = read_file_serial(path, dns.name.from_text(entry["zone"]))
        if entry["last_change"] is None and entry["role"] == "primary":  # nothing journaled: its file's
            with contextlib.suppress(OSError):
                entry["last_change"] = path.stat().st_mtime
        entry["file_serial"] = file_serial
        served = entry["serial"]
        known = served is not None and file_serial is not None
        if known and not entry["file_behind"] and file_serial != served:
            entry["problems"].append(
                f"the file holds serial {file_serial}, {served} is served: an edit of the file"
                " not reloaded yet (dynmx reload), or refused"
            )
    return entries


class _SoaFound(Exception):
    def __init__(self, serial: int) -> None:
        self.serial = serial


class _FirstSoa(dns.zonefile.RRsetsReaderTransaction):
    """Stops reading at the apex SOA; keeps nothing else (a large file costs no memory)."""

    origin = dns.name.root

    def _put_rdataset(self, name: dns.name.Name, rdataset: Any) -> None:
        if rdataset.rdtype == dns.rdatatype.SOA and name == self.origin:
            raise _SoaFound(int(rdataset[0].serial))


def read_file_serial(path: Path, origin: dns.name.Name) -> int | None:
    """The SOA serial in a zone file, read only as far as its SOA; None when there is none."""
    manager = dns.zonefile.RRSetsReaderManager(origin, False, dns.rdataclass.IN)
    try:
        with path.open(encoding="utf-8", errors="replace") as stream:
            txn = _FirstSoa(manager, True, False)  # type: ignore[no-untyped-call]
            txn.origin = origin
            tokenizer = dns.tokenizer.Tokenizer(stream, str(path))
            dns.zonefile.Reader(tokenizer, dns.rdataclass.IN, txn, allow_directives=True).read()
    except _SoaFound as found:
        return found.serial
    except (OSError, dns.exception.DNSException, ValueError):
        return None
    return None

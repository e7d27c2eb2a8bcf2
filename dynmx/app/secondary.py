"""Secondary mode: follow a primary (BIND, Knot, NSD or another dynmx) by SOA refresh and NOTIFY.

A zone with `primary = "HOST:PORT"` is transferred from that primary: IXFR from the
serial we hold (dnspython applies it, or the AXFR the primary answers instead) onto a
copy of our version, AXFR when we hold nothing. What we received is validated, written
to the zone file atomically (so a restart serves it before the primary answers again;
in the server on the write-back thread, since a crash before it only costs a transfer)
and published. Refresh runs every SOA REFRESH seconds, RETRY after a failure, and at
once on a NOTIFY from the primary's address (RFC 1996). With `primary_key` the request
is TSIG-signed and every message of the answer must verify (RFC 8945 §5.3.1), as NSD's
`request-xfr: ADDRESS KEY`.

A zone without a current copy answers SERVFAIL, as NSD does: before its first transfer,
and once SOA EXPIRE seconds have passed since the primary last answered (RFC 1035 §3.3.13).
That time is the zone file's mtime (touched by a refresh that finds nothing new), so a
restart still knows a copy is stale, as NSD's xfrd.state does. The timing itself (which
state, when to try next, when the copy expires) is `dynmx.zone.refresh`, a sans-IO table.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.xfr
import dns.zone

from dynmx.answer.acl import address_in
from dynmx.app.update_service import load_keyring
from dynmx.config import Config, parse_hostport
from dynmx.control.update import Change
from dynmx.control.writer import apply_changes, diff_zones, records_of, write_atomically
from dynmx.errors import Problem
from dynmx.zone import refresh as timing
from dynmx.zone.loader import LoadedZone
from dynmx.zone.soa import serial_of
from dynmx.zone.validate import validate

log = logging.getLogger("dynmx.secondary")

# (version before, version received, the changes between): journal them
Record = Callable[[LoadedZone, LoadedZone, list[Change]], None]
TRANSFER_TIMEOUT = 10.0


def _copy(zone: dns.zone.Zone) -> dns.zone.Zone:
    """A version to apply a transfer to; the served one is never changed in place."""
    return apply_changes(zone, [])  # shares nothing that a transaction will modify: nodes are replaced


def _mtime(path: Path) -> float:
    """When a copy was last confirmed (its file's mtime); now for a copy without a file."""
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _problems(zone: dns.zone.Zone, path: Path) -> list[Problem]:
    assert zone.origin is not None
    return validate(zone.origin, records_of(zone, str(path)), file=str(path))


class SecondaryService:
    """One refresh loop per secondary zone."""

    def __init__(
        self,
        config: Config,
        zones_dir: Path,
        zones: Callable[[], dict[dns.name.Name, LoadedZone]],
        publish: Callable[[LoadedZone], Awaitable[None]],
        write: Callable[[Path, dns.zone.Zone], object] = write_atomically,
        on_unavailable: Callable[[frozenset[dns.name.Name]], None] = lambda origins: None,
        record: Record = lambda before, after, changes: None,
    ) -> None:
        self.write = write  # the running server's `WriteBack.submit`: a transfer's file, off the loop
        self.record = record  # journals a transfer's difference (the owner), for our own IXFR
        self.on_unavailable = on_unavailable  # told the zones without a current copy, on each change
        self.primaries = {
            dns.name.from_text(z.name): parse_hostport(z.primary) for z in config.zone if z.primary
        }
        keyring = load_keyring(config)
        self.keys = {
            dns.name.from_text(z.name): keyring[dns.name.from_text(z.primary_key)]
            for z in config.zone
            if z.primary and z.primary_key
        }
        self.notifiers = {
            dns.name.from_text(z.name): [ipaddress.ip_network(p) for p in z.allow_notify]
            for z in config.zone
            if z.primary
        }
        self.zones_dir = zones_dir
        self.zones = zones
        self.publish = publish
        self.wake: dict[dns.name.Name, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.task_of: dict[dns.name.Name, asyncio.Task[None]] = {}
        self.paths: dict[dns.name.Name, Path] = {}  # the files of zones a catalog brought
        self.states: dict[dns.name.Name, timing.ZoneRefresh] = {}  # each followed zone's refresh state

    @property
    def verified(self) -> dict[dns.name.Name, float]:
        """When the primary last answered (time.time), for the zones where that is known."""
        return {o: s.verified for o, s in self.states.items() if s.verified is not None}

    @property
    def unavailable(self) -> frozenset[dns.name.Name]:
        """The zones without a current copy: they answer SERVFAIL."""
        return frozenset(o for o, s in self.states.items() if s.state is timing.State.EXPIRED)

    def start(self) -> None:
        zones = self.zones() if self.primaries else {}  # every served zone by name: not for none
        now = time.time()
        for origin in self.primaries:
            current = zones.get(origin)
            verified = _mtime(current.path) if current is not None else None
            self.states[origin] = timing.initial(verified, _timers(current), now)
        for origin in sorted(self.unavailable):
            log.warning("event=zone-unavailable zone=%s reason=%s", origin, self._why(origin))
        self.on_unavailable(self.unavailable)
        for origin in self.primaries:
            self._start_following(origin)

    def _start_following(self, origin: dns.name.Name) -> None:
        self.wake[origin] = asyncio.Event()
        task = asyncio.create_task(self._follow(origin), name=f"secondary {origin}")
        self.tasks.append(task)
        self.task_of[origin] = task

    def follow(
        self,
        origin: dns.name.Name,
        primary: tuple[str, int],
        path: Path,
        key: dns.tsig.Key | None = None,
        notifiers: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None,
    ) -> None:
        """Follow one more zone (a catalog member) from `primary`, its copy kept in `path`."""
        if origin in self.primaries:
            return
        self.primaries[origin] = primary
        self.paths[origin] = path
        if key is not None:
            self.keys[origin] = key
        self.notifiers[origin] = notifiers or []
        verified = _mtime(self.zones()[origin].path) if origin in self.zones() else None
        self.states[origin] = timing.ZoneRefresh(verified=verified)  # its loop checks expiry first thing
        self._start_following(origin)

    async def unfollow(self, origin: dns.name.Name) -> None:
        """Stop following `origin` (a zone that left its catalog)."""
        task = self.task_of.pop(origin, None)
        if task is not None:  # first: a refresh under way goes on using the tables below
            self.wake[origin].set()  # its loop sees it is not followed any more and ends...
            task.cancel()  # ...and a transfer under way ends at once (a cancellation that
            with contextlib.suppress(asyncio.CancelledError):  # wait_for swallowed ends by the above)
                await task
            self.tasks.remove(task)
        was_unavailable = origin in self.unavailable
        for table in (self.primaries, self.paths, self.keys, self.notifiers, self.wake, self.states):
            table.pop(origin, None)
        if was_unavailable:
            self.on_unavailable(self.unavailable)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def is_secondary(self, origin: dns.name.Name) -> bool:
        return origin in self.primaries

    def notified(self, origin: dns.name.Name, source: str) -> bool:
        """A NOTIFY arrived; accepted from the zone's primary and `allow_notify` (RFC 1996 §3.10)."""
        primary = self.primaries.get(origin)
        if primary is None:
            return False
        if primary[0] != source and not address_in(source, self.notifiers.get(origin, [])):
            return False
        self._observe(origin, timing.Event.NOTIFY, None)
        self.wake[origin].set()
        return True

    async def _follow(self, origin: dns.name.Name) -> None:
        while self.task_of.get(origin) is asyncio.current_task():  # until `unfollow`
            try:
                wait = await self.refresh(origin)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours must not end the loop
                log.exception("event=secondary-error zone=%s", origin)
                wait = self._observe(origin, timing.Event.FAILED, None)
            wait = min(wait, self._check_expiry(origin))
            event = self.wake[origin]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), wait)
            event.clear()

    def _path_of(self, origin: dns.name.Name, current: LoadedZone | None) -> Path:
        """Where a copy is written: the file it was read from, the one a catalog gave, else NAME.zone."""
        if current is not None:
            return current.path
        return self.paths.get(origin) or self.zones_dir / f"{origin.to_text().rstrip('.')}.zone"

    async def refresh(self, origin: dns.name.Name) -> float:
        """Transfer if the primary is newer; return seconds until the next refresh."""
        host, port = self.primaries[origin]
        current = self.zones().get(origin)
        path = self._path_of(origin, current)
        try:
            # IXFR from the serial we hold, AXFR when we hold nothing
            target = _copy(current.zone) if current is not None else dns.zone.Zone(origin, relativize=False)
            query, _ = dns.xfr.make_query(target, keyring=self.keys.get(origin))
            await dns.asyncquery.inbound_xfr(host, target, query=query, port=port, timeout=TRANSFER_TIMEOUT)
        except (dns.exception.DNSException, OSError, EOFError) as error:
            log.warning(
                "event=secondary-transfer-failed zone=%s primary=%s:%d error=%s",
                origin,
                host,
                port,
                type(error).__name__,
            )
            return self._observe(origin, timing.Event.FAILED, _timers(current))
        if current is not None and serial_of(target) == serial_of(current.zone):
            return self._verified(origin, current)
        problems = _problems(target, path)
        if problems:
            log.error(
                "event=secondary-refused zone=%s problems=%r", origin, "; ".join(str(p) for p in problems)
            )
            return self._observe(origin, timing.Event.FAILED, _timers(current))
        received = LoadedZone(origin, target, path)
        if current is not None:
            loop = asyncio.get_running_loop()
            self.record(current, received, await loop.run_in_executor(None, diff_zones, current.zone, target))
        self.write(path, target)
        log.info(
            "event=secondary-updated zone=%s serial=%d primary=%s:%d", origin, serial_of(target), host, port
        )
        await self.publish(received)
        # now: its file, written behind, gets this mtime or later
        return self._observe(origin, timing.Event.ANSWERED, _timers(received))

    async def retransfer(self, origin: dns.name.Name) -> tuple[int, int | None]:
        """A full AXFR now, whatever serial we hold (`dynmx zone retransfer`, as `knotc
        zone-retransfer`): a copy gone wrong under an unchanged serial is replaced. Returns
        (serial received, serial held before); raises OSError or DNSException when the
        primary does not give the zone, ZoneLoadError when what it gives is invalid."""
        host, port = self.primaries[origin]
        current = self.zones().get(origin)
        path = self._path_of(origin, current)
        target = dns.zone.Zone(origin, relativize=False)  # empty: make_query asks for AXFR
        query, _ = dns.xfr.make_query(target, keyring=self.keys.get(origin))
        await dns.asyncquery.inbound_xfr(host, target, query=query, port=port, timeout=TRANSFER_TIMEOUT)
        problems = _problems(target, path)
        if problems:
            from dynmx.errors import ZoneLoadError  # one method added here: its import kept with it

            raise ZoneLoadError(problems)
        received = LoadedZone(origin, target, path)
        before = serial_of(current.zone) if current is not None else None
        if current is not None and before != serial_of(target):  # same serial: no IXFR step to journal
            loop = asyncio.get_running_loop()
            self.record(current, received, await loop.run_in_executor(None, diff_zones, current.zone, target))
        self.write(path, target)
        log.info(
            "event=secondary-retransferred zone=%s serial=%d was=%s primary=%s:%d",
            origin,
            serial_of(target),
            before,
            host,
            port,
        )
        await self.publish(received)
        self._observe(origin, timing.Event.ANSWERED, _timers(received))
        self._check_expiry(origin)
        return serial_of(target), before

    def _verified(self, origin: dns.name.Name, current: LoadedZone) -> float:
        """The primary has nothing newer: our copy is current, and its file says so from now;
        return the seconds until the next refresh."""
        wait = self._observe(origin, timing.Event.ANSWERED, _timers(current))
        with contextlib.suppress(OSError):  # not written yet: the write stamps it
            os.utime(current.path)
        return wait

    def _observe(self, origin: dns.name.Name, event: timing.Event, timers: timing.Timers | None) -> float:
        """Fold `event` into the zone's refresh state; return the seconds until the next refresh."""
        state = self.states.get(origin)
        if state is None:  # unfollowed while its refresh ran: nothing to keep
            return timing.observe(timing.ZoneRefresh(), event, timers, time.time())[1]
        self.states[origin], wait = timing.observe(state, event, timers, time.time())
        return wait

    def expires_in(self, origin: dns.name.Name, zone: LoadedZone | None, now: float) -> float:
        """Seconds until `zone`, the copy of `origin` held, expires (minus infinity without one)."""
        return timing.expires_in(self.states.get(origin, timing.ZoneRefresh()), _timers(zone), now)

    def _why(self, origin: dns.name.Name) -> str:
        return "expired" if origin in self.zones() else "no-copy"

    def _check_expiry(self, origin: dns.name.Name) -> float:
        """Mark `origin` unavailable or available again, telling the server of a change;
        return the seconds until it expires (infinity when it is unavailable already)."""
        state = self.states.get(origin, timing.ZoneRefresh())
        state, change, left = timing.check(state, _timers(self.zones().get(origin)), time.time())
        if origin in self.states:
            self.states[origin] = state
        if change is timing.Availability.UNAVAILABLE:
            log.warning("event=zone-unavailable zone=%s reason=%s", origin, self._why(origin))
        elif change is timing.Availability.AVAILABLE:
            log.info("event=zone-available zone=%s", origin)
        if change is not None:
            self.on_unavailable(self.unavailable)
        return left


def _timers(zone: LoadedZone | None) -> timing.Timers | None:
    """The SOA timers of the copy held (None: no copy); the defaults where it has no SOA."""
    if zone is None:
        return None
    soa = zone.zone.nodes[zone.origin].get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
    if soa is None:
        return timing.Timers()
    return timing.Timers(float(soa[0].refresh), float(soa[0].retry), float(soa[0].expire))

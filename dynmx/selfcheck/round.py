"""One self-connect round: for each of our own names, resolve, probe, wait, discover if needed, decide.

The round does the I/O and keeps the record; `decide.Decider` (one per name and family) says
what it means. Discovery runs only when some probe was lost, and at most once per family
per round. The repair itself (zone edit, registrar push) is not done here: the caller
injects `repair(name, family, address)`; when it raises, the round reports the failure and
the decider is not told of an update, so the next round confirms and tries again.

Logged once per situation (see Decider.log), as `event=selfcheck name=... family=... action=...`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx

from dynmx.selfcheck.decide import DEFAULT_BACKOFF_CAP, Action, Decider, Decision
from dynmx.selfcheck.discovery import Discovery, Source, discover, parse_prefixes
from dynmx.selfcheck.nonce import NonceBook, normalise
from dynmx.selfcheck.probe import FAMILY_TYPES, ProbeError, ResolveError, resolve_published, send_probe, where

log = logging.getLogger("dynmx.selfcheck")

Repair = Callable[[str, int, str], Awaitable[None]]
WHOLE_NAME = 0  # the "family" of decisions about the name as a whole (it could not be resolved)
_LEVELS = {
    Action.OK: logging.INFO,
    Action.PENDING: logging.INFO,
    Action.HAIRPIN: logging.WARNING,
    Action.BACKOFF: logging.WARNING,
    Action.UPDATE: logging.WARNING,
}


@dataclass(frozen=True)
class SelfCheckSettings:
    """What to check and how; validated when built, so a round cannot fail on our own settings."""

    names: tuple[str, ...]  # our own published names, e.g. ("ns1.example.test.",)
    zones: Mapping[str, str]  # name -> the zone its probes are sent for (one we serve)
    resolvers: tuple[tuple[str, int], ...]  # recursive resolvers that tell us what the world sees
    dns_port: int = 53  # where probes are sent
    interval: float = 300.0  # seconds between rounds while all is well
    timeout: float = 5.0  # per resolver query, per probe wait, per discovery
    quorum: int = 2
    allowed_prefixes: tuple[str, ...] = ()  # accepted as "public" though they are not (tests)
    sources: tuple[Source, ...] = ()
    backoff_cap: float = DEFAULT_BACKOFF_CAP

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("names: expected at least one name to check")
        for name in self.names:
            self.zone_of(name)
        if not self.resolvers:
            raise ValueError("resolvers: expected at least one resolver")
        for host, port in self.resolvers:
            if not 1 <= port <= 65535:
                raise ValueError(f"resolvers: expected ports 1-65535, got {where(host, port)}")
        if not 1 <= self.dns_port <= 65535:
            raise ValueError(f"dns_port: expected 1-65535, got {self.dns_port}")
        for key in ("interval", "timeout"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{key}: expected a positive number of seconds, got {value!r}")
        if not (math.isfinite(self.backoff_cap) and self.backoff_cap >= self.interval):
            raise ValueError(
                f"backoff_cap: expected at least interval ({self.interval:g}), got {self.backoff_cap!r}"
            )
        if self.quorum < 1:
            raise ValueError(f"quorum: expected at least 1, got {self.quorum}")
        parse_prefixes(self.allowed_prefixes)

    def zone_of(self, name: str) -> str:
        """The zone probes for `name` are sent for; names compare case- and trailing-dot-blind."""
        for key, zone in self.zones.items():
            if normalise(key) == normalise(name):
                return zone
        raise ValueError(f"zones: no zone given for name {name!r}")


@dataclass
class NameReport:
    """What the round did for one name, step by step, and what it decided per family."""

    name: str
    zone: str
    published: dict[int, list[str]] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    decisions: dict[int, Decision] = field(default_factory=dict)  # family (0: the name itself)
    repaired: dict[int, str] = field(default_factory=dict)  # family -> address now published
    repair_errors: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "zone": self.zone,
            "published": {str(family): addresses for family, addresses in self.published.items()},
            "steps": list(self.steps),
            "decisions": {str(family): decision.to_json() for family, decision in self.decisions.items()},
            "repaired": {str(family): address for family, address in self.repaired.items()},
            "repair_errors": {str(family): error for family, error in self.repair_errors.items()},
        }


@dataclass
class RoundReport:
    """One round, for `dynmx selfcheck` (lines) and `/status` (to_json)."""

    started: float
    finished: float
    names: list[NameReport]
    discoveries: dict[int, Discovery]
    next_round_in: float

    def decision(self, name: str, family: int) -> Decision | None:
        for report in self.names:
            if normalise(report.name) == normalise(name):
                return report.decisions.get(family)
        return None

    def lines(self) -> list[str]:
        out = [f"self-check round at {_iso(self.started)} ({self.finished - self.started:.2f}s)"]
        for report in self.names:
            out.append(f"{report.name} (zone {report.zone})")
            out.extend(f"  {step}" for step in report.steps)
        for family, found in sorted(self.discoveries.items()):
            out.append(f"discovery IPv{family}: {found.address or 'none'} ({found.reason})")
            out.extend(f"  {label}: {said}" for label, said in found.by_source.items())
        out.append(f"next round in {self.next_round_in:g}s")
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "names": [report.to_json() for report in self.names],
            "discoveries": {str(family): found.to_json() for family, found in self.discoveries.items()},
            "next_round_in": self.next_round_in,
        }


class SelfChecker:
    """Runs rounds for `settings`; keeps the deciders' state between them and the last report."""

    def __init__(
        self,
        settings: SelfCheckSettings,
        nonces: NonceBook,
        repair: Repair,
        *,
        clock: Callable[[], float] = time.time,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.nonces = nonces
        self._repair = repair
        self._clock = clock
        self._http = http_client
        self._deciders: dict[tuple[str, int], Decider] = {}
        self._lock = asyncio.Lock()  # one round at a time: a CLI-triggered round waits for the periodic one
        self.last: RoundReport | None = None

    async def run_round(self) -> RoundReport:
        """Check every name once; never raises for what the network or the repair did."""
        async with self._lock:
            started = self._clock()
            discoveries: dict[int, Discovery] = {}
            names = [await self._check_name(name, discoveries) for name in self.settings.names]
            waits = [decision.next_round_in for report in names for decision in report.decisions.values()]
            report = RoundReport(
                started, self._clock(), names, discoveries, min(waits, default=self.settings.interval)
            )
            self.last = report
            return report

    async def _check_name(self, name: str, discoveries: dict[int, Discovery]) -> NameReport:
        settings = self.settings
        report = NameReport(name, settings.zone_of(name))
        try:
            published = await resolve_published(name, list(settings.resolvers), settings.timeout)
        except ResolveError as exc:
            report.steps.append(f"resolve: {exc}")
            self._unresolved(report, str(exc))
            return report
        report.published = published
        shown = "; ".join(f"{FAMILY_TYPES[f]} {', '.join(published[f]) or '-'}" for f in (4, 6))
        report.steps.append(f"resolve: {shown}")
        families = [family for family in (4, 6) if published[family]]
        if not families:
            self._unresolved(report, f"{name} has no A or AAAA record at the resolvers")
            return report
        self._deciders.pop((normalise(name), WHOLE_NAME), None)
        for family in families:
            await self._check_family(report, family, published[family], discoveries)
        return report

    def _unresolved(self, report: NameReport, why: str) -> None:
        decider = self._decider(report.name, WHOLE_NAME)
        decision = decider.observe(False, frozenset(), None, self._clock(), why=why)
        self._record(report, WHOLE_NAME, decision)

    async def _check_family(
        self, report: NameReport, family: int, addresses: list[str], discoveries: dict[int, Discovery]
    ) -> None:
        settings = self.settings
        arrived = await self._probe_all(report, addresses)
        found: Discovery | None = None
        if not arrived:
            found = discoveries.get(family)
            if found is None:
                found = await discover(
                    settings.sources,
                    family,
                    settings.quorum,
                    settings.allowed_prefixes,
                    settings.timeout,
                    self._http,
                )
                discoveries[family] = found
            report.steps.append(f"discover IPv{family}: {found.address or 'none'} ({found.reason})")
        decider = self._decider(report.name, family)
        decision = decider.observe(
            arrived,
            frozenset(addresses),
            found.address if found else None,
            self._clock(),
            why=found.reason if found else "",
        )
        self._record(report, family, decision)
        if decision.action is Action.UPDATE and decision.address is not None:
            try:
                await self._repair(report.name, family, decision.address)
            except Exception as exc:  # whatever the injected repair raises is reported, not propagated
                error = f"{type(exc).__name__}: {exc}"[:200]
                report.repair_errors[family] = error
                report.steps.append(f"repair failed: {error}")
                log.error(
                    "event=selfcheck-repair-failed name=%s family=%d address=%s error=%r",
                    report.name,
                    family,
                    decision.address,
                    error,
                )
            else:
                decider.updated(decision.address)
                log.info(
                    "event=selfcheck-repaired name=%s family=%d address=%s",
                    report.name,
                    family,
                    decision.address,
                )
                report.repaired[family] = decision.address
                report.steps.append(f"repair: {report.name} IPv{family} now {decision.address}")

    async def _probe_all(self, report: NameReport, addresses: list[str]) -> bool:
        """Send one probe (own nonce) to each published address; True when every one arrived."""
        settings = self.settings
        sent: dict[str, str] = {}
        try:
            for address in addresses:
                qname = self.nonces.issue(report.zone)
                try:
                    await send_probe(address, settings.dns_port, qname)
                except ProbeError as exc:
                    self.nonces.forget(qname)
                    report.steps.append(f"probe: {exc}")
                    continue
                sent[address] = qname
            waited = await asyncio.gather(*(self.nonces.wait(q, settings.timeout) for q in sent.values()))
        finally:
            for qname in sent.values():
                self.nonces.forget(qname)
        for address, came in zip(sent, waited, strict=True):
            outcome = "arrived" if came else f"not seen within {settings.timeout:g}s"
            report.steps.append(f"probe {sent[address]} to {where(address, settings.dns_port)}: {outcome}")
        return len(sent) == len(addresses) and all(waited)

    def _decider(self, name: str, family: int) -> Decider:
        key = (normalise(name), family)
        if key not in self._deciders:
            self._deciders[key] = Decider(
                interval=self.settings.interval, backoff_cap=self.settings.backoff_cap
            )
        return self._deciders[key]

    def _record(self, report: NameReport, family: int, decision: Decision) -> None:
        report.decisions[family] = decision
        report.steps.append(f"decision: {decision.action.value}: {decision.message}")
        level = _LEVELS[decision.action] if decision.log else logging.DEBUG
        log.log(
            level,
            "event=selfcheck name=%s family=%s action=%s next_round_in=%g message=%r",
            report.name,
            family or "any",
            decision.action.value,
            decision.next_round_in,
            decision.message,
        )


def _iso(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="seconds")

"""The self-connect check in a running server: rounds on a timer, repair through the one writer.

`dynmx.selfcheck` decides (probe, discovery, decision table, registrar rules); this module
gives it what only the app has: the nonce book the listeners report to, the served zones,
the writer that commits the repair and publishes it, the registrar adapters built from
the config, and the SQLite file their state lives in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dynmx.app.turns import commit_in_turn
from dynmx.config import Config, RegistrarConfig, SelfCheckSourceConfig, parse_hostport
from dynmx.control.owner import ZoneOwner
from dynmx.control.update import Change, Op
from dynmx.errors import CommandError, ConfigError
from dynmx.selfcheck.decide import Action
from dynmx.selfcheck.discovery import DnsWhoamiSource, HttpEchoSource, InterfaceSource, Source
from dynmx.selfcheck.dyndns2_client import Dyndns2Adapter, Dyndns2Settings
from dynmx.selfcheck.nonce import NonceBook
from dynmx.selfcheck.registrar import (
    Adapter,
    AdapterStateStore,
    PushReport,
    RegistrarScheduler,
    glue_warning,
    push_all,
)
from dynmx.selfcheck.rfc2136_client import Rfc2136Adapter, Rfc2136Settings
from dynmx.selfcheck.round import RoundReport, SelfChecker, SelfCheckSettings
from dynmx.selfcheck.webhook import WebhookAdapter, WebhookSettings
from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.selfcheck")

RDTYPE = {4: dns.rdatatype.A, 6: dns.rdatatype.AAAA}


def build_sources(sources: tuple[SelfCheckSourceConfig, ...]) -> tuple[Source, ...]:
    found: list[Source] = []
    for source in sources:
        if source.kind == "http":
            found.append(HttpEchoSource(source.url, source.format, source.field, source.family))  # type: ignore[arg-type]  # checked by the config
        elif source.kind == "dns":
            found.append(DnsWhoamiSource(parse_hostport(source.resolver), source.name, source.rdtype))  # type: ignore[arg-type]
        else:
            found.append(InterfaceSource(source.family, source.route_target))
    return tuple(found)


def build_adapter(registrar: RegistrarConfig, secrets: dict[str, tuple[str, str]]) -> Adapter:
    """One adapter from its config block; `secrets` maps key names to (algorithm, base64 secret)."""
    if registrar.adapter == "dyndns2":
        return Dyndns2Adapter(
            Dyndns2Settings(
                registrar.name,
                registrar.url,
                registrar.username,
                registrar.password,
                registrar.hostnames,
                registrar.timeout,
                registrar.contact,
            )
        )
    if registrar.adapter == "rfc2136":
        host, port = parse_hostport(registrar.server)
        algorithm, secret = secrets[registrar.key]
        return Rfc2136Adapter(
            Rfc2136Settings(
                registrar.name,
                host,
                registrar.zone,
                registrar.key,
                secret,
                port,
                algorithm,
                registrar.ttl,
                registrar.timeout,
            )
        )
    return WebhookAdapter(
        WebhookSettings(registrar.name, registrar.url, registrar.token, registrar.timeout, registrar.contact)
    )


class SelfCheckService:
    """Runs the check every interval (or sooner, as the decisions ask) until stopped."""

    def __init__(
        self,
        config: Config,
        secrets: dict[str, tuple[str, str]],
        state_path: Path,
        zones: Callable[[], dict[dns.name.Name, LoadedZone]],
        owner: ZoneOwner,
        publish: Callable[[LoadedZone], Awaitable[None]],
        observe: Callable[[RoundReport, list[PushReport]], None] = lambda report, pushes: None,
    ) -> None:
        settings = config.selfcheck
        self.observe = observe
        self.config = config
        self.nonces = NonceBook()
        self.zones = zones
        self.owner = owner
        self.publish = publish
        self.store = AdapterStateStore(state_path)
        self.scheduler = RegistrarScheduler(settings.min_interval, settings.max_interval)
        self.adapters = [(r, build_adapter(r, secrets)) for r in config.registrar]
        self.task: asyncio.Task[None] | None = None
        self.checker: SelfChecker | None = None
        self.warnings: list[str] = []
        if settings.enabled:
            try:
                self.checker = SelfChecker(
                    SelfCheckSettings(
                        names=settings.names,
                        zones={name: self._zone_of(name) for name in settings.names},
                        resolvers=tuple(parse_hostport(r) for r in settings.resolvers),
                        dns_port=settings.dns_port,
                        interval=settings.interval,
                        timeout=settings.timeout,
                        quorum=settings.quorum,
                        allowed_prefixes=settings.allowed_prefixes,
                        sources=build_sources(settings.source),
                    ),
                    self.nonces,
                    self.repair,
                )
            except ValueError as error:
                raise ConfigError(f"selfcheck: {error}") from None

    def _zone_of(self, name: str) -> str:
        """The deepest served zone holding `name` (the probe's nonce is asked under it)."""
        owner = dns.name.from_text(name)
        served = [origin for origin in self.zones() if owner.is_subdomain(origin)]
        if not served:
            raise ConfigError(f"selfcheck.names: {name} is in no zone this server serves")
        return max(served, key=len).to_text()

    def arrived(self, qname: bytes) -> None:
        self.nonces.arrived(qname)

    def start(self) -> None:
        if self.checker is not None:
            self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.store.close()

    async def _loop(self) -> None:
        while True:
            report = await self.round()
            await asyncio.sleep(report.next_round_in)

    async def round(self) -> RoundReport:
        """One round now (also `dynmx selfcheck`), then offer the confirmed addresses to registrars."""
        if self.checker is None:
            raise CommandError("the self-check is off (selfcheck.enabled = false)")
        report = await self.checker.run_round()
        pushes: list[PushReport] = []
        for name in report.names:
            for family in (4, 6):
                addresses = name.published.get(family, [])
                address = name.repaired.get(family)
                decision = report.decision(name.name, family)
                if address is None and decision is not None and decision.action is Action.OK:
                    address = addresses[0] if len(addresses) == 1 else None
                if address is not None:
                    previous = addresses[0] if addresses and addresses[0] != address else None
                    adapters = [a for r, a in self.adapters if not r.names or name.name in r.names]
                    pushes += await push_all(
                        adapters,
                        self.store,
                        name.name,
                        family,
                        address,
                        previous,
                        time.time(),
                        self.scheduler,
                    )
        self.observe(report, pushes)
        return report

    async def repair(self, name: str, family: int, address: str) -> None:
        """Our published address is wrong: put `address` in our own zone, through the one writer."""
        origin = dns.name.from_text(self._zone_of(name))
        owner = dns.name.from_text(name)
        rdtype = RDTYPE[family]

        def changes_of(zone: LoadedZone) -> list[Change]:
            node = zone.zone.get_node(owner)
            current = node.get_rdataset(dns.rdataclass.IN, rdtype) if node is not None else None
            ttl = current.ttl if current is not None else self.config.defaults.ttl
            changes = [Change(Op.DELETE, owner, ttl, rdata) for rdata in current or []]
            added = dns.rdata.from_text(dns.rdataclass.IN, rdtype, address)
            return [*changes, Change(Op.ADD, owner, ttl, added)]

        newest = lambda: self.zones().get(origin)  # noqa: E731
        zone = await commit_in_turn(self.owner, origin, newest, changes_of, self.publish)
        if zone is None:
            raise KeyError(f"{origin} is not served")
        apex = zone.zone.get_node(zone.origin)
        ns = apex.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NS) if apex is not None else None
        warning = glue_warning(name, zone.origin.to_text(), [r.target.to_text() for r in ns or []])
        if warning is not None:
            log.warning("event=selfcheck-glue name=%s message=%r", name, warning)
            self.warnings = [*self.warnings[-9:], warning]

    def status(self) -> dict[str, object]:
        """For /status: the last round, the addresses per source, each adapter's state; no secrets."""
        last = self.checker.last if self.checker is not None else None
        return {
            "enabled": self.checker is not None,
            "last_round": last.to_json() if last is not None else None,
            "registrars": [
                {
                    "adapter": state.adapter,
                    "hostname": state.hostname,
                    "family": state.family,
                    "last_address": state.last_address,
                    "last_result": state.last_result,
                    "last_attempt": state.last_attempt,
                    "stopped": state.stopped_reason,
                    "backoff_until": state.backoff_until,
                }
                for state in self.store.all()
            ],
            "warnings": self.warnings,
        }

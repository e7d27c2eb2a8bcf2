"""The dyndns2 service (`GET /nic/update`, ddclient's protocol): the protocol module
(`dynmx.control.dyndns2`) decides, this service finds the served zone each host belongs to
and commits the change through the one owner, as an UPDATE would.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import dns.name
import dns.rdataclass
import dns.rdatatype

from dynmx.app.turns import commit_in_turn
from dynmx.control import dyndns2
from dynmx.errors import DynmxError

if TYPE_CHECKING:
    from dynmx.app.root import App
    from dynmx.control.update import Change
    from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.app")


class Dyndns2Service:
    """The endpoint's state: the addresses last set per host, failed logins per source."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.state = dyndns2.DynState()
        self.logins = dyndns2.Logins()  # failed logins per source, and their waits

    async def handle(self, query: str, authorization: str | None, client: str) -> dyndns2.DynResult:
        """One `GET /nic/update`: decide with the protocol module, commit through the one writer."""
        settings = self.app.config.dyndns2
        hosts = [dyndns2.DynHost(h.hostname, h.username, h.password) for h in settings.host]

        def current(hostname: str, rdtype: int) -> list[str]:
            name = dns.name.from_text(hostname)
            zone = self.app.zone_of(name)  # the one the change will go to
            node = zone.zone.nodes.get(name) if zone is not None else None
            rdataset = (
                node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype)) if node else None
            )
            return [rdata.to_text() for rdata in rdataset] if rdataset is not None else []

        result = dyndns2.handle(
            query,
            authorization,
            client,
            hosts,
            current,
            self.state,
            time.time(),
            settings.min_interval,
        )
        for hostname, swaps in result.changes.items():  # a dual-stack host's A and AAAA in one commit
            zone = self.app.zone_of(dns.name.from_text(hostname))
            if zone is None:
                return dyndns2.DynResult(200, "nohost")
            changes = dyndns2.to_changes(hostname, swaps, settings.ttl)
            try:
                updated = await self._commit(zone.origin, changes)
            except DynmxError as error:  # invalid, or not durable now (the owner says why)
                log.warning("event=dyndns2-refused host=%s reason=%r", hostname, str(error))
                self.state.forget(hostname, swaps)
                return dyndns2.DynResult(200, "911")
            if updated is None:  # the zone went while the edit waited for its turn
                self.state.forget(hostname, swaps)
                return dyndns2.DynResult(200, "nohost")
            log.info("event=dyndns2-update host=%s address=%s", hostname, ",".join(s.new for s in swaps))
        return result

    async def _commit(self, origin: dns.name.Name, changes: list[Change]) -> LoadedZone | None:
        """In the zone's turn, as an UPDATE: served when this returns; None when the zone went."""
        return await commit_in_turn(
            self.app.owner,
            origin,
            lambda: self.app.zones_by_origin().get(origin),
            lambda _: changes,
            self.app.publish_zone,
        )

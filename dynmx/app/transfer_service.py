"""AXFR/IXFR out (RFC 5936, RFC 1995) on the DNS listeners: for the peers and TSIG keys in a
zone's `allow_transfer`, REFUSED for everyone else before the request is parsed. A zone
dynmx signs is always sent whole (its journal holds the unsigned changes).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.zone

from dynmx.answer.acl import address_in
from dynmx.app.update_service import load_keyring
from dynmx.config import Config
from dynmx.control import transfer, tsig
from dynmx.control.journal import Journal
from dynmx.control.ratelog import REFUSALS
from dynmx.policy.signing import signed_copy
from dynmx.wire.query import Query
from dynmx.wire.response import RCODE_FORMERR, RCODE_REFUSED, header_only, question_only
from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.update")


class TransferService:
    """AXFR/IXFR for peers in a zone's `allow_transfer`; REFUSED for everyone else (RFC 5936 §4.2)."""

    def __init__(
        self, config: Config, journal: Journal, zones: Callable[[], dict[dns.name.Name, LoadedZone]]
    ) -> None:
        self.allowed: dict[dns.name.Name, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
        self.keys: dict[dns.name.Name, set[dns.name.Name]] = {}
        for zone in config.zone:
            origin = dns.name.from_text(zone.name)
            self.allowed[origin] = [ipaddress.ip_network(p) for p in zone.allow_transfer if "/" in p]
            self.keys[origin] = {dns.name.from_text(k) for k in zone.allow_transfer if "/" not in k}
        defaults = config.defaults.allow_transfer  # zones without a [[zone]] block
        self.default_allowed = [ipaddress.ip_network(p) for p in defaults if "/" in p]
        self.default_keys = {dns.name.from_text(k) for k in defaults if "/" not in k}
        self.keyring = load_keyring(config)
        self.journal = journal
        self.zones = zones
        # told of each transfer answered (query, zone version, peer address): `dynmx zone status`
        self.on_transfer: Callable[[dns.message.Message, dns.zone.Zone, str], None] = lambda *_: None

    def handle(self, data: bytes, query: Query, peer: object) -> list[bytes]:
        origin = dns.name.from_wire(query.qname_lower, 0)[0]
        zone = self.zones().get(origin)
        host = peer[0] if isinstance(peer, tuple) else ""
        verified = None
        if query.tsig_offset is not None:  # RFC 8945: verified first; every message back is signed
            verdict = tsig.check(data, query, self.keyring, peer)
            if isinstance(verdict, bytes):
                return [verdict]  # BADKEY, BADSIG, BADTIME (logged) or FORMERR
            verified = verdict
        key = verified.owner if verified is not None else None
        signed_ok = key is not None and key in self.keys.get(origin, self.default_keys)
        if zone is None or not (signed_ok or self._permitted(origin, str(host))):  # before parsing it
            REFUSALS.refused(
                log, logging.INFO, "transfer-refused", "zone=%s peer=%s key=%s", origin, host, key
            )
            return [tsig.signed(question_only(data, query, RCODE_REFUSED), verified)]
        try:
            message = tsig.parse(data, verified)
        except dns.exception.DNSException:
            return [tsig.signed(header_only(query.msg_id, RCODE_FORMERR, query.rd), verified)]
        kind = "AXFR" if query.qtype == dns.rdatatype.AXFR else "IXFR"
        signed = signed_copy(origin)  # a zone dynmx signs: always in full (its journal is unsigned)
        messages = (
            transfer.axfr(message, signed or zone.zone)
            if kind == "AXFR" or signed is not None
            else transfer.ixfr(message, zone.zone, self.journal)
        )
        log.info("event=transfer zone=%s peer=%s kind=%s messages=%d", origin, host, kind, len(messages))
        self.on_transfer(message, zone.zone, str(host))
        return messages

    def _permitted(self, origin: dns.name.Name, host: str) -> bool:
        return address_in(host, self.allowed.get(origin, self.default_allowed))

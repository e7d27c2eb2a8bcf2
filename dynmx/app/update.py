"""RFC 2136 UPDATE with TSIG (RFC 8945) on the DNS listeners, through the one writer.

The engine hands every UPDATE/NOTIFY message here. TSIG is verified by dnspython with
the configured keyring; a key must be listed in the zone's `allow_update`, unsigned
updates are REFUSED (nothing changes). The reply to a signed update is signed with the
same key. A zone change is committed (journal, atomic file) before the reply is sent,
so an acknowledged update survives a crash.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from dynmx.answer.acl import address_in
from dynmx.config import Config
from dynmx.control import transfer, tsig
from dynmx.control.journal import Journal, JournalFork, JournalUnavailable
from dynmx.control.owner import WriteBlocked, ZoneOwner
from dynmx.control.update import Change, UpdateRefused, evaluate
from dynmx.control.writer import StaleBase
from dynmx.errors import ConfigError, ZoneLoadError
from dynmx.wire.query import Query
from dynmx.wire.response import RCODE_FORMERR, RCODE_REFUSED, header_only, question_only
from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.update")

SOA = dns.rdatatype.SOA


def key_secrets(config: Config) -> dict[str, tuple[str, str]]:
    """Each [[key]]'s (algorithm, base64 secret), secrets read from files where given."""
    found: dict[str, tuple[str, str]] = {}
    for index, key in enumerate(config.key):
        secret = key.secret
        if key.secret_file:
            try:
                secret = config.path(key.secret_file).read_text().strip()
            except OSError as error:
                raise ConfigError(f"key[{index}].secret_file: cannot read: {error.strerror}") from None
        try:
            base64.b64decode(secret, validate=True)
        except ValueError:
            raise ConfigError(f"key[{index}]: the secret is not base64") from None
        found[key.name] = (key.algorithm, secret)
    return found


def load_keyring(config: Config) -> dict[dns.name.Name, dns.tsig.Key]:
    """The TSIG keys of the config as dnspython keys."""
    keys: dict[dns.name.Name, dns.tsig.Key] = {}
    for text, (algorithm, secret) in key_secrets(config).items():
        name = dns.name.from_text(text)
        keys[name] = dns.tsig.Key(name, secret, algorithm)
    return keys


class KeyRules:
    """Which names and types a key may change (empty: anything in the zones that allow it)."""

    def __init__(self, names: tuple[str, ...], types: tuple[str, ...]) -> None:
        self.exact = {dns.name.from_text(n) for n in names if not n.startswith("*.")}
        self.below = [dns.name.from_text(n[2:]) for n in names if n.startswith("*.")]
        self.types = {dns.rdatatype.from_text(t) for t in types}

    def allows(self, change: Change) -> bool:
        name_ok = (
            not (self.exact or self.below)
            or change.name in self.exact
            or any(change.name.is_subdomain(parent) and change.name != parent for parent in self.below)
        )
        return name_ok and (not self.types or change.rdata.rdtype in self.types or change.rdata.rdtype == SOA)

    def refuses(self, changes: list[Change]) -> str | None:
        """The first change the key may not make, as text; None when all are allowed."""
        for change in changes:
            if not self.allows(change):
                return f"{change.name} {dns.rdatatype.to_text(change.rdata.rdtype)}"
        return None


class UpdateService:
    """Answers UPDATE (and, until secondary mode exists, refuses NOTIFY)."""

    def __init__(
        self,
        config: Config,
        owner: ZoneOwner,
        zones: Callable[[], dict[dns.name.Name, LoadedZone]],
        publish: Callable[[LoadedZone], Awaitable[None]],
    ) -> None:
        self.keyring = load_keyring(config)
        self.allowed = {
            dns.name.from_text(z.name): {dns.name.from_text(k) for k in z.allow_update} for z in config.zone
        }
        self.rules = {dns.name.from_text(k.name): KeyRules(k.names, k.types) for k in config.key}
        self.owner = owner
        self.zones = zones
        self.publish = publish
        # (zone, peer address) -> accepted: set when secondary zones exist.
        self.secondaries: Callable[[dns.name.Name, str], bool] | None = None
        self.is_secondary: Callable[[dns.name.Name], bool] | None = None

    def handle(
        self, data: bytes, query: Query, tcp: bool, peer: object = None
    ) -> bytes | Awaitable[bytes] | None:
        verified = None
        if query.tsig_offset is not None:  # RFC 8945: verified first; every reply to it is signed
            verdict = tsig.check(data, query, self.keyring, peer)
            if isinstance(verdict, bytes):
                return verdict  # BADKEY, BADSIG, BADTIME (logged) or FORMERR
            verified = verdict
        if query.opcode == dns.opcode.NOTIFY:
            return tsig.signed(self._notify(data, query, peer), verified)
        if query.opcode != dns.opcode.UPDATE:
            return tsig.signed(question_only(data, query, RCODE_REFUSED), verified)
        try:
            message = tsig.parse(data, verified)
        except dns.exception.DNSException:
            formerr = header_only(query.msg_id, RCODE_FORMERR, query.rd, opcode=query.opcode)
            return tsig.signed(formerr, verified)
        assert isinstance(message, dns.update.UpdateMessage)
        rcode, served = self._apply(message)
        response = dns.message.make_response(message)  # signed with the request's key and MAC
        response.set_rcode(rcode)
        reply = response.to_wire()
        if served is None:
            return reply
        return self._when_served(served, reply)

    @staticmethod
    async def _when_served(served: Awaitable[None], reply: bytes) -> bytes:
        """Acknowledge once the edit is answered: a client that reads back after NOERROR sees it."""
        await served
        return reply

    def _notify(self, data: bytes, query: Query, peer: object) -> bytes:
        """RFC 1996: a NOTIFY from a secondary zone's primary starts a refresh; others are REFUSED."""
        origin = dns.name.from_wire(query.qname_lower, 0)[0]
        source = str(peer[0]) if isinstance(peer, tuple) else ""
        if self.secondaries is None or not self.secondaries(origin, source):
            log.info("event=notify-refused zone=%s peer=%s", origin, source)
            return question_only(data, query, RCODE_REFUSED)
        log.info("event=notify-received zone=%s peer=%s", origin, source)
        return question_only(data, query, 0, authoritative=True)

    def _apply(self, message: dns.update.UpdateMessage) -> tuple[dns.rcode.Rcode, Awaitable[None] | None]:
        """The rcode, and for a committed edit what to wait for before acknowledging it."""
        origin = message.zone[0].name if message.zone else dns.name.root
        zone = self.zones().get(origin)
        if zone is None:
            return dns.rcode.NOTAUTH, None
        if self.is_secondary is not None and self.is_secondary(origin):
            log.info("event=update-refused zone=%s reason=secondary-zone", origin)
            return dns.rcode.REFUSED, None  # edits belong on the primary
        key = message.keyname if message.had_tsig else None
        if key is None or key not in self.allowed.get(origin, set()):
            log.warning("event=update-refused zone=%s key=%s reason=not-allowed", origin, key)
            return dns.rcode.REFUSED, None
        outcome = self.edit(zone, message, key)
        return outcome.rcode, outcome.served

    def apply_local(self, wire: bytes) -> Outcome:
        """An UPDATE from the local control socket (`dynmx record`): the socket's file mode is
        its authorization, so no key and no key rules; everything else as over the wire."""
        try:
            message = dns.message.from_wire(wire)
        except dns.exception.DNSException as error:
            return Outcome(dns.rcode.FORMERR, f"not an UPDATE message: {error}")
        if not isinstance(message, dns.update.UpdateMessage) or len(message.zone) != 1:
            return Outcome(dns.rcode.FORMERR, "not an UPDATE message with one zone")
        origin = message.zone[0].name
        zone = self.zones().get(origin)
        if zone is None:
            return Outcome(dns.rcode.NOTAUTH, f"{origin} is not served here")
        if self.is_secondary is not None and self.is_secondary(origin):
            return Outcome(dns.rcode.REFUSED, f"{origin} is a secondary zone: edit it on its primary")
        return self.edit(zone, message, None)

    def edit(self, zone: LoadedZone, message: dns.update.UpdateMessage, key: dns.name.Name | None) -> Outcome:
        """RFC 2136 §3 on `zone` for `key` (None: local, unrestricted), committed by the owner."""
        origin = zone.origin
        try:
            changes = evaluate(zone.zone, origin, message)
        except UpdateRefused as refused:
            log.info(
                "event=update-rejected zone=%s key=%s rcode=%s reason=%r",
                origin,
                key,
                dns.rcode.to_text(refused.rcode),
                str(refused),
            )
            return Outcome(refused.rcode, str(refused))
        if not changes:
            return Outcome(dns.rcode.NOERROR, "no change")
        forbidden = self.rules[key].refuses(changes) if key is not None and key in self.rules else None
        if forbidden is not None:
            log.warning(
                "event=update-refused zone=%s key=%s reason=key-rules change=%r", origin, key, forbidden
            )
            return Outcome(dns.rcode.REFUSED, f"key {key} may not change {forbidden}")
        try:
            updated = self.owner.commit(zone, changes)
        except ZoneLoadError as error:
            log.warning("event=update-refused zone=%s reason=invalid-result problems=%r", origin, str(error))
            return Outcome(dns.rcode.REFUSED, "; ".join(p.reason for p in error.problems))
        except (WriteBlocked, StaleBase, JournalFork, JournalUnavailable) as error:  # ours: SERVFAIL
            reason = REFUSALS[type(error)]
            log.error("event=update-refused zone=%s reason=%s detail=%r", origin, reason, str(error))
            return Outcome(dns.rcode.SERVFAIL, str(error))
        log.info("event=zone-updated zone=%s key=%s changes=%d", origin, key, len(changes))
        return Outcome(dns.rcode.NOERROR, f"{len(changes)} record change(s)", self.publish(updated))


# Why the owner could not commit (the server's fault, not the client's): the log's reason.
REFUSALS: dict[type[Exception], str] = {
    WriteBlocked: "write-blocked",
    StaleBase: "stale",
    JournalFork: "stale",
    JournalUnavailable: "journal-failed",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an UPDATE came to: the rcode, why (for a local caller), what to wait for."""

    rcode: dns.rcode.Rcode
    reason: str
    served: Awaitable[None] | None = None


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
        self.keyring = load_keyring(config)
        self.journal = journal
        self.zones = zones

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
        try:
            message = tsig.parse(data, verified)
        except dns.exception.DNSException:
            return [tsig.signed(header_only(query.msg_id, RCODE_FORMERR, query.rd), verified)]
        key = verified.owner if verified is not None else None
        signed_ok = key is not None and key in self.keys.get(origin, set())
        if zone is None or not (signed_ok or self._permitted(origin, str(host))):
            log.info("event=transfer-refused zone=%s peer=%s key=%s", origin, host, key)
            return [tsig.signed(question_only(data, query, RCODE_REFUSED), verified)]
        kind = "AXFR" if query.qtype == dns.rdatatype.AXFR else "IXFR"
        messages = (
            transfer.axfr(message, zone.zone)
            if kind == "AXFR"
            else transfer.ixfr(message, zone.zone, self.journal)
        )
        log.info("event=transfer zone=%s peer=%s kind=%s messages=%d", origin, host, kind, len(messages))
        return messages

    def _permitted(self, origin: dns.name.Name, host: str) -> bool:
        return address_in(host, self.allowed.get(origin, []))

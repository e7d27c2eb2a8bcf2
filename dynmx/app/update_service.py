"""RFC 2136 UPDATE with TSIG (RFC 8945) on the DNS listeners, through the one writer.

The engine hands every UPDATE/NOTIFY message here. TSIG is verified by dnspython with
the configured keyring; a key must be listed in the zone's `allow_update`, unsigned
updates are REFUSED (nothing changes). The reply to a signed update is signed with the
same key. A zone change is journaled durably before the reply is sent, so an
acknowledged update survives a crash; the journal's fsync is awaited on its own thread
while queries go on being answered. The UPDATEs of one zone take turns (RFC 2136 §3.7:
serially): each is planned on the version its predecessor left and journaled after it.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

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

from dynmx.answer.zoneset import note_edit
from dynmx.app.turns import shielded
from dynmx.config import Config
from dynmx.control import tsig
from dynmx.control.owner import WriteBlocked, ZoneOwner
from dynmx.control.ratelog import REFUSALS
from dynmx.control.update import Change, KeyRefused, KeyRules, UpdateRefused, evaluate
from dynmx.errors import ConfigError, JournalFork, JournalUnavailable, StaleBase, ZoneLoadError
from dynmx.wire.query import Query
from dynmx.wire.response import (
    RCODE_FORMERR,
    RCODE_NOTAUTH,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    header_only,
    question_only,
)
from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.update")

SOA = dns.rdatatype.SOA
LARGE_UPDATE = 256  # records from which an UPDATE is parsed and planned off the event loop
MAX_WAITING_PLANS = 8  # large updates waiting for the planner; more are answered SERVFAIL
PLAN_ATTEMPTS = 3  # plans of a large update when other edits commit while it is planned


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


class UpdateService:
    """Answers UPDATE (and NOTIFY for secondary zones: a refresh from the primary).

    What an UPDATE costs before it is known to be allowed is bounded: the zone (its question),
    the TSIG (verified from the raw wire, `tsig.check`), the key's place in the zone's
    `allow_update` and the record count (`[server] max_update_records`) are checked before
    dnspython parses the message; anything else is REFUSED (NOTAUTH for a zone not served)
    at once. The key's rules are checked per record before anything is planned, and
    planning is linear in the update's size. An update of `large_update` records or more is
    parsed and planned on a thread (one at a time, `max_waiting` waiting at most) and
    committed back on the event loop, on the version it was planned on: if another edit
    committed meanwhile (StaleBase) it is planned again, and answered SERVFAIL after
    `PLAN_ATTEMPTS`. Per-packet refusals are logged through `REFUSALS` (rate-limited, counted).
    """

    large_update = LARGE_UPDATE
    max_waiting = MAX_WAITING_PLANS

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
        # zones without a [[zone]] block (added later, or by a catalog): [defaults] allow_update
        self.default_allowed = {dns.name.from_text(k) for k in config.defaults.allow_update}
        self.owner = owner
        self.zones = zones
        self.publish = publish
        # (zone, peer address) -> accepted: set when secondary zones exist.
        self.secondaries: Callable[[dns.name.Name, str], bool] | None = None
        self.is_secondary: Callable[[dns.name.Name], bool] | None = None
        self._planner: ThreadPoolExecutor | None = None
        self._waiting = 0

    @property
    def max_records(self) -> int:
        """`[server] max_update_records` as the owner holds it now (a reload applies it)."""
        return self.owner.config.server.max_update_records

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
        refusal = self._admit(data, query, verified, peer)
        if refusal is not None:  # decided from the raw wire: nothing parsed, nothing planned
            return tsig.signed(question_only(data, query, refusal), verified)
        origin = _origin(query)
        key = verified.owner if verified is not None else None
        assert key is not None  # _admit refuses unsigned updates
        if _record_count(data) >= self.large_update:
            if self._waiting >= self.max_waiting:
                REFUSALS.refused(
                    log, logging.WARNING, "update-refused", "zone=%s key=%s reason=busy waiting=%d",
                    origin, key, self._waiting,
                )  # fmt: skip
                return tsig.signed(question_only(data, query, RCODE_SERVFAIL), verified)
            self._waiting += 1  # counted now, so a batch of datagrams cannot all pass the bound
            return self._edit_off_loop(data, query, verified, origin, key)
        try:
            message = tsig.parse(data, verified)
        except dns.exception.DNSException:
            formerr = header_only(query.msg_id, RCODE_FORMERR, query.rd, opcode=query.opcode)
            return tsig.signed(formerr, verified)
        assert isinstance(message, dns.update.UpdateMessage)
        planned = None
        if not self.owner.turn(origin).busy:  # no edit under way: the served version is the newest
            zone = self.zones()[origin]
            try:
                changes = self.plan(zone, message, key)
            except UpdateRefused as refused:  # answered at once, as is an update that changes nothing
                return _reply(message, self._rejected(origin, key, refused).rcode)
            if not changes:
                return _reply(message, dns.rcode.NOERROR)
            planned = (zone, changes)
        return self._answer(message, origin, key, planned)

    async def _answer(
        self,
        message: dns.update.UpdateMessage,
        origin: dns.name.Name,
        key: dns.name.Name | None,
        planned: tuple[LoadedZone, list[Change]] | None = None,
    ) -> bytes:
        """Planned (again, unless `planned` was on the version found in turn) and committed in the
        zone's turn; acknowledged once the edit is answered (a client that reads back after
        NOERROR sees it)."""
        outcome = await self.in_turn(origin, lambda zone: self.edit(zone, message, key, planned))
        reply = _reply(message, outcome.rcode)
        if outcome.served is not None:
            await outcome.served
        return reply

    async def in_turn(
        self, origin: dns.name.Name, step: Callable[[LoadedZone], Coroutine[Any, Any, Outcome]]
    ) -> Outcome:
        """`step` on the zone's newest version, in the zone's turn (`ZoneOwner.turn`). It runs in
        a task of its own that the caller's cancellation does not reach: an edit handed to the
        journal is published even if the client that asked for it is gone."""

        async def turn() -> Outcome:
            async with self.owner.turn(origin):
                zone = self.zones().get(origin)
                if zone is None:  # removed meanwhile
                    return Outcome(dns.rcode.NOTAUTH, f"{origin} is not served here")
                return await step(zone)

        return await shielded(turn())

    def _admit(self, data: bytes, query: Query, verified: tsig.Verified | None, peer: object) -> int | None:
        """The rcode refusing an UPDATE from what the raw wire says (the zone, the key, the
        size), before dnspython parses it (RFC 2136 §3.1, §3.3); None to go on."""
        origin = _origin(query)
        key = verified.owner if verified is not None else None
        records = _record_count(data)
        if query.qclass != dns.rdataclass.IN or self.zones().get(origin) is None:
            rcode, level, reason = RCODE_NOTAUTH, logging.INFO, "not-served"  # §3.1.1
        elif self.is_secondary is not None and self.is_secondary(origin):
            rcode, level, reason = RCODE_REFUSED, logging.INFO, "secondary-zone"  # edit on the primary
        elif key is None or key not in self.allowed.get(origin, self.default_allowed):
            rcode, level, reason = RCODE_REFUSED, logging.WARNING, "not-allowed"
        elif records > self.max_records:
            rcode, level, reason = RCODE_REFUSED, logging.WARNING, f"too-many-records max={self.max_records}"
        else:
            return None
        REFUSALS.refused(
            log, level, "update-refused", "zone=%s peer=%s key=%s reason=%s records=%d",
            origin, _host(peer), key, reason, records,
        )  # fmt: skip
        return rcode

    async def _edit_off_loop(
        self,
        data: bytes,
        query: Query,
        verified: tsig.Verified | None,
        origin: dns.name.Name,
        key: dns.name.Name,
    ) -> bytes:
        """A large update: parsed and planned on the planner thread, committed here on the loop on
        the version it was planned on; planned again when another edit committed meanwhile.
        `_waiting` was counted by the caller (the server runs the coroutine as a task at once)."""
        loop = asyncio.get_running_loop()
        if self._planner is None:
            self._planner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dynmx-update-plan")
        try:
            for attempt in range(1, PLAN_ATTEMPTS + 1):
                zone = self.zones().get(origin)
                if zone is None:  # removed meanwhile
                    return tsig.signed(question_only(data, query, RCODE_NOTAUTH), verified)
                planned = await loop.run_in_executor(
                    self._planner, self._parse_and_plan, data, verified, zone, key
                )
                if isinstance(planned, bytes):
                    return planned  # FORMERR
                message, plan = planned
                if isinstance(plan, UpdateRefused):
                    return _reply(message, self._rejected(origin, key, plan).rcode)
                last = attempt == PLAN_ATTEMPTS
                step = functools.partial(
                    self._commit_planned, planned_on=zone, changes=plan, key=key, last=last
                )
                outcome = await self.in_turn(origin, step)
                if outcome.stale and attempt < PLAN_ATTEMPTS:
                    log.info("event=update-replanned zone=%s key=%s attempt=%d", origin, key, attempt)
                    continue
                reply = _reply(message, outcome.rcode)
                if outcome.served is not None:
                    await outcome.served
                return reply
            raise AssertionError("unreachable: the last attempt returns")
        finally:
            self._waiting -= 1

    async def _commit_planned(
        self, head: LoadedZone, planned_on: LoadedZone, changes: list[Change], key: dns.name.Name, last: bool
    ) -> Outcome:
        """A large update's plan, committed in the zone's turn if the zone is still the version it
        was planned on (the owner refuses it too, StaleBase, if the journal moved on)."""
        if head is not planned_on:  # replaced while planned (an edit, a reload)
            if last:
                log.error("event=update-refused zone=%s key=%s reason=stale", head.origin, key)
            return Outcome(dns.rcode.SERVFAIL, "the zone changed while planned", stale=True)
        return await self.commit(head, changes, key, last=last)

    def _parse_and_plan(
        self, data: bytes, verified: tsig.Verified | None, zone: LoadedZone, key: dns.name.Name
    ) -> bytes | tuple[dns.update.UpdateMessage, list[Change] | UpdateRefused]:
        """On the planner thread: the message and its changes (or why it is refused), or the
        FORMERR reply. Reads only `zone`, a version nobody changes."""
        try:
            message = tsig.parse(data, verified)
        except dns.exception.DNSException:
            query_id, rd = (data[0] << 8) | data[1], bool(data[2] & 1)
            return tsig.signed(header_only(query_id, RCODE_FORMERR, rd, opcode=dns.opcode.UPDATE), verified)
        assert isinstance(message, dns.update.UpdateMessage)
        try:
            return message, self.plan(zone, message, key)
        except UpdateRefused as refused:
            return message, refused

    def _notify(self, data: bytes, query: Query, peer: object) -> bytes:
        """RFC 1996: a NOTIFY from a secondary zone's primary starts a refresh; others are REFUSED."""
        origin = _origin(query)
        source = _host(peer)
        if self.secondaries is None or not self.secondaries(origin, source):
            REFUSALS.refused(log, logging.INFO, "notify-refused", "zone=%s peer=%s", origin, source)
            return question_only(data, query, RCODE_REFUSED)
        log.info("event=notify-received zone=%s peer=%s", origin, source)
        return question_only(data, query, 0, authoritative=True)

    async def apply_local(self, wire: bytes) -> Outcome:
        """An UPDATE from the local control socket (`dynmx record`): the socket's file mode is
        its authorization, so no key and no key rules; everything else as over the wire (in
        the zone's turn, with the UPDATEs that meet it)."""
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
        return await self.in_turn(origin, lambda head: self.edit(head, message, None))

    async def edit(
        self,
        zone: LoadedZone,
        message: dns.update.UpdateMessage,
        key: dns.name.Name | None,
        planned: tuple[LoadedZone, list[Change]] | None = None,
    ) -> Outcome:
        """RFC 2136 §3 on `zone` for `key` (None: local, unrestricted), committed by the owner;
        in the zone's turn (`in_turn`), `zone` its newest version. `planned`: changes already
        planned, used if they were planned on `zone` itself."""
        if planned is not None and planned[0] is zone:
            return await self.commit(zone, planned[1], key)
        try:
            changes = self.plan(zone, message, key)
        except UpdateRefused as refused:
            return self._rejected(zone.origin, key, refused)
        return await self.commit(zone, changes, key)

    def plan(
        self, zone: LoadedZone, message: dns.update.UpdateMessage, key: dns.name.Name | None
    ) -> list[Change]:
        """The changes `message` makes to `zone` (RFC 2136 §3, the key's rules checked per record
        before anything is planned); raises UpdateRefused. No I/O: safe on a thread."""
        rules = self.rules.get(key) if key is not None else None
        return evaluate(zone.zone, zone.origin, message, rules)

    def _rejected(self, origin: dns.name.Name, key: dns.name.Name | None, refused: UpdateRefused) -> Outcome:
        if isinstance(refused, KeyRefused):
            fields = "zone=%s key=%s reason=key-rules change=%r"
            REFUSALS.refused(log, logging.WARNING, "update-refused", fields, origin, key, refused.record)
            return Outcome(dns.rcode.REFUSED, f"key {key} may not change {refused.record}")
        rcode = dns.rcode.to_text(refused.rcode)
        fields = "zone=%s key=%s rcode=%s reason=%r"
        REFUSALS.refused(log, logging.INFO, "update-rejected", fields, origin, key, rcode, str(refused))
        return Outcome(refused.rcode, str(refused))

    async def commit(
        self, zone: LoadedZone, changes: list[Change], key: dns.name.Name | None, last: bool = True
    ) -> Outcome:
        """Hand `changes`, planned on `zone`, to the owner, in the zone's turn; published at once
        once durable (the next edit in turn builds on it). A commit refused because `zone` is no
        longer the newest version is `stale` (and logged only when `last`: the caller may plan
        again)."""
        origin = zone.origin
        if not changes:
            return Outcome(dns.rcode.NOERROR, "no change")
        try:
            updated = await self.owner.commit_durably(zone, changes)
        except ZoneLoadError as error:
            log.warning("event=update-refused zone=%s reason=invalid-result problems=%r", origin, str(error))
            return Outcome(dns.rcode.REFUSED, "; ".join(p.reason for p in error.problems))
        except (WriteBlocked, StaleBase, JournalFork, JournalUnavailable) as error:  # ours: SERVFAIL
            stale = isinstance(error, StaleBase | JournalFork)
            if last or not stale:
                reason = REFUSALS_BY_ERROR[type(error)]
                log.error("event=update-refused zone=%s reason=%s detail=%r", origin, reason, str(error))
            return Outcome(dns.rcode.SERVFAIL, str(error), stale=stale)
        log.info("event=zone-updated zone=%s key=%s changes=%d", origin, key, len(changes))
        note_edit(zone.zone, updated.zone, [origin, *(change.name for change in changes)])  # and its serial
        return Outcome(dns.rcode.NOERROR, f"{len(changes)} record change(s)", self.publish(updated))


def _origin(query: Query) -> dns.name.Name:
    """The zone an UPDATE names (its one question, RFC 2136 §2.3), read from the raw wire."""
    return dns.name.from_wire(query.qname_lower, 0)[0]


def _host(peer: object) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


def _record_count(data: bytes) -> int:
    """The records of an UPDATE's prerequisite and update sections, from its header (RFC 2136
    §2.2: PRCOUNT and UPCOUNT, where a query has ANCOUNT and NSCOUNT)."""
    return ((data[6] << 8) | data[7]) + ((data[8] << 8) | data[9])


def _reply(message: dns.update.UpdateMessage, rcode: dns.rcode.Rcode | int) -> bytes:
    """The response to a parsed UPDATE (its zone section echoed), signed like the request."""
    response = dns.message.make_response(message)  # signed with the request's key and MAC
    response.set_rcode(dns.rcode.Rcode.make(rcode))
    return response.to_wire()


# Why the owner could not commit (the server's fault, not the client's): the log's reason.
REFUSALS_BY_ERROR: dict[type[Exception], str] = {
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
    stale: bool = False  # planned on a version that is no longer the newest: plan again

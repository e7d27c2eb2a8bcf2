"""Turn a query datagram into a reply: the fast path over the table, the slow path beside it.

`Engine.handle(data, tcp)` is the one function the transports call. The fast path
takes the common query (opcode QUERY, one IN question, no or a plain OPT record)
straight to a table entry and patches ID, RD, question and OPT. Everything else —
malformed input, EDNS options, meta types, other classes, names not in the table —
goes through the full parser and the dnspython lookup, whose results land in a
bounded LRU.

A query with DO=1 for a pre-signed zone takes the table's DO=1 entries (answers with
their RRSIGs and proofs, compiled beside the others); a name without one (NXDOMAIN, a
wildcard expansion: the proof names the query name) goes through the slow path, whose
results are cached apart from the DO=0 ones.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype

from dynmx.answer import denial, rrl
from dynmx.answer.acl import ZoneGate
from dynmx.answer.clients import ClientAction, ClientRules, Network
from dynmx.answer.compiler import DO_KEY, AnswerTable, CompiledZone
from dynmx.answer.lookup import Answer, Outcome, lookup
from dynmx.answer.render import render
from dynmx.errors import DropPacket, FormError
from dynmx.wire.query import (
    HEADER_LEN,
    MAX_NAME_LEN,
    OPCODE_NOTIFY,
    OPCODE_QUERY,
    OPCODE_UPDATE,
    OPTION_ECS,
    OPTION_NSID,
    Query,
    ecs_address,
    parse_query,
)
from dynmx.wire.response import (
    OPT_DO,
    OPT_PLAIN,
    RCODE_BADVERS,
    RCODE_FORMERR,
    RCODE_NOTAUTH,
    RCODE_NOTIMP,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    SECTION_ANSWER,
    TCP_LIMIT,
    UDP_PAYLOAD,
    Entry,
    assemble,
    edns_option,
    header_only,
    question_only,
    udp_limit,
)

log = logging.getLogger("dynmx.engine")

CLASS_IN = dns.rdataclass.IN
CLASS_CH = dns.rdataclass.CH
CLASS_ANY = dns.rdataclass.ANY
CLASS_NONE = dns.rdataclass.NONE
TYPE_AXFR = dns.rdatatype.AXFR
TYPE_IXFR = dns.rdatatype.IXFR
TYPE_ANY = dns.rdatatype.ANY
TYPE_TXT = dns.rdatatype.TXT
TYPE_SOA = dns.rdatatype.SOA
META_QTYPE_MIN = 251  # IXFR, AXFR, MAILB, MAILA, ANY: never served from a default entry
MAX_QEND = HEADER_LEN + MAX_NAME_LEN  # the offset after the longest question name

# A reply decided in another process (an answer worker forwards to the control process).
Deferred = Awaitable[Any]
# Handler for opcodes NOTIFY and UPDATE, set by the control layer: (data, query, tcp, peer) -> reply.
ControlHandler = Callable[[bytes, Query, bool, object], bytes | Deferred | None]
# Handler for AXFR/IXFR over TCP, set by the control layer: (data, query, peer) -> messages.
TransferHandler = Callable[[bytes, Query, object], list[bytes] | Deferred]


class SignedRequest(Protocol):
    """A request whose TSIG verified (RFC 8945 5.2): what signs the replies to it (5.3)."""

    @property
    def reserve(self) -> int: ...  # octets the TSIG record adds to a reply

    def sign(self, reply: bytes) -> bytes: ...


# TSIG for signed requests the engine answers itself, set by the control layer:
# (data, query, peer) -> what signs the reply, or the reply to send instead (the TSIG error).
TsigHook = Callable[[bytes, Query, object], SignedRequest | bytes]
SELFCHECK_LABEL = b"\x0a_selfcheck"
# A slow-path cache key that is no name's: a wire name never starts with a byte over 63, so
# no query can hit it (a "*" prefix could: 42 is a label length).
WILDCARD_KEY = b"\xff"  # + wildcard parent + qtype: the answer every name below it shares
ANY_AMPLIFICATION = 3  # ANY over UDP answered larger than this times the query gets the HINFO
ANY_HINFO_TTL = 3600  # RFC 8482 4.2 leaves it to the operator; an hour, as common practice


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """Answers to `version.bind`/`id.server` CH TXT; empty strings keep them REFUSED."""

    version: str = ""
    identity: str = ""


class Engine:
    """Holds the current table and answers queries from it."""

    def __init__(
        self,
        table: AnswerTable,
        *,
        chaos: ChaosConfig | None = None,
        lru_size: int = 10000,
        client_subnet: bool = False,
        client_subnet_sources: Sequence[Network] = (),
        nsid: bytes = b"",
    ):
        self.table = table
        # RFC 5001: this server's identifier, for queries that ask with an empty NSID option.
        self.nsid_option = edns_option(OPTION_NSID, nsid) if nsid else b""
        self.chaos = chaos or ChaosConfig()
        self.lru_size = lru_size
        self._lru: OrderedDict[bytes, Entry] = OrderedDict()
        # Signed NXDOMAIN replies by proof (`denial`): the template and its pointers.
        self._proofs: OrderedDict[bytes, tuple[Entry, tuple[int, ...]]] = OrderedDict()
        self.control: ControlHandler | None = None
        self.rrl: rrl.RateLimiter | None = None  # response rate limiting for UDP (set by the app)
        self.gate: ZoneGate | None = None  # allow_query and unavailable zones (set by the app when any)
        self.transfer: TransferHandler | None = None
        # Verifies signed requests answered here and signs their replies (set by the app). Signed
        # queries never take the fast path (their ARCOUNT holds the TSIG), so it costs that nothing.
        self.tsig: TsigHook | None = None
        # RFC 7871 Client Subnet is honoured only from these sources (the resolvers trusted to
        # say whom they ask for, as PowerDNS's edns-subnet-allow-list); from anyone else the
        # option is ignored, so a client cannot step out of its own client action.
        self.client_subnet = client_subnet
        self.client_subnet_sources = (
            ClientRules([ClientAction(network, "answer") for network in client_subnet_sources])
            if client_subnet
            else None
        )
        # `status.<pool>` CH TXT answers (off unless set): pool name -> lines, or None.
        self.chaos_status: Callable[[str], list[str] | None] | None = None
        self.stats = {"slow": 0, "formerr": 0, "dropped": 0, "servfail": 0}
        # Told of every query for a name with a `_selfcheck` label (the self-connect probe).
        self.on_selfcheck: Callable[[bytes], None] | None = None

    def swap(self, table: AnswerTable) -> None:
        """Serve `table` from the next query on; readers never see a half-built table."""
        self.table = table
        self._lru = OrderedDict()
        self._proofs = OrderedDict()

    def handle_tcp(self, data: bytes, addr: object) -> bytes | list[bytes] | Deferred | None:
        """A message on a TCP connection: zone transfers may answer with several messages."""
        if self.transfer is not None and len(data) > 12 and (data[2] >> 3) & 0xF == OPCODE_QUERY:
            try:
                query = parse_query(data)
            except (FormError, DropPacket):
                return self.handle(data, addr, True)
            if query.qtype in (TYPE_AXFR, TYPE_IXFR) and query.qclass == CLASS_IN:
                if self.gate is not None and self.gate.refusal(query.qname_lower, None):
                    refused = question_only(data, query, RCODE_NOTAUTH)  # no current copy to send, as NSD
                    if query.tsig_offset is not None and self.tsig is not None:
                        return self._signed(data, query, addr, lambda _: refused)
                    return refused
                try:
                    return self.transfer(data, query, addr)
                except Exception:  # our fault, as in `handle`: SERVFAIL and a log line, never a raise
                    self.stats["servfail"] += 1
                    log.exception("event=internal-error kind=transfer len=%d", len(data))
                    return header_only(query.msg_id, RCODE_SERVFAIL, query.rd)
        return self.handle(data, addr, True)

    def _rate_limited(self, reply: bytes, host: str) -> bytes | None:
        """RRL (UDP only): send, drop, or slip a truncated reply so real clients retry over TCP."""
        assert self.rrl is not None
        if self.rrl.prefix(host) is None:  # loopback: exempt, and no work on the reply
            return reply
        kind = rrl.classify(reply)
        name = b""
        end = 12
        if kind == rrl.POSITIVE:  # positives are counted per name; errors per prefix and class
            while end < len(reply) and reply[end]:
                end += reply[end] + 1
            name = reply[12:end].lower()
        verdict = self.rrl.check(host, kind, name, time.monotonic())
        if verdict == rrl.Verdict.SEND:
            return reply
        if verdict == rrl.Verdict.DROP:
            return None
        while end < len(reply) and reply[end]:
            end += reply[end] + 1
        question = reply[12 : end + 5]
        return reply[:2] + bytes((reply[2] | 0x02, reply[3])) + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question

    def cache_len(self) -> int:
        return len(self._lru)

    # -- the hot path -------------------------------------------------------------------

    def handle(self, data: bytes, addr: object = None, tcp: bool = False) -> bytes | Deferred | None:
        """Reply bytes for one query message, None to stay silent, or a reply to come; never raises."""
        try:
            reply = self._fast(data, addr, tcp)
            if self.rrl is None or tcp or reply.__class__ is not bytes or not isinstance(addr, tuple):
                return reply
            return self._rate_limited(reply, addr[0])
        except Exception:
            # Our fault, not the peer's: SERVFAIL and a log line (design.md, errors).
            self.stats["servfail"] += 1
            log.exception("event=internal-error len=%d", len(data))
            if len(data) < 12:
                return None
            return header_only((data[0] << 8) | data[1], RCODE_SERVFAIL, bool(data[2] & 1))

    def _fast(self, data: bytes, addr: object, tcp: bool) -> bytes | Deferred | None:
        size = len(data)
        if size < 17 or data[2] & 0xF8 or data[4:10] != b"\x00\x01\x00\x00\x00\x00":
            return self._slow(data, addr, tcp)
        pos = 12
        length = data[12]
        while length:
            if length > 63:
                return self._slow(data, addr, tcp)
            pos += length + 1
            if pos >= size:
                return self._slow(data, addr, tcp)
            length = data[pos]
        qend = pos + 1
        if (
            qend > MAX_QEND  # a name of over 255 octets (RFC 1035 3.1): FORMERR, from the slow path
            or qend + 4 > size
            or data[qend + 2 : qend + 4] != b"\x00\x01"
            or (data[qend] == 0 and data[qend + 1] >= META_QTYPE_MIN)
        ):
            return self._slow(data, addr, tcp)
        arcount = data[10:12]
        if arcount == b"\x00\x00":
            opt = b""
            limit = TCP_LIMIT if tcp else 512
        elif (
            arcount == b"\x00\x01"
            and size == qend + 15
            and data[qend + 4 : qend + 7] == b"\x00\x00\x29"
            and data[qend + 10] == 0
            and data[qend + 13 : qend + 15] == b"\x00\x00"
        ):
            opt = OPT_DO if data[qend + 11] & 0x80 else OPT_PLAIN
            if tcp:
                limit = TCP_LIMIT
            else:
                limit = (data[qend + 7] << 8) | data[qend + 8]
                if limit < 512:
                    limit = 512
                elif limit > UDP_PAYLOAD:
                    limit = UDP_PAYLOAD
        else:
            return self._slow(data, addr, tcp)
        name = data[12:qend].lower()
        if self.gate is not None and (refusal := self.gate.refusal(name, addr)):
            return question_only(data, parse_query(data), refusal)
        table = self.table
        entries = table.entries
        if opt is OPT_DO and table.signed:
            entry = entries.get(DO_KEY + name + data[qend : qend + 2]) or entries.get(DO_KEY + name)
            if entry is None:
                zone = table.find_zone(name)
                if zone is not None and zone.signed:  # signed proofs for a name not compiled
                    return self._slow(data, addr, tcp)
                entry = entries.get(name + data[qend : qend + 2]) or entries.get(name)
        else:
            entry = entries.get(name + data[qend : qend + 2]) or entries.get(name)
        if entry is None:
            if self.on_selfcheck is not None and SELFCHECK_LABEL in name:
                self.on_selfcheck(name)
            zone = self.table.find_zone(name)
            if zone is None or not zone.complete or not zone.plain_nxdomain(name):
                return self._slow(data, addr, tcp)
            entry = zone.nx_template
            body = zone.nx_body(len(name))
        else:
            if entry.selector is not None:
                entry = entry.selector.pick(addr)
                if entry is None:
                    return None
            body = entry.body
        question = data[12 : qend + 4]
        if qend + 4 + len(body) + len(opt) > limit:
            # Too big for this client: truncate from the entry already chosen (a pool's
            # selector has picked; picking again would skip a member).
            if body is not entry.body:
                entry = replace(entry, body=body)
            return assemble(data, parse_query(data), entry, limit)
        rd = data[2] & 1
        head = entry.head_opt[rd] if opt else entry.head[rd]
        return b"".join((data[:2], head, question, body, opt))

    # -- the slow path ------------------------------------------------------------------

    def _slow(self, data: bytes, addr: object, tcp: bool) -> bytes | Deferred | None:
        self.stats["slow"] += 1
        try:
            return self._answer_slow(data, addr, tcp)
        except DropPacket:
            self.stats["dropped"] += 1
            return None
        except FormError as error:
            self.stats["formerr"] += 1
            return header_only(error.msg_id, RCODE_FORMERR, error.rd, opcode=(data[2] >> 3) & 0xF)

    def _answer_slow(self, data: bytes, addr: object, tcp: bool) -> bytes | Deferred | None:
        if len(data) < 12 or data[2] & 0x80:
            raise DropPacket("short or QR=1")
        opcode = (data[2] >> 3) & 0xF
        if opcode not in (OPCODE_QUERY, OPCODE_NOTIFY, OPCODE_UPDATE):
            return header_only((data[0] << 8) | data[1], RCODE_NOTIMP, bool(data[2] & 1), opcode=opcode)
        query = parse_query(data)
        if opcode == OPCODE_UPDATE and (query.qtype != TYPE_SOA or query.qclass in (CLASS_ANY, CLASS_NONE)):
            # Before BADVERS: a reply echoing such a zone section is no UPDATE response (found by fuzzing).
            raise FormError("UPDATE zone section must name an SOA (RFC 2136 3.1.1)", query.msg_id, query.rd)
        control_verifies = opcode != OPCODE_QUERY and self.control is not None  # NOTIFY, UPDATE
        if query.tsig_offset is None or self.tsig is None or control_verifies:
            return self._answer(data, query, addr, tcp)
        return self._signed(data, query, addr, lambda reserve: self._answer(data, query, addr, tcp, reserve))

    def _signed(
        self, data: bytes, query: Query, addr: object, answer: Callable[[int], bytes | Deferred | None]
    ) -> bytes | Deferred | None:
        """RFC 8945 5.3: a request whose TSIG verifies gets its reply signed with the same key;
        `answer(reserve)` makes that reply, `reserve` octets under its size limit. One that
        does not verify gets the TSIG error instead (5.2), logged by the hook."""
        assert self.tsig is not None
        verdict = self.tsig(data, query, addr)
        if isinstance(verdict, bytes):
            return verdict
        reply = answer(verdict.reserve)
        return verdict.sign(reply) if isinstance(reply, bytes) else reply

    def _answer(
        self, data: bytes, query: Query, addr: object, tcp: bool, reserve: int = 0
    ) -> bytes | Deferred | None:
        """The reply to a parsed message, within its size limit less `reserve` octets (a TSIG's)."""
        if query.edns is not None and query.edns.version > 0:
            return question_only(data, query, RCODE_BADVERS)  # RFC 6891 6.1.3
        if query.opcode != OPCODE_QUERY:
            if self.control is not None:
                return self.control(data, query, tcp, addr)
            return question_only(data, query, RCODE_REFUSED)  # unsolicited NOTIFY/UPDATE
        limit = (TCP_LIMIT if tcp else udp_limit(query)) - reserve
        options = self._options_for(query)
        if query.qclass == CLASS_CH:
            return self._chaos(data, query, limit, options)
        if query.qclass not in (CLASS_IN, CLASS_ANY):
            return question_only(data, query, RCODE_REFUSED, options=options)
        if query.qtype in (TYPE_AXFR, TYPE_IXFR):
            return self._transfer(data, query, tcp, options)
        if self.gate is not None and (refusal := self.gate.refusal(query.qname_lower, addr)):
            return question_only(data, query, refusal, options=options)
        if self.on_selfcheck is not None and SELFCHECK_LABEL in query.qname_lower:
            self.on_selfcheck(query.qname_lower)  # a probe with EDNS options comes this way
        class_any = query.qclass == CLASS_ANY
        if class_any and self._is_dynamic(query.qname_lower, query.qtype):
            class_any = False  # a pool answer is the same in every class; client actions apply
        do = query.edns is not None and query.edns.do
        entry = self.find_entry(query.qname_lower, query.qtype, class_any, do)
        if entry is None:
            return question_only(data, query, RCODE_REFUSED, options=options)  # RFC 5358: no referral upward
        if entry.selector is not None:
            entry = entry.selector.pick(self._client_of(query, addr))
            if entry is None:
                return None
        if (
            query.qtype == TYPE_ANY
            and not tcp
            and len(entry.body) > (ANY_AMPLIFICATION - 1) * len(data)
            and not (do and self._signed_zone(query.qname_lower))  # a HINFO we cannot sign
        ):
            entry = self._minimal_any(query.qname_lower, entry)  # the reply is about query + body
        return assemble(data, query, entry, limit, options)

    def _options_for(self, query: Query) -> bytes:
        """The EDNS options of our reply: NSID when asked for and configured (RFC 5001 2.3).
        Queries with options never take the fast path, so only the slow path looks."""
        if self.nsid_option and query.edns is not None:
            for code, _ in query.edns.options:
                if code == OPTION_NSID:
                    return self.nsid_option
        return b""

    def _minimal_any(self, qname: bytes, entry: Entry) -> Entry:
        """ANY over UDP whose one RRset would amplify: RFC 8482 4.2's synthesised HINFO instead.

        Only for data of the name itself (not a referral or an error), in either class.
        """
        if entry.rcode != 0 or not entry.spans or entry.spans[0].section != SECTION_ANSWER:
            return entry
        key = qname + b"\x00\xffh" + (b"a" if entry.authoritative else b"")
        found = self._cached(key)
        if found is None:
            owner = dns.name.from_wire(qname, 0)[0]
            hinfo = dns.rdataset.from_text_list(
                CLASS_IN, dns.rdatatype.HINFO, ANY_HINFO_TTL, ['"RFC8482" ""']
            )
            answer = Answer(Outcome.SUCCESS, authoritative=entry.authoritative, answer=[(owner, hinfo)])
            found = self._remember(key, render(answer, owner))
        return found

    def _cached(self, key: bytes) -> Entry | None:
        """A slow-path result, marked as used."""
        entry = self._lru.get(key)
        if entry is not None:
            self._lru.move_to_end(key)
        return entry

    def _remember(self, key: bytes, entry: Entry) -> Entry:
        """Keep a slow-path result; the least recently used goes once `lru_size` is reached."""
        self._lru[key] = entry
        if len(self._lru) > self.lru_size:
            self._lru.popitem(last=False)
        return entry

    def _client_of(self, query: Query, addr: object) -> object:
        """The address client actions look at: the ECS address (RFC 7871) of a query from a
        trusted source (`client_subnet_sources`), else the peer's."""
        trusted = self.client_subnet_sources
        if trusted and query.edns is not None:
            for code, value in query.edns.options:
                if code == OPTION_ECS:
                    address = ecs_address(value)
                    if address is not None and _peer_in(trusted, addr):
                        return (address, 0)
        return addr

    def _transfer(self, data: bytes, query: Query, tcp: bool, options: bytes) -> bytes:
        """Zone transfers need permission (RFC 5936 4.2); AXFR over UDP is not a thing."""
        if not tcp and query.qtype == TYPE_AXFR:
            return question_only(data, query, RCODE_NOTIMP, options=options)
        return question_only(data, query, RCODE_REFUSED, options=options)

    def _chaos(self, data: bytes, query: Query, limit: int, options: bytes) -> bytes:
        name = query.qname_lower
        texts = {
            b"\x07version\x04bind\x00": self.chaos.version,
            b"\x07version\x06server\x00": self.chaos.version,
            b"\x02id\x06server\x00": self.chaos.identity,
            b"\x08hostname\x04bind\x00": self.chaos.identity,
        }
        lines = [texts[name]] if texts.get(name) else []
        if not lines and self.chaos_status is not None and name.startswith(b"\x06status"):
            pool = dns.name.from_wire(name, 0)[0].parent().to_text()
            lines = self.chaos_status(pool) or []
        if not lines or query.qtype not in (TYPE_TXT, TYPE_ANY):
            return question_only(data, query, RCODE_REFUSED, options=options)
        owner = dns.name.from_wire(name, 0)[0]
        quoted = ['"' + line.replace('"', "").replace("\\", "") + '"' for line in lines]
        rdataset = dns.rdataset.from_text_list("CH", "TXT", 0, quoted)
        entry = render(Answer(Outcome.SUCCESS, authoritative=False, answer=[(owner, rdataset)]), owner)
        return assemble(data, query, entry, limit, options)

    def _signed_zone(self, qname: bytes) -> bool:
        """`qname` is in a pre-signed zone."""
        zone = self.table.find_zone(qname) if self.table.signed else None
        return zone is not None and zone.signed

    def _is_dynamic(self, qname: bytes, qtype: int) -> bool:
        entry = self.table.entries.get(qname + qtype.to_bytes(2, "big"))
        return entry is not None and entry.selector is not None

    def find_entry(self, qname: bytes, qtype: int, class_any: bool = False, do: bool = False) -> Entry | None:
        """The entry for a lower-case wire name and qtype, computing and caching misses;
        `do`: the query's DO bit, which a pre-signed zone answers with its DNSSEC records."""
        table = self.table
        if do and table.signed:
            zone = table.find_zone(qname)
            if zone is not None and zone.signed:
                return self._find_signed(qname, qtype, class_any, zone)
        key = qname + qtype.to_bytes(2, "big") + (b"*" if class_any else b"")
        if qtype < META_QTYPE_MIN and not class_any:
            entry = table.entries.get(key) or table.entries.get(qname)
            if entry is not None:
                return entry
        if qname in table.forced:
            return table.entries[qname]  # a name action answers every type, ANY included
        entry = self._cached(key)
        if entry is not None:
            return entry
        zone = table.find_zone(qname)
        if zone is None:
            return None
        shared = False
        if not class_any and qname not in zone.names:
            if zone.plain_nxdomain(qname):
                return zone.nxdomain_for(len(qname))  # every qtype, ANY too: no lookup per name
            parent = zone.wildcard_parent(qname) if qtype < META_QTYPE_MIN else None
            if parent is not None:
                # Wildcard synthesis: one body for every name the wildcard covers, so a
                # random-name flood under a wildcard hits one cached entry, not the lookup.
                key = WILDCARD_KEY + parent + qtype.to_bytes(2, "big")
                entry = self._cached(key)
                if entry is not None:
                    return entry
                shared = True
        owner = dns.name.from_wire(qname, 0)[0]
        answer = _class_any(lookup(table.zoneset, owner, qtype), class_any)
        return self._remember(key, render(answer, owner, shared))

    def _find_signed(self, qname: bytes, qtype: int, class_any: bool, zone: CompiledZone) -> Entry:
        """`find_entry` with DO=1 in a pre-signed zone: the DO=1 entries, else a lookup with
        the proofs for this very name (NXDOMAIN and wildcard proofs name it: no sharing)."""
        table = self.table
        key = DO_KEY + qname + qtype.to_bytes(2, "big") + (b"*" if class_any else b"")
        if qtype < META_QTYPE_MIN and not class_any and zone.complete:
            entry = table.entries.get(key) or table.entries.get(DO_KEY + qname)
            if entry is not None:
                return entry
        if qname in table.forced:
            return table.entries[qname]
        if not class_any and qname not in zone.names and zone.plain_nxdomain(qname):
            entry = self._signed_nxdomain(qname, qtype, zone)
            if entry is not None:
                return entry
        entry = self._cached(key)
        if entry is not None:
            return entry
        owner = dns.name.from_wire(qname, 0)[0]
        answer = _class_any(lookup(table.zoneset, owner, qtype, do=True), class_any)
        return self._remember(key, render(answer, owner))

    def _signed_nxdomain(self, qname: bytes, qtype: int, zone: CompiledZone) -> Entry | None:
        """The NXDOMAIN of a missing name in a signed zone, from the reply of its proof
        (`denial`): rendered for the first name with that proof, patched for the others."""
        encloser = zone.closest_encloser(qname)
        data = self.table.zoneset.by_key.get(zone.origin)
        if encloser is None or data is None:
            return None
        proof = denial.proof_key(data, qname, encloser)
        if proof is None:
            return None
        found = self._proofs.get(proof)
        if found is None:
            answer = lookup(self.table.zoneset, dns.name.from_wire(qname, 0)[0], qtype, do=True)
            if answer.rcode != RCODE_NXDOMAIN:
                return None
            template = render(answer, data.origin)  # compressed against the origin as the question
            found = (template, denial.pointer_offsets(template.body, sum(template.counts)))
            self._proofs[proof] = found
            if len(self._proofs) > self.lru_size:
                self._proofs.popitem(last=False)
        template, pointers = found
        return replace(
            template, body=denial.shift_pointers(template.body, pointers, len(qname) - len(zone.origin))
        )


def _class_any(answer: Answer, class_any: bool) -> Answer:
    """As NSD: data for class ANY with AA clear and nothing beyond the answer."""
    if class_any:
        answer.authoritative = False
        if answer.answer:
            answer.authority.clear()
            answer.additional.clear()
    return answer


def _peer_in(trusted: ClientRules, addr: object) -> bool:
    """The peer (a socket address tuple) is one of the trusted sources."""
    host = addr[0] if isinstance(addr, tuple) and addr else None
    return isinstance(host, str) and trusted.match(host) is not None

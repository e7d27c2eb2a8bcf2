"""The slow path: every query the fast path passes on, answered from the full parser.

Malformed input, other opcodes, EDNS versions and options (NSID, Client Subnet), TSIG,
CHAOS, class ANY, transfers asked over UDP and ANY's RFC 8482 reply are handled here, off
the hot loop; answers come from `EntryFinder`.
"""

from __future__ import annotations

from collections.abc import Callable

import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype

from dynmx.answer.acl import ZoneGate
from dynmx.answer.clients import ClientRules
from dynmx.answer.finder import EntryFinder
from dynmx.answer.hooks import ChaosConfig, ControlHandler, Deferred, TsigHook
from dynmx.answer.lookup import Answer, Outcome
from dynmx.answer.render import render
from dynmx.errors import DropPacket, FormError
from dynmx.wire.query import (
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
    RCODE_BADVERS,
    RCODE_FORMERR,
    RCODE_NOTIMP,
    RCODE_REFUSED,
    SECTION_ANSWER,
    TCP_LIMIT,
    Entry,
    assemble,
    header_only,
    question_only,
    udp_limit,
)

CLASS_IN = dns.rdataclass.IN
CLASS_CH = dns.rdataclass.CH
CLASS_ANY = dns.rdataclass.ANY
CLASS_NONE = dns.rdataclass.NONE
TYPE_AXFR = dns.rdatatype.AXFR
TYPE_IXFR = dns.rdatatype.IXFR
TYPE_ANY = dns.rdatatype.ANY
TYPE_TXT = dns.rdatatype.TXT
TYPE_SOA = dns.rdatatype.SOA
SELFCHECK_LABEL = b"\x0a_selfcheck"
ANY_AMPLIFICATION = 3  # ANY over UDP answered larger than this times the query gets the HINFO
ANY_HINFO_TTL = 3600  # RFC 8482 4.2 leaves it to the operator; an hour, as common practice


class SlowPath(EntryFinder):
    """The slow path of `Engine`, its base; the engine sets the attributes."""

    nsid_option: bytes
    chaos: ChaosConfig
    control: ControlHandler | None
    gate: ZoneGate | None
    tsig: TsigHook | None
    client_subnet_sources: ClientRules | None
    chaos_status: Callable[[str], list[str] | None] | None
    stats: dict[str, int]
    on_selfcheck: Callable[[bytes], None] | None

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


def _peer_in(trusted: ClientRules, addr: object) -> bool:
    """The peer (a socket address tuple) is one of the trusted sources."""
    host = addr[0] if isinstance(addr, tuple) and addr else None
    return isinstance(host, str) and trusted.match(host) is not None

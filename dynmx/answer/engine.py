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

UDP replies the fast path made are kept by the query's bytes after its ID (PowerDNS's
packet cache): a repeated question (same name, case, type, flags and OPT) costs one dict
lookup and a concatenation. A pool's answer is kept as its `PoolReplies`: the selector
still picks per query, the reply for each pick is joined once. The cache is emptied on
every table swap and when full; it is not used while a zone gate is set (its answer
depends on the source), and names that tell the self-check are never kept. The batched
UDP loop reads the same cache itself (`udp_memo`), so a hit costs no call into the engine.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from random import random

from dynmx.answer import rrl
from dynmx.answer.acl import ZoneGate
from dynmx.answer.clients import ClientAction, ClientRules, Network
from dynmx.answer.compiler import DO_KEY, AnswerTable
from dynmx.answer.dynamic import Selector
from dynmx.answer.finder import META_QTYPE_MIN
from dynmx.answer.hooks import ChaosConfig, ControlHandler, Deferred, TransferHandler, TsigHook
from dynmx.answer.picked import PoolReplies
from dynmx.answer.slowpath import CLASS_IN, SELFCHECK_LABEL, TYPE_AXFR, TYPE_IXFR, SlowPath
from dynmx.errors import DropPacket, FormError
from dynmx.wire.query import HEADER_LEN, MAX_NAME_LEN, OPCODE_QUERY, OPTION_NSID, parse_query
from dynmx.wire.response import (
    OPT_DO,
    OPT_PLAIN,
    RCODE_NOTAUTH,
    RCODE_SERVFAIL,
    TCP_LIMIT,
    UDP_PAYLOAD,
    Entry,
    assemble,
    edns_option,
    header_only,
    question_only,
)

log = logging.getLogger("dynmx.engine")

MAX_QEND = HEADER_LEN + MAX_NAME_LEN  # the offset after the longest question name
PACKET_CACHE = 20_000  # UDP replies kept by query bytes; emptied when full
# Once the cache has filled, a new question is kept with this chance: a mix spread over more
# questions than it holds would otherwise spend its misses refilling it (a hot question is
# still kept after a few misses).
ADMIT_WHEN_FULL = 1 / 8


class Engine(SlowPath):
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
        self.table = table.settle()
        # RFC 5001: this server's identifier, for queries that ask with an empty NSID option.
        self.nsid_option = edns_option(OPTION_NSID, nsid) if nsid else b""
        self.chaos = chaos or ChaosConfig()
        self.lru_size = lru_size
        self._lru: OrderedDict[bytes, Entry] = OrderedDict()
        self._packets: dict[bytes, bytes | PoolReplies] = {}  # UDP query after its ID -> reply after it
        self._admit_all = True  # until the cache first fills
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
        self.table = table.settle()  # an edit's delta laid onto the shared entries, here on the loop
        self._lru = OrderedDict()
        self._proofs = OrderedDict()
        self._packets = {}
        self._admit_all = True

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
            if tcp or self.gate is not None:
                reply = self._fast(data, addr, tcp)
            else:
                hit = self._packets.get(data[2:])
                if hit is None:
                    reply = self._fast(data, addr, tcp)
                elif hit.__class__ is bytes:
                    reply = data[:2] + hit
                else:  # a pool's question: the selector picks, the reply for its pick is kept
                    tail = hit.reply(addr)  # type: ignore[union-attr]  # not bytes: PoolReplies
                    if tail is None:
                        return None
                    reply = data[:2] + tail
            rrl = self.rrl
            if rrl is None or tcp or reply.__class__ is not bytes or not isinstance(addr, tuple):
                return reply
            if addr[0] in rrl.exempt_hosts:  # loopback and the exempt prefixes, seen before
                return reply
            return self._rate_limited(reply, addr[0])
        except Exception:
            # Our fault, not the peer's: SERVFAIL and a log line (design.md, errors).
            self.stats["servfail"] += 1
            log.exception("event=internal-error len=%d", len(data))
            if len(data) < 12:
                return None
            return header_only((data[0] << 8) | data[1], RCODE_SERVFAIL, bool(data[2] & 1))

    def udp_memo(self) -> tuple[dict[bytes, bytes | PoolReplies], set[str] | None] | None:
        """The packet cache as the batched UDP loop reads it, or None while it is not used
        (a zone gate is set). With it, the sources whose replies are sent as they are (RRL's
        exempt ones, or None: every source, RRL being off); for any other source the loop
        calls `handle`. The dict is replaced on a swap: read it again per batch."""
        if self.gate is not None:
            return None
        rrl = self.rrl
        return self._packets, (rrl.exempt_hosts if rrl is not None else None)

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
        keep = not tcp and self.gate is None and (self._admit_all or random() < ADMIT_WHEN_FULL)
        if entry is None:
            if self.on_selfcheck is not None and SELFCHECK_LABEL in name:
                self.on_selfcheck(name)
                keep = False
            zone = self.table.find_zone(name)
            if zone is None or not zone.complete or not zone.plain_nxdomain(name):
                return self._slow(data, addr, tcp)
            entry = zone.nx_template
            body = zone.nx_body(len(name))
        else:
            selector = entry.selector
            if selector is not None:
                if keep and isinstance(selector, Selector):
                    pooled = PoolReplies(selector, data[2:], data[2] & 1, opt, data[12 : qend + 4], limit)
                    self._keep(pooled.query, pooled)
                    tail = pooled.reply(addr)
                    return None if tail is None else data[:2] + tail
                entry = selector.pick(addr)
                if entry is None:
                    return None
                keep = False
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
        if keep:
            tail = b"".join((head, question, body, opt))
            self._keep(data[2:], tail)
            return data[:2] + tail
        return b"".join((data[:2], head, question, body, opt))

    def _keep(self, query: bytes, reply: bytes | PoolReplies) -> None:
        packets = self._packets
        if len(packets) >= PACKET_CACHE:
            packets.clear()
            self._admit_all = False
        packets[query] = reply

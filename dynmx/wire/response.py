"""Prerendered responses and the cheap per-query patching that turns them into replies.

An `Entry` holds everything of a response except what depends on the query: the
message ID, the RD bit, the question (echoed byte for byte, so the sender's letter
case comes back, RFC 4343 4.1) and the OPT record. Compression pointers in the body
may point into the question: the query's QNAME has the same length as the one the
entry was rendered with, only the case differs.

Truncation follows NSD: answer RRsets and the RRsets that make a referral or a
negative answer are required; when one does not fit the reply is header and question
with TC=1 (RFC 2181 9). Optional RRsets (authority NS of a positive answer, additional
addresses) are cut from the first one that does not fit, without TC. An entry with
DNSSEC records (`partial_tc`) is cut as NSD cuts it: an RRset and its RRSIG are one
unit, and the units before the first required one that does not fit are kept, with TC=1.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from typing import Protocol

from dynmx.wire.query import HEADER_LEN, Query

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_NOTAUTH = 9
RCODE_BADVERS = 16  # extended: 1 in the OPT TTL's upper byte, 0 in the header

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
OPCODE_MASK = 0x7800

UDP_PAYLOAD = 1232  # our EDNS payload size (DNS flag day 2020)
PLAIN_UDP_LIMIT = 512  # RFC 1035 4.2.1
TCP_LIMIT = 65535

SECTION_ANSWER = 0
SECTION_AUTHORITY = 1
SECTION_ADDITIONAL = 2

_COUNTS = struct.Struct(">HHHH")


@dataclass(frozen=True, slots=True)
class RRsetSpan:
    """Where one RRset ends in an entry's body, for truncation at RRset boundaries."""

    end: int
    section: int
    count: int
    required: bool


class Chooser(Protocol):
    """Picks the entry for one query (a dynamic RRset); None means stay silent."""

    def pick(self, addr: object) -> Entry | None: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """A response rendered once and served many times."""

    rcode: int
    authoritative: bool
    body: bytes
    spans: tuple[RRsetSpan, ...]
    selector: Chooser | None = None  # set on the table entry of a dynamic RRset
    partial_tc: bool = False  # truncation keeps what fits before the cut (DO=1 answers, as NSD)
    # Derived, precomputed for the hot path.
    counts: tuple[int, int, int] = field(init=False)
    head: tuple[bytes, bytes] = field(init=False)  # flags+counts for RD=0 / RD=1, no OPT
    head_opt: tuple[bytes, bytes] = field(init=False)  # the same with one more additional

    def __post_init__(self) -> None:
        counts = [0, 0, 0]
        for span in self.spans:
            counts[span.section] += span.count
        an, ns, ar = counts
        object.__setattr__(self, "spans", _shared_spans(self.spans))
        object.__setattr__(self, "counts", _shared_counts(an, ns, ar))
        flags = FLAG_QR | (FLAG_AA if self.authoritative else 0) | (self.rcode & 0xF)
        object.__setattr__(self, "head", _heads(flags, an, ns, ar))
        object.__setattr__(self, "head_opt", _heads(flags, an, ns, ar + 1))

    @property
    def flags(self) -> int:
        return FLAG_QR | (FLAG_AA if self.authoritative else 0) | (self.rcode & 0xF)


# Interned like the heads: entries of zones built from one template have equal spans.
@functools.lru_cache(maxsize=1 << 16)
def _shared_spans(spans: tuple[RRsetSpan, ...]) -> tuple[RRsetSpan, ...]:
    return spans


@functools.lru_cache(maxsize=4096)
def _shared_counts(an: int, ns: int, ar: int) -> tuple[int, int, int]:
    return (an, ns, ar)


@functools.lru_cache(maxsize=4096)
def _heads(flags: int, an: int, ns: int, ar: int) -> tuple[bytes, bytes]:
    """Shared between entries: a million entries have only a few hundred distinct heads."""
    rest = _COUNTS.pack(1, an, ns, ar)
    return (struct.pack(">H", flags) + rest, struct.pack(">H", flags | FLAG_RD) + rest)


def opt_record(do: bool, extended_rcode: int = 0, options: bytes = b"") -> bytes:
    """Our OPT RR: root owner, payload 1232, version 0, DO copied (RFC 3225 3), and
    `options` (EDNS options already in wire form, such as NSID)."""
    flags = 0x8000 if do else 0
    return struct.pack(">BHHBBHH", 0, 41, UDP_PAYLOAD, extended_rcode, 0, flags, len(options)) + options


def edns_option(code: int, value: bytes) -> bytes:
    """One EDNS option in wire form (RFC 6891 6.1.2)."""
    return struct.pack(">HH", code, len(value)) + value


OPT_PLAIN = opt_record(False)
OPT_DO = opt_record(True)


def udp_limit(query: Query) -> int:
    """Largest UDP reply the client accepts: 512 without EDNS, else its payload capped by ours."""
    if query.edns is None:
        return PLAIN_UDP_LIMIT
    return min(query.edns.payload, UDP_PAYLOAD)


def fit(entry: Entry, room: int) -> tuple[bytes, tuple[int, int, int], bool]:
    """Cut an entry's body to `room` octets at RRset boundaries: (body, counts, truncated).

    Pointers only point backwards, so any prefix is a valid body; an optional RRset
    cannot be skipped, so one that does not fit ends the body — unless a required
    RRset follows it, which makes the reply truncated (RFC 9471 3.1).
    """
    if len(entry.body) <= room:
        return entry.body, entry.counts, False
    counts = [0, 0, 0]
    kept = 0
    for index, span in enumerate(entry.spans):
        if span.end > room:
            if span.required or any(later.required for later in entry.spans[index + 1 :]):
                if entry.partial_tc:
                    return entry.body[:kept], (counts[0], counts[1], counts[2]), True
                return b"", (0, 0, 0), True
            break
        kept = span.end
        counts[span.section] += span.count
    return entry.body[:kept], (counts[0], counts[1], counts[2]), False


def assemble(data: bytes, query: Query, entry: Entry, limit: int, options: bytes = b"") -> bytes:
    """Build the reply to `data` (already parsed as `query`) from `entry` within `limit` octets;
    `options` go into the OPT record, when the query had one."""
    opt = b""
    if query.edns is not None:
        opt = OPT_DO if query.edns.do else OPT_PLAIN
        if options:
            opt = opt_record(query.edns.do, 0, options)
    question = data[HEADER_LEN : query.question_end]
    room = limit - HEADER_LEN - len(question) - len(opt)
    rd = 1 if query.flags & FLAG_RD else 0
    if len(entry.body) <= room:
        head = entry.head_opt[rd] if opt else entry.head[rd]
        return b"".join((data[:2], head, question, entry.body, opt))
    body, (an, ns, ar), truncated = fit(entry, room)
    flags = entry.flags | (FLAG_RD if rd else 0) | (FLAG_TC if truncated else 0)
    if opt:
        ar += 1
    header = struct.pack(">HHHHHH", query.msg_id, flags, 1, an, ns, ar)
    return b"".join((header, question, body, opt))


def header_only(msg_id: int, rcode: int, rd: bool, edns_do: bool | None = None, opcode: int = 0) -> bytes:
    """A reply with no question (FORMERR, NOTIMP as NSD sends them); OPT when the query had one.

    The opcode is copied from the query (RFC 1035 4.1.1).
    """
    flags = FLAG_QR | ((opcode & 0xF) << 11) | (FLAG_RD if rd else 0) | (rcode & 0xF)
    if edns_do is None:
        return struct.pack(">HHHHHH", msg_id, flags, 0, 0, 0, 0)
    opt = OPT_DO if edns_do else OPT_PLAIN
    return struct.pack(">HHHHHH", msg_id, flags, 0, 0, 0, 1) + opt


def question_only(
    data: bytes, query: Query, rcode: int, authoritative: bool = False, options: bytes = b""
) -> bytes:
    """A reply that echoes the question with empty sections (REFUSED, BADVERS, ...); `options`
    go into the OPT record, when the query had one."""
    flags = (
        FLAG_QR | (query.flags & (OPCODE_MASK | FLAG_RD)) | (FLAG_AA if authoritative else 0) | (rcode & 0xF)
    )
    question = data[HEADER_LEN : query.question_end]
    if query.edns is None:
        return struct.pack(">HHHHHH", query.msg_id, flags, 1, 0, 0, 0) + question
    opt = opt_record(query.edns.do, rcode >> 4, options)
    return struct.pack(">HHHHHH", query.msg_id, flags, 1, 0, 0, 1) + question + opt


def append_record(reply: bytes, record: bytes) -> bytes:
    """`reply` with one more record (in wire form) at the end of its additional section: the
    place of a TSIG record, after any OPT (RFC 8945 §4.2, RFC 6891 6.1.1)."""
    arcount = ((reply[10] << 8) | reply[11]) + 1
    return b"".join((reply[:10], arcount.to_bytes(2, "big"), reply[12:], record))

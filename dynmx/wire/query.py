"""Parse a DNS query without dnspython: header, one question, the additional section.

The rules follow NSD 4.6 (measured) and RFC 1035 4.1, RFC 6891 6.1, RFC 7873 5.2:
shorter than a header or QR=1 -> drop; QDCOUNT != 1, ANCOUNT > 0 (except in NOTIFY,
RFC 1996 3.7, and UPDATE, whose answer section holds the prerequisites, RFC 2136 2.4),
NSCOUNT > 0 in a QUERY (except IXFR), a bad or compressed question, a second OPT, an
OPT not owned by the root, a malformed record or a COOKIE of the wrong length -> FORMERR.
Bytes after the last counted record are ignored, as NSD does.

The cost of a message is bounded by what is read of it: the first MAX_EDNS_OPTIONS EDNS
options are read and the rest of the OPT record skipped unread (no option past them could
matter: only NSID, ECS and COOKIE are looked at, and unknown options are ignored, RFC 6891
6.1.2), so 64 KB of options cost what 16 do.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from dynmx.errors import DropPacket, FormError

HEADER_LEN = 12
MAX_NAME_LEN = 255

TYPE_OPT = 41
TYPE_TSIG = 250
TYPE_IXFR = 251
OPTION_NSID = 3
OPTION_COOKIE = 10
OPTION_ECS = 8

OPCODE_QUERY = 0
OPCODE_NOTIFY = 4
OPCODE_UPDATE = 5
# EDNS options read per OPT record: a client sends one to three (NSID, ECS, COOKIE, padding).
MAX_EDNS_OPTIONS = 16


@dataclass(frozen=True, slots=True)
class Edns:
    """The OPT pseudo-record of a query (RFC 6891 6.1.2)."""

    payload: int
    version: int
    do: bool
    options: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class Query:
    """One parsed query; `qname` keeps the sender's letter case (RFC 4343 4.1)."""

    msg_id: int
    flags: int
    qname: bytes
    qtype: int
    qclass: int
    question_end: int  # offset just past QTYPE/QCLASS
    edns: Edns | None
    tsig_offset: int | None  # where a TSIG record starts, for the signer

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rd(self) -> bool:
        return bool(self.flags & 0x0100)

    @property
    def qname_lower(self) -> bytes:
        return self.qname.lower()


def read_name(data: bytes, offset: int, allow_pointers: bool, msg_id: int, rd: bool) -> int:
    """Walk a wire name and return the offset after it; raise FormError when it is bad."""
    end = len(data)
    total = 1
    jumped_to: int | None = None
    seen = 0
    pos = offset
    while True:
        if pos >= end:
            raise FormError("name runs past the end of the message", msg_id, rd)
        length = data[pos]
        if length == 0:
            return pos + 1 if jumped_to is None else jumped_to
        if length & 0xC0 == 0xC0:
            if not allow_pointers:
                raise FormError("compression pointer in the question", msg_id, rd)
            if pos + 1 >= end:
                raise FormError("truncated compression pointer", msg_id, rd)
            seen += 1
            if seen > 64:
                raise FormError("compression pointer loop", msg_id, rd)
            if jumped_to is None:
                jumped_to = pos + 2
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= pos:
                raise FormError("forward compression pointer", msg_id, rd)
            pos = target
            continue
        if length > 63:
            raise FormError("bad label type", msg_id, rd)
        total += length + 1
        if total > MAX_NAME_LEN:
            raise FormError("name longer than 255 octets", msg_id, rd)
        pos += length + 1


def _parse_edns(
    data: bytes, rdata_start: int, rdata_end: int, ttl_pos: int, payload: int, ident: tuple[int, bool]
) -> Edns:
    msg_id, rd = ident
    version = data[ttl_pos + 1]
    do = bool(data[ttl_pos + 2] & 0x80)
    options: list[tuple[int, bytes]] = []
    pos = rdata_start
    while pos < rdata_end and len(options) < MAX_EDNS_OPTIONS:  # the rest is skipped unread
        if pos + 4 > rdata_end:
            raise FormError("truncated EDNS option", msg_id, rd)
        code = (data[pos] << 8) | data[pos + 1]
        length = (data[pos + 2] << 8) | data[pos + 3]
        value_end = pos + 4 + length
        if value_end > rdata_end:
            raise FormError("EDNS option longer than the OPT record", msg_id, rd)
        value = data[pos + 4 : value_end]
        if code == OPTION_COOKIE and not (length == 8 or 16 <= length <= 40):
            raise FormError("malformed COOKIE option (RFC 7873 5.2.2)", msg_id, rd)
        options.append((code, value))
        pos = value_end
    return Edns(payload=max(payload, 512), version=version, do=do, options=tuple(options))


def parse_query(data: bytes) -> Query:
    """Parse a query, raising FormError (answer FORMERR) or DropPacket (stay silent)."""
    size = len(data)
    if size < HEADER_LEN:
        raise DropPacket("shorter than a DNS header")
    flags = (data[2] << 8) | data[3]
    if flags & 0x8000:
        raise DropPacket("QR=1: a response, not a query")
    msg_id = (data[0] << 8) | data[1]
    rd = bool(flags & 0x0100)
    qdcount = (data[4] << 8) | data[5]
    ancount = (data[6] << 8) | data[7]
    nscount = (data[8] << 8) | data[9]
    arcount = (data[10] << 8) | data[11]
    if qdcount != 1:
        raise FormError(f"QDCOUNT is {qdcount}, must be 1", msg_id, rd)
    qname_end = read_name(data, HEADER_LEN, False, msg_id, rd)
    question_end = qname_end + 4
    if question_end > size:
        raise FormError("truncated question", msg_id, rd)
    qtype = (data[qname_end] << 8) | data[qname_end + 1]
    qclass = (data[qname_end + 2] << 8) | data[qname_end + 3]
    opcode = (flags >> 11) & 0xF
    if ancount and opcode not in (OPCODE_NOTIFY, OPCODE_UPDATE):  # SOA (RFC 1996), prerequisites (RFC 2136)
        raise FormError("ANCOUNT > 0 in a query", msg_id, rd)
    if nscount and opcode == OPCODE_QUERY and qtype != TYPE_IXFR:
        raise FormError("NSCOUNT > 0 in a query", msg_id, rd)
    pos = question_end
    edns: Edns | None = None
    tsig_offset: int | None = None
    for index in range(ancount + nscount + arcount):
        record_start = pos
        owner_end = read_name(data, pos, True, msg_id, rd)
        if owner_end + 10 > size:
            raise FormError("truncated resource record", msg_id, rd)
        rtype = (data[owner_end] << 8) | data[owner_end + 1]
        rclass = (data[owner_end + 2] << 8) | data[owner_end + 3]
        rdlength = (data[owner_end + 8] << 8) | data[owner_end + 9]
        rdata_start = owner_end + 10
        pos = rdata_start + rdlength
        if pos > size:
            raise FormError("RDATA runs past the end of the message", msg_id, rd)
        if tsig_offset is not None:
            raise FormError("TSIG is not the last record (RFC 8945 5.1)", msg_id, rd)
        in_additional = index >= ancount + nscount
        if rtype == TYPE_OPT and in_additional:
            if edns is not None:
                raise FormError("more than one OPT record (RFC 6891 6.1.1)", msg_id, rd)
            if owner_end != record_start + 1:
                raise FormError("OPT record not owned by the root (RFC 6891 6.1.2)", msg_id, rd)
            edns = _parse_edns(data, rdata_start, pos, owner_end + 4, rclass, (msg_id, rd))
        elif rtype == TYPE_TSIG and in_additional:
            tsig_offset = record_start
    return Query(
        msg_id=msg_id,
        flags=flags,
        qname=data[HEADER_LEN:qname_end],
        qtype=qtype,
        qclass=qclass,
        question_end=question_end,
        edns=edns,
        tsig_offset=tsig_offset,
    )


def ecs_address(value: bytes) -> str | None:
    """The address of an EDNS Client Subnet option (RFC 7871 6), or None when malformed."""
    if len(value) < 4:
        return None
    family = (value[0] << 8) | value[1]
    source_len = value[2]
    address = value[4:]
    if family == 1 and source_len <= 32 and len(address) <= 4:
        return ".".join(str(b) for b in address.ljust(4, b"\x00"))
    if family == 2 and source_len <= 128 and len(address) <= 16:
        return str(ipaddress.IPv6Address(address.ljust(16, b"\x00")))
    return None

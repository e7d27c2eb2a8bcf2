"""Render an `Answer` once into an `Entry` of wire bytes.

dnspython encodes the RDATA (with its own address encoders, behind a small cache); only
name compression is done here, on lower-cased wire suffixes in a plain dict, because
dnspython's Name-object compression made compiling a 100,000-name zone three times
slower. Names are compressed where RFC 3597 4 allows it (owners and the RDATA of NS,
CNAME, PTR, MX, SOA), never in other types.
"""

from __future__ import annotations

import functools
import struct

import dns.ipv4
import dns.ipv6
import dns.name
import dns.rdataset
import dns.rdatatype

from dynmx.answer.lookup import Answer
from dynmx.answer.zoneset import RRsetRef, name_wire
from dynmx.wire.response import (
    SECTION_ADDITIONAL,
    SECTION_ANSWER,
    SECTION_AUTHORITY,
    Entry,
    RRsetSpan,
)

HEADER = b"\x00" * 12
QUESTION_TAIL = b"\x00\x00\x00\x01"  # the qtype is patched per query; the body never depends on it
POINTER_LIMIT = 0x4000
QUESTION_POINTER = b"\xc0\x0c"  # the question name starts right after the 12-byte header

_TYPE_CLASS_TTL = struct.Struct(">HHI")
_SOA_NUMBERS = struct.Struct(">IIIII")
_NAME_ONLY = {dns.rdatatype.NS, dns.rdatatype.CNAME, dns.rdatatype.PTR}
MX = dns.rdatatype.MX
SOA = dns.rdatatype.SOA
RRSIG = dns.rdatatype.RRSIG
A = dns.rdatatype.A
_ADDRESS_TYPES = {A, dns.rdatatype.AAAA}

Compress = dict[bytes, int]


def write_name(out: bytearray, wire: bytes, compress: Compress | None) -> None:
    """Append a name, pointing at an earlier copy of its longest known suffix."""
    if compress is None:
        out += wire
        return
    lower = wire.lower()
    starts: list[int] = []
    pos = 0
    pointer: int | None = None
    while wire[pos]:
        pointer = compress.get(lower[pos:])
        if pointer is not None:
            break
        starts.append(pos)
        pos += wire[pos] + 1
    base = len(out)
    for start in starts:
        if base + start < POINTER_LIMIT:
            compress[lower[start:]] = base + start
    if pointer is None:
        out += wire
    else:
        out += wire[:pos]
        out += (0xC000 | pointer).to_bytes(2, "big")


def _write_rdata(out: bytearray, rdtype: int, rdata: object, compress: Compress | None) -> None:
    if rdtype in _NAME_ONLY:
        write_name(out, name_wire(rdata.target), compress)  # type: ignore[attr-defined]
    elif rdtype == MX:
        out += rdata.preference.to_bytes(2, "big")  # type: ignore[attr-defined]
        write_name(out, name_wire(rdata.exchange), compress)  # type: ignore[attr-defined]
    elif rdtype == SOA:
        write_name(out, name_wire(rdata.mname), compress)  # type: ignore[attr-defined]
        write_name(out, name_wire(rdata.rname), compress)  # type: ignore[attr-defined]
        out += _SOA_NUMBERS.pack(
            rdata.serial,  # type: ignore[attr-defined]
            rdata.refresh,  # type: ignore[attr-defined]
            rdata.retry,  # type: ignore[attr-defined]
            rdata.expire,  # type: ignore[attr-defined]
            rdata.minimum,  # type: ignore[attr-defined]
        )
    elif rdtype in _ADDRESS_TYPES:
        out += _address_wire(rdtype, rdata.address)  # type: ignore[attr-defined]
    elif rdtype in _SIGNER_TYPES:
        out += _rdata_wire(rdata)
    else:
        out += rdata.to_wire()  # type: ignore[attr-defined]


# The wire form of recently written RRSIG, NSEC and NSEC3 RDATA, by object: a signed zone's
# denial proofs write the same few records for every missing name the slow path answers.
_RDATA_WIRE: dict[int, tuple[object, bytes]] = {}
_RDATA_WIRE_MAX = 8192
_SIGNER_TYPES = {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3}


def _rdata_wire(rdata: object) -> bytes:
    found = _RDATA_WIRE.get(id(rdata))
    if found is not None and found[0] is rdata:
        return found[1]
    wire: bytes = rdata.to_wire()  # type: ignore[attr-defined]
    if len(_RDATA_WIRE) >= _RDATA_WIRE_MAX:
        _RDATA_WIRE.clear()
    _RDATA_WIRE[id(rdata)] = (rdata, wire)
    return wire


@functools.lru_cache(maxsize=4096)
def _address_wire(rdtype: int, address: str) -> bytes:
    """dnspython parses the address text in Python for every encoding; a zone's addresses
    are each written many times (answers, additional sections), so keep the last few."""
    return dns.ipv4.inet_aton(address) if rdtype == A else dns.ipv6.inet_aton(address)


def write_rrset(
    out: bytearray,
    owner: bytes,
    rdataset: dns.rdataset.Rdataset,
    compress: Compress | None,
    question: bytes | None = None,
) -> int:
    """Append every record of an RRset; return how many were written.

    An owner equal to `question` (lower wire) is written as a pointer to the question name.
    """
    rdtype = int(rdataset.rdtype)
    fixed = _TYPE_CLASS_TTL.pack(rdtype, int(rdataset.rdclass), rdataset.ttl)
    at_question = question is not None and owner.lower() == question
    for rdata in rdataset:
        if at_question:
            out += QUESTION_POINTER
        else:
            write_name(out, owner, compress)
        out += fixed
        length_at = len(out)
        out += b"\x00\x00"
        _write_rdata(out, rdtype, rdata, compress)
        out[length_at : length_at + 2] = (len(out) - length_at - 2).to_bytes(2, "big")
    return len(rdataset)


def render(answer: Answer, qname: dns.name.Name | None, shared: bool = False) -> Entry:
    """Encode `answer` as the body that follows a question for `qname`.

    With `qname` the body may compress against the question; without it (entries
    shared by many query names, like a zone's NXDOMAIN) nothing is compressed,
    since every offset would move with the length of the query name. `shared` is
    between the two (wildcard synthesis, one body for every name the wildcard covers):
    owners equal to `qname` point at the question, nothing else is compressed.
    """
    out = bytearray()
    compress: Compress | None = None
    start = 0
    question = name_wire(qname).lower() if shared and qname is not None else None
    if qname is not None and not shared:
        compress = {}
        out += HEADER
        write_name(out, name_wire(qname), compress)
        out += QUESTION_TAIL
        start = len(out)
    spans: list[RRsetSpan] = []
    sections: tuple[tuple[int, list[tuple[RRsetRef, bool]]], ...] = (
        (SECTION_ANSWER, [(ref, True) for ref in answer.answer]),
        (SECTION_AUTHORITY, answer.authority),
        (SECTION_ADDITIONAL, answer.additional),
    )
    written: set[tuple[dns.name.Name, int, int]] = set()
    previous: tuple[dns.name.Name, int, int] | None = None  # the last RRset looked at
    skipped = False
    for section, refs in sections:
        for (owner, rdataset), required in refs:
            rdtype, covers = int(rdataset.rdtype), int(rdataset.covers)
            unit = False  # written in one unit with the RRset before it (as NSD, all or none)
            if answer.dnssec:
                # Its RRSIG goes with an RRset; the RRSIGs answering qtype RRSIG go together.
                attached = rdtype == RRSIG and previous is not None and previous[0] == owner
                attached = attached and previous is not None and previous[1] in (covers, RRSIG)
                if attached and previous is not None and previous[1] == covers:
                    if skipped:
                        continue
                else:
                    seen = (owner, rdtype, covers)
                    previous, skipped = seen, seen in written
                    if skipped:
                        continue  # each RRset once, where it came first (as NSD)
                    written.add(seen)
                unit = attached and bool(spans) and spans[-1].section == section
            count = write_rrset(out, name_wire(owner), rdataset, compress, question)
            if unit:
                last = spans[-1]
                spans[-1] = RRsetSpan(len(out) - start, section, last.count + count, last.required)
                continue
            spans.append(RRsetSpan(len(out) - start, section, count, required))
    return Entry(
        rcode=answer.rcode,
        authoritative=answer.authoritative,
        body=bytes(out[start:]),
        spans=tuple(spans),
        partial_tc=answer.dnssec,
    )

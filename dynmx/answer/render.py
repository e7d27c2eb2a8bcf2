"""Render an `Answer` once into an `Entry` of wire bytes (dnspython does the encoding)."""

from __future__ import annotations

import io

import dns.name
import dns.rrset

from dynmx.answer.lookup import Answer
from dynmx.wire.response import (
    SECTION_ADDITIONAL,
    SECTION_ANSWER,
    SECTION_AUTHORITY,
    Entry,
    RRsetSpan,
)

HEADER = b"\x00" * 12
QUESTION_TAIL = b"\x00\x00\x00\x01"  # the qtype is patched per query; the body never depends on it


def render(answer: Answer, qname: dns.name.Name | None) -> Entry:
    """Encode `answer` as the body that follows a question for `qname`.

    With `qname` the body may compress against the question; without it (entries
    shared by many query names, like a zone's NXDOMAIN) nothing is compressed,
    since every offset would move with the length of the query name.
    """
    buffer = io.BytesIO()
    compress: dict[dns.name.Name, int] | None = None
    start = 0
    if qname is not None:
        compress = {}
        buffer.write(HEADER)
        qname.to_wire(buffer, compress)
        buffer.write(QUESTION_TAIL)
        start = buffer.tell()
    spans: list[RRsetSpan] = []
    sections: tuple[tuple[int, list[tuple[dns.rrset.RRset, bool]]], ...] = (
        (SECTION_ANSWER, [(rrset, True) for rrset in answer.answer]),
        (SECTION_AUTHORITY, answer.authority),
        (SECTION_ADDITIONAL, answer.additional),
    )
    for section, rrsets in sections:
        for rrset, required in rrsets:
            count = rrset.to_wire(buffer, compress)
            spans.append(RRsetSpan(buffer.tell() - start, section, count, required))
    body = buffer.getvalue()[start:]
    return Entry(rcode=answer.rcode, authoritative=answer.authoritative, body=body, spans=tuple(spans))


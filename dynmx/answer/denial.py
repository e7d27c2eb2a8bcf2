"""NXDOMAIN with DO=1 for names nobody compiled: one rendered reply per proof, not per name.

In a pre-signed zone the NXDOMAIN of a missing name carries NSEC or NSEC3 records that
depend on the name only through its closest encloser and the one record covering it (the
name itself with NSEC, RFC 4035 3.1.3.2; its next closer name with NSEC3, RFC 5155
7.2.2). Every name with the same two gets the same records, so the reply is rendered once
for them, compressed against the zone's origin at the end of the question, and its
pointers are moved by the length of each query's name (as the unsigned NXDOMAIN of
`CompiledZone` is): a flood of random names costs a bisect and a patch per query, not a
lookup and a render.

Pure: zones in, keys and bodies out.
"""

from __future__ import annotations

import bisect

import dns.dnssec
import dns.name
import dns.rdatatype

from dynmx.answer.dnssec import Chain, chain
from dynmx.answer.zoneset import ZoneData

_COMPRESSED_RDATA = {
    int(dns.rdatatype.NS): 0,
    int(dns.rdatatype.CNAME): 0,
    int(dns.rdatatype.PTR): 0,
    int(dns.rdatatype.MX): 2,
    int(dns.rdatatype.SOA): 0,
}
SOA = int(dns.rdatatype.SOA)


def labels_of(wire: bytes) -> tuple[bytes, ...]:
    """The labels of an uncompressed wire name, the root's empty one last."""
    labels = []
    pos = 0
    while wire[pos]:
        labels.append(wire[pos + 1 : pos + 1 + wire[pos]])
        pos += wire[pos] + 1
    labels.append(b"")
    return tuple(labels)


def proof_key(zone: ZoneData, qname: bytes, encloser: bytes) -> bytes | None:
    """What the NXDOMAIN proof of `qname` (lower wire, missing, no cut or wildcard on the
    way) depends on besides the zone: its closest `encloser` and the covering record.
    None when that is not known cheaply (an NSEC3 encloser without its own NSEC3: opt-out)."""
    index = chain(zone)
    labels = labels_of(qname)
    if index.nsec3:
        encloser_labels = labels_of(encloser)
        provable = index.provable.get(encloser)
        if provable is None:
            provable = index.provable[encloser] = _nsec3_hash(encloser_labels, index) in index.nsec3_owner
        if not provable:
            return None
        next_closer = labels[-(len(encloser_labels) + 1) :]
        hashes = index.nsec3_hashes  # before the first hash: covered by the last (wraps round)
        at = (bisect.bisect_right(hashes, _nsec3_hash(next_closer, index)) - 1) % len(hashes)
    elif index.nsec_keys:
        key = tuple(label.lower() for label in reversed(labels))
        at = (bisect.bisect_right(index.nsec_keys, key) - 1) % len(index.nsec_keys)
    else:
        return None
    return encloser + at.to_bytes(4, "big")


def _nsec3_hash(labels: tuple[bytes, ...], index: Chain) -> bytes:
    hashed = dns.dnssec.nsec3_hash(dns.name.Name(labels), index.salt, index.iterations, index.algorithm)
    return hashed.lower().encode()


def pointer_offsets(body: bytes, count: int) -> tuple[int, ...]:
    """Where the compression pointers are in a body of `count` records: in owner names and
    in the RDATA names of the types that may be compressed (RFC 3597 4)."""
    found: list[int] = []
    pos = 0

    def skip_name(at: int) -> int:
        while True:
            length = body[at]
            if length & 0xC0 == 0xC0:
                found.append(at)
                return at + 2
            at += length + 1
            if length == 0:
                return at

    for _ in range(count):
        pos = skip_name(pos)
        rdtype = (body[pos] << 8) | body[pos + 1]
        rdlength = (body[pos + 8] << 8) | body[pos + 9]
        start = pos + 10
        names_at = _COMPRESSED_RDATA.get(rdtype)
        if names_at is not None:
            at = skip_name(start + names_at)
            if rdtype == SOA:
                skip_name(at)
        pos = start + rdlength
    return tuple(found)


def shift_pointers(body: bytes, pointers: tuple[int, ...], shift: int) -> bytes:
    """`body` with every compression pointer moved by `shift` octets (all point into the
    question's origin or later, so all move with the length of the query's name)."""
    if not shift:
        return body
    patched = bytearray(body)
    for at in pointers:
        target = ((patched[at] << 8) | patched[at + 1]) & 0x3FFF
        patched[at : at + 2] = (0xC000 | (target + shift)).to_bytes(2, "big")
    return bytes(patched)

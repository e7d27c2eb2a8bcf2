"""Shared helpers for the sans-IO engine tests: the test zones, an engine, query builders.

The zone keeps the SOA TTL (3600) and MINIMUM (300) unequal so the negative-answer TTL of
RFC 2308 section 3 is visible, and holds one name per behaviour of /work/shared/rfc-checklist.md.
"""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.zone

from dynmx.answer.compiler import compile_table
from dynmx.answer.engine import Engine
from dynmx.answer.zoneset import ZoneData
from dynmx.wire.query import Query

ORIGIN = "example.test."
OTHER = "other.test."
SOA_TTL = 3600
SOA_MINIMUM = 300
BIG_NS_COUNT = 20

_BIG_DELEGATION = "".join(
    f"big NS ns{i:02d}.big\nns{i:02d}.big A 192.0.2.{100 + i}\nns{i:02d}.big AAAA 2001:db8:b::{i:x}\n"
    for i in range(1, BIG_NS_COUNT + 1)
)
# An MX RRset whose in-zone exchanges' addresses (optional additional data) exceed 512 octets.
_MANY_MX = "".join(
    f"manymx MX {10 + i} m{i:02d}.manymx\nm{i:02d}.manymx A 192.0.2.{150 + i}\n"
    f"m{i:02d}.manymx AAAA 2001:db8:c::{i:x}\n"
    for i in range(1, 13)
)
# Six strings of 120 octets: the RRset is about 750 octets, over 512 and under 1232.
_BIG_TXT = "".join(f'bigtxt TXT "{str(i) * 120}"\n' for i in range(6))

EXAMPLE_ZONE = f"""\
$ORIGIN {ORIGIN}
$TTL 3600
@          {SOA_TTL} SOA ns1 hostmaster 2024010101 7200 900 1209600 {SOA_MINIMUM}
@          NS    ns1
@          NS    ns2
@          MX    10 mx1
@          MX    20 mx2
@          MX    30 relay.other.test.
ns1        A     192.0.2.53
ns1        AAAA  2001:db8::53
ns2        A     192.0.2.54
ns2        AAAA  2001:db8::54
mx1        A     192.0.2.25
mx1        AAAA  2001:db8::25
mx2        A     192.0.2.26
mx2        AAAA  2001:db8::26
www        A     192.0.2.80
www        AAAA  2001:db8::80
a.ent      A     192.0.2.90
*.wc       A     192.0.2.100
*.wc       MX    10 mx1
sub.wc     TXT   "blocks the wildcard"
*.wcc      CNAME mx1
cname-in   CNAME www
cname-other CNAME www.other.test.
cname-ext  CNAME www.example.net.
loop1      CNAME loop2
loop2      CNAME loop1
cname-missing CNAME not-here
sub        NS    ns.sub
sub        NS    ns.example.net.
ns.sub     A     192.0.2.201
ns.sub     AAAA  2001:db8::201
unknown    TYPE1000 \\# 4 0a000001
_imaps._tcp SRV  0 1 993 mx1.example.test.
{_MANY_MX}{_BIG_DELEGATION}{_BIG_TXT}"""

OTHER_ZONE = f"""\
$ORIGIN {OTHER}
$TTL 1800
@      SOA   ns1 hostmaster 7 3600 900 604800 600
@      NS    ns1
ns1    A     198.51.100.53
www    A     198.51.100.80
relay  A     198.51.100.25
relay  AAAA  2001:db8:1::25
"""

# A delegation listing twelve sibling name servers (glue optional, RFC 9471 3.2) before one
# in-domain name server (glue required, RFC 9471 3.1); the referral does not fit 512 octets.
MIXED_ZONE = (
    f"""\
$ORIGIN {ORIGIN}
$TTL 3600
@      SOA   ns1 hostmaster 1 7200 900 1209600 300
@      NS    ns1
ns1    A     192.0.2.53
"""
    + "".join(
        f"mixed NS sib{i:02d}\nsib{i:02d} A 192.0.2.{i}\nsib{i:02d} AAAA 2001:db8:5::{i:x}\n"
        for i in range(1, 13)
    )
    + "mixed NS ns.mixed\nns.mixed A 192.0.2.99\n"
)


def zone_data(origin: str, text: str) -> ZoneData:
    zone = dns.zone.from_text(text, origin=origin, relativize=False)
    return ZoneData(dns.name.from_text(origin), zone)


def make_engine(**kwargs: object) -> Engine:
    """A fresh engine over example.test. and other.test. (fresh, so its LRU starts empty)."""
    table = compile_table([zone_data(ORIGIN, EXAMPLE_ZONE), zone_data(OTHER, OTHER_ZONE)])
    return Engine(table, **kwargs)  # type: ignore[arg-type]


def query(
    qname: str,
    rdtype: str | int = "A",
    *,
    rdclass: str | int = "IN",
    edns: bool = False,
    payload: int = 1232,
    want_dnssec: bool = False,
    options: list[dns.edns.Option] | None = None,
    rd: bool = False,
    msg_id: int = 4242,
) -> dns.message.QueryMessage:
    """A query built by dnspython; RD clear unless asked (dnspython sets it by default).

    EDNS version 0 is used when `edns`, `want_dnssec` or `options` asks for it.
    """
    use_edns = 0 if (edns or want_dnssec or options) else -1
    msg = dns.message.make_query(
        qname,
        rdtype,
        rdclass,
        use_edns=use_edns,
        payload=payload,
        want_dnssec=want_dnssec,
        options=options,
        id=msg_id,
    )
    if not rd:
        msg.flags &= ~dns.flags.RD
    return msg


def decode(reply: bytes | None) -> dns.message.Message:
    """Decode a reply with dnspython; fails the test when there is none."""
    assert reply is not None, "the engine dropped the query"
    return dns.message.from_wire(reply)


def ask(engine: Engine, msg: dns.message.Message | bytes, tcp: bool = False) -> dns.message.Message:
    data = msg if isinstance(msg, bytes) else msg.to_wire()
    return decode(engine.handle(data, None, tcp))


def udp_limit_for(parsed: Query | None) -> int:
    """The most a UDP reply may hold: 512 without OPT, else max(512, min(payload, 1232))."""
    if parsed is None or parsed.edns is None:
        return 512
    return max(512, min(parsed.edns.payload, 1232))


# -- raw wire builders, for messages dnspython will not write ---------------------------


def name_wire(text: str) -> bytes:
    """The uncompressed wire form of a name, keeping its letter case."""
    data = dns.name.from_text(text).to_wire()
    assert data is not None
    return data


def raw_header(
    msg_id: int = 0x1234, flags: int = 0, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0
) -> bytes:
    return struct.pack(">HHHHHH", msg_id, flags, qd, an, ns, ar)


def raw_question(name: str = "www.example.test.", qtype: int = 1, qclass: int = 1) -> bytes:
    return name_wire(name) + struct.pack(">HH", qtype, qclass)


def raw_opt(
    payload: int = 1232,
    version: int = 0,
    flags: int = 0,
    options: tuple[tuple[int, bytes], ...] = (),
    owner: bytes = b"\x00",
    ext_rcode: int = 0,
) -> bytes:
    """An OPT record (RFC 6891 6.1.2); `flags` is the 16-bit field whose top bit is DO."""
    rdata = b"".join(struct.pack(">HH", code, len(value)) + value for code, value in options)
    return owner + struct.pack(">HHBBHH", 41, payload, ext_rcode, version, flags, len(rdata)) + rdata


def raw_rr(owner: bytes, rtype: int, rdata: bytes, rclass: int = 1, ttl: int = 0) -> bytes:
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def raw_query(
    name: str = "www.example.test.",
    qtype: int = 1,
    *,
    flags: int = 0,
    additional: tuple[bytes, ...] = (),
    msg_id: int = 0x1234,
) -> bytes:
    """Header, one question and `additional` records, counted in ARCOUNT."""
    head = raw_header(msg_id, flags, 1, 0, 0, len(additional))
    return head + raw_question(name, qtype) + b"".join(additional)

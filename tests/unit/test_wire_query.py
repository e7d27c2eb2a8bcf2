"""dynmx.wire.query.parse_query, unit by unit, and the whole engine under random input.

Unit tests: a good query, the EDNS fields (RFC 6891 6.1.2), every FORMERR and drop reason
(RFC 1035 4.1.1, RFC 9619, RFC 6891 6.1.1, RFC 7873 5.2.2, RFC 8945 5.1).
Property tests: no input makes parse_query raise anything but FormError/DropPacket, and no
input makes the engine answer with bytes that dnspython or dnslib cannot read, or with a
UDP reply larger than the client accepts (RFC 1035 4.2.1, RFC 6891 6.2.5).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator

import dns.message
import dnslib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynmx.answer.engine import Engine
from dynmx.errors import DropPacket, FormError
from dynmx.wire import query as wire_query
from dynmx.wire.query import Query, parse_query
from tests.helpers_engine import (
    make_engine,
    name_wire,
    query,
    raw_header,
    raw_opt,
    raw_query,
    raw_question,
    raw_rr,
    udp_limit_for,
)

COOKIE = 10
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def formerr(data: bytes) -> FormError:
    with pytest.raises(FormError) as caught:
        parse_query(data)
    return caught.value


# -- a good query ------------------------------------------------------------------------


def test_plain_query_fields() -> None:
    data = raw_query("WwW.Example.TEST.", 15, flags=0x0100, msg_id=0xBEEF)
    parsed = parse_query(data)
    assert parsed.msg_id == 0xBEEF
    assert parsed.rd and parsed.opcode == 0
    assert parsed.qname == name_wire("WwW.Example.TEST.")  # case kept, RFC 4343 4.1
    assert parsed.qname_lower == name_wire("www.example.test.")
    assert (parsed.qtype, parsed.qclass) == (15, 1)
    assert parsed.question_end == len(data)
    assert parsed.edns is None and parsed.tsig_offset is None


def test_dnspython_query_parses() -> None:
    data = query("example.test.", "SOA", rd=True, msg_id=7).to_wire()
    parsed = parse_query(data)
    assert (parsed.msg_id, parsed.qtype, parsed.qclass, parsed.rd) == (7, 6, 1, True)


def test_root_qname() -> None:
    parsed = parse_query(raw_query(".", 2))
    assert parsed.qname == b"\x00"


def test_opcode_is_read_from_flags() -> None:
    assert parse_query(raw_query(flags=4 << 11)).opcode == 4


def test_trailing_bytes_after_last_record_are_ignored() -> None:
    data = raw_query() + b"\xde\xad\xbe\xef"
    assert parse_query(data).qtype == 1


# -- EDNS (RFC 6891 6.1.2) ---------------------------------------------------------------


def test_edns_fields() -> None:
    parsed = parse_query(raw_query(additional=(raw_opt(payload=4096, version=0, flags=0x8000),)))
    assert parsed.edns is not None
    assert (parsed.edns.payload, parsed.edns.version, parsed.edns.do) == (4096, 0, True)
    assert parsed.edns.options == ()


def test_edns_do_clear() -> None:
    parsed = parse_query(raw_query(additional=(raw_opt(flags=0x7FFF),)))
    assert parsed.edns is not None and parsed.edns.do is False


def test_edns_version_is_reported_not_rejected() -> None:
    parsed = parse_query(raw_query(additional=(raw_opt(version=1),)))
    assert parsed.edns is not None and parsed.edns.version == 1


def test_edns_payload_below_512_reads_as_512() -> None:
    """RFC 6891 6.2.5: values below 512 are treated as 512."""
    parsed = parse_query(raw_query(additional=(raw_opt(payload=100),)))
    assert parsed.edns is not None and parsed.edns.payload == 512


def test_rfc6891_6_1_2_options_past_the_limit_are_skipped_unread() -> None:
    """Issue 23 item 4: 56 KB of options cost ~15 ms to read; only the first MAX_EDNS_OPTIONS are
    read (unknown options are ignored anyway), the rest of the OPT record is skipped, even a
    malformed one."""
    many = tuple((65001, b"") for _ in range(14_000))
    broken = raw_opt(options=many)[:-4] + struct.pack(">HH", 65002, 500)  # runs past the OPT
    broken = broken[:9] + struct.pack(">H", 4 * 14_000) + broken[11:]
    for opt in (raw_opt(options=many), broken):
        parsed = parse_query(raw_query(additional=(opt,)))
        assert parsed.edns is not None and len(parsed.edns.options) == wire_query.MAX_EDNS_OPTIONS


def test_rfc6891_6_1_2_a_bad_option_within_the_limit_is_still_formerr() -> None:
    limit = wire_query.MAX_EDNS_OPTIONS
    options = tuple((65001, b"") for _ in range(limit - 1))
    opt = raw_opt(options=options) + struct.pack(">HH", 65002, 9)  # the last one read runs past the OPT
    opt = opt[:9] + struct.pack(">H", 4 * limit) + opt[11:]
    formerr(raw_query(additional=(opt,)))


def test_edns_options_kept_in_order() -> None:
    options = ((65001, b"abc"), (COOKIE, b"12345678"), (8, b""))
    parsed = parse_query(raw_query(additional=(raw_opt(options=options),)))
    assert parsed.edns is not None and parsed.edns.options == options


def test_edns_from_dnspython() -> None:
    data = query("www.example.test.", "A", want_dnssec=True, payload=1400).to_wire()
    parsed = parse_query(data)
    assert parsed.edns is not None and (parsed.edns.payload, parsed.edns.do) == (1400, True)


@pytest.mark.parametrize("length", [8, 16, 24, 40])
def test_cookie_of_valid_length(length: int) -> None:
    """RFC 7873 5.2: a client cookie (8) or client plus server cookie (16 to 40)."""
    parsed = parse_query(raw_query(additional=(raw_opt(options=((COOKIE, b"c" * length),)),)))
    assert parsed.edns is not None and parsed.edns.options == ((COOKIE, b"c" * length),)


@pytest.mark.parametrize("length", [0, 1, 7, 9, 15, 41])
def test_cookie_of_bad_length_is_formerr(length: int) -> None:
    """RFC 7873 5.2.2: a malformed COOKIE option is FORMERR."""
    formerr(raw_query(additional=(raw_opt(options=((COOKIE, b"c" * length),)),)))


def test_edns_option_header_truncated() -> None:
    opt = raw_opt()[:-2] + struct.pack(">H", 2) + b"\x00\x0a"  # RDLENGTH 2: half an option header
    formerr(raw_query(additional=(opt,)))


def test_edns_option_longer_than_opt() -> None:
    opt = raw_opt()[:-2] + struct.pack(">H", 6) + struct.pack(">HH", 65001, 10) + b"ab"
    formerr(raw_query(additional=(opt,)))


def test_two_opt_records() -> None:
    """RFC 6891 6.1.1: more than one OPT is FORMERR."""
    formerr(raw_query(additional=(raw_opt(), raw_opt())))


def test_opt_with_non_root_owner() -> None:
    """RFC 6891 6.1.2: the OPT owner must be the root."""
    formerr(raw_query(additional=(raw_opt(owner=name_wire("example.test.")),)))


def test_opt_owner_as_pointer_is_not_root() -> None:
    formerr(raw_query(additional=(raw_opt(owner=b"\xc0\x0c"),)))


# -- TSIG (RFC 8945 5.1) -----------------------------------------------------------------


def test_tsig_offset_recorded() -> None:
    tsig = raw_rr(name_wire("key.example."), 250, b"\x00" * 8, rclass=255)
    data = raw_query(additional=(raw_opt(), tsig))
    assert parse_query(data).tsig_offset == len(data) - len(tsig)


def test_tsig_not_last_is_formerr() -> None:
    tsig = raw_rr(name_wire("key.example."), 250, b"\x00" * 8, rclass=255)
    formerr(raw_query(additional=(tsig, raw_opt())))


# -- drops -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 11])
def test_shorter_than_header_is_dropped(size: int) -> None:
    with pytest.raises(DropPacket):
        parse_query(raw_query()[:size])


def test_response_is_dropped() -> None:
    with pytest.raises(DropPacket):
        parse_query(raw_query(flags=0x8000))


# -- FORMERR (RFC 1035 4.1.1, RFC 9619) --------------------------------------------------


def test_formerr_carries_id_and_rd() -> None:
    error = formerr(raw_header(msg_id=0xABCD, flags=0x0100, qd=0))
    assert (error.msg_id, error.rd) == (0xABCD, True)


@pytest.mark.parametrize("qdcount", [0, 2, 65535])
def test_qdcount_not_one(qdcount: int) -> None:
    """RFC 9619: exactly one question."""
    formerr(raw_header(qd=qdcount) + raw_question() + raw_question())


def test_header_only_is_formerr() -> None:
    formerr(raw_header())


def test_name_runs_past_end() -> None:
    formerr(raw_header() + b"\x03www\x07example")


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_truncated_question(cut: int) -> None:
    formerr(raw_query()[:-cut])


def test_compression_pointer_in_question() -> None:
    formerr(raw_header() + b"\xc0\x0c" + struct.pack(">HH", 1, 1))


@pytest.mark.parametrize("label", [0x40, 0x80])
def test_reserved_label_types(label: int) -> None:
    formerr(raw_header() + bytes([label]) + b"x" * 8 + b"\x00" + struct.pack(">HH", 1, 1))


def test_name_longer_than_255() -> None:
    name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"  # 257 octets
    formerr(raw_header() + name + struct.pack(">HH", 1, 1))


def test_name_of_255_is_fine() -> None:
    name = (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"a" * 61 + b"\x00"
    assert len(name) == 255
    assert parse_query(raw_header() + name + struct.pack(">HH", 1, 1)).qname == name


def test_ancount_in_query() -> None:
    record = raw_rr(name_wire("www.example.test."), 1, b"\x7f\x00\x00\x01")
    formerr(raw_header(an=1) + raw_question() + record)


def test_ancount_allowed_in_notify() -> None:
    """RFC 1996 3.7: a NOTIFY may carry the new SOA in the answer section."""
    record = raw_rr(name_wire("example.test."), 6, b"\x00" * 22)
    parsed = parse_query(raw_header(flags=4 << 11, an=1) + raw_question("example.test.", 6) + record)
    assert parsed.opcode == 4


def test_rfc2136_2_4_prerequisites_allowed_in_update() -> None:
    """Issue 23 item 2: in an UPDATE the answer count is the prerequisite count (RFC 2136 §2.2,
    §2.4, §3.2); every UPDATE with a prerequisite was FORMERR."""
    yxrrset = raw_rr(name_wire("www.example.test."), 1, b"", rclass=255)  # RRset exists (value-independent)
    update = raw_header(flags=5 << 11, an=1) + raw_question("example.test.", 6) + yxrrset
    parsed = parse_query(update)
    assert parsed.opcode == 5 and parsed.tsig_offset is None


def test_rfc2136_2_4_prerequisites_and_updates_and_tsig_in_update() -> None:
    """The TSIG is found after both counted sections (RFC 8945 5.1: last)."""
    nxdomain = raw_rr(name_wire("new.example.test."), 255, b"", rclass=254)  # name not in use
    add = raw_rr(name_wire("new.example.test."), 1, b"\xc0\x00\x02\x07", ttl=300)
    tsig = raw_rr(name_wire("ops-key."), 250, b"\x00" * 8, rclass=255)
    head = raw_header(flags=5 << 11, an=1, ns=1, ar=1) + raw_question("example.test.", 6)
    parsed = parse_query(head + nxdomain + add + tsig)
    assert parsed.tsig_offset == len(head + nxdomain + add)


def test_nscount_in_query() -> None:
    record = raw_rr(name_wire("example.test."), 2, name_wire("ns1.example.test."))
    formerr(raw_header(ns=1) + raw_question() + record)


def test_nscount_allowed_for_ixfr() -> None:
    """RFC 1995 3: an IXFR query carries the client's SOA in the authority section."""
    record = raw_rr(name_wire("example.test."), 6, b"\x00" * 22)
    assert parse_query(raw_header(ns=1) + raw_question("example.test.", 251) + record).qtype == 251


def test_counted_record_missing() -> None:
    formerr(raw_header(ar=1) + raw_question())


def test_truncated_record_header() -> None:
    formerr(raw_query(additional=(raw_opt()[:6],)))


def test_rdata_past_end() -> None:
    formerr(raw_query(additional=(raw_opt(options=((65001, b"abcdef"),))[:-3],)))


def test_forward_pointer_in_record() -> None:
    data = raw_query()
    formerr(raw_header(ar=1) + data[12:] + raw_rr(b"\xc0\xff", 1, b"\x00" * 4))


def test_backward_pointer_in_record_is_fine() -> None:
    record = raw_rr(b"\xc0\x0c", 1, b"\x7f\x00\x00\x01")
    assert parse_query(raw_header(ar=1) + raw_question() + record).edns is None


def test_truncated_pointer_in_record() -> None:
    formerr(raw_header(ar=1) + raw_question() + b"\xc0")


def test_pointer_chain_through_names() -> None:
    """A pointer to a name that itself ends in a pointer: followed, not mistaken for a loop."""
    first = raw_rr(b"\x03foo\xc0\x0c", 1, b"\x7f\x00\x00\x01")
    second = raw_rr(b"\x03bar\xc0" + bytes([12 + len(raw_question())]), 1, b"\x7f\x00\x00\x02")
    assert parse_query(raw_header(ar=2) + raw_question() + first + second).qtype == 1


# -- properties --------------------------------------------------------------------------


def _parse_or_none(data: bytes) -> Query | None:
    try:
        return parse_query(data)
    except (FormError, DropPacket):
        return None


@FUZZ
@given(st.binary(max_size=600))
def test_parse_query_raises_only_wire_errors(data: bytes) -> None:
    try:
        parsed = parse_query(data)
    except (FormError, DropPacket):
        return
    assert isinstance(parsed, Query)


@st.composite
def query_like(draw: st.DrawFn) -> bytes:
    """A header that survives the first checks (QR=0, QDCOUNT=1) and random bytes after it."""
    flags = draw(st.integers(0, 0xFFFF)) & 0x7FFF
    counts = draw(st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 3)))
    head = raw_header(draw(st.integers(0, 0xFFFF)), flags, 1, *counts)
    return head + draw(st.binary(max_size=300))


@FUZZ
@given(query_like())
def test_parse_query_raises_only_wire_errors_past_header(data: bytes) -> None:
    _parse_or_none(data)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    # Internal errors become SERVFAIL plus a log line; the properties check they do not happen.
    logger = logging.getLogger("dynmx.engine")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield make_engine()
    logger.setLevel(level)


def _utf8_labels(wire_name: bytes) -> bool:
    """dnslib refuses labels that are not UTF-8, though RFC 2181 11 allows any octet."""
    pos = 0
    while wire_name[pos]:
        label = wire_name[pos + 1 : pos + 1 + wire_name[pos]]
        try:
            label.decode()
        except UnicodeDecodeError:
            return False
        pos += wire_name[pos] + 1
    return True


def check_reply(engine: Engine, data: bytes) -> None:
    """The invariants every reply keeps, over UDP and over TCP."""
    parsed = _parse_or_none(data)
    for tcp in (False, True):
        servfail_before = engine.stats["servfail"]
        reply = engine.handle(data, None, tcp)
        assert engine.stats["servfail"] == servfail_before, "internal error (SERVFAIL)"
        if reply is None:
            assert len(data) < 12 or data[2] & 0x80, "only short packets and responses are dropped"
            continue
        assert reply[:2] == data[:2], "reply ID differs from the query's"
        assert reply[2] & 0x80, "QR clear in a reply"
        message = dns.message.from_wire(reply)
        assert message.id == (data[0] << 8 | data[1])
        if parsed is None or _utf8_labels(parsed.qname):
            dnslib.DNSRecord.parse(reply)
        if not tcp:
            assert len(reply) <= udp_limit_for(parsed)
        assert len(reply) <= 65535


@FUZZ
@given(data=st.binary(max_size=600))
def test_engine_survives_any_bytes(engine: Engine, data: bytes) -> None:
    check_reply(engine, data)


@FUZZ
@given(data=query_like())
def test_engine_survives_query_like_bytes(engine: Engine, data: bytes) -> None:
    check_reply(engine, data)


SEEDS = [
    query(name, rdtype, edns=edns, want_dnssec=do, payload=payload).to_wire()
    for name, rdtype in [
        ("example.test.", "SOA"),
        ("example.test.", "MX"),
        ("ExAmPlE.TeSt.", "ANY"),
        ("www.example.test.", "A"),
        ("foo.wc.example.test.", "MX"),
        ("foo.wcc.example.test.", "A"),
        ("cname-other.example.test.", "A"),
        ("host.sub.example.test.", "A"),
        ("big.example.test.", "A"),
        ("bigtxt.example.test.", "TXT"),
        ("manymx.example.test.", "MX"),
        ("nope.example.test.", "A"),
        ("sub.example.test.", "DS"),
    ]
    for edns, do, payload in [(False, False, 0), (True, False, 1232), (True, True, 600), (True, False, 100)]
] + [
    raw_query(additional=(raw_opt(options=((COOKIE, b"c" * 8), (65001, b"zz"))),)),
    raw_query(additional=(raw_opt(version=1, flags=0x8000),)),
    raw_query("version.bind.", 16)[:-2] + b"\x00\x03",
]


@FUZZ
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 600)),
)
def test_engine_survives_mutated_queries(
    engine: Engine, seed: bytes, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    mutated = bytes(data if cut is None else data[:cut])
    check_reply(engine, mutated)


@pytest.mark.parametrize("seed", SEEDS, ids=range(len(SEEDS)))
def test_seed_queries_are_answered_within_limits(engine: Engine, seed: bytes) -> None:
    check_reply(engine, seed)

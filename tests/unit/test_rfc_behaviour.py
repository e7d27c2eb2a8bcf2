"""The authoritative behaviours of /work/shared/rfc-checklist.md, one test each, sans IO.

Every test builds a query with dnspython (or raw bytes where dnspython will not write the
message), hands it to `Engine.handle` and decodes the reply. Rows 16 and 17 (TCP framing,
pipelining) need sockets and are tested in test_server.py.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dnslib
import pytest

from dynmx.answer.compiler import compile_table
from dynmx.answer.engine import Engine
from dynmx.answer.hooks import ChaosConfig
from dynmx.answer.lookup import lookup
from dynmx.answer.render import render
from dynmx.wire.query import parse_query
from dynmx.wire.response import assemble
from tests.helpers_engine import (
    BIG_NS_COUNT,
    EXAMPLE_ZONE,
    MIXED_ZONE,
    ORIGIN,
    SOA_MINIMUM,
    ask,
    decode,
    make_engine,
    name_wire,
    query,
    raw_header,
    raw_opt,
    raw_query,
    raw_question,
    raw_rr,
    zone_data,
)

A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA
NS = dns.rdatatype.NS
SOA = dns.rdatatype.SOA
MX = dns.rdatatype.MX
CNAME = dns.rdatatype.CNAME
TXT = dns.rdatatype.TXT
NOERROR = dns.rcode.NOERROR
NXDOMAIN = dns.rcode.NXDOMAIN
REFUSED = dns.rcode.REFUSED
FORMERR = dns.rcode.FORMERR
NOTIMP = dns.rcode.NOTIMP
Z_BIT = 0x0040
COOKIE = 10


@pytest.fixture
def engine() -> Iterator[Engine]:
    yield make_engine()


def n(text: str) -> dns.name.Name:
    return dns.name.from_text(text if text.endswith(".") else f"{text}.{ORIGIN}")


def only(section: list[dns.rrset.RRset], rdtype: int) -> dns.rrset.RRset:
    found = [rrset for rrset in section if rrset.rdtype == rdtype]
    assert len(found) == 1, section
    return found[0]


def aa(reply: dns.message.Message) -> bool:
    return bool(reply.flags & dns.flags.AA)


def tc(reply: dns.message.Message) -> bool:
    return bool(reply.flags & dns.flags.TC)


def assert_nodata(reply: dns.message.Message) -> None:
    assert reply.rcode() == NOERROR and aa(reply)
    assert reply.answer == []
    assert only(reply.authority, SOA).name == n(ORIGIN)


def assert_empty(reply: dns.message.Message) -> None:
    assert reply.answer == [] and reply.authority == []
    assert [rrset for rrset in reply.additional if rrset.rdtype != dns.rdatatype.OPT] == []


# -- row 1: header bits (RFC 1035 4.1.1, RFC 8906 8.1) -----------------------------------


def test_rfc1035_s4_1_1_soa_answer_header_bits(engine: Engine) -> None:
    reply = ask(engine, query(ORIGIN, "SOA", rd=True))
    assert reply.rcode() == NOERROR
    assert reply.flags & dns.flags.QR and aa(reply) and reply.flags & dns.flags.RD
    assert not reply.flags & (dns.flags.RA | dns.flags.AD | Z_BIT)
    assert only(reply.answer, SOA).name == n(ORIGIN)


def test_rfc1035_s4_1_1_id_copied(engine: Engine) -> None:
    reply = ask(engine, query(ORIGIN, "SOA", msg_id=0xFEDC))
    assert reply.id == 0xFEDC


def test_rfc1035_s4_1_1_rd_copied_when_clear(engine: Engine) -> None:
    reply = ask(engine, query(ORIGIN, "SOA", rd=False))
    assert not reply.flags & dns.flags.RD


@pytest.mark.parametrize("name", ["www", "nope", "foo.wc", "host.sub"])
def test_rfc1035_s4_1_1_ra_never_set(engine: Engine, name: str) -> None:
    """An authoritative-only server offers no recursion, whatever the query asks."""
    reply = ask(engine, query(n(name).to_text(), "A", rd=True))
    assert reply.flags & dns.flags.RD and not reply.flags & dns.flags.RA


# -- row 2 and 3: negative answers (RFC 2308) --------------------------------------------


def test_rfc2308_s3_nxdomain_soa_ttl_is_min_of_ttl_and_minimum(engine: Engine) -> None:
    reply = ask(engine, query("nope.example.test.", "A"))
    assert reply.rcode() == NXDOMAIN and aa(reply) and reply.answer == []
    soa = only(reply.authority, SOA)
    assert soa.name == n(ORIGIN) and soa.ttl == min(3600, SOA_MINIMUM)


def test_rfc2308_s2_2_nodata_has_soa_in_authority(engine: Engine) -> None:
    reply = ask(engine, query("www.example.test.", "MX"))
    assert_nodata(reply)
    assert only(reply.authority, SOA).ttl == SOA_MINIMUM


def test_rfc2308_s3_nxdomain_deep_below_existing_name(engine: Engine) -> None:
    reply = ask(engine, query("a.b.c.www.example.test.", "A"))
    assert reply.rcode() == NXDOMAIN and only(reply.authority, SOA).ttl == SOA_MINIMUM


# -- row 4: empty non-terminals (RFC 4592 2.2.2, RFC 8020) --------------------------------


def test_rfc8020_empty_non_terminal_is_nodata_not_nxdomain(engine: Engine) -> None:
    assert_nodata(ask(engine, query("ent.example.test.", "A")))


def test_rfc8020_below_empty_non_terminal_existing_name_answers(engine: Engine) -> None:
    reply = ask(engine, query("a.ent.example.test.", "A"))
    assert reply.rcode() == NOERROR and only(reply.answer, A).name == n("a.ent")


def test_rfc8020_sibling_under_empty_non_terminal_is_nxdomain(engine: Engine) -> None:
    assert ask(engine, query("b.ent.example.test.", "A")).rcode() == NXDOMAIN


# -- row 5 and 6: wildcards (RFC 4592) ----------------------------------------------------


def test_rfc4592_s2_1_1_wildcard_answer_owner_is_qname(engine: Engine) -> None:
    reply = ask(engine, query("foo.wc.example.test.", "A"))
    assert reply.rcode() == NOERROR and aa(reply)
    rrset = only(reply.answer, A)
    assert rrset.name == n("foo.wc") and {r.to_text() for r in rrset} == {"192.0.2.100"}


def test_rfc4592_s3_3_1_wildcard_matches_several_labels(engine: Engine) -> None:
    reply = ask(engine, query("a.b.wc.example.test.", "MX"))
    assert only(reply.answer, MX).name == n("a.b.wc")


def test_rfc4592_s3_3_1_wildcard_other_type_is_nodata(engine: Engine) -> None:
    assert_nodata(ask(engine, query("foo.wc.example.test.", "TXT")))


def test_rfc4592_s2_2_1_existing_name_blocks_wildcard_nodata(engine: Engine) -> None:
    assert_nodata(ask(engine, query("sub.wc.example.test.", "A")))


def test_rfc4592_s2_2_1_no_synthesis_below_existing_node(engine: Engine) -> None:
    reply = ask(engine, query("x.sub.wc.example.test.", "A"))
    assert reply.rcode() == NXDOMAIN and reply.answer == []


def test_rfc4592_s2_1_1_wildcard_cname_is_followed(engine: Engine) -> None:
    reply = ask(engine, query("foo.wcc.example.test.", "A"))
    assert only(reply.answer, CNAME).name == n("foo.wcc")
    assert only(reply.answer, A).name == n("mx1")


def test_slow_path_cache_wildcard_answers_identical(engine: Engine) -> None:
    """A synthesised answer comes from the slow path once, then from its cache: the same bytes."""
    data = query("cached.wc.example.test.", "MX").to_wire()
    first = engine.handle(data, None, False)
    cached = engine.cache_len()
    second = engine.handle(data, None, False)
    assert first is not None and first == second
    assert cached >= 1 and engine.cache_len() == cached


def test_rfc4592_names_under_one_wildcard_share_one_cached_answer(engine: Engine) -> None:
    """A random-name flood under a wildcard costs one cache entry per qtype, and each reply
    still names the query name as owner, in the query's own letter case (RFC 4592 2.1.1)."""
    before = engine.cache_len()
    replies = [ask(engine, query(f"R{i}-x.wc.example.test.", "A")) for i in range(50)]
    assert engine.cache_len() == before + 1
    for index, reply in enumerate(replies):
        assert only(reply.answer, A).name.to_text() == f"R{index}-x.wc.example.test."


def test_rfc5358_a_name_outside_our_zones_never_gets_a_cached_wildcard_answer() -> None:
    """The cache key of a wildcard's shared answer can't be a real name's: a query whose one
    label spells the wildcard parent's wire form is outside every zone, so REFUSED."""
    parent = dns.name.from_text("p" * 26 + ".q." + ORIGIN)
    wire = parent.to_wire()
    assert wire is not None and len(wire) == 43
    engine = Engine(compile_table([zone_data(ORIGIN, MIXED_ZONE + f"*.{parent} A 192.0.2.99\n")]))
    assert ask(engine, query(f"x.{parent}", "A")).rcode() == NOERROR  # caches the shared answer
    crafted = dns.name.Name([wire[:42], b""])  # its wire form + qtype is "*" + parent + qtype
    assert ask(engine, query(crafted.to_text(), "A")).rcode() == REFUSED


def test_slow_path_cache_keeps_names_apart(engine: Engine) -> None:
    one = ask(engine, query("one.wc.example.test.", "A"))
    two = ask(engine, query("two.wc.example.test.", "A"))
    assert only(one.answer, A).name == n("one.wc") and only(two.answer, A).name == n("two.wc")


# -- row 7: CNAME (RFC 1034 3.6.2, 4.3.2; RFC 6604) ---------------------------------------


def test_rfc1034_s4_3_2_in_zone_cname_followed(engine: Engine) -> None:
    reply = ask(engine, query("cname-in.example.test.", "A"))
    assert reply.rcode() == NOERROR and aa(reply)
    assert [rrset.rdtype for rrset in reply.answer] == [CNAME, A]
    assert only(reply.answer, A).name == n("www")


def test_rfc1034_s4_3_2_cname_into_other_served_zone_followed(engine: Engine) -> None:
    reply = ask(engine, query("cname-other.example.test.", "A"))
    assert reply.rcode() == NOERROR and aa(reply)
    assert only(reply.answer, A).name == n("www.other.test.")


def test_rfc1034_s3_6_2_cname_to_external_name_is_cname_only(engine: Engine) -> None:
    reply = ask(engine, query("cname-ext.example.test.", "A"))
    assert reply.rcode() == NOERROR and aa(reply)
    assert [rrset.rdtype for rrset in reply.answer] == [CNAME]
    assert only(reply.answer, CNAME)[0].target == n("www.example.net.")


def test_rfc6604_s3_cname_to_missing_name_is_nxdomain_with_cname(engine: Engine) -> None:
    reply = ask(engine, query("cname-missing.example.test.", "A"))
    assert reply.rcode() == NXDOMAIN and aa(reply)
    assert only(reply.answer, CNAME).name == n("cname-missing")
    assert only(reply.authority, SOA).ttl == SOA_MINIMUM


def test_rfc1034_s3_6_2_cname_loop_terminates(engine: Engine) -> None:
    reply = ask(engine, query("loop1.example.test.", "A"))
    assert reply.rcode() in (NOERROR, dns.rcode.SERVFAIL)
    assert {rrset.name for rrset in reply.answer} <= {n("loop1"), n("loop2")}
    assert all(rrset.rdtype == CNAME for rrset in reply.answer)


def test_rfc1034_s3_6_2_cname_query_returns_cname_itself(engine: Engine) -> None:
    reply = ask(engine, query("cname-in.example.test.", "CNAME"))
    assert [rrset.rdtype for rrset in reply.answer] == [CNAME]


# -- row 8 and 25: referrals (RFC 1034 4.3.2, RFC 9471) -----------------------------------


def _rrsets(section: list[dns.rrset.RRset]) -> set[tuple[str, int]]:
    return {(rrset.name.to_text(), rrset.rdtype) for rrset in section}


NAME_SERVER_ADDRESSES = {(f"ns{i}.{ORIGIN}", rdtype) for i in (1, 2) for rdtype in (A, AAAA)}


def test_rfc1035_s3_3_9_positive_answer_has_apex_ns_and_their_addresses_as_nsd(engine: Engine) -> None:
    reply = ask(engine, query(f"www.{ORIGIN}", "A"))
    assert _rrsets(reply.authority) == {(ORIGIN, NS)}
    assert _rrsets(reply.additional) == NAME_SERVER_ADDRESSES


def test_rfc1035_s3_3_9_mx_answer_adds_target_and_name_server_addresses_each_once(engine: Engine) -> None:
    reply = ask(engine, query(ORIGIN, "MX"))
    mx_targets = {(f"mx{i}.{ORIGIN}", rdtype) for i in (1, 2) for rdtype in (A, AAAA)}
    assert _rrsets(reply.additional) == mx_targets | NAME_SERVER_ADDRESSES
    assert len(reply.additional) == len(mx_targets | NAME_SERVER_ADDRESSES)


def test_rfc1035_s3_3_9_each_zone_version_compiles_its_own_name_server_addresses() -> None:
    """What a compile shares between a zone's answers is not carried to the next version."""
    before = zone_data(ORIGIN, EXAMPLE_ZONE)
    after = zone_data(ORIGIN, EXAMPLE_ZONE.replace("192.0.2.53", "192.0.2.153"))
    for zone, address in ((before, "192.0.2.53"), (after, "192.0.2.153"), (before, "192.0.2.53")):
        reply = ask(Engine(compile_table([zone])), query(f"www.{ORIGIN}", "A"))
        ns1 = [rrset for rrset in reply.additional if rrset.name == n("ns1") and rrset.rdtype == A]
        assert [rdata.address for rdata in ns1[0]] == [address]


def test_rfc1034_s4_3_2_referral_not_authoritative_with_glue(engine: Engine) -> None:
    reply = ask(engine, query("host.sub.example.test.", "A"))
    assert reply.rcode() == NOERROR and not aa(reply) and reply.answer == []
    ns = only(reply.authority, NS)
    assert ns.name == n("sub") and {r.target for r in ns} == {n("ns.sub"), n("ns.example.net.")}
    glue = {(rrset.name, rrset.rdtype) for rrset in reply.additional}
    assert glue == {(n("ns.sub"), A), (n("ns.sub"), AAAA)}


def test_rfc1034_s4_3_2_query_at_cut_is_referral(engine: Engine) -> None:
    reply = ask(engine, query("sub.example.test.", "NS"))
    assert not aa(reply) and reply.answer == [] and only(reply.authority, NS).name == n("sub")


def test_rfc1034_s4_3_2_glue_name_itself_is_referred(engine: Engine) -> None:
    """Glue is not authoritative data: asking for it gives the referral, AA clear."""
    reply = ask(engine, query("ns.sub.example.test.", "A"))
    assert not aa(reply) and reply.answer == [] and only(reply.authority, NS).name == n("sub")


def test_rfc9471_referral_glue_not_fitting_512_sets_tc(engine: Engine) -> None:
    reply_bytes = engine.handle(query("www.big.example.test.", "A").to_wire(), None, False)
    assert reply_bytes is not None and len(reply_bytes) <= 512
    reply = decode(reply_bytes)
    assert tc(reply) and reply.answer == [] and reply.authority == []


def test_rfc9471_referral_glue_not_fitting_1232_sets_tc(engine: Engine) -> None:
    reply_bytes = engine.handle(query("www.big.example.test.", "A", edns=True).to_wire(), None, False)
    assert reply_bytes is not None and len(reply_bytes) <= 1232
    reply = decode(reply_bytes)
    assert tc(reply) and reply.edns == 0


def test_rfc9471_referral_over_tcp_has_all_glue(engine: Engine) -> None:
    reply = ask(engine, query("www.big.example.test.", "A"), tcp=True)
    assert not tc(reply) and not aa(reply)
    assert len(only(reply.authority, NS)) == BIG_NS_COUNT
    assert sum(len(rrset) for rrset in reply.additional if rrset.rdtype in (A, AAAA)) == 2 * BIG_NS_COUNT


def test_rfc9471_s3_1_in_domain_glue_after_sibling_glue_is_kept_or_tc() -> None:
    engine = Engine(compile_table([zone_data(ORIGIN, MIXED_ZONE)]))
    reply = ask(engine, query("host.mixed.example.test.", "A"))
    has_glue = any(rrset.name == n("ns.mixed") for rrset in reply.additional)
    assert tc(reply) or has_glue


def test_rfc1035_s3_3_9_mx_additional_cut_without_tc(engine: Engine) -> None:
    """RFC 2181 9: optional additional data that does not fit is left out, TC stays clear."""
    data = query("manymx.example.test.", "MX").to_wire()
    reply_bytes = engine.handle(data, None, False)
    assert reply_bytes is not None and len(reply_bytes) <= 512
    udp = decode(reply_bytes)
    full = ask(engine, data, tcp=True)
    assert not tc(udp) and len(only(udp.answer, MX)) == 12
    assert sum(map(len, udp.additional)) < sum(map(len, full.additional))


def test_rfc1035_s3_3_9_mx_exchange_addresses_in_additional(engine: Engine) -> None:
    reply = ask(engine, query(ORIGIN, "MX"))
    names = {rrset.name for rrset in reply.additional}
    assert {n("mx1"), n("mx2")} <= names
    assert n("relay.other.test.") not in names  # another zone's data is not added


# -- row 9: DS at the cut (RFC 4035 3.1.4.1) ----------------------------------------------


def test_rfc4035_s3_1_4_1_ds_at_cut_answered_by_parent(engine: Engine) -> None:
    reply = ask(engine, query("sub.example.test.", "DS"))
    assert_nodata(reply)


def test_rfc4035_s3_1_4_1_ds_at_a_served_childs_apex_is_the_parents_from_the_table() -> None:
    """Parent and child both served: the compiled table answers DS at the child's apex from
    the parent (its DS record), every other type from the child."""
    ds = "12345 13 2 " + "ab" * 32
    parent = zone_data(
        "a.test.",
        f"@ SOA ns1 hostmaster 1 2 3 4 300\n@ NS ns1\nns1 A 192.0.2.1\nsub NS ns.sub\nsub DS {ds}\n",
    )
    child = zone_data("sub.a.test.", "@ SOA ns hostmaster 7 2 3 4 300\n@ NS ns\nns A 192.0.2.2\n")
    engine = Engine(compile_table([parent, child]))
    reply = ask(engine, query("sub.a.test.", "DS"))
    assert aa(reply) and only(reply.answer, dns.rdatatype.DS).name == n("sub.a.test.")
    soa = ask(engine, query("sub.a.test.", "SOA"))
    assert only(soa.answer, SOA)[0].serial == 7


def test_rfc4035_s3_1_4_1_ds_below_cut_is_referral(engine: Engine) -> None:
    reply = ask(engine, query("ns.sub.example.test.", "DS"))
    assert not aa(reply) and only(reply.authority, NS).name == n("sub")


# -- row 10: ANY (RFC 8482) ---------------------------------------------------------------


def test_rfc8482_s4_any_at_apex_over_udp(engine: Engine) -> None:
    reply = ask(engine, query(ORIGIN, "ANY"))
    assert reply.rcode() == NOERROR and aa(reply) and len(reply.answer) >= 1
    assert all(rrset.name == n(ORIGIN) for rrset in reply.answer)


def test_rfc8482_s4_any_at_host(engine: Engine) -> None:
    reply = ask(engine, query("www.example.test.", "ANY"))
    assert aa(reply) and reply.answer and reply.answer[0].rdtype in (A, AAAA, dns.rdatatype.HINFO)


def test_rfc8482_s4_2_large_any_over_udp_is_a_synthesised_hinfo(engine: Engine) -> None:
    """The one RRset would amplify (big TXT): UDP gets HINFO "RFC8482" "", under 3x the query."""
    data = query("bigtxt.example.test.", "ANY", edns=True, payload=4096).to_wire()
    wire = engine.handle(data, ("192.0.2.1", 5300), False)
    assert isinstance(wire, bytes) and len(wire) < 3 * len(data)
    reply = decode(wire)
    assert [r.to_text() for r in only(reply.answer, dns.rdatatype.HINFO)] == ['"RFC8482" ""']


def test_rfc8482_s4_1_large_any_over_tcp_is_the_rrset(engine: Engine) -> None:
    reply = ask(engine, query("bigtxt.example.test.", "ANY"), tcp=True)
    assert only(reply.answer, dns.rdatatype.TXT).name == n("bigtxt")


@pytest.mark.parametrize("label", ["x", "A-Much-Longer-Label-Than-Usual", "a.b.c.d.e.f"])
def test_rfc2308_nxdomain_soa_is_compressed_against_the_question(engine: Engine, label: str) -> None:
    """The shared NXDOMAIN body points into the question at any length (as NSD's): under 3x."""
    data = query(f"{label}.example.test.", "A").to_wire()
    wire = engine.handle(data, None, False)
    assert isinstance(wire, bytes) and len(wire) < 3 * len(data)
    reply = decode(wire)
    dnslib.DNSRecord.parse(wire)
    assert reply.rcode() == NXDOMAIN and only(reply.authority, SOA).name == n(ORIGIN)


def test_rfc8482_any_at_missing_name_is_nxdomain(engine: Engine) -> None:
    assert ask(engine, query("nope.example.test.", "ANY")).rcode() == NXDOMAIN


# -- row 11 and 14: EDNS (RFC 6891) -------------------------------------------------------


def test_rfc6891_s6_1_1_no_opt_without_edns(engine: Engine) -> None:
    reply = ask(engine, query("www.example.test.", "A"))
    assert reply.edns == -1 and reply.opt is None


def test_rfc6891_s6_1_1_opt_in_reply_with_own_payload_version_0(engine: Engine) -> None:
    reply = ask(engine, query("www.example.test.", "A", edns=True, payload=4096))
    assert reply.edns == 0 and reply.payload == 1232


def test_rfc3225_s3_do_bit_copied(engine: Engine) -> None:
    reply = ask(engine, query("www.example.test.", "A", want_dnssec=True))
    assert reply.ednsflags & dns.flags.DO


def test_rfc3225_s3_do_bit_clear_when_clear(engine: Engine) -> None:
    reply = ask(engine, query("www.example.test.", "A", edns=True))
    assert reply.edns == 0 and not reply.ednsflags & dns.flags.DO


def test_rfc6891_s6_1_1_opt_in_negative_answer(engine: Engine) -> None:
    reply = ask(engine, query("nope.example.test.", "A", edns=True))
    assert reply.rcode() == NXDOMAIN and reply.edns == 0


def test_rfc6891_s6_1_1_opt_in_refused(engine: Engine) -> None:
    reply = ask(engine, query("example.org.", "A", edns=True))
    assert reply.rcode() == REFUSED and reply.edns == 0


def test_rfc6891_s6_2_5_payload_below_512_treated_as_512(engine: Engine) -> None:
    data = query(ORIGIN, "SOA", edns=True, payload=100).to_wire()
    reply_bytes = engine.handle(data, None, False)
    assert reply_bytes is not None and 100 < len(reply_bytes) <= 512
    reply = decode(reply_bytes)
    assert not tc(reply) and only(reply.answer, SOA)


def test_rfc6891_s6_2_5_payload_below_512_still_truncates_above_512(engine: Engine) -> None:
    reply_bytes = engine.handle(query("bigtxt.example.test.", "TXT", edns=True, payload=100).to_wire())
    assert reply_bytes is not None and len(reply_bytes) <= 512
    assert tc(decode(reply_bytes))


def test_rfc6891_s6_1_2_unknown_option_not_echoed(engine: Engine) -> None:
    option = dns.edns.GenericOption(65001, b"secret")
    reply = ask(engine, query("www.example.test.", "A", options=[option]))
    assert reply.rcode() == NOERROR and reply.edns == 0 and reply.options == ()


def test_rfc6891_s6_1_2_unknown_flag_ignored_not_echoed(engine: Engine) -> None:
    data = raw_query(additional=(raw_opt(flags=0x8000 | 0x4321),))
    reply = ask(engine, data)
    assert reply.rcode() == NOERROR and aa(reply)
    assert reply.ednsflags == dns.flags.DO


# -- row 12: EDNS version (RFC 6891 6.1.3, RFC 8906 8.2) ----------------------------------


def test_rfc6891_s6_1_3_version_1_is_badvers(engine: Engine) -> None:
    reply = ask(engine, raw_query("www.example.test.", additional=(raw_opt(version=1),)))
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0 and not aa(reply) and reply.answer == [] and reply.authority == []


def test_rfc8906_s8_2_version_1_with_unknown_flag_and_option_is_badvers(engine: Engine) -> None:
    opt = raw_opt(version=1, flags=0x8000 | 0x0100, options=((65001, b"x"),))
    reply = ask(engine, raw_query(ORIGIN, 6, additional=(opt,)))
    assert reply.rcode() == dns.rcode.BADVERS and reply.edns == 0 and not aa(reply)
    assert reply.options == ()


def test_rfc6891_s6_1_3_badvers_for_missing_name_too(engine: Engine) -> None:
    reply = ask(engine, raw_query("example.org.", additional=(raw_opt(version=2),)))
    assert reply.rcode() == dns.rcode.BADVERS


# -- row 13 and 19: FORMERR (RFC 6891 6.1.1, RFC 9619, RFC 1035 4.1.1) --------------------


def test_rfc6891_s6_1_1_two_opt_records_formerr(engine: Engine) -> None:
    reply = ask(engine, raw_query(additional=(raw_opt(), raw_opt())))
    assert reply.rcode() == FORMERR and not aa(reply)


def test_rfc6891_s6_1_2_opt_with_non_root_owner_formerr(engine: Engine) -> None:
    reply = ask(engine, raw_query(additional=(raw_opt(owner=name_wire("example.test.")),)))
    assert reply.rcode() == FORMERR


def test_rfc9619_qdcount_2_formerr(engine: Engine) -> None:
    data = raw_header(qd=2) + raw_question() + raw_question("example.test.", 6)
    reply = ask(engine, data)
    assert reply.rcode() == FORMERR and reply.id == 0x1234


def test_rfc1035_s4_1_1_qdcount_0_without_cookie_formerr(engine: Engine) -> None:
    assert ask(engine, raw_header(qd=0)).rcode() == FORMERR


def test_rfc1035_s4_1_1_truncated_question_formerr(engine: Engine) -> None:
    assert ask(engine, raw_query()[:-2]).rcode() == FORMERR


def test_rfc1035_s4_1_1_ancount_in_query_formerr(engine: Engine) -> None:
    record = raw_rr(name_wire("www.example.test."), 1, b"\xc0\x00\x02\x01")
    assert ask(engine, raw_header(an=1) + raw_question() + record).rcode() == FORMERR


def test_rfc1035_s4_1_1_formerr_copies_rd(engine: Engine) -> None:
    reply = ask(engine, raw_header(flags=0x0100, qd=0))
    assert reply.rcode() == FORMERR and reply.flags & dns.flags.RD


# -- row 15: truncation (RFC 2181 9, RFC 6891 7) ------------------------------------------


def test_rfc2181_s9_large_answer_without_edns_tc_and_empty(engine: Engine) -> None:
    reply_bytes = engine.handle(query("bigtxt.example.test.", "TXT").to_wire(), None, False)
    assert reply_bytes is not None and len(reply_bytes) <= 512
    reply = decode(reply_bytes)
    assert tc(reply) and aa(reply) and reply.rcode() == NOERROR
    assert_empty(reply)
    assert reply.question[0].name == n("bigtxt")


def test_rfc6891_s7_truncated_reply_keeps_opt(engine: Engine) -> None:
    reply_bytes = engine.handle(query("bigtxt.example.test.", "TXT", edns=True, payload=600).to_wire())
    assert reply_bytes is not None and len(reply_bytes) <= 600
    reply = decode(reply_bytes)
    assert tc(reply) and reply.edns == 0 and reply.payload == 1232
    assert_empty(reply)


def test_rfc6891_s7_large_answer_fits_1232(engine: Engine) -> None:
    reply_bytes = engine.handle(query("bigtxt.example.test.", "TXT", edns=True).to_wire())
    assert reply_bytes is not None and 512 < len(reply_bytes) <= 1232
    reply = decode(reply_bytes)
    assert not tc(reply) and len(only(reply.answer, TXT)) == 6


def test_rfc7766_s8_same_query_over_tcp_is_complete(engine: Engine) -> None:
    reply = ask(engine, query("bigtxt.example.test.", "TXT"), tcp=True)
    assert not tc(reply) and len(only(reply.answer, TXT)) == 6


def test_rfc6891_s7_payload_larger_than_ours_is_capped_at_1232(engine: Engine) -> None:
    reply_bytes = engine.handle(query("www.big.example.test.", "A", edns=True, payload=65000).to_wire())
    assert reply_bytes is not None and len(reply_bytes) <= 1232 and tc(decode(reply_bytes))


# -- row 18: out of zone (RFC 5358) -------------------------------------------------------


@pytest.mark.parametrize(("name", "rdtype"), [("example.org.", "A"), ("test.", "SOA"), (".", "NS")])
def test_rfc5358_out_of_zone_refused_without_referral(engine: Engine, name: str, rdtype: str) -> None:
    reply = ask(engine, query(name, rdtype, rd=True))
    assert reply.rcode() == REFUSED and not aa(reply) and not reply.flags & dns.flags.RA
    assert_empty(reply)
    assert reply.question[0].name == dns.name.from_text(name)


# -- row 20 and 21: drops and opcodes (RFC 8906 8.1.4, RFC 3425, RFC 1996) ----------------


def test_qr_set_in_query_is_dropped(engine: Engine) -> None:
    data = bytearray(query("www.example.test.", "A").to_wire())
    data[2] |= 0x80
    assert engine.handle(bytes(data), None, False) is None
    assert engine.handle(bytes(data), None, True) is None


def test_shorter_than_header_is_dropped(engine: Engine) -> None:
    assert engine.handle(b"\x12\x34\x00", None, False) is None


@pytest.mark.parametrize("opcode", [1, 2, 3, 15])
def test_rfc8906_s8_1_4_unknown_or_obsolete_opcode_notimp(engine: Engine, opcode: int) -> None:
    """IQUERY (1, RFC 3425), STATUS (2), unassigned 3 and 15: NOTIMP, AA clear."""
    msg = query(ORIGIN, "SOA")
    msg.flags |= opcode << 11
    reply = ask(engine, msg)
    assert reply.rcode() == NOTIMP and not aa(reply) and reply.answer == []


def test_rfc1035_s4_1_1_opcode_copied_into_notimp_reply(engine: Engine) -> None:
    msg = query(ORIGIN, "SOA")
    msg.set_opcode(dns.opcode.STATUS)
    reply = ask(engine, msg)
    assert reply.rcode() == NOTIMP and reply.opcode() == dns.opcode.STATUS
    assert msg.is_response(reply)


def test_rfc1996_unsolicited_notify_refused(engine: Engine) -> None:
    msg = query(ORIGIN, "SOA")
    msg.set_opcode(dns.opcode.NOTIFY)
    msg.flags |= dns.flags.AA
    reply = ask(engine, msg)
    assert reply.rcode() == REFUSED and not aa(reply) and reply.answer == []


def test_rfc1996_notify_reply_keeps_opcode(engine: Engine) -> None:
    msg = query(ORIGIN, "SOA")
    msg.set_opcode(dns.opcode.NOTIFY)
    reply = ask(engine, msg)
    assert reply.opcode() == dns.opcode.NOTIFY and msg.is_response(reply)


# -- row 22: letter case (RFC 4343 4.1) ---------------------------------------------------


def test_rfc4343_s4_1_question_echoed_byte_for_byte(engine: Engine) -> None:
    data = query("ExAmPlE.TeSt.", "MX").to_wire()
    reply = engine.handle(data, None, False)
    assert reply is not None
    question_end = 12 + len(name_wire("ExAmPlE.TeSt.")) + 4
    assert reply[12:question_end] == data[12:question_end]


def test_rfc4343_s4_1_question_echoed_on_slow_path(engine: Engine) -> None:
    """A wildcard name with an EDNS option goes through the full parser; same echo."""
    option = dns.edns.GenericOption(65001, b"x")
    data = query("FoO.Wc.ExAmPlE.tEsT.", "A", options=[option]).to_wire()
    reply = engine.handle(data, None, False)
    assert reply is not None
    question_end = 12 + len(name_wire("FoO.Wc.ExAmPlE.tEsT.")) + 4
    assert reply[12:question_end] == data[12:question_end]


def test_rfc4343_s4_1_question_echoed_on_refused(engine: Engine) -> None:
    data = query("WwW.ExAmPlE.oRg.", "A").to_wire()
    reply = engine.handle(data, None, False)
    assert reply is not None and reply[12 : len(data)] == data[12:]


def _canonical(reply: dns.message.Message) -> tuple[object, ...]:
    def section(rrsets: list[dns.rrset.RRset]) -> list[str]:
        return sorted(rrset.to_text().lower() for rrset in rrsets)

    return (
        reply.rcode(),
        reply.flags,
        section(reply.answer),
        section(reply.authority),
        section(reply.additional),
    )


@pytest.mark.parametrize(
    ("mixed", "rdtype"),
    [
        ("ExAmPlE.TeSt.", "MX"),
        ("WWW.example.TEST.", "A"),
        ("FOO.wc.Example.Test.", "MX"),
        ("NoPe.ExAmPlE.TeSt.", "A"),
        ("HOST.SUB.example.test.", "A"),
    ],
)
def test_rfc4343_s4_1_mixed_case_gives_same_data(engine: Engine, mixed: str, rdtype: str) -> None:
    upper = ask(engine, query(mixed, rdtype))
    lower = ask(engine, query(mixed.lower(), rdtype))
    assert _canonical(upper) == _canonical(lower)


# -- row 23: compression (RFC 1035 4.1.4, RFC 3597 4) -------------------------------------


def test_rfc3597_s4_srv_target_not_compressed(engine: Engine) -> None:
    reply = engine.handle(query("_imaps._tcp.example.test.", "SRV").to_wire(), None, False)
    assert reply is not None
    target = name_wire("mx1.example.test.")
    srv_rdata = struct.pack(">HHH", 0, 1, 993) + target
    assert srv_rdata in reply


def test_rfc3597_s4_unknown_type_rdata_verbatim(engine: Engine) -> None:
    reply = engine.handle(query("unknown.example.test.", 1000).to_wire(), None, False)
    assert reply is not None
    assert struct.pack(">HHIH", 1000, 1, 3600, 4) + b"\x0a\x00\x00\x01" in reply


def test_rfc1035_s4_1_4_mx_exchange_compressed(engine: Engine) -> None:
    reply = engine.handle(query(ORIGIN, "MX").to_wire(), None, False)
    assert reply is not None
    assert name_wire("mx1.example.test.") not in reply  # written as mx1 + pointer


# -- row 24: COOKIE (RFC 7873) ------------------------------------------------------------


def test_rfc7873_s5_2_client_cookie_answered_normally(engine: Engine) -> None:
    client = b"\x01\x02\x03\x04\x05\x06\x07\x08"
    reply = ask(engine, query("www.example.test.", "A", options=[dns.edns.GenericOption(COOKIE, client)]))
    assert reply.rcode() == NOERROR and aa(reply) and only(reply.answer, A)
    cookies = [option for option in reply.options if option.otype == COOKIE]
    assert all(option.to_wire()[:8] == client for option in cookies)  # ignored, or echoed + server part


@pytest.mark.parametrize("length", [1, 7, 9, 15, 41])
def test_rfc7873_s5_2_2_cookie_bad_length_formerr(engine: Engine, length: int) -> None:
    reply = ask(engine, raw_query(additional=(raw_opt(options=((COOKIE, b"c" * length),)),)))
    assert reply.rcode() == FORMERR


# -- row 26: AXFR (RFC 5936 4.2) ----------------------------------------------------------


def test_rfc5936_s4_2_axfr_over_tcp_refused(engine: Engine) -> None:
    reply = ask(engine, query(ORIGIN, "AXFR"), tcp=True)
    assert reply.rcode() == REFUSED and reply.answer == []


def test_rfc5936_s4_2_axfr_over_udp_notimp(engine: Engine) -> None:
    reply = ask(engine, query(ORIGIN, "AXFR"))
    assert reply.rcode() in (NOTIMP, FORMERR) and reply.answer == []


def test_rfc1995_ixfr_without_permission_refused(engine: Engine) -> None:
    reply = ask(engine, query(ORIGIN, "IXFR"), tcp=True)
    assert reply.rcode() == REFUSED and reply.answer == []


# -- row 27: unknown qtype (RFC 8906 7) ---------------------------------------------------


def test_rfc8906_s7_unknown_qtype_is_nodata(engine: Engine) -> None:
    assert_nodata(ask(engine, query("www.example.test.", 1000)))


def test_rfc3597_unknown_type_with_data_answered(engine: Engine) -> None:
    reply = ask(engine, query("unknown.example.test.", 1000))
    assert reply.rcode() == NOERROR and aa(reply)
    assert only(reply.answer, 1000)[0].to_text() == "\\# 4 0a000001"


# -- row 28: CD, AD, Z in the query (RFC 8906 8.1.3) --------------------------------------


@pytest.mark.parametrize(("bits", "label"), [(dns.flags.CD, "CD"), (dns.flags.AD, "AD"), (Z_BIT, "Z")])
def test_rfc8906_s8_1_3_flag_answered_normally_not_copied(engine: Engine, bits: int, label: str) -> None:
    msg = query("www.example.test.", "A")
    msg.flags |= bits
    reply = ask(engine, msg)
    assert reply.rcode() == NOERROR and aa(reply) and only(reply.answer, A), label
    assert not reply.flags & (dns.flags.CD | dns.flags.AD | Z_BIT), label


def test_rfc8906_s8_1_3_all_three_bits_slow_path(engine: Engine) -> None:
    option = dns.edns.GenericOption(65001, b"x")
    msg = query("foo.wc.example.test.", "A", options=[option])
    msg.flags |= dns.flags.CD | dns.flags.AD | Z_BIT
    reply = ask(engine, msg)
    assert reply.rcode() == NOERROR and only(reply.answer, A)
    assert not reply.flags & (dns.flags.CD | dns.flags.AD | Z_BIT)


# -- classes: CH and ANY ------------------------------------------------------------------


def test_chaos_version_bind_refused_by_default(engine: Engine) -> None:
    reply = ask(engine, query("version.bind.", "TXT", rdclass="CH"))
    assert reply.rcode() == REFUSED and not aa(reply) and reply.answer == []


def test_chaos_version_bind_when_configured() -> None:
    engine = make_engine(chaos=ChaosConfig(version="dynmx test"))
    reply = ask(engine, query("version.bind.", "TXT", rdclass="CH"))
    assert reply.rcode() == NOERROR and only(reply.answer, TXT).rdclass == dns.rdataclass.CH


def test_class_any_gives_data_with_aa_clear(engine: Engine) -> None:
    reply = ask(engine, query("www.example.test.", "A", rdclass="ANY"))
    assert reply.rcode() == NOERROR and not aa(reply)
    assert {r.to_text() for r in only(reply.answer, A)} == {"192.0.2.80"}


def test_other_class_refused(engine: Engine) -> None:
    reply = ask(engine, query("www.example.test.", "A", rdclass="HS"))
    assert reply.rcode() == REFUSED and not aa(reply)


# -- the compiled table and the lookup agree (RFC 1034 4.3.2, as NSD) ----------------------

PROBE_TYPES = [1, 2, 5, 6, 12, 15, 16, 28, 33, 43, 46, 255, 1000, 65535]
PROBE_NAMES = [
    "nope.example.test.",
    "a.b.wc.example.test.",
    "x.sub.wc.example.test.",
    "foo.wcc.example.test.",
    "host.sub.example.test.",
    "b.ent.example.test.",
    "x.www.example.test.",
    "x.big.example.test.",
    "nope.other.test.",
]


def _sections(reply: dns.message.Message) -> tuple[object, ...]:
    texts = [
        sorted(rrset.to_text() for rrset in s) for s in (reply.answer, reply.authority, reply.additional)
    ]
    return (reply.rcode(), reply.flags, texts)


def test_rfc1034_s4_3_2_table_answers_equal_the_lookup(engine: Engine) -> None:
    """Every precompiled entry (and the shared NXDOMAIN) says what the lookup says, for any qtype."""
    zoneset = engine.table.zoneset
    names = {name for zone in zoneset for name in zone.names}
    names |= {dns.name.from_text(text) for text in PROBE_NAMES}
    for name in sorted(names):
        for rdtype in PROBE_TYPES:
            data = query(name.to_text(), rdtype).to_wire()
            got = ask(engine, data, tcp=True)
            expected = render(lookup(zoneset, name, rdtype), name)
            reference = decode(assemble(data, parse_query(data), expected, 65535))
            assert _sections(got) == _sections(reference), (name, rdtype)

"""DO=1 answers of pre-signed zones, by plain calls to the engine (RFC 4035 3.1, RFC 5155 7.2).

The zones are signed by ldns-signzone (a signer that is not dnspython) once per module;
the engine compiles them as the server does. What NSD answers is the differential test's
business (tests/interop/test_differential_nsd.py); here each behaviour is pinned alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from dynmx.answer.compiler import DO_KEY, compile_table, staged_table
from dynmx.answer.engine import Engine
from dynmx.answer.lookup import lookup
from dynmx.answer.render import render
from dynmx.answer.zoneset import ZoneData
from dynmx.wire.query import parse_query
from dynmx.wire.response import assemble
from tests.helpers_engine import ask, query
from tests.signing import SignerUnavailable, sign_zone

ORIGIN = "signed.test."
ZONE = f"""\
$ORIGIN {ORIGIN}
$TTL 3600
@        3600 SOA ns1 hostmaster 1 7200 900 1209600 300
@        NS    ns1
@        MX    10 mx1
ns1      A     192.0.2.53
mx1      A     192.0.2.25
www      A     192.0.2.80
a.ent    A     192.0.2.90
*.wc     A     192.0.2.100
secure   NS    ns.secure
secure   DS    12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ns.secure A    192.0.2.201
insecure NS    ns.example.net.
big      TXT   "{"x" * 200}" "{"y" * 200}"
"""
UNSIGNED = ZONE.replace(ORIGIN, "plain.test.")

RRSIG = dns.rdatatype.RRSIG
NSEC = dns.rdatatype.NSEC
NSEC3 = dns.rdatatype.NSEC3


def _zone(path: Path, origin: str) -> ZoneData:
    zone = dns.zone.from_file(str(path), origin=origin, relativize=False)
    return ZoneData(dns.name.from_text(origin), zone)


@pytest.fixture(scope="module", params=["nsec", "nsec3"])
def signed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZoneData]:
    """signed.test. signed with NSEC, or NSEC3 without salt or extra iterations (RFC 9276)."""
    tmp = tmp_path_factory.mktemp(request.param)
    (tmp / "plain.zone").write_text(ZONE)
    try:
        sign_zone(
            tmp / "plain.zone", ORIGIN, tmp / "signed.zone", tmp / "keys", nsec3=request.param == "nsec3"
        )
    except SignerUnavailable as error:
        pytest.skip(str(error))
    yield _zone(tmp / "signed.zone", ORIGIN)


@pytest.fixture
def engine(signed: ZoneData) -> Engine:
    return Engine(compile_table([signed]))


def _types(rrsets: list[dns.rrset.RRset]) -> list[tuple[str, str]]:
    """(owner, type) of each RRset; an RRSIG as RRSIG(covered)."""
    out = []
    for rrset in rrsets:
        kind = dns.rdatatype.to_text(rrset.rdtype)
        if rrset.rdtype == RRSIG:
            kind += f"({dns.rdatatype.to_text(rrset.covers)})"
        out.append((rrset.name.to_text(), kind))
    return out


def test_rfc4035_3_1_1_do1_positive_answer_carries_the_rrsig(engine: Engine) -> None:
    reply = ask(engine, query("www.signed.test.", "A", want_dnssec=True))
    assert _types(reply.answer) == [("www.signed.test.", "A"), ("www.signed.test.", "RRSIG(A)")]
    assert ("signed.test.", "RRSIG(NS)") in _types(reply.authority)


def test_rfc4035_3_1_do0_and_no_edns_never_get_dnssec_records(engine: Engine) -> None:
    for msg in (query("www.signed.test.", "A", edns=True), query("www.signed.test.", "A")):
        reply = ask(engine, msg)
        kinds = {
            rrset.rdtype for section in (reply.answer, reply.authority, reply.additional) for rrset in section
        }
        assert kinds.isdisjoint({RRSIG, NSEC, NSEC3}), reply
    reply = ask(engine, query("nope.signed.test.", "A", edns=True))  # the slow path too
    assert {rrset.rdtype for rrset in reply.authority} == {dns.rdatatype.SOA}


def test_rfc3225_the_do_bit_is_echoed_in_the_reply_opt(engine: Engine) -> None:
    assert ask(engine, query("www.signed.test.", "A", want_dnssec=True)).ednsflags & dns.flags.DO
    assert not ask(engine, query("www.signed.test.", "A", edns=True)).ednsflags & dns.flags.DO


def test_the_do1_answers_are_compiled_not_built_per_query(engine: Engine) -> None:
    """Existing names are answered from DO=1 table entries: the slow path is not taken."""
    assert DO_KEY + b"\x03www\x06signed\x04test\x00" in engine.table.entries
    for qtype in ("A", "MX", "TXT", "DS"):
        ask(engine, query("www.signed.test.", qtype, want_dnssec=True))
    assert engine.stats["slow"] == 0


def test_rfc4035_3_1_3_2_nxdomain_carries_the_denial_of_the_name_and_of_the_wildcard(
    engine: Engine, signed: ZoneData
) -> None:
    reply = ask(engine, query("nope.signed.test.", "A", want_dnssec=True))
    assert reply.rcode() == dns.rcode.NXDOMAIN
    kinds = [kind for _, kind in _types(reply.authority)]
    assert kinds.count("SOA") == 1 and "RRSIG(SOA)" in kinds
    denial = [rrset for rrset in reply.authority if rrset.rdtype in (NSEC, NSEC3)]
    assert denial and all(("RRSIG(" + dns.rdatatype.to_text(r.rdtype) + ")") in kinds for r in denial)
    if denial[0].rdtype == NSEC3:
        _assert_nsec3_closest_encloser_proof(denial, "nope.signed.test.", "signed.test.")


def _hash(name: str) -> str:
    return dns.dnssec.nsec3_hash(name, None, 0, 1).lower()


def _covers(rrset: dns.rrset.RRset, hashed: str) -> bool:
    owner = rrset.name.labels[0].decode().lower()
    following = _next_hash(rrset)
    if owner < following:
        return owner < hashed < following
    return hashed > owner or hashed < following  # the last NSEC3 wraps round to the first


def _next_hash(rrset: dns.rrset.RRset) -> str:
    """The next hashed owner of an NSEC3 ("1 0 0 - NEXT TYPES...")."""
    return str(rrset[0].to_text().split()[4]).lower()


def _assert_nsec3_closest_encloser_proof(denial: list[dns.rrset.RRset], name: str, encloser: str) -> None:
    """RFC 5155 7.2.1/7.2.2: an NSEC3 matching the closest encloser, one covering the next
    closer name, one covering the wildcard at the closest encloser."""
    owners = {rrset.name.labels[0].decode().lower(): rrset for rrset in denial}
    assert _hash(encloser) in owners
    assert any(_covers(r, _hash(name)) for r in denial)
    assert any(_covers(r, _hash("*." + encloser)) for r in denial)


def test_rfc4035_3_1_3_1_nodata_carries_the_proof_of_the_missing_type(engine: Engine) -> None:
    reply = ask(engine, query("www.signed.test.", "MX", want_dnssec=True))
    assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
    denial = [rrset for rrset in reply.authority if rrset.rdtype in (NSEC, NSEC3)]
    assert len(denial) == 1
    bitmap = denial[0][0].to_text()
    assert " A " in bitmap + " " and " MX" not in bitmap


def test_rfc4035_3_1_3_3_a_wildcard_answer_carries_the_proof_that_the_name_does_not_exist(
    engine: Engine,
) -> None:
    reply = ask(engine, query("x.wc.signed.test.", "A", want_dnssec=True))
    assert _types(reply.answer) == [("x.wc.signed.test.", "A"), ("x.wc.signed.test.", "RRSIG(A)")]
    assert reply.answer[1][0].labels == 3  # the signature of *.wc.signed.test.: the expansion shows
    assert any(rrset.rdtype in (NSEC, NSEC3) for rrset in reply.authority)


def test_rfc4035_3_1_4_a_referral_carries_the_ds_and_its_rrsig(engine: Engine) -> None:
    reply = ask(engine, query("host.secure.signed.test.", "A", want_dnssec=True))
    assert not reply.flags & dns.flags.AA
    assert ("secure.signed.test.", "DS") in _types(reply.authority)
    assert ("secure.signed.test.", "RRSIG(DS)") in _types(reply.authority)
    assert ("secure.signed.test.", "RRSIG(NS)") not in _types(reply.authority)  # a cut's NS is unsigned


def test_rfc4035_3_1_4_an_insecure_referral_carries_the_proof_that_there_is_no_ds(engine: Engine) -> None:
    reply = ask(engine, query("host.insecure.signed.test.", "A", want_dnssec=True))
    kinds = [kind for _, kind in _types(reply.authority)]
    assert "NS" in kinds and "DS" not in kinds
    assert "NSEC" in kinds or "NSEC3" in kinds


def test_rfc4035_3_1_4_1_ds_at_the_cut_is_answered_by_the_parent(engine: Engine) -> None:
    reply = ask(engine, query("secure.signed.test.", "DS", want_dnssec=True))
    assert reply.flags & dns.flags.AA
    assert _types(reply.answer) == [("secure.signed.test.", "DS"), ("secure.signed.test.", "RRSIG(DS)")]


def test_rfc4035_3_1_1_a_signed_answer_that_does_not_fit_sets_tc_and_never_splits_an_rrsig(
    engine: Engine,
) -> None:
    """A 420-octet TXT with its RRSIG is over 512: TC=1, and no RRset without its RRSIG."""
    reply = ask(engine, query("big.signed.test.", "TXT", want_dnssec=True, payload=512))
    assert reply.flags & dns.flags.TC
    assert not reply.answer
    whole = ask(engine, query("big.signed.test.", "TXT", want_dnssec=True), tcp=True)
    assert _types(whole.answer) == [("big.signed.test.", "TXT"), ("big.signed.test.", "RRSIG(TXT)")]


def test_slow_path_answers_are_cached_apart_for_do0_and_do1(engine: Engine) -> None:
    first = ask(engine, query("x.wc.signed.test.", "A", edns=True))
    signed = ask(engine, query("x.wc.signed.test.", "A", want_dnssec=True))
    again = ask(engine, query("x.wc.signed.test.", "A", edns=True))
    assert len(signed.answer) == 2 and len(first.answer) == len(again.answer) == 1
    assert not again.authority or all(rrset.rdtype == dns.rdatatype.NS for rrset in again.authority)


def test_a_staged_signed_zone_answers_do1_from_the_slow_path_alike(signed: ZoneData) -> None:
    compiled = Engine(compile_table([signed]))
    staged = Engine(staged_table([signed]))
    for name, qtype in (("www.signed.test.", "A"), ("nope.signed.test.", "A"), ("a.ent.signed.test.", "A")):
        msg = query(name, qtype, want_dnssec=True)
        assert ask(staged, msg) == ask(compiled, msg)


def test_an_unsigned_zone_answers_do1_as_before_with_the_do_bit_echoed() -> None:
    zone = dns.zone.from_text(UNSIGNED, origin="plain.test.", relativize=False)
    engine = Engine(compile_table([ZoneData(dns.name.from_text("plain.test."), zone)]))
    assert not engine.table.signed
    for name in ("www.plain.test.", "nope.plain.test.", "x.wc.plain.test.", "host.secure.plain.test."):
        plain = engine.handle(query(name, "A", edns=True).to_wire())
        signed = engine.handle(query(name, "A", want_dnssec=True).to_wire())
        assert plain is not None and signed is not None
        assert signed[:-4] == plain[:-4] and signed[-4:] != plain[-4:]  # only the OPT's DO flag differs


def test_rfc4035_3_1_3_2_missing_names_with_one_proof_share_one_rendered_reply(
    engine: Engine, signed: ZoneData
) -> None:
    """Random missing names: each NXDOMAIN equals the one a full lookup renders for that name,
    and names with the same closest encloser and covering record cost one render, not one each."""
    names = [f"r{i:03d}x.signed.test." for i in range(60)] + [f"q{i}.a.ent.signed.test." for i in range(20)]
    for name in names:
        data = query(name, "A", want_dnssec=True).to_wire()
        owner = dns.name.from_text(name)
        whole = render(lookup(engine.table.zoneset, owner, 1, do=True), owner)
        expected = dns.message.from_wire(assemble(data, parse_query(data), whole, 1232, b""))
        assert ask(engine, data) == expected, name
    assert len(engine._proofs) < len(names) / 4

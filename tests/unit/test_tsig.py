"""TSIG (RFC 8945) by plain calls: `dynmx.control.tsig` and the engine's hook, no sockets.

dnspython signs the requests and checks the replies: a reply passes when
`dns.message.from_wire(reply, keyring=..., request_mac=...)` verifies it, as a client would.
"""

from __future__ import annotations

import logging
import struct
import time
from unittest import mock

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from dynmx.answer.acl import ZoneGate
from dynmx.control import tsig
from dynmx.errors import FormError
from dynmx.wire.query import parse_query
from tests.conftest import TEST_SECRET
from tests.helpers_engine import make_engine, query

KEY_NAME = "ops-key."
KEYRING = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", TEST_SECRET)})
OTHER_ALGORITHM = {dns.name.from_text(KEY_NAME): dns.tsig.Key(KEY_NAME, TEST_SECRET, "hmac-sha512")}
UNKNOWN_KEY = dns.tsigkeyring.from_text({"stranger.": ("hmac-sha256", TEST_SECRET)})
WRONG_SECRET = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", "d3JvbmdzZWNyZXR3cm9uZ3NlY3JldA==")})
PEER = ("192.0.2.7", 5300)


def signed(
    msg: dns.message.Message, keyring: dict[dns.name.Name, dns.tsig.Key] = KEYRING, at: float | None = None
) -> bytes:
    """`msg` signed by dnspython with the one key of `keyring`, at time `at` (now by default)."""
    msg.use_tsig(keyring, next(iter(keyring)))
    if at is None:
        return msg.to_wire()
    with mock.patch("time.time", return_value=at):
        return msg.to_wire()


def soa_query(**kwargs: object) -> dns.message.QueryMessage:
    return query("example.test.", "SOA", **kwargs)  # type: ignore[arg-type]


def without_tsig(data: bytes) -> bytes:
    """The request as it was before signing: TSIG removed, ARCOUNT one less."""
    offset = parse_query(data).tsig_offset
    assert offset is not None
    return data[:10] + struct.pack(">H", ((data[10] << 8) | data[11]) - 1) + data[12:offset]


def check(data: bytes, now: float | None = None) -> tsig.Verified | bytes:
    parsed = parse_query(data)
    return tsig.check(data, parsed, KEYRING, PEER, int(time.time() if now is None else now))


def verify(data: bytes, now: float | None = None) -> tsig.Verified | tsig.Refusal:
    offset = parse_query(data).tsig_offset
    assert offset is not None
    return tsig.verify(data, offset, KEYRING, int(time.time() if now is None else now))


def unverified(reply: bytes) -> dns.message.Message:
    """A reply read without checking its TSIG (for errors, which dnspython raises on)."""
    return dns.message.from_wire(reply, keyring=lambda _message, _name: False)


def tsig_of(message: dns.message.Message) -> dns.rdtypes.ANY.TSIG.TSIG:
    assert message.tsig is not None
    rdata: dns.rdtypes.ANY.TSIG.TSIG = message.tsig[0]
    return rdata


def mac_verifies(reply: bytes, request_mac: bytes) -> bool:
    """Whether the TSIG on `reply` is dnspython's MAC for it (§4.3.3), whatever its error
    field says (dnspython's own check stops at a TSIG error before the MAC)."""
    offset = parse_query(reply[:2] + bytes((reply[2] & 0x7F,)) + reply[3:]).tsig_offset
    assert offset is not None
    record = tsig_of(unverified(reply))
    unsigned = reply[:10] + struct.pack(">H", ((reply[10] << 8) | reply[11]) - 1) + reply[12:offset]
    key = KEYRING[dns.name.from_text(KEY_NAME)]
    template = record.replace(mac=b"")
    expected, _ = dns.tsig.sign(unsigned, key, template, record.time_signed, request_mac)  # type: ignore[no-untyped-call]
    return bool(expected.mac == record.mac)


# -- verifying a request (RFC 8945 5.2) --------------------------------------------------


def test_rfc8945_5_2_a_good_request_gives_the_key_its_mac_and_the_time() -> None:
    msg = soa_query()
    data = signed(msg)
    now = int(time.time())
    verdict = verify(data, now)
    assert isinstance(verdict, tsig.Verified)
    assert verdict.key.name == dns.name.from_text(KEY_NAME)
    assert verdict.request_mac == msg.mac
    assert verdict.time == now


def test_rfc8945_5_2_1_an_unknown_key_name_is_badkey() -> None:
    verdict = verify(signed(soa_query(), UNKNOWN_KEY))
    assert isinstance(verdict, tsig.Refusal) and verdict.error == dns.rcode.BADKEY


def test_rfc8945_5_2_1_a_known_key_name_with_another_algorithm_is_badkey() -> None:
    verdict = verify(signed(soa_query(), OTHER_ALGORITHM))
    assert isinstance(verdict, tsig.Refusal) and verdict.error == dns.rcode.BADKEY
    assert verdict.reason == "badkey"


def test_rfc8945_5_2_2_a_mac_that_does_not_verify_is_badsig() -> None:
    verdict = verify(signed(soa_query(), WRONG_SECRET))
    assert isinstance(verdict, tsig.Refusal) and verdict.error == dns.rcode.BADSIG


def test_rfc8945_5_2_3_a_time_outside_the_fudge_is_badtime_after_the_mac_verified() -> None:
    now = time.time()
    verdict = verify(signed(soa_query(), at=now - 301), now)  # dnspython's fudge is 300 s
    assert isinstance(verdict, tsig.Refusal) and verdict.error == dns.rcode.BADTIME
    assert verdict.verified is not None  # the MAC was good: the error reply can be signed


def test_rfc8945_5_2_3_a_time_inside_the_fudge_verifies() -> None:
    now = time.time()
    assert isinstance(verify(signed(soa_query(), at=now - 299), now), tsig.Verified)


def test_rfc8945_5_2_a_tsig_record_that_cannot_be_read_is_formerr() -> None:
    data = signed(soa_query())
    offset = parse_query(data).tsig_offset
    assert offset is not None
    rdlength_at = offset + len(dns.name.from_text(KEY_NAME).to_wire() or b"") + 8
    # RDLENGTH 3: the record still lies inside the message, but its algorithm name is cut.
    bad_rdata = data[:rdlength_at] + b"\x00\x03" + data[rdlength_at + 2 :]
    with pytest.raises(FormError):
        tsig.verify(bad_rdata, offset, KEYRING, int(time.time()))
    reply = check(bad_rdata)
    assert isinstance(reply, bytes)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


# -- signing a reply (RFC 8945 5.3, 4.3) ------------------------------------------------


def test_rfc8945_5_3_a_signed_reply_verifies_with_the_request_mac() -> None:
    msg = soa_query()
    data = signed(msg)
    verdict = check(data)
    assert isinstance(verdict, tsig.Verified)
    reply = make_engine().handle(without_tsig(data), None, False)  # the answer, unsigned
    assert isinstance(reply, bytes)
    answer = dns.message.from_wire(verdict.sign(reply), keyring=KEYRING, request_mac=msg.mac)
    assert answer.had_tsig and answer.tsig_error == dns.rcode.NOERROR


def test_rfc8945_5_3_the_tsig_comes_last_after_opt_and_arcount_counts_it() -> None:
    data = signed(soa_query(edns=True))
    verdict = check(data)
    assert isinstance(verdict, tsig.Verified)
    unsigned = make_engine().handle(without_tsig(data))
    assert isinstance(unsigned, bytes)
    reply = verdict.sign(unsigned)
    assert reply.startswith(unsigned[:10])
    assert (reply[10] << 8 | reply[11]) == (unsigned[10] << 8 | unsigned[11]) + 1
    assert reply[12 : len(unsigned)] == unsigned[12:]  # the OPT record stays where it was, before
    assert dns.message.from_wire(reply, keyring=KEYRING, request_mac=verdict.request_mac).edns == 0


def test_reserve_is_what_signing_adds() -> None:
    for keyring in (KEYRING, dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha512", TEST_SECRET)})):
        data = signed(soa_query(), keyring)
        verdict = tsig.verify(data, parse_query(data).tsig_offset or 0, keyring, int(time.time()))
        assert isinstance(verdict, tsig.Verified)
        reply = b"\x00" * 12
        assert len(verdict.sign(reply)) - len(reply) == verdict.reserve


# -- error replies (RFC 8945 5.2, 5.3.2) ------------------------------------------------


def test_rfc8945_5_3_2_badkey_is_notauth_with_an_unsigned_tsig_carrying_the_error() -> None:
    reply = check(signed(soa_query(), OTHER_ALGORITHM))
    assert isinstance(reply, bytes)
    message = unverified(reply)
    record = tsig_of(message)
    assert message.rcode() == dns.rcode.NOTAUTH
    assert record.error == dns.rcode.BADKEY and record.mac == b""
    assert record.algorithm == dns.name.from_text("hmac-sha512")  # the request's, echoed


def test_rfc8945_5_3_2_badsig_is_notauth_with_an_unsigned_tsig_carrying_the_error() -> None:
    reply = check(signed(soa_query(), WRONG_SECRET))
    assert isinstance(reply, bytes)
    message = unverified(reply)
    assert message.rcode() == dns.rcode.NOTAUTH
    assert tsig_of(message).error == dns.rcode.BADSIG and tsig_of(message).mac == b""


def test_rfc8945_5_2_3_badtime_is_signed_with_our_time_in_other_data() -> None:
    now = int(time.time())
    msg = soa_query()
    data = signed(msg, at=now - 1000)
    reply = check(data, now)
    assert isinstance(reply, bytes)
    message = unverified(reply)
    record = tsig_of(message)
    assert message.rcode() == dns.rcode.NOTAUTH and record.error == dns.rcode.BADTIME
    assert record.other == now.to_bytes(6, "big")
    assert record.time_signed == now - 1000  # the client's time, so its check of ours passes
    assert msg.mac is not None and mac_verifies(reply, msg.mac)


def test_each_refusal_is_logged_once_with_peer_key_and_reason_never_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dynmx.tsig")
    for keyring, reason in ((UNKNOWN_KEY, "badkey"), (OTHER_ALGORITHM, "badkey"), (WRONG_SECRET, "badsig")):
        caplog.clear()
        check(signed(soa_query(), keyring))
        lines = [r.getMessage() for r in caplog.records if "event=tsig-refused" in r.getMessage()]
        key = next(iter(keyring))
        assert lines == [f"event=tsig-refused peer=192.0.2.7 key={key} reason={reason} opcode=QUERY"]
    caplog.clear()
    check(signed(soa_query(), at=time.time() - 1000))
    assert [r.getMessage() for r in caplog.records] == [
        "event=tsig-refused peer=192.0.2.7 key=ops-key. reason=badtime opcode=QUERY"
    ]
    assert TEST_SECRET not in caplog.text


def test_a_good_request_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="dynmx.tsig")
    assert isinstance(check(signed(soa_query())), tsig.Verified)
    assert caplog.records == []


def test_signer_takes_its_time_from_the_clock_it_is_given() -> None:
    data = signed(soa_query())
    late = tsig.Signer(KEYRING, clock=lambda: time.time() + 1000)
    reply = late(data, parse_query(data), PEER)
    assert isinstance(reply, bytes) and tsig_of(unverified(reply)).error == dns.rcode.BADTIME
    second = float(int(time.time()))
    verdict = tsig.Signer(KEYRING, clock=lambda: second + 0.5)(data, parse_query(data), PEER)
    assert isinstance(verdict, tsig.Verified) and verdict.time == int(second)


def test_parse_keeps_the_key_so_dnspython_signs_the_update_reply() -> None:
    update = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname=dns.name.from_text(KEY_NAME))
    update.add("www", 300, "A", "192.0.2.1")
    data = update.to_wire()
    verdict = check(data)
    assert isinstance(verdict, tsig.Verified)
    message = tsig.parse(data, verdict)
    assert message.had_tsig and message.keyname == dns.name.from_text(KEY_NAME)
    reply = dns.message.make_response(message).to_wire()
    assert dns.message.from_wire(reply, keyring=KEYRING, request_mac=update.mac).had_tsig


# -- the engine's hook ------------------------------------------------------------------


def test_rfc8945_5_3_the_engine_signs_its_normal_answer_to_a_signed_query() -> None:
    engine = make_engine()
    plain = engine.handle(soa_query(edns=True).to_wire(), None, False)
    engine.tsig = tsig.Signer(KEYRING)
    msg = soa_query(edns=True)
    reply = engine.handle(signed(msg), None, False)
    assert isinstance(reply, bytes) and isinstance(plain, bytes)
    answer = dns.message.from_wire(reply, keyring=KEYRING, request_mac=msg.mac)
    expected = dns.message.from_wire(plain)
    assert answer.had_tsig and answer.rcode() == dns.rcode.NOERROR
    assert (answer.answer, answer.authority, answer.additional) == (
        expected.answer,
        expected.authority,
        expected.additional,
    )


@pytest.mark.parametrize("tcp", [False, True])
def test_rfc8945_5_3_the_engine_signs_over_udp_and_tcp(tcp: bool) -> None:
    engine = make_engine()
    engine.tsig = tsig.Signer(KEYRING)
    msg = query("www.example.test.", "A")
    reply = engine.handle_tcp(signed(msg), None) if tcp else engine.handle(signed(msg), None, False)
    assert isinstance(reply, bytes)
    answer = dns.message.from_wire(reply, keyring=KEYRING, request_mac=msg.mac)
    assert answer.had_tsig and [r.address for r in answer.answer[0]] == ["192.0.2.80"]


def test_rfc8945_5_3_a_truncated_udp_reply_is_signed_and_fits_512_octets() -> None:
    """bigtxt is ~750 octets: without EDNS the reply is TC=1, and still signed."""
    engine = make_engine()
    engine.tsig = tsig.Signer(KEYRING)
    msg = query("bigtxt.example.test.", "TXT")
    reply = engine.handle(signed(msg), None, False)
    assert isinstance(reply, bytes) and len(reply) <= 512
    answer = dns.message.from_wire(reply, keyring=KEYRING, request_mac=msg.mac)
    assert answer.flags & dns.flags.TC and answer.had_tsig


def test_rfc8945_5_3_a_reply_that_fits_unsigned_but_not_with_the_tsig_is_cut_to_fit() -> None:
    """RFC 8945 5.3: the server alters the reply so that the TSIG fits. manymx's MX answer
    is 505 octets without a TSIG: signed, optional addresses go so that it stays in 512."""
    engine = make_engine()
    plain = engine.handle(query("manymx.example.test.", "MX").to_wire(), None, False)
    engine.tsig = tsig.Signer(KEYRING)
    msg = query("manymx.example.test.", "MX")
    reply = engine.handle(signed(msg), None, False)
    assert isinstance(reply, bytes) and isinstance(plain, bytes)
    assert len(plain) > 512 - 80 and len(reply) <= 512
    answer = dns.message.from_wire(reply, keyring=KEYRING, request_mac=msg.mac)
    assert answer.answer == dns.message.from_wire(plain).answer
    assert len(answer.additional) < len(dns.message.from_wire(plain).additional)


def test_rfc8945_5_2_1_the_engine_answers_badkey_to_an_unknown_key() -> None:
    engine = make_engine()
    engine.tsig = tsig.Signer(KEYRING)
    reply = engine.handle(signed(soa_query(), UNKNOWN_KEY), PEER, False)
    assert isinstance(reply, bytes)
    message = unverified(reply)
    assert message.rcode() == dns.rcode.NOTAUTH and tsig_of(message).error == dns.rcode.BADKEY


def test_rfc8945_5_3_a_refusal_to_a_signed_query_is_signed_too() -> None:
    """Every reply to a verified request is signed: here REFUSED for a zone not served."""
    engine = make_engine()
    engine.tsig = tsig.Signer(KEYRING)
    msg = query("example.org.", "A")
    reply = engine.handle(signed(msg), None, False)
    assert isinstance(reply, bytes)
    answer = dns.message.from_wire(reply, keyring=KEYRING, request_mac=msg.mac)
    assert answer.rcode() == dns.rcode.REFUSED and answer.had_tsig


def test_rfc8945_5_3_an_unsolicited_signed_notify_is_refused_and_signed() -> None:
    engine = make_engine()  # no control handler: the engine refuses NOTIFY itself
    engine.tsig = tsig.Signer(KEYRING)
    notify = dns.message.make_query("example.test.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    reply = engine.handle(signed(notify), None, False)
    assert isinstance(reply, bytes)
    answer = dns.message.from_wire(reply, keyring=KEYRING, request_mac=notify.mac)
    assert answer.rcode() == dns.rcode.REFUSED and answer.had_tsig


def test_unsigned_queries_get_the_same_bytes_with_the_hook_set() -> None:
    """The fast path does not look at the hook: unsigned answers are unchanged."""
    plain, hooked = make_engine(), make_engine()
    hooked.tsig = tsig.Signer(KEYRING)
    for name, rdtype, edns in (("www.example.test.", "A", False), ("example.test.", "MX", True)):
        data = query(name, rdtype, edns=edns).to_wire()
        assert hooked.handle(data, None, False) == plain.handle(data, None, False)


def test_rfc8945_5_3_a_signed_transfer_of_a_zone_without_a_copy_gets_a_signed_notauth() -> None:
    """A secondary zone with no current copy answers AXFR NOTAUTH (as NSD); signed, if asked so."""
    engine = make_engine()
    engine.tsig = tsig.Signer(KEYRING)
    engine.gate = ZoneGate({}, [dns.name.from_text("example.test.").to_digestable()])
    engine.transfer = lambda data, parsed, peer: pytest.fail("no transfer without a copy")
    msg = dns.message.make_query("example.test.", "AXFR")
    reply = engine.handle_tcp(signed(msg), PEER)
    assert isinstance(reply, bytes)
    answer = dns.message.from_wire(reply, keyring=KEYRING, request_mac=msg.mac)
    assert answer.rcode() == dns.rcode.NOTAUTH and answer.had_tsig

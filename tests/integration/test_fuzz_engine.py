"""Fuzzing the whole message path: UPDATE, NOTIFY, transfers and EDNS through the app's engine.

`tests/unit/test_wire_query.py` fuzzes plain queries; here the engine is wired as `serve` wires
it (UPDATE/NOTIFY to `UpdateService`, AXFR/IXFR to `TransferService`, edits committed to
zone files and swapped in), and every input must give silence, FORMERR or a well-formed
reply that dnspython and dnslib both read, with no internal error (SERVFAIL) and no
exception. Signed edits that are accepted must leave a zone file that loads again and a
journal IXFR can be built from. The last test sends mutated datagrams to a real server.

Example counts are scaled by DYNMX_FUZZ_SCALE (tests/helpers_fuzz.py) for long runs.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynmx.app.update_service import LARGE_UPDATE
from dynmx.control.journal import JournalEntry
from dynmx.control.writer import serial_of
from dynmx.zone.loader import load_zone_file
from tests.conftest import EDITS, RunningServer, write_config
from tests.helpers_engine import EXAMPLE_ZONE, query, raw_header, raw_opt, raw_query
from tests.helpers_fuzz import (
    DYN_KEY,
    DYN_KEYRING,
    EXAMPLE,
    KEY_NAME,
    KEYRING,
    OTHER,
    OUTSIDER,
    PEER,
    ControlledEngine,
    check_message_reply,
    controlled_engine,
    decode_both,
    edns_seeds,
    fuzz_settings,
    large_update_seeds,
    mutate,
    mutated,
    notify_seeds,
    record,
    settle,
    sign_raw,
    transfer_seeds,
    update_seeds,
)

Serve = Callable[..., RunningServer]
UPDATE_SEEDS = update_seeds()
NOTIFY_SEEDS = notify_seeds()
TRANSFER_SEEDS = transfer_seeds()
ALL_SEEDS = UPDATE_SEEDS + NOTIFY_SEEDS + TRANSFER_SEEDS + edns_seeds()
OPCODE_UPDATE = 5
OPCODE_NOTIFY = 4
QUIET = ("dynmx.engine", "dynmx.update", "dynmx.transfer")


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlledEngine]:
    loggers = [logging.getLogger(name) for name in QUIET]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)  # refusals log at INFO/WARNING; errors are asserted, not read
    controlled = controlled_engine(tmp_path_factory.mktemp("fuzz-engine"))
    yield controlled
    controlled.close()
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def exchange(wired: ControlledEngine, data: bytes, peer: tuple[str, int] = PEER) -> None:
    """Send `data` over UDP and TCP; no internal error, every reply well-formed."""
    engine = wired.engine
    for tcp in (False, True):
        servfail = engine.stats["servfail"]
        reply = settle(engine.handle_tcp(data, peer) if tcp else engine.handle(data, peer, False))
        assert engine.stats["servfail"] == servfail, "internal error (SERVFAIL, logged exception)"
        assert reply is None or isinstance(reply, bytes | list)
        check_message_reply(data, reply)  # type: ignore[arg-type]


def zone_still_loads(wired: ControlledEngine) -> None:
    """What a committed edit wrote is read back by the loader as the zone being served."""
    loaded = load_zone_file(wired.zone_file())
    assert serial_of(loaded.zone) == serial_of(wired.zones[EXAMPLE].zone)


# -- properties --------------------------------------------------------------------------


@fuzz_settings(400)
@given(data=mutated(UPDATE_SEEDS), outsider=st.booleans())
def test_mutated_updates_get_a_well_formed_reply(
    wired: ControlledEngine, data: bytes, outsider: bool
) -> None:
    published = wired.published
    exchange(wired, data, OUTSIDER if outsider else PEER)
    if wired.published != published:
        zone_still_loads(wired)


@fuzz_settings(300)
@given(data=mutated(NOTIFY_SEEDS), outsider=st.booleans())
def test_mutated_notifies_get_a_well_formed_reply(
    wired: ControlledEngine, data: bytes, outsider: bool
) -> None:
    exchange(wired, data, OUTSIDER if outsider else PEER)


@fuzz_settings(150)
@given(data=mutated(TRANSFER_SEEDS), outsider=st.booleans())
def test_mutated_transfer_requests_get_well_formed_replies(
    wired: ControlledEngine, data: bytes, outsider: bool
) -> None:
    exchange(wired, data, OUTSIDER if outsider else PEER)


OPTION_CODES = st.one_of(st.sampled_from([3, 8, 9, 10, 11, 12, 14, 15, 65001]), st.integers(0, 0xFFFF))


@fuzz_settings(400)
@given(
    opcode=st.sampled_from([0, OPCODE_NOTIFY, OPCODE_UPDATE]),
    qtype=st.sampled_from([1, 6, 15, 251, 252, 255]),
    payload=st.integers(0, 0xFFFF),
    version=st.integers(0, 255),
    flags=st.integers(0, 0xFFFF),
    ext_rcode=st.integers(0, 255),
    options=st.lists(st.tuples(OPTION_CODES, st.binary(max_size=48)), max_size=4),
    rdlength_delta=st.integers(-6, 6),
)
def test_edns_fields_and_options_of_every_opcode(
    wired: ControlledEngine,
    opcode: int,
    qtype: int,
    payload: int,
    version: int,
    flags: int,
    ext_rcode: int,
    options: list[tuple[int, bytes]],
    rdlength_delta: int,
) -> None:
    """RFC 6891 6.1.2: any OPT content, in a QUERY, NOTIFY or UPDATE for a served zone."""
    opt = bytearray(raw_opt(payload, version, flags, tuple(options), ext_rcode=ext_rcode))
    rdlength = max(0, struct.unpack(">H", opt[9:11])[0] + rdlength_delta)
    opt[9:11] = struct.pack(">H", rdlength)  # an RDLENGTH that may disagree with the options
    data = raw_query("example.test.", qtype, flags=opcode << 11, additional=(bytes(opt),))
    exchange(wired, data)


# Names and types a signed update may touch; the rdata is any wire form dnspython decodes.
UPDATE_NAMES = ["", "www.", "mx1.", "*.wc.", "x.wc.", "sub.", "ns.sub.", "fz.", "a.b.fz.", "cname-in."]
UPDATE_TYPES = [1, 2, 5, 6, 10, 12, 13, 15, 16, 28, 33, 43, 44, 46, 48, 52, 64, 65, 99, 257, 1000, 65280]


@st.composite
def rdata_wire(draw: st.DrawFn) -> tuple[int, bytes]:
    rdtype = draw(st.sampled_from(UPDATE_TYPES))
    if rdtype in (2, 5, 12, 15) and draw(st.booleans()):
        target = draw(st.sampled_from(UPDATE_NAMES)) + "example.test."
        wire = dns.name.from_text(target).to_wire()
        assert wire is not None
        return rdtype, (b"\x00\x0a" if rdtype == 15 else b"") + wire
    return rdtype, draw(st.binary(max_size=40))


@fuzz_settings(120)
@given(
    changes=st.lists(
        st.tuples(
            st.sampled_from(["add", "delete", "delete-rrset", "delete-name"]),
            st.sampled_from(UPDATE_NAMES),
            rdata_wire(),
            st.sampled_from([0, 60, 3600, 2**31]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_signed_updates_of_any_record_leave_a_loadable_zone(
    wired: ControlledEngine, changes: list[tuple[str, str, tuple[int, bytes], int]]
) -> None:
    """An acknowledged edit is in a zone file that loads and in a journal that IXFR can read."""
    update = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname=KEY_NAME)
    for op, name, (rdtype, wire), ttl in changes:
        try:
            rdata = record(rdtype, wire)
        except dns.exception.DNSException:
            rdata = record(1, b"\xc0\x00\x02\x07")
        owner = name + "example.test."
        if op == "add":
            update.add(owner, ttl, rdata)
        elif op == "delete":
            update.delete(owner, rdata)
        elif op == "delete-rrset":
            update.delete(owner, dns.rdatatype.to_text(rdtype))
        else:
            update.delete(owner)
    data = update.to_wire()
    serial = serial_of(wired.zones[EXAMPLE].zone)
    exchange(wired, data)
    reply = settle(wired.engine.handle(data, PEER, False))  # the same update again
    assert isinstance(reply, bytes)
    zone_still_loads(wired)
    ixfr = dns.message.make_query("example.test.", "IXFR")
    soa = f"ns1.example.test. hostmaster.example.test. {serial} 7200 900 1209600 300"
    ixfr.authority.append(dns.rrset.from_text("example.test.", 0, "IN", "SOA", soa))
    exchange(wired, ixfr.to_wire())


@fuzz_settings(200)
@given(data=mutated(UPDATE_SEEDS), restricted=st.booleans())
def test_mutated_updates_signed_after_mutation_reach_the_planner(
    wired: ControlledEngine, data: bytes, restricted: bool
) -> None:
    """A mutated message re-signed (its MAC over the mutated bytes): past the checks of the raw
    wire, into dnspython's parser, the key's rules and the planner, with both keys."""
    published = wired.published
    exchange(wired, sign_raw(data, DYN_KEY if restricted else KEY_NAME))
    if wired.published != published:
        zone_still_loads(wired)


PREREQUISITES = st.sampled_from(["yxrrset", "yxrrset-value", "nxrrset", "yxdomain", "nxdomain"])


@fuzz_settings(25)
@given(
    count=st.integers(LARGE_UPDATE - 2, LARGE_UPDATE + 40),
    prerequisites=st.lists(st.tuples(PREREQUISITES, st.sampled_from(UPDATE_NAMES)), max_size=4),
    restricted=st.booleans(),
    base=st.integers(0, 10_000),
)
def test_large_updates_with_prerequisites_are_planned_off_the_loop_and_leave_a_loadable_zone(
    wired: ControlledEngine, count: int, prerequisites: list[tuple[str, str]], restricted: bool, base: int
) -> None:
    """RFC 2136 §2.4 prerequisites of every form on updates around the size planned on a thread."""
    keyring, keyname = (DYN_KEYRING, DYN_KEY) if restricted else (KEYRING, KEY_NAME)
    update = dns.update.UpdateMessage("example.test.", keyring=keyring, keyname=keyname)
    for form, name in prerequisites:
        owner = name + "example.test."
        if form == "yxrrset":
            update.present(owner, "A")
        elif form == "yxrrset-value":
            update.present(owner, dns.rdataset.from_text("IN", "A", 0, "192.0.2.80"))
        elif form == "nxrrset":
            update.absent(owner, "TXT")
        elif form == "yxdomain":
            update.present(owner)
        else:
            update.absent(owner)
    for index in range(count):
        update.add(f"h{base + index}.{'dyn' if restricted else 'large'}.example.test.", 60, "A", "192.0.2.7")
    published = wired.published
    exchange(wired, update.to_wire())
    if wired.published != published:
        zone_still_loads(wired)


def test_large_update_seeds_are_answered(wired: ControlledEngine) -> None:
    """Every large seed as it is: planned off the loop, over the record cap, unsigned."""
    for data in large_update_seeds():
        exchange(wired, data)
    zone_still_loads(wired)


# -- regressions: each was a crash or a wrong answer the fuzzers found ---------------------


def signed_update() -> dns.update.UpdateMessage:
    return dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname=KEY_NAME)


def rcode_of(wired: ControlledEngine, message: dns.message.Message) -> dns.rcode.Rcode:
    data = message.to_wire()
    reply = wired.engine.handle(data, PEER, False)
    assert isinstance(reply, bytes)
    check_message_reply(data, reply)
    return dns.message.from_wire(reply, keyring=False).rcode()


@pytest.mark.parametrize(
    ("rdtype", "wire"),
    [
        (dns.rdatatype.DS, bytes.fromhex("482000ff")),  # no digest: text "18464 0 255 " reads back as nothing
        (dns.rdatatype.DNSKEY, bytes.fromhex("20040404")),  # no key
        (dns.rdatatype.SSHFP, bytes.fromhex("0004")),  # no fingerprint
        (dns.rdatatype.OPENPGPKEY, b""),
    ],
)
def test_update_adding_a_record_with_no_zone_file_form_is_formerr_and_changes_nothing(
    wired: ControlledEngine, rdtype: int, wire: bytes
) -> None:
    """Found by fuzzing: such a record was committed, and the zone file then failed to load
    (the zone was refused at the next start or reload) and IXFR raised out of the engine."""
    before = wired.zone_file().read_bytes()
    update = signed_update()
    update.add("noform.example.test.", 300, record(rdtype, wire))
    assert rcode_of(wired, update) == dns.rcode.FORMERR
    assert wired.zone_file().read_bytes() == before
    zone_still_loads(wired)


def test_update_whose_zone_section_is_of_another_class_is_notauth(wired: ControlledEngine) -> None:
    """RFC 2136 3.1.1 (found by fuzzing): ZCLASS CH named example.test. and the IN records
    in the update section were added to the IN zone."""
    before = wired.zone_file().read_bytes()
    update = dns.update.UpdateMessage("example.test.", rdclass="CH", keyring=KEYRING, keyname=KEY_NAME)
    update.update.append(dns.rrset.from_text("zclass.example.test.", 300, "IN", "A", "192.0.2.7"))
    assert rcode_of(wired, update) == dns.rcode.NOTAUTH
    assert wired.zone_file().read_bytes() == before


@pytest.mark.parametrize(("qtype", "qclass"), [(1, 1), (6, 255), (6, 254)])
def test_update_with_edns_version_1_and_a_zone_section_that_is_no_soa_is_formerr(
    wired: ControlledEngine, qtype: int, qclass: int
) -> None:
    """Found by fuzzing: BADVERS came first and echoed the zone section (type A, or class
    ANY/NONE), a reply dnspython refuses as an UPDATE response. FORMERR carries no question."""
    head = struct.pack(">HHHHHH", 0x1234, OPCODE_UPDATE << 11, 1, 0, 0, 1)
    question = dns.name.from_text("example.test.").to_wire() or b""
    data = head + question + struct.pack(">HH", qtype, qclass) + raw_opt(version=1)
    reply = wired.engine.handle(data, PEER, False)
    assert isinstance(reply, bytes)
    check_message_reply(data, reply)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


@fuzz_settings(300)
@given(
    labels=st.lists(st.binary(min_size=40, max_size=63), min_size=3, max_size=5),
    qtype=st.sampled_from([1, 15, 16, 28, 255]),
    edns=st.booleans(),
)
def test_rfc1035_s3_1_long_question_names_in_a_served_zone_are_answered_or_formerr(
    wired: ControlledEngine, labels: list[bytes], qtype: int, edns: bool
) -> None:
    """Names of 3 to 5 labels of 40 to 63 octets below example.test.: from 137 to 334 octets,
    on both sides of the 255 limit (the fast path once checked only each label's length)."""
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\x07example\x04test\x00"
    additional = raw_opt() if edns else b""
    data = raw_header(ar=int(edns)) + qname + struct.pack(">HH", qtype, 1) + additional
    exchange(wired, data)
    reply = wired.engine.handle(data, PEER, False)
    assert isinstance(reply, bytes)
    assert (reply[3] & 0x0F == dns.rcode.FORMERR) == (len(qname) > 255)


def test_rfc1035_s3_1_a_question_name_over_255_octets_is_formerr_not_nxdomain(
    wired: ControlledEngine,
) -> None:
    """Found by fuzzing: the fast path found such a name's zone and answered NXDOMAIN, echoing
    a question that no client can decode (dnspython raised NameTooLong on the reply)."""
    name = b"\x3f" + b"a" * 63
    qname = name * 3 + b"\x32" + b"b" * 50 + b"\x07example\x04test\x00"  # 2 octets too many
    assert len(qname) == 257
    data = raw_header() + qname + struct.pack(">HH", 1, 1)
    for reply in (wired.engine.handle(data, PEER, False), wired.engine.handle_tcp(data, PEER)):
        assert isinstance(reply, bytes)
        check_message_reply(data, reply)
        assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


def test_transfer_that_fails_inside_is_servfail_not_an_exception(tmp_path: Path) -> None:
    """Found by fuzzing: an IXFR from a journal line that does not read back raised out of
    `handle_tcp` (and so out of the TCP transport). Now: SERVFAIL and a log line, as in `handle`.
    A fresh engine: the module's fuzzed one may hold any serial and journal by now."""
    wired = controlled_engine(tmp_path)
    try:
        serial = serial_of(wired.zones[EXAMPLE].zone)
        wired.journal.forget("example.test.")  # one line of history: the bad change is the only one to it
        wired.journal.append(
            JournalEntry("example.test.", serial - 1, serial, (), ("bad.example.test. 300 IN DS 1 2 3 ",))
        )
        ixfr = dns.message.make_query("example.test.", "IXFR")
        soa = f"ns1.example.test. hostmaster.example.test. {serial - 1} 7200 900 1209600 300"
        ixfr.authority.append(dns.rrset.from_text("example.test.", 0, "IN", "SOA", soa))
        data = ixfr.to_wire()
        servfail = wired.engine.stats["servfail"]
        reply = wired.engine.handle_tcp(data, PEER)
        assert wired.engine.stats["servfail"] == servfail + 1
        assert isinstance(reply, bytes)
        check_message_reply(data, reply)
        assert dns.message.from_wire(reply).rcode() == dns.rcode.SERVFAIL
    finally:
        wired.close()


def test_signed_update_reply_is_signed_and_verifies(wired: ControlledEngine) -> None:
    """The harness's own check: the fuzzed path answers a good update as a client expects."""
    update = signed_update()
    update.add("verified.example.test.", 300, "A", "192.0.2.9")
    reply = settle(wired.engine.handle(update.to_wire(), PEER, False))  # acknowledged once journaled
    assert isinstance(reply, bytes)
    answer = dns.message.from_wire(reply, keyring=KEYRING, request_mac=update.mac)
    assert answer.rcode() == dns.rcode.NOERROR and answer.had_tsig
    zone_still_loads(wired)


def test_notify_from_the_primary_is_accepted_and_others_refused(wired: ControlledEngine) -> None:
    notify = NOTIFY_SEEDS[0]  # other.test., from its primary's address
    accepted = wired.engine.handle(notify, PEER, False)
    refused = wired.engine.handle(notify, OUTSIDER, False)
    assert isinstance(accepted, bytes) and isinstance(refused, bytes)
    assert dns.message.from_wire(accepted).rcode() == dns.rcode.NOERROR
    assert dns.message.from_wire(refused).rcode() == dns.rcode.REFUSED
    assert (OTHER, PEER[0]) in wired.notified


# -- a real server -----------------------------------------------------------------------


def test_server_answers_after_a_storm_of_mutated_datagrams(serve: Serve, tmp_path: Path) -> None:
    """Mutated UPDATE/NOTIFY/XFR/EDNS datagrams at a running server; it keeps answering."""
    server = serve("--config", str(write_config(tmp_path, EXAMPLE_ZONE, EDITS)))
    rng = random.Random(20240101)
    sent = replies = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.05)
        deadline = time.monotonic() + 20
        for _ in range(40):
            for _ in range(25):
                data = mutate(rng.choice(ALL_SEEDS), rng, max_size=1400)
                sock.sendto(data, server.address)
                sent += 1
            while time.monotonic() < deadline:  # drain this burst's replies before the next
                try:
                    reply = sock.recv(65535)
                except TimeoutError:
                    break
                replies += 1
                decode_both(reply)
        sock.settimeout(5)
        probe = query("www.example.test.", "A", msg_id=rng.randrange(65536))
        sock.sendto(probe.to_wire(), server.address)
        while True:  # late replies to the storm may come first
            answer = dns.message.from_wire(sock.recv(65535), keyring=False)
            if answer.id == probe.id and answer.question == probe.question:
                break
    assert answer.rcode() == dns.rcode.NOERROR and answer.answer
    assert server.process.poll() is None
    assert "Traceback" not in server.log_text() and "internal-error" not in server.log_text()
    assert sent == 1000 and replies > 0

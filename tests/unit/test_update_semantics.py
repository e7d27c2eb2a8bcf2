"""RFC 2136 UPDATE semantics of `dynmx.control.update.evaluate`, one behaviour per test.

Every message is built with dnspython and round-tripped through wire form, so its
sections are parsed exactly as the server sees them.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.update
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.control.update import Change, Op, UpdateRefused, evaluate
from dynmx.control.writer import apply_changes

ORIGIN = dns.name.from_text("example.test.")
ZONE_TEXT = """\
$TTL 300
@ IN SOA ns1.example.test. hostmaster.example.test. 10 3600 600 86400 300
@ IN NS ns1.example.test.
@ IN NS ns2.example.test.
@ IN MX 10 mail.example.test.
ns1 IN A 192.0.2.1
ns2 IN A 192.0.2.2
mail IN A 192.0.2.25
www IN A 192.0.2.10
www IN A 192.0.2.11
www IN TXT "hello"
alias IN CNAME www.example.test.
"""
SOA_TEXT = "ns1.example.test. hostmaster.example.test. {} 3600 600 86400 300"

# dnspython parses an RR of class ANY or NONE in the prerequisite and update sections as
# rdclass = the zone's class (IN) with `rrset.deleting` = ANY / NONE; update.py looks at
# `rrset.rdclass` only (lines 89, 92, 109-119, 144, 164), so every class ANY/NONE RR is
# taken for a class IN one.


def zone() -> dns.zone.Zone:
    return dns.zone.from_text(ZONE_TEXT, origin="example.test.", relativize=False)


def n(text: str) -> str:
    """An absolute name in the zone; '@' is the apex."""
    return "example.test." if text == "@" else f"{text}.example.test."


def message() -> dns.update.UpdateMessage:
    return dns.update.UpdateMessage("example.test.")


def wire(msg: dns.message.Message) -> dns.update.UpdateMessage:
    parsed = dns.message.from_wire(msg.to_wire())
    assert isinstance(parsed, dns.update.UpdateMessage)
    return parsed


def run(z: dns.zone.Zone, msg: dns.update.UpdateMessage) -> list[Change]:
    return evaluate(z, ORIGIN, wire(msg))


def rcode_of(z: dns.zone.Zone, msg: dns.update.UpdateMessage) -> dns.rcode.Rcode:
    with pytest.raises(UpdateRefused) as refused:
        run(z, msg)
    return refused.value.rcode


def summary(changes: list[Change]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (c.op.value, c.name.to_text(), dns.rdatatype.to_text(c.rdata.rdtype), c.rdata.to_text())
        for c in changes
    )


# --- zone section (RFC 2136 §3.1) -------------------------------------------------------


def test_rfc2136_3_1_1_zone_not_served_is_notauth() -> None:
    msg = dns.update.UpdateMessage("other.test.")
    msg.add("www.other.test.", 300, "A", "192.0.2.1")
    assert rcode_of(zone(), msg) == dns.rcode.NOTAUTH


def test_rfc2136_3_1_1_zone_section_type_not_soa_is_formerr() -> None:
    # dnspython's parser already refuses such a message (the server answers FORMERR for
    # that); evaluate must refuse it too when handed one directly.
    msg = message()
    msg.zone[0] = dns.rrset.RRset(ORIGIN, dns.rdataclass.IN, dns.rdatatype.A)
    with pytest.raises(dns.exception.FormError):
        wire(msg)
    parsed = wire(message())
    parsed.zone[0] = dns.rrset.RRset(ORIGIN, dns.rdataclass.IN, dns.rdatatype.A)
    with pytest.raises(UpdateRefused) as refused:
        evaluate(zone(), ORIGIN, parsed)
    assert refused.value.rcode == dns.rcode.FORMERR


# --- prerequisites (RFC 2136 §2.4, §3.2) --------------------------------------------------


def test_rfc2136_2_4_4_name_in_use_holds_for_a_used_name() -> None:
    msg = message()
    msg.present(n("www"))
    assert run(zone(), msg) == []


def test_rfc2136_2_4_4_name_in_use_fails_with_nxdomain() -> None:
    msg = message()
    msg.present(n("nothere"))
    assert rcode_of(zone(), msg) == dns.rcode.NXDOMAIN


def test_rfc2136_2_4_5_name_not_in_use_holds_for_an_unused_name() -> None:
    msg = message()
    msg.absent(n("nothere"))
    assert run(zone(), msg) == []


def test_rfc2136_2_4_5_name_not_in_use_fails_with_yxdomain() -> None:
    msg = message()
    msg.absent(n("www"))
    assert rcode_of(zone(), msg) == dns.rcode.YXDOMAIN


def test_rfc2136_2_4_1_rrset_exists_value_independent_holds() -> None:
    msg = message()
    msg.present(n("www"), "A")
    assert run(zone(), msg) == []


def test_rfc2136_2_4_1_rrset_exists_value_independent_fails_with_nxrrset() -> None:
    msg = message()
    msg.present(n("www"), "MX")
    assert rcode_of(zone(), msg) == dns.rcode.NXRRSET


def test_rfc2136_2_4_3_rrset_does_not_exist_holds() -> None:
    msg = message()
    msg.absent(n("www"), "MX")
    assert run(zone(), msg) == []


def test_rfc2136_2_4_3_rrset_does_not_exist_fails_with_yxrrset() -> None:
    msg = message()
    msg.absent(n("www"), "A")
    assert rcode_of(zone(), msg) == dns.rcode.YXRRSET


def test_rfc2136_2_4_2_value_dependent_rrset_equal_holds() -> None:
    msg = message()
    msg.present(n("www"), "A", "192.0.2.11", "192.0.2.10")
    msg.add(n("new"), 300, "A", "192.0.2.50")
    assert summary(run(zone(), msg)) == [("add", n("new"), "A", "192.0.2.50")]


def test_rfc2136_2_4_2_value_dependent_rrset_differs_is_nxrrset() -> None:
    msg = message()
    msg.present(n("www"), "A", "192.0.2.10")  # the zone also has 192.0.2.11
    assert rcode_of(zone(), msg) == dns.rcode.NXRRSET


def test_rfc2136_3_2_prerequisite_outside_zone_is_notzone() -> None:
    msg = message()
    msg.present("www.other.test.")
    assert rcode_of(zone(), msg) == dns.rcode.NOTZONE


def test_rfc2136_3_2_failed_prerequisite_changes_nothing() -> None:
    z = zone()
    before = z.to_text()
    msg = message()
    msg.present(n("www"), "A", "192.0.2.99")
    msg.add(n("new"), 300, "A", "192.0.2.50")
    assert rcode_of(z, msg) == dns.rcode.NXRRSET
    assert z.to_text() == before


# --- prescan (RFC 2136 §3.4.1) ----------------------------------------------------------


def test_rfc2136_3_4_1_3_update_outside_zone_is_notzone() -> None:
    msg = message()
    msg.add("www.other.test.", 300, "A", "192.0.2.1")
    assert rcode_of(zone(), msg) == dns.rcode.NOTZONE


def test_rfc2136_3_4_1_prescan_failure_changes_nothing() -> None:
    z = zone()
    before = z.to_text()
    msg = message()
    msg.add(n("new"), 300, "A", "192.0.2.50")  # fine on its own
    msg.add("www.other.test.", 300, "A", "192.0.2.1")  # fails the prescan
    with pytest.raises(UpdateRefused) as refused:
        run(z, msg)  # raises, so no partial list of changes is ever returned
    assert refused.value.rcode == dns.rcode.NOTZONE
    assert z.to_text() == before


# --- updates (RFC 2136 §3.4.2) ----------------------------------------------------------


def test_rfc2136_3_4_2_2_add_a_record() -> None:
    msg = message()
    msg.add(n("new"), 600, "A", "192.0.2.50")
    changes = run(zone(), msg)
    assert changes == [
        Change(Op.ADD, dns.name.from_text(n("new")), 600, changes[0].rdata),
    ]
    assert changes[0].rdata.to_text() == "192.0.2.50"


def test_rfc2136_3_4_2_2_add_of_existing_record_is_no_change() -> None:
    msg = message()
    msg.add(n("www"), 300, "A", "192.0.2.10")
    assert run(zone(), msg) == []


def test_rfc2136_3_4_2_3_delete_rrset() -> None:
    msg = message()
    msg.delete(n("www"), "A")
    assert summary(run(zone(), msg)) == [
        ("delete", n("www"), "A", "192.0.2.10"),
        ("delete", n("www"), "A", "192.0.2.11"),
    ]


def test_rfc2136_3_4_2_3_delete_all_rrsets_at_a_name() -> None:
    msg = message()
    msg.delete(n("www"))
    assert summary(run(zone(), msg)) == [
        ("delete", n("www"), "A", "192.0.2.10"),
        ("delete", n("www"), "A", "192.0.2.11"),
        ("delete", n("www"), "TXT", '"hello"'),
    ]


def test_rfc2136_3_4_2_3_delete_all_at_apex_keeps_soa_and_ns() -> None:
    msg = message()
    msg.delete(n("@"))
    assert summary(run(zone(), msg)) == [("delete", n("@"), "MX", "10 mail.example.test.")]


def test_rfc2136_3_4_2_4_delete_one_rr() -> None:
    msg = message()
    msg.delete(n("www"), "A", "192.0.2.10")
    assert summary(run(zone(), msg)) == [("delete", n("www"), "A", "192.0.2.10")]


def test_rfc2136_3_4_2_4_delete_of_missing_rr_is_no_change() -> None:
    # Today this returns an ADD of 192.0.2.99 with TTL 0: the delete is read as an add.
    msg = message()
    msg.delete(n("www"), "A", "192.0.2.99")
    assert run(zone(), msg) == []


def test_rfc2136_3_4_2_4_never_deletes_the_last_apex_ns() -> None:
    msg = message()
    msg.delete(n("@"), "NS", "ns1.example.test.")
    msg.delete(n("@"), "NS", "ns2.example.test.")
    assert summary(run(zone(), msg)) == [("delete", n("@"), "NS", "ns1.example.test.")]


def test_rfc2136_3_4_2_3_delete_of_apex_ns_rrset_is_ignored() -> None:
    msg = message()
    msg.delete(n("@"), "NS")
    msg.delete(n("www"), "TXT")
    assert summary(run(zone(), msg)) == [("delete", n("www"), "TXT", '"hello"')]


@pytest.mark.parametrize("one_rr", [False, True], ids=["rrset", "one-rr"])
def test_rfc2136_3_4_2_4_soa_delete_is_ignored(one_rr: bool) -> None:
    msg = message()
    if one_rr:
        msg.delete(n("@"), "SOA", SOA_TEXT.format(10))
    else:
        msg.delete(n("@"), "SOA")
    msg.delete(n("www"), "TXT", '"hello"')
    assert summary(run(zone(), msg)) == [("delete", n("www"), "TXT", '"hello"')]


def test_rfc2136_3_4_2_2_soa_add_with_older_serial_is_ignored() -> None:
    msg = message()
    msg.add(n("@"), 300, "SOA", SOA_TEXT.format(9))
    assert run(zone(), msg) == []


def test_rfc2136_3_4_2_2_soa_add_with_same_serial_is_ignored() -> None:
    msg = message()
    msg.add(n("@"), 300, "SOA", SOA_TEXT.format(10))
    assert run(zone(), msg) == []


def test_rfc2136_3_4_2_2_soa_add_with_newer_serial_replaces() -> None:
    msg = message()
    msg.add(n("@"), 300, "SOA", SOA_TEXT.format(11))
    assert summary(run(zone(), msg)) == [
        ("add", n("@"), "SOA", SOA_TEXT.format(11)),
        ("delete", n("@"), "SOA", SOA_TEXT.format(10)),
    ]


def test_rfc1982_soa_add_newer_across_the_wrap_replaces() -> None:
    z = dns.zone.from_text(
        ZONE_TEXT.replace(" 10 3600", f" {2**32 - 2} 3600"), origin="example.test.", relativize=False
    )
    msg = message()
    msg.add(n("@"), 300, "SOA", SOA_TEXT.format(3))  # 2**32-2 + 5 (mod 2**32): newer
    assert ("add", n("@"), "SOA", SOA_TEXT.format(3)) in summary(run(z, msg))


def test_rfc2136_3_4_2_2_cname_beside_other_data_is_ignored() -> None:
    msg = message()
    msg.add(n("www"), 300, "CNAME", "mail.example.test.")
    assert run(zone(), msg) == []


def test_rfc2136_3_4_2_2_other_data_beside_cname_is_ignored() -> None:
    msg = message()
    msg.add(n("alias"), 300, "A", "192.0.2.77")
    assert run(zone(), msg) == []


def test_rfc2136_3_4_2_2_cname_then_data_in_one_message_keeps_the_cname_alone() -> None:
    msg = message()
    msg.add(n("fresh"), 300, "CNAME", "www.example.test.")
    msg.add(n("fresh"), 300, "A", "192.0.2.77")
    assert summary(run(zone(), msg)) == [("add", n("fresh"), "CNAME", "www.example.test.")]


# --- property: random A-record edits keep the apex ---------------------------------------

NAMES = ["@", "www", "a", "b"]
ADDRESSES = ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
OPERATION = st.tuples(
    st.sampled_from(["add", "delete-rr", "delete-rrset", "delete-name"]),
    st.sampled_from(NAMES),
    st.sampled_from(ADDRESSES),
)


def _build(ops: list[tuple[str, str, str]]) -> dns.update.UpdateMessage:
    msg = message()
    for kind, name, address in ops:
        if kind == "add":
            msg.add(n(name), 300, "A", address)
        elif kind == "delete-rr":
            msg.delete(n(name), "A", address)
        elif kind == "delete-rrset":
            msg.delete(n(name), "A")
        else:
            msg.delete(n(name))
    return msg


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(OPERATION, min_size=1, max_size=4), min_size=1, max_size=6))
def test_rfc2136_3_4_2_random_a_edits_keep_apex_soa_and_ns(batches: list[list[tuple[str, str, str]]]) -> None:
    z = zone()
    start_ns = z.nodes[ORIGIN].get_rdataset(dns.rdataclass.IN, dns.rdatatype.NS)
    assert start_ns is not None
    apex_ns = set(start_ns)
    for ops in batches:
        try:
            changes = evaluate(z, ORIGIN, wire(_build(ops)))
        except UpdateRefused:
            continue
        z = apply_changes(z, changes)
        apex = z.nodes[ORIGIN]
        soa = apex.get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
        ns = apex.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NS)
        assert soa is not None and len(soa) == 1
        assert ns is not None and set(ns) == apex_ns

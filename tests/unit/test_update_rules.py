"""A key's rules (`names`, `types` in its [[key]] block) as RFC 2136 §3.3 permission checks:
plain calls of `KeyRules` and `evaluate`, one behaviour per test.

Nothing is granted implicitly (as BIND's update-policy): a key may change exactly what its
rules name, and the rules are checked per record of the update section before anything
is planned.
"""

from __future__ import annotations

import dns.message
import dns.name
import dns.rcode
import dns.update
import dns.zone
import pytest

from dynmx.control import update as update_module
from dynmx.control.update import KeyRefused, KeyRules, evaluate

ORIGIN = dns.name.from_text("example.test.")
ZONE_TEXT = """\
$TTL 300
@ IN SOA ns1.example.test. hostmaster.example.test. 10 3600 600 86400 300
@ IN NS ns1.example.test.
@ IN A 192.0.2.1
ns1 IN A 192.0.2.1
home.dyn IN A 192.0.2.5
home.dyn IN TXT "note"
www IN A 192.0.2.10
"""
SOA_EVIL = "evil.attacker.example. hostmaster.attacker.example. 11 1 1 1 0"


def zone() -> dns.zone.Zone:
    return dns.zone.from_text(ZONE_TEXT, origin="example.test.", relativize=False)


def wire(message: dns.update.UpdateMessage) -> dns.update.UpdateMessage:
    parsed = dns.message.from_wire(message.to_wire())
    assert isinstance(parsed, dns.update.UpdateMessage)
    return parsed


def refused(rules: KeyRules, build: dns.update.UpdateMessage) -> str | None:
    return rules.refusal(zone(), ORIGIN, wire(build))


def update() -> dns.update.UpdateMessage:
    return dns.update.UpdateMessage("example.test.")


A_AAAA = KeyRules(types=("A", "AAAA"))
DYN_A = KeyRules(names=("*.dyn.example.test.",), types=("A",))


def test_rfc2136_3_3_type_limited_key_may_not_replace_the_soa() -> None:
    """Issue 23 item 1: the SOA was let through for every key; a key limited to A and AAAA
    named no SOA, so it may not send one."""
    msg = update()
    msg.replace("@", 3600, "SOA", SOA_EVIL)
    assert refused(A_AAAA, msg) == "example.test. SOA"


def test_rfc2136_3_3_type_limited_key_may_not_delete_the_soa_either() -> None:
    msg = update()
    msg.delete("@", "SOA")
    assert refused(A_AAAA, msg) == "example.test. SOA"


def test_rfc2136_3_3_key_listing_soa_may_replace_it() -> None:
    msg = update()
    msg.replace("@", 3600, "SOA", SOA_EVIL)
    assert refused(KeyRules(types=("SOA",)), msg) is None


def test_rfc2136_3_3_type_limited_key_may_add_its_types() -> None:
    msg = update()
    msg.add("new", 300, "A", "192.0.2.7")
    msg.add("new", 300, "AAAA", "2001:db8::7")
    assert refused(A_AAAA, msg) is None


def test_rfc2136_3_3_name_limited_key_may_not_touch_the_parent_of_its_wildcard() -> None:
    msg = update()
    msg.add("dyn", 300, "A", "192.0.2.7")
    assert refused(DYN_A, msg) == "dyn.example.test. A"


def test_rfc2136_3_3_name_limited_key_may_touch_names_below() -> None:
    msg = update()
    msg.replace("a.b.dyn", 300, "A", "192.0.2.7")
    assert refused(DYN_A, msg) is None


def test_rfc2136_3_3_exact_name_rule_allows_that_name_only() -> None:
    rules = KeyRules(names=("www.example.test.",))
    allowed, other = update(), update()
    allowed.add("www", 300, "TXT", '"x"')
    other.add("www2", 300, "TXT", '"x"')
    assert refused(rules, allowed) is None
    assert refused(rules, other) == "www2.example.test. TXT"


def test_rfc2136_3_3_delete_of_a_name_needs_every_type_it_holds() -> None:
    """BIND checks a delete of all RRsets against each type at the name: home.dyn holds TXT."""
    msg = update()
    msg.delete("home.dyn")
    assert refused(DYN_A, msg) == "home.dyn.example.test. TXT"


def test_rfc2136_3_3_delete_of_a_name_holding_only_allowed_types_is_allowed() -> None:
    msg = update()
    msg.delete("gone.dyn")  # holds nothing
    assert refused(DYN_A, msg) is None
    msg = update()
    msg.delete("www")  # A only
    assert refused(A_AAAA, msg) is None


def test_rfc2136_3_4_2_3_delete_of_all_at_the_apex_does_not_need_soa_and_ns() -> None:
    """Such a delete keeps the apex SOA and NS, so only the apex A counts."""
    msg = update()
    msg.delete("@")
    assert refused(A_AAAA, msg) is None


def test_rfc2136_3_3_one_forbidden_record_refuses_the_whole_update() -> None:
    msg = update()
    msg.add("ok.dyn", 300, "A", "192.0.2.7")
    msg.add("www", 300, "A", "192.0.2.8")
    with pytest.raises(KeyRefused) as caught:
        evaluate(zone(), ORIGIN, wire(msg), DYN_A)
    assert caught.value.rcode == dns.rcode.REFUSED and caught.value.record == "www.example.test. A"


def test_rfc2136_3_3_unrestricted_key_is_not_checked() -> None:
    msg = update()
    msg.replace("@", 3600, "SOA", SOA_EVIL)
    assert KeyRules().unrestricted and refused(KeyRules(), msg) is None


def test_rfc2136_3_3_rules_are_checked_before_anything_is_planned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 23 item 3: an update out of the key's scope is refused before planning (which
    was the slow part); planning is never reached."""

    def no_planning(*_: object) -> list[object]:
        raise AssertionError("planned an update the key may not send")

    monkeypatch.setattr(update_module, "plan_changes", no_planning)
    monkeypatch.setattr(update_module, "prescan", no_planning)
    msg = update()
    for index in range(50):
        msg.add(f"h{index}.out", 300, "A", "192.0.2.9")
    with pytest.raises(KeyRefused):
        evaluate(zone(), ORIGIN, wire(msg), DYN_A)


def test_rfc2136_3_2_prerequisites_are_checked_before_the_rules() -> None:
    """RFC 2136 §3.2 comes before §3.3: a prerequisite that fails answers its own rcode."""
    msg = update()
    msg.present("nowhere")
    msg.add("www", 300, "A", "192.0.2.8")
    with pytest.raises(update_module.UpdateRefused) as caught:
        evaluate(zone(), ORIGIN, wire(msg), DYN_A)
    assert caught.value.rcode == dns.rcode.NXDOMAIN

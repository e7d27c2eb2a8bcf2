"""An edit is validated where it can have effect (`edit_problems`), with the same verdict
as validating the whole zone after it (RFC 1034 3.6.2 CNAME rules, RFC 1035 5.2 apex,
glue and NS target addresses)."""

from __future__ import annotations

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dynmx.control.update import Change, Op
from dynmx.control.writer import apply_changes, edit_problems, records_of
from dynmx.errors import Problem
from dynmx.zone.validate import validate

IN = dns.rdataclass.IN
ORIGIN = dns.name.from_text("ex.test.")
FILE = "ex.test.zone"
OWNERS = ["@", "a", "b", "sub", "ns.sub", "x.sub", "deep.x.sub", "c", "ns1"]
TARGETS = ["ns1", "a", "ns.sub", "x.sub", "c", "out.example."]
TYPES = {
    dns.rdatatype.A: ["192.0.2.1", "192.0.2.2"],
    dns.rdatatype.AAAA: ["2001:db8::1"],
    dns.rdatatype.NS: TARGETS,
    dns.rdatatype.CNAME: TARGETS,
    dns.rdatatype.MX: [f"10 {t}" for t in TARGETS],
    dns.rdatatype.TXT: ['"x"'],
}
BASE = [
    ("@", dns.rdatatype.SOA, "ns1 host 1 3600 600 86400 300"),
    ("@", dns.rdatatype.NS, "ns1"),
    ("ns1", dns.rdatatype.A, "192.0.2.53"),
]


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text, origin=ORIGIN)


def _change(op: Op, owner: str, rdtype: int, text: str) -> Change:
    return Change(
        op, _name(owner), 300, dns.rdata.from_text(IN, rdtype, text, origin=ORIGIN, relativize=False)
    )


records = st.tuples(st.sampled_from(OWNERS), st.sampled_from(sorted(TYPES))).flatmap(
    lambda pair: st.tuples(st.just(pair[0]), st.just(pair[1]), st.sampled_from(TYPES[pair[1]]))
)


def _zone(extra: list[tuple[str, int, str]]) -> dns.zone.Zone:
    zone = dns.zone.Zone(ORIGIN, relativize=False)
    return apply_changes(zone, [_change(Op.ADD, *record) for record in [*BASE, *extra]])


def _reasons(problems: list[Problem]) -> set[str]:
    return {problem.reason for problem in problems}


edits = st.lists(st.tuples(st.booleans(), records), min_size=1, max_size=4)


def random_changes(
    before: dns.zone.Zone, edits: list[tuple[bool, tuple[str, int, str]]], data: st.DataObject
) -> list[Change]:
    """The drawn edits as changes; a deletion removes a record the zone has (not its SOA)."""
    present = [
        (n.relativize(ORIGIN).to_text(), rs.rdtype, r.to_text())
        for n, node in before.nodes.items()
        for rs in node.rdatasets
        for r in rs
        if rs.rdtype != dns.rdatatype.SOA
    ]
    changes = []
    for adding, record in edits:
        if not adding and present:
            record = data.draw(st.sampled_from(present))
        changes.append(_change(Op.ADD if adding else Op.DELETE, *record))
    return changes


@settings(max_examples=400, deadline=None)
@given(st.lists(records, max_size=8), edits, st.data())
def test_an_edit_gets_the_verdict_of_validating_the_whole_zone(
    extra: list[tuple[str, int, str]], edits: list[tuple[bool, tuple[str, int, str]]], data: st.DataObject
) -> None:
    before = _zone(extra)
    assume(not validate(ORIGIN, records_of(before, FILE), file=FILE))  # a served zone is valid
    changes = random_changes(before, edits, data)
    after = apply_changes(before, changes)
    whole = validate(ORIGIN, records_of(after, FILE), file=FILE)
    assert _reasons(edit_problems(ORIGIN, after, changes, FILE)) == _reasons(whole)


def _invalid_elsewhere() -> dns.zone.Zone:
    """A zone with a CNAME beside other data at `bad` (put there directly: no file would load)."""
    zone = _zone([("bad", dns.rdatatype.A, "192.0.2.9")])
    node = zone.nodes[_name("bad")]
    node.rdatasets.append(dns.rdataset.from_text(IN, dns.rdatatype.CNAME, 300, "a.ex.test."))
    return zone


def test_an_edit_is_not_checked_against_names_it_cannot_affect() -> None:
    """The cost follows the edit: a name far from it is not looked at (here, a broken one)."""
    change = _change(Op.ADD, "www", dns.rdatatype.A, "192.0.2.80")
    after = apply_changes(_invalid_elsewhere(), [change])
    assert edit_problems(ORIGIN, after, [change], FILE) == []


def test_an_edit_at_a_name_is_checked_with_everything_at_that_name() -> None:
    change = _change(Op.ADD, "bad", dns.rdatatype.TXT, '"t"')
    after = apply_changes(_invalid_elsewhere(), [change])
    assert _reasons(edit_problems(ORIGIN, after, [change], FILE)) == {
        "CNAME and other data at bad.ex.test. (RFC 1034 section 3.6.2, RFC 2181 section 10.1)"
    }


def test_removing_the_last_address_of_an_ns_target_is_refused_rfc1035() -> None:
    """The target `ns1` is named by the apex NS only: the edit is far from it, so the whole
    zone is checked."""
    change = _change(Op.DELETE, "ns1", dns.rdatatype.A, "192.0.2.53")
    after = apply_changes(_zone([]), [change])
    assert _reasons(edit_problems(ORIGIN, after, [change], FILE)) == {
        "NS target ns1.ex.test. of ex.test. has no address records (A or AAAA)"
    }


def _with_sub_delegated(change: Change) -> dns.zone.Zone:
    """A zone delegating `sub` (to a server elsewhere), after `change`."""
    return apply_changes(_zone([("sub", dns.rdatatype.NS, "out.example.")]), [change])


def test_an_ns_record_added_below_a_cut_is_occluded_and_not_checked() -> None:
    """`x.sub` is below the cut `sub`: its NS is occluded data, accepted as NSD does."""
    change = _change(Op.ADD, "x.sub", dns.rdatatype.NS, "c")
    after = _with_sub_delegated(change)
    assert edit_problems(ORIGIN, after, [change], FILE) == []
    assert validate(ORIGIN, records_of(after, FILE), file=FILE) == []


def test_an_ns_target_inside_another_delegation_needs_no_address_here() -> None:
    change = _change(Op.ADD, "b", dns.rdatatype.NS, "x.sub")
    after = _with_sub_delegated(change)
    assert edit_problems(ORIGIN, after, [change], FILE) == []
    assert validate(ORIGIN, records_of(after, FILE), file=FILE) == []

"""Zone loading: every problem of a zone file is reported as `file:line: reason`, never a traceback."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.filebytes import file_digest, read_digest, read_zone_bytes
from dynmx.zone.loader import MAX_PROBLEMS, LoadedZone, build_zone, load_zone_file, load_zones_dir
from dynmx.zone.validate import Record

# Lines 1-4; whatever a test appends starts on line 5.
GOOD = (
    "$TTL 300\n"
    "@        IN SOA  ns1 hostmaster 2024010101 7200 900 1209600 300\n"
    "@        IN NS   ns1\n"
    "ns1      IN A    192.0.2.53\n"
)
ORIGIN = dns.name.from_text("example.test.")


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def write(directory: Path, text: str, filename: str = "example.test.zone") -> Path:
    path = directory / filename
    path.write_bytes(text.encode("utf-8"))
    return path


def problems_of(path: Path, origin: dns.name.Name | None = None) -> list[Problem]:
    with pytest.raises(ZoneLoadError) as caught:
        load_zone_file(path, origin)
    return caught.value.problems


def only_problem(path: Path) -> Problem:
    problems = problems_of(path)
    assert len(problems) == 1, problems
    return problems[0]


# -- good zones ---------------------------------------------------------------------------


def test_good_zone_loads_with_absolute_names_and_its_rdatasets(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "www 60 IN A 192.0.2.80\nwww IN TXT hello\n")
    loaded = load_zone_file(path)
    assert isinstance(loaded, LoadedZone)
    assert loaded.origin == ORIGIN
    assert loaded.path == path
    assert loaded.zone.origin == ORIGIN
    assert loaded.zone.rdclass == dns.rdataclass.IN
    assert all(owner.is_absolute() for owner in loaded.zone.nodes)
    www = loaded.zone.find_rdataset(name("www.example.test."), dns.rdatatype.A)
    assert www.ttl == 60
    assert [rd.to_text() for rd in www] == ["192.0.2.80"]
    ns = loaded.zone.find_rdataset(ORIGIN, dns.rdatatype.NS)
    assert [rd.target for rd in ns] == [name("ns1.example.test.")]
    assert loaded.zone.find_rdataset(ORIGIN, dns.rdatatype.SOA).ttl == 300


def test_origin_comes_from_file_name_without_dot_zone(tmp_path: Path) -> None:
    loaded = load_zone_file(write(tmp_path, GOOD, "mail.example.zone"))
    assert loaded.origin == name("mail.example.")


def test_origin_comes_from_leading_origin_directive_over_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "; comment\n$TTL 60\n$ORIGIN other.test.\n" + GOOD, "whatever.zone")
    loaded = load_zone_file(path)
    assert loaded.origin == name("other.test.")
    assert loaded.zone.get_node(name("ns1.other.test.")) is not None


def test_relative_leading_origin_is_relative_to_the_file_name(tmp_path: Path) -> None:
    """RFC 1035 section 5.1: a relative $ORIGIN is relative to the origin in force."""
    loaded = load_zone_file(write(tmp_path, "$ORIGIN sub\n" + GOOD, "example.test.zone"))
    assert loaded.origin == name("sub.example.test.")


def test_origin_argument_wins_over_file_name(tmp_path: Path) -> None:
    loaded = load_zone_file(write(tmp_path, GOOD, "example.test.zone"), name("given.test."))
    assert loaded.origin == name("given.test.")


def test_file_name_that_is_no_domain_name_needs_origin(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "bad..name.zone")
    assert only_problem(path) == Problem(
        str(path), 1, "no leading $ORIGIN, and the file name 'bad..name.zone' is not a domain name"
    )


def test_rrset_with_different_ttls_loads_with_the_smallest(tmp_path: Path) -> None:
    """RFC 2181 section 5.2: NSD only warns; the smallest TTL is used, no problem reported."""
    path = write(tmp_path, GOOD + "www 600 IN A 192.0.2.1\nwww 60 IN A 192.0.2.2\n")
    loaded = load_zone_file(path)
    assert loaded.zone.find_rdataset(name("www.example.test."), dns.rdatatype.A).ttl == 60


def test_occluded_data_below_a_delegation_is_accepted(tmp_path: Path) -> None:
    """Like NSD: data at or below a zone cut is never served, so it is not an error."""
    path = write(
        tmp_path,
        GOOD
        + "sub IN NS ns.sub\n"
        + "sub IN TXT occluded\n"
        + "ns.sub IN A 192.0.2.9\n"
        + "ns.sub IN MX 10 mail\n"
        + "deep.sub IN NS ns.deep.sub\n",
    )
    assert load_zone_file(path).zone.get_node(name("deep.sub.example.test.")) is not None


def test_dname_is_accepted(tmp_path: Path) -> None:
    load_zone_file(write(tmp_path, GOOD + "old IN DNAME new.example.net.\n"))


def test_cname_may_share_its_name_with_rrsig_and_nsec(tmp_path: Path) -> None:
    """RFC 4035 section 2.5 / RFC 2181 section 10.1: DNSSEC records may accompany a CNAME."""
    path = write(
        tmp_path,
        GOOD
        + "w IN CNAME www\n"
        + "w IN RRSIG CNAME 13 3 300 20300101000000 20200101000000 12345 example.test. AAAA\n"
        + "w IN NSEC x CNAME RRSIG NSEC\n",
    )
    load_zone_file(path)


def test_out_of_bailiwick_delegation_needs_no_glue(tmp_path: Path) -> None:
    load_zone_file(write(tmp_path, GOOD + "ext IN NS ns1.example.net.\n"))


# -- syntax errors: one problem, the right line ------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("www IN FOO 192.0.2.1", "unknown rdatatype 'FOO'"),
        ("www IN A 192.0.2", "syntax error at '192.0.2'"),
        ("www IN A 192.0.2.1 extra", 'expected EOL or EOF, got 3 "extra"'),
        ("www IN MX mail", "expecting an integer"),
        ("www..x IN A 192.0.2.1", "A DNS label is empty."),
        ("www CH TXT hello", "class CH is not supported; only IN"),
        ("$INCLUDE other.zone", "$INCLUDE is not supported: put the records in this file"),
        (
            "$GENERATE 1-3 h$ A 192.0.2.$",
            "$GENERATE is not supported (NSD has none either): write the records out",
        ),
        ("$BOGUS", "unknown directive $BOGUS"),
        ('www IN TXT "open', "newline in quoted string"),
    ],
)
def test_syntax_error_is_one_problem_on_its_line(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, GOOD + line + "\nafter IN A 192.0.2.2\n")
    assert only_problem(path) == Problem(str(path), 5, reason)


def test_missing_default_ttl_is_reported_on_the_record_line(tmp_path: Path) -> None:
    """RFC 2308 section 4: with no $TTL and no TTL before it, a record has no TTL."""
    path = write(tmp_path, "\nwww IN A 192.0.2.1\nx IN A 192.0.2.2\n")
    assert only_problem(path) == Problem(str(path), 2, "Missing default TTL value")


def test_syntax_error_inside_multiline_record_names_the_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path, "$TTL 1\n@ IN SOA ns1 host (\n  1\n  2\n  x 4 5 )\n")
    assert only_problem(path).line == 5


def test_syntax_error_line_counts_crlf_line_ends_once(tmp_path: Path) -> None:
    path = write(tmp_path, (GOOD + "www IN A 192.0.2\n").replace("\n", "\r\n"))
    assert only_problem(path).line == 5


def test_ttl_too_large_to_parse_hints_at_the_limit(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "www 5000000000 IN A 192.0.2.1\n")
    assert only_problem(path) == Problem(
        str(path), 5, "unknown rdatatype '5000000000' (a TTL may be at most 2147483647, RFC 2181 section 8)"
    )


def test_text_that_is_not_utf8_is_one_problem_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "example.test.zone"
    path.write_bytes(GOOD.encode() + b"www IN TXT \xff\n")
    assert only_problem(path) == Problem(str(path), 5, "not UTF-8 text: byte 0xff cannot be decoded")


def test_missing_file_is_one_problem_on_line_zero(tmp_path: Path) -> None:
    path = tmp_path / "absent.test.zone"
    assert only_problem(path) == Problem(str(path), 0, "cannot read zone file: No such file or directory")


# -- validation: every problem, each on its record's line ----------------------------------


def test_out_of_zone_data_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "www.example.net. IN A 192.0.2.1\n$ORIGIN other.\nx IN A 192.0.2.2\n")
    assert problems_of(path) == [
        Problem(str(path), 5, "out-of-zone data: www.example.net. is not in example.test."),
        Problem(str(path), 7, "out-of-zone data: x.other. is not in example.test."),
    ]


def test_zone_without_soa_or_ns_at_apex_is_reported_on_line_one(tmp_path: Path) -> None:
    """RFC 1035 section 5.2: a zone has exactly one SOA, and NS records, at its apex."""
    path = write(tmp_path, "$TTL 300\nwww IN A 192.0.2.1\n")
    assert problems_of(path) == [
        Problem(str(path), 1, "no SOA record at the zone apex example.test."),
        Problem(str(path), 1, "no NS records at the zone apex example.test."),
    ]


def test_second_soa_at_apex_is_reported(tmp_path: Path) -> None:
    """RFC 1035 section 5.2: exactly one SOA."""
    path = write(tmp_path, GOOD + "@ IN SOA ns1 hostmaster 2 7200 900 1209600 300\n")
    assert problems_of(path) == [
        Problem(str(path), 5, "more than one SOA record at the zone apex example.test."),
    ]


def test_identical_duplicate_records_merge_silently(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "@ IN SOA ns1 hostmaster 2024010101 7200 900 1209600 300\n")
    load_zone_file(path)


def test_soa_below_the_apex_is_reported_on_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "sub IN SOA ns1 hostmaster (\n 1 2 3 4\n 5 )\n")
    assert problems_of(path) == [
        Problem(str(path), 5, "SOA record at sub.example.test. is not at the zone apex example.test."),
    ]


def test_cname_and_other_data_is_reported_where_it_conflicts(tmp_path: Path) -> None:
    """RFC 1034 section 3.6.2, RFC 2181 section 10.1: a CNAME owner has no other data."""
    path = write(tmp_path, GOOD + "www IN A 192.0.2.1\nwww IN TXT x\nwww IN CNAME host\n")
    assert problems_of(path) == [
        Problem(
            str(path),
            7,
            "CNAME and other data at www.example.test. (RFC 1034 section 3.6.2, RFC 2181 section 10.1)",
        ),
    ]


def test_second_cname_at_a_name_is_reported(tmp_path: Path) -> None:
    """RFC 2181 section 10.1: one CNAME record per name."""
    path = write(tmp_path, GOOD + "w IN CNAME a\nw IN CNAME b\n")
    assert problems_of(path) == [
        Problem(str(path), 6, "more than one CNAME record at w.example.test. (RFC 2181 section 10.1)"),
    ]


def test_cname_at_apex_is_reported_once(tmp_path: Path) -> None:
    """RFC 1034 section 3.6.2: the apex has SOA and NS, so it cannot be an alias."""
    path = write(tmp_path, GOOD + "@ IN CNAME example.net.\n")
    assert problems_of(path) == [
        Problem(str(path), 5, "CNAME at the zone apex example.test. (RFC 1034 section 3.6.2)"),
    ]


def test_ttl_above_2_31_minus_1_is_reported(tmp_path: Path) -> None:
    """RFC 2181 section 8: TTLs are 31-bit."""
    path = write(tmp_path, GOOD + "www 2147483648 IN A 192.0.2.1\nok 2147483647 IN A 192.0.2.1\n")
    assert problems_of(path) == [
        Problem(
            str(path), 5, "TTL 2147483648 of www.example.test. A exceeds 2147483647 (RFC 2181 section 8)"
        ),
    ]


def test_in_bailiwick_delegation_without_glue_is_reported(tmp_path: Path) -> None:
    """RFC 1034 section 4.2.1: a child's in-bailiwick name servers need glue in the parent."""
    path = write(tmp_path, GOOD + "sub IN NS ns1.sub\nsub IN NS ns2.sub\nns2.sub IN AAAA 2001:db8::2\n")
    assert problems_of(path) == [
        Problem(
            str(path),
            5,
            "glue missing for NS target ns1.sub.example.test. of delegation sub.example.test.",
        ),
    ]


def test_ns_target_in_zone_without_address_is_reported(tmp_path: Path) -> None:
    """named-checkzone's "has no address records": apex and delegation NS targets alike."""
    path = write(tmp_path, GOOD + "@ IN NS ns2\nsub IN NS ns3.example.test.\n")
    assert problems_of(path) == [
        Problem(
            str(path), 5, "NS target ns2.example.test. of example.test. has no address records (A or AAAA)"
        ),
        Problem(
            str(path),
            6,
            "NS target ns3.example.test. of sub.example.test. has no address records (A or AAAA)",
        ),
    ]


def test_all_validation_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "$TTL 300\nwww IN CNAME a\nwww IN A 192.0.2.1\nx.example.net. IN A 192.0.2.1\n",
        "multi.test.zone",
    )
    assert [(p.file, p.line) for p in problems_of(path)] == [
        (str(path), 1),
        (str(path), 1),
        (str(path), 3),
        (str(path), 4),
    ]


# -- directories -------------------------------------------------------------------------


def test_zones_dir_keeps_good_zones_and_lists_problems_of_bad_ones(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "good.test.zone")
    bad = write(tmp_path, GOOD + "www IN A 192.0.2\n", "bad.test.zone")
    write(tmp_path, "not a zone", "README")
    (tmp_path / "dir.zone").mkdir()
    zones, problems = load_zones_dir(tmp_path)
    assert list(zones) == [name("good.test.")]
    assert zones[name("good.test.")].path == tmp_path / "good.test.zone"
    assert problems == [Problem(str(bad), 5, "syntax error at '192.0.2'")]


def test_zones_dir_reports_a_second_file_with_the_same_origin(tmp_path: Path) -> None:
    first = write(tmp_path, "$ORIGIN example.test.\n" + GOOD, "a.zone")
    second = write(tmp_path, GOOD, "example.test.zone")
    zones, problems = load_zones_dir(tmp_path)
    assert zones[ORIGIN].path == first
    assert problems == [Problem(str(second), 1, f"zone example.test. is also loaded from {first}")]


def test_zones_dir_reports_a_zone_file_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "gone.test.zone").symlink_to(tmp_path / "nowhere")
    zones, problems = load_zones_dir(tmp_path)
    assert zones == {}
    assert problems == [
        Problem(str(tmp_path / "gone.test.zone"), 0, "cannot read zone file: No such file or directory")
    ]


def test_missing_zones_dir_is_one_problem_on_line_zero(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert load_zones_dir(missing) == (
        {},
        [Problem(str(missing), 0, "cannot read zone directory: No such file or directory")],
    )


def test_zones_dir_that_is_a_file_is_one_problem(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert load_zones_dir(path) == (
        {},
        [Problem(str(path), 0, "cannot read zone directory: Not a directory")],
    )


# -- never a traceback ---------------------------------------------------------------------

FRAGMENTS = [
    "$ORIGIN", "$TTL", "$INCLUDE", "$GENERATE 1-3 x$ A 192.0.2.$", "$UNICODE 2008", "(", ")", '"', "\\",
    "\\#", "\\# 2 abcd", ";", "@", "*", "..", ".", "IN", "CH", "CLASS3", "SOA", "NS", "CNAME", "A",
    "AAAA", "MX", "TXT", "DNAME", "RRSIG", "DS", "TYPE65534", "0", "300", "1w2d", "2147483648",
    "9999999999", "192.0.2.1", "2001:db8::1", "ns1", "sub", "example.test.", "example.net.",
    "xn--", "xn--zz", "ä", "a" * 64, "\t", "\r", "\x00",
]  # fmt: skip

garbage_line = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), min_size=0, max_size=8
).map(" ".join)


def _assert_loads_or_refuses(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))
    try:
        loaded = load_zone_file(path)
    except ZoneLoadError as error:
        lines = len(re.split(r"\r\n|\r|\n", text))
        assert error.problems
        for problem in error.problems:
            assert problem.file == str(path)
            assert 1 <= problem.line <= lines, (problem, lines)
    else:
        assert loaded.origin.is_absolute()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=400))
def test_any_text_loads_or_raises_zone_load_error(tmp_path: Path, text: str) -> None:
    _assert_loads_or_refuses(tmp_path / "example.test.zone", text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(garbage_line, max_size=6))
def test_valid_zone_plus_garbage_lines_loads_or_raises_zone_load_error(
    tmp_path: Path, lines: list[str]
) -> None:
    _assert_loads_or_refuses(tmp_path / "example.test.zone", GOOD + "\n".join(lines) + "\n")


# -- the zone built from the records -------------------------------------------------------

BUILD_ORIGIN = dns.name.from_text("example.test.")
RECORD_TEXTS = [
    ("A", "192.0.2.1"), ("A", "192.0.2.2"), ("MX", "10 mx.example.test."), ("MX", "20 mx.example.test."),
    ("TXT", '"v=spf1 -all"'), ("DNAME", "a.example.net."), ("DNAME", "b.example.net."),
    ("SOA", "ns hostmaster 1 2 3 4 5"), ("SOA", "ns hostmaster 2 2 3 4 5"),
    ("RRSIG", "A 8 3 300 20300101000000 20200101000000 1 example.test. AAAA"),
    ("RRSIG", "MX 8 3 300 20300101000000 20200101000000 1 example.test. AAAA"),
]  # fmt: skip
build_records = st.lists(
    st.tuples(
        st.sampled_from(["@", "www", "WWW", "mx"]), st.sampled_from([60, 300]), st.sampled_from(RECORD_TEXTS)
    ),
    max_size=12,
)


def _records(drawn: list[tuple[str, int, tuple[str, str]]]) -> list[Record]:
    records = []
    for line, (owner, ttl, (rdtype, text)) in enumerate(drawn, 1):
        name = dns.name.from_text(owner, BUILD_ORIGIN)
        rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=BUILD_ORIGIN)
        records.append(Record(name, ttl, rdata, "example.test.zone", line))
    return records


def _contents(zone: dns.zone.Zone) -> dict[bytes, set[tuple[int, int, int, frozenset[dns.rdata.Rdata]]]]:
    return {
        name.to_wire().lower(): {(rds.rdtype, rds.covers, rds.ttl, frozenset(rds)) for rds in node.rdatasets}
        for name, node in zone.nodes.items()
    }


@given(build_records)
@settings(max_examples=300, deadline=None)
def test_built_zone_equals_dnspythons_own_adds(drawn: list[tuple[str, int, tuple[str, str]]]) -> None:
    """Duplicates merge, an RRset gets its smallest TTL, a second singleton (DNAME, SOA) replaces
    the first, RRSIGs group by the type they cover: as `find_node` and `Rdataset.add` do it."""
    records = _records(drawn)
    reference = dns.zone.Zone(BUILD_ORIGIN, relativize=False)
    for record in records:
        rdata = record.rdata
        node = reference.find_node(record.name, create=True)
        rdataset = node.find_rdataset(dns.rdataclass.IN, rdata.rdtype, rdata.covers(), create=True)
        rdataset.add(rdata, record.ttl)
    assert _contents(build_zone(BUILD_ORIGIN, records)) == _contents(reference)


# -- bounds (issue 23, item 13): what a bad file can cost ---------------------------------


def test_a_file_reports_at_most_max_problems_and_a_count_of_the_rest(tmp_path: Path) -> None:
    outside = "".join(f"h{i}.elsewhere.example. 300 IN A 192.0.2.1\n" for i in range(MAX_PROBLEMS + 40))
    path = write(tmp_path, GOOD + outside)
    with pytest.raises(ZoneLoadError) as caught:
        load_zone_file(path)
    problems = caught.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[0] == Problem(
        str(path), 5, "out-of-zone data: h0.elsewhere.example. is not in example.test."
    )
    assert problems[-1] == Problem(str(path), 5 + MAX_PROBLEMS, "and 40 more problems")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    size = path.stat().st_size
    assert read_zone_bytes(path, size) == GOOD.encode()
    reason = f"zone file of {size:,} bytes, larger than max_zone_file_size ({size - 1:,} bytes): not loaded"
    for read in (read_zone_bytes, read_digest):
        with pytest.raises(ZoneLoadError) as caught:
            read(path, size - 1)
        assert caught.value.problems == [Problem(str(path), 0, reason)]


def test_a_file_that_grows_while_read_is_refused_at_the_limit(tmp_path: Path) -> None:
    """What stat said is not trusted: reading stops a byte past the limit (a FIFO, a file
    still being written)."""
    fifo = tmp_path / "example.test.zone"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b";" * 5000))
    writer.start()
    with pytest.raises(ZoneLoadError) as caught:
        read_zone_bytes(fifo, 1000)
    writer.join(5)
    reason = (
        "zone file of over 1,000 bytes when read, larger than max_zone_file_size (1,000 bytes): not loaded"
    )
    assert caught.value.problems == [Problem(str(fifo), 0, reason)]


def test_the_digest_read_in_pieces_is_the_digest_of_the_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "".join(f"h{i} A 192.0.2.1\n" for i in range(100_000)))
    assert read_digest(path) == file_digest(path.read_bytes())

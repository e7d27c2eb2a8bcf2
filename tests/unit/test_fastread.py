"""The fast zone-file reader gives exactly the records dnspython's reader gives, or steps aside.

Every record is compared field by field (owner labels with their case, TTL, rdata class,
type, text, wire form and comment, file and line), and the zones built from both lists are
compared too. What the fast reader does not take it must refuse (`Unsupported`), so the
loader reads the file with dnspython and reports dnspython's error.
"""

from __future__ import annotations

import io
import string
from pathlib import Path

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.zone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone import fastread
from dynmx.zone.dnspython_read import read_records_with_dnspython
from dynmx.zone.loader import build_zone, parse_zone
from dynmx.zone.validate import Record

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = dns.name.from_text("example.test.")
FILE = "example.test.zone"
SOA = "@ IN SOA ns1 hostmaster 2024010101 7200 900 1209600 300\n"


def fields(record: Record) -> tuple[object, ...]:
    """Everything a record holds; names by their labels, so case differences count."""
    rdata = record.rdata
    return (
        record.name.labels,
        record.ttl,
        type(rdata),
        rdata.rdclass,
        rdata.rdtype,
        rdata.to_text(),
        rdata.to_wire(),
        rdata.rdcomment,
        record.file,
        record.line,
    )


def by_dnspython(text: str, origin: dns.name.Name = ORIGIN) -> list[Record] | Exception:
    try:
        return read_records_with_dnspython(text, FILE, origin, origin)
    except ZoneLoadError as error:
        return error


def by_fastread(text: str, origin: dns.name.Name = ORIGIN) -> list[Record] | fastread.Unsupported:
    try:
        return fastread.read_records(text, FILE, origin, origin)
    except fastread.Unsupported as why:
        return why


def zone_text(zone: dns.zone.Zone) -> list[str]:
    return sorted(zone.to_text(sorted=True, relativize=False, want_comments=True).splitlines())


def assert_same(fast: list[Record], slow: list[Record], origin: dns.name.Name = ORIGIN) -> None:
    assert [fields(r) for r in fast] == [fields(r) for r in slow]
    # As the loader builds zones: only of in-zone records (the others are problems).
    fast_zone = build_zone(origin, [r for r in fast if r.name.is_subdomain(origin)])
    slow_zone = build_zone(origin, [r for r in slow if r.name.is_subdomain(origin)])
    assert fast_zone == slow_zone
    assert zone_text(fast_zone) == zone_text(slow_zone)


# -- the supported grammar, generated --------------------------------------------------------

blank = st.text(" \t", min_size=1, max_size=3)
label = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=10)
relative = st.lists(label | st.just("*"), min_size=1, max_size=3).map(".".join)
names = st.one_of(
    st.just("@"),
    relative,
    relative.map(lambda text: f"{text}.example.test."),
    relative.map(lambda text: f"{text}.other.test."),
)
ttls = st.one_of(
    st.integers(0, 2**32 - 1).map(str),
    st.integers(0, 999).map(lambda n: f"{n:05d}"),
    st.lists(st.tuples(st.integers(0, 99), st.sampled_from("wdhmsWDHMS")), min_size=1, max_size=3).map(
        lambda parts: "".join(f"{n}{unit}" for n, unit in parts)
    ),
)
comment_text = st.text(
    st.characters(
        blacklist_categories=["Cs"], blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029"
    ),
    max_size=20,
)
comments = st.one_of(st.just(""), comment_text.map(lambda text: f";{text}"))
uint8, uint16 = st.integers(0, 255).map(str), st.integers(0, 65535).map(str)
# Text inside quotes: anything but a quote, a backslash or a line end, and some escapes.
quoted_piece = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters='"\\'), max_size=12),
    st.sampled_from(['\\"', "\\\\", "\\065", "\\255", "\\;", "\\(", "\\ ", "\t", ";", "()"]),
)
quoted = st.lists(quoted_piece, max_size=5).map(lambda parts: '"' + "".join(parts) + '"')
unquoted = st.text(string.ascii_letters + string.digits + "=-_.:/+!%@*", min_size=1, max_size=12)


def hexes(size: int) -> st.SearchStrategy[list[str]]:
    """`size` bytes of hex in one to three tokens, in either case."""

    def split(data: bytes, cut: int, upper: bool) -> list[str]:
        text = data.hex().upper() if upper else data.hex()
        cut = cut % (len(text) + 1)
        return [part for part in (text[:cut], text[cut:]) if part] or [text]

    return st.builds(split, st.binary(min_size=size, max_size=size), st.integers(0, 200), st.booleans())


rdatas: dict[str, st.SearchStrategy[list[str]]] = {
    "A": st.ip_addresses(v=4).map(lambda a: [str(a)]),
    "AAAA": st.ip_addresses(v=6).flatmap(
        lambda a: st.sampled_from([[str(a)], [a.exploded], [a.exploded.upper()]])
    ),
    "NS": names.map(lambda n: [n]),
    "CNAME": names.map(lambda n: [n]),
    "PTR": names.map(lambda n: [n]),
    "MX": st.tuples(uint16, names).map(list),
    "SRV": st.tuples(uint16, uint16, uint16, names).map(list),
    "SOA": st.tuples(names, names, st.integers(0, 2**32 - 1).map(str), ttls, ttls, ttls, ttls).map(list),
    "TXT": st.lists(quoted | unquoted, min_size=1, max_size=3),
    "CAA": st.tuples(
        uint8,
        st.sampled_from(["issue", "issuewild", "iodef", '"issue"', "Tag9"]),
        quoted | unquoted,
    ).map(list),
    "TLSA": st.tuples(
        st.sampled_from(["3", "2"]), st.sampled_from(["0", "1"]), st.sampled_from([1, 2])
    ).flatmap(
        lambda head: hexes(32 if head[2] == 1 else 64).map(lambda data: [*head[:2], str(head[2]), *data])
    ),
    "DS": st.tuples(uint16, st.sampled_from(["8", "13", "RSASHA256", "ecdsap256sha256"])).flatmap(
        lambda head: st.sampled_from([(2, 32), (4, 48), (1, 20)]).flatmap(
            lambda digest: hexes(digest[1]).map(lambda data: [*head, str(digest[0]), *data])
        )
    ),
}


@st.composite
def record_line(draw: st.DrawFn) -> str:
    """One record: owner or blank, TTL and class in any order or left out, type in any case,
    rdata, maybe in parentheses over lines with comments inside, maybe a comment after."""
    owner = draw(st.one_of(names, st.just("")))
    rdtype = draw(st.sampled_from(sorted(rdatas)))
    tokens = draw(rdatas[rdtype])
    ttl = draw(ttls)
    klass = draw(st.sampled_from(["IN", "in", "In"]))
    head = {
        "": [],
        "T": [ttl],
        "C": [klass],
        "TC": [ttl, klass],
        "CT": [klass, ttl],
        "TCT": [ttl, klass, ttl],
    }[draw(st.sampled_from(["", "T", "C", "TC", "CT", "", "T", "C", "TC", "CT", "TCT"]))]
    kind = draw(st.sampled_from([rdtype, rdtype.lower(), rdtype.title()]))
    sep = draw(blank)
    if draw(st.booleans()):
        between = [draw(st.sampled_from([" ", "\t", "  "])) for _ in tokens]
        rdata = "".join(each + gap for each, gap in zip(tokens, between, strict=True)).rstrip(" \t")
    else:
        pieces = []
        for token in tokens:
            breaks = draw(st.sampled_from(["", "", "\n", f"{draw(comments)}\n"]))
            pieces.append(f"{token}{sep}{breaks}{draw(blank)}")
        rdata = "(" + draw(st.sampled_from(["", " ", "\n "])) + "".join(pieces) + ")"
    start = owner if owner else draw(blank)
    line = sep.join([start, *head, kind, rdata]) + draw(st.sampled_from(["", " "]))
    if owner and draw(st.integers(0, 5)) == 0:
        line = f"(\n{line})"  # the record starts on the line of its first token
    return line + draw(comments)


other_line = st.one_of(
    st.just(""),
    blank,
    comments,
    blank.flatmap(lambda b: comments.map(lambda c: b + c)),
    ttls.map(lambda t: f"$TTL {t}"),
    ttls.map(lambda t: f"$ttl\t{t} ; default"),
    st.sampled_from(["$ORIGIN example.test.", "$ORIGIN sub", "$origin @", "$ORIGIN other.test."]),
    st.just("( )"),
)


@st.composite
def zone_texts(draw: st.DrawFn) -> str:
    first = ["$TTL 3600", "$TTL 1h", "", "$ORIGIN example.test.", "@ 60 NS ns1\n" + SOA.rstrip("\n")]
    lines = [draw(st.sampled_from(first))]  # the last: no $TTL, the SOA's MINIMUM is the default
    lines += draw(
        st.lists(st.one_of(record_line(), record_line(), record_line(), other_line), min_size=3, max_size=15)
    )
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(lines) + draw(st.sampled_from([end, ""]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone_texts())
def test_supported_zone_text_reads_as_dnspython_reads_it(text: str) -> None:
    """In the grammar it takes, the fast reader fails exactly where dnspython fails, and
    otherwise gives the same records and the same zone."""
    slow, fast = by_dnspython(text), by_fastread(text)
    if isinstance(slow, Exception):
        assert isinstance(fast, fastread.Unsupported), slow
        return
    assert not isinstance(fast, fastread.Unsupported), f"fell back: {fast}"
    assert_same(fast, slow)


NASTY = [
    "\\",
    '"',
    "(",
    ")",
    ";",
    "\r",
    "\n",
    "$",
    "@",
    ".",
    " ",
    "\t",
    "\x0b",
    "\xa0",
    "é",
    "0",
    "IN",
    "CH",
    "#",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone_texts(),
    st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(NASTY), st.booleans()), max_size=4),
)
def test_mangled_zone_text_reads_as_dnspython_reads_it_or_falls_back(
    text: str, edits: list[tuple[int, str, bool]]
) -> None:
    """Whatever the fast reader returns for any text, dnspython returns too."""
    for where, piece, replace in edits:
        where %= len(text) + 1
        text = text[:where] + piece + text[where + (1 if replace else 0) :]
    fast = by_fastread(text)
    if isinstance(fast, fastread.Unsupported):
        return
    slow = by_dnspython(text)
    assert not isinstance(slow, Exception), f"fast reader took what dnspython refuses: {slow}"
    assert_same(fast, slow)


TTL_RULES = {
    "SOA MINIMUM, then the last TTL": SOA.replace("@ IN", "@ 60 IN") + "www A 192.0.2.1\n",
    "SOA without TTL takes MINIMUM": SOA + "www A 192.0.2.1\nmx 90 A 192.0.2.2\nmx2 A 192.0.2.3\n",
    "$TTL after the SOA wins over the last TTL": SOA + "a 90 A 192.0.2.1\n$TTL 70\nb A 192.0.2.2\n",
    "$TTL before the SOA": "$TTL 80\n" + SOA + "a 90 A 192.0.2.1\nb A 192.0.2.2\n",
    "class then TTL": "$TTL 80\n" + SOA + "a IN 1h2m A 192.0.2.1\nb in A 192.0.2.2\n",
}


@pytest.mark.parametrize("text", TTL_RULES.values(), ids=TTL_RULES.keys())
def test_implicit_ttls_are_dnspythons(text: str) -> None:
    """RFC 1035 section 5.1 and RFC 2308 section 4, as dnspython's reader applies them."""
    fast, slow = by_fastread(text), by_dnspython(text)
    assert not isinstance(fast, fastread.Unsupported), fast
    assert not isinstance(slow, Exception)
    assert_same(fast, slow)


# -- what it must leave to dnspython -----------------------------------------------------------

FALLS_BACK = {
    "include": "$INCLUDE other.zone\n",
    "generate": "$GENERATE 1-3 host$ A 192.0.2.$\n",
    "unknown directive": "$FOO 1\n",
    "unknown type": "@ 300 IN HINFO cpu os\n",
    "TYPE### syntax": "@ 300 IN TYPE1000 \\# 4 0a000001\n",
    "generic rdata": "@ 300 IN A \\# 4 c0000201\n",
    "class CH": "@ 300 CH A 192.0.2.1\n",
    "CLASS1": "@ 300 CLASS1 A 192.0.2.1\n",
    "escape in a name": "a\\.b 300 IN A 192.0.2.1\n",
    "IDNA name": "bücher 300 IN A 192.0.2.1\n",
    "quoted owner": '"www" 300 IN A 192.0.2.1\n',
    "quoted address": 'www 300 IN A "192.0.2.1"\n',
    "quoted address, then a line more": 'www 300 IN A ( "192.0.2.1"\n )\n',
    "quoted name over lines": 'www 300 IN MX ( 10\n "mx" )\n',
    "quoted flags in CAA": '@ 300 IN CAA "0" issue ca.test\n',
    "quoted hex in TLSA": '_25._tcp 300 IN TLSA 3 1 1 "' + "ab" * 32 + '"\n',
    "lone CR": "www 300 IN A 192.0.2.1\r; old Mac\n",
    "unbalanced (": "www 300 IN A ( 192.0.2.1\n",
    "unbalanced )": "www 300 IN A 192.0.2.1 )\n",
    "open quote": 'www 300 IN TXT "open\n',
    "bad address": "www 300 IN A 192.0.2.256\n",
    "extra token": "www 300 IN A 192.0.2.1 192.0.2.2\n",
    "TTL too large": "www 4294967296 IN A 192.0.2.1\n",
    "bad TTL unit": "www 3x IN A 192.0.2.1\n",
    "long TXT string": f'www 300 IN TXT "{"x" * 256}"\n',
    "label too long": f"{'a' * 64} 300 IN A 192.0.2.1\n",
    "no TTL at all": "www IN A 192.0.2.1\n",
    "TTL, class, TTL": "www 300 IN 400 A 192.0.2.1\n",
    "bad hex": "_25._tcp 300 IN TLSA 3 1 1 zz\n",
    "TLSA length": "_25._tcp 300 IN TLSA 3 1 1 abcd\n",
    "CAA tag": "@ 300 IN CAA 0 is-sue letsencrypt.org\n",
}


@pytest.mark.parametrize("text", FALLS_BACK.values(), ids=FALLS_BACK.keys())
def test_unusual_or_wrong_text_is_left_to_dnspython(text: str) -> None:
    assert isinstance(by_fastread(text), fastread.Unsupported)


def _problems(path: Path, text: str) -> list[Problem]:
    with pytest.raises(ZoneLoadError) as caught:
        parse_zone(path, text.encode())
    return list(caught.value.problems)


@pytest.mark.parametrize(
    "bad",
    [
        "www IN A 192.0.2.256",
        "www IN MX 10",
        "$INCLUDE x.zone",
        "www IN TYPE1 \\# 3 abcdef",
        'www IN TXT "open',
    ],
)
def test_a_bad_line_is_reported_as_dnspython_reports_it(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader's problem for a bad line (its file, line and words) is the one it gave
    before the fast reader came."""
    path = Path("/zones/example.test.zone")
    text = "$TTL 300\n" + SOA + "@ IN NS ns1\nns1 IN A 192.0.2.53\n" + bad + "\n"
    with_fast = _problems(path, text)

    def refuse(*args: object) -> list[Record]:
        raise fastread.Unsupported("off")

    monkeypatch.setattr(fastread, "read_records", refuse)
    assert with_fast == _problems(path, text)
    assert [problem.line for problem in with_fast] == [5]


# -- the repository's own files, and what dynmx writes --------------------------------------


def repository_zones() -> list[Path]:
    return sorted(
        [*ROOT.glob("tests/data/**/*.zone"), *ROOT.glob("zones/*.zone"), *ROOT.glob("examples/**/*.zone")]
    )


@pytest.mark.parametrize("path", repository_zones(), ids=lambda path: str(path.relative_to(ROOT)))
def test_repository_zone_files_read_as_dnspython_reads_them(path: Path) -> None:
    origin = dns.name.from_text(path.name.removesuffix(".zone"))
    text = path.read_text()
    fast, slow = by_fastread(text, origin), by_dnspython(text, origin)
    assert not isinstance(slow, Exception)
    if isinstance(fast, fastread.Unsupported):
        assert path.name == "diff.test.zone", fast  # it holds HINFO and TYPE1000 on purpose
        return
    assert_same(fast, slow, origin)


def test_the_demo_zone_is_read_by_the_fast_reader() -> None:
    """Parentheses over lines, comments, blank owners, SRV, wildcards: no fallback."""
    text = (ROOT / "zones" / "example.test.zone").read_text()
    assert not isinstance(by_fastread(text), fastread.Unsupported)


def test_a_zone_file_dynmx_writes_is_read_by_the_fast_reader() -> None:
    """The writer's shape (`to_file`, absolute names, escapes in TXT) needs no fallback."""
    text = (
        "$TTL 3600\n" + SOA + "@ IN NS ns1\nns1 IN A 192.0.2.53\nns1 IN AAAA 2001:db8::53\n"
        "@ IN MX 10 mx.other.test.\n"
        '@ IN TXT "v=spf1 mx -all" "say \\"hi\\"\\\\ \\255 é"\n'
        "_25._tcp.mx IN TLSA 3 1 1 " + "ab" * 32 + "\n"
        "_sip._tcp IN SRV 0 5 5060 sip\n"
        '@ IN CAA 0 issue "letsencrypt.org"\n'
        "sub IN DS 12345 13 2 " + "cd" * 32 + "\n"
        "sub IN NS ns.sub\nns.sub IN A 192.0.2.54\n"
        "4.2 IN PTR host\nalias IN CNAME www\nwww IN A 192.0.2.80\n"
    )
    written = io.BytesIO()
    build_zone(ORIGIN, by_dnspython(text)).to_file(written, sorted=True, relativize=False, want_origin=False)  # type: ignore[arg-type]
    again = written.getvalue().decode()
    fast, slow = by_fastread(again), by_dnspython(again)
    assert not isinstance(fast, fastread.Unsupported), fast
    assert not isinstance(slow, Exception)
    assert_same(fast, slow)


def test_the_same_rdata_text_in_two_zones_gives_one_immutable_rdata() -> None:
    one, two = by_fastread('$TTL 60\n@ TXT "v=spf1 -all"\n'), by_fastread('$TTL 60\nwww TXT "v=spf1 -all"\n')
    assert not isinstance(one, fastread.Unsupported) and not isinstance(two, fastread.Unsupported)
    assert one[0].rdata is two[0].rdata


def test_a_commented_record_gets_its_own_rdata() -> None:
    """dnspython keeps the comment after a record on its rdata: it must not reach another record."""
    first = by_fastread("$TTL 60\n@ A 192.0.2.1 ; this one\nwww A 192.0.2.1\n")
    assert not isinstance(first, fastread.Unsupported)
    assert [record.rdata.rdcomment for record in first] == [" this one", None]


def test_text_seen_unquoted_is_still_refused_quoted_where_dnspython_refuses_it() -> None:
    """A shared rdata is found by its tokens and whether each was quoted: CAA flags may not be."""
    assert not isinstance(by_fastread("$TTL 60\n@ CAA 0 issue ca.test\n"), fastread.Unsupported)
    assert isinstance(by_fastread('$TTL 60\n@ CAA "0" issue ca.test\n'), fastread.Unsupported)
    assert isinstance(by_dnspython('$TTL 60\n@ CAA "0" issue ca.test\n'), ZoneLoadError)


def test_rdata_is_built_by_dnspythons_own_classes() -> None:
    records = by_fastread('$TTL 60\n@ TXT "a" b\n')
    assert not isinstance(records, fastread.Unsupported)
    assert type(records[0].rdata) is dns.rdtypes.ANY.TXT.TXT
    assert records[0].rdata.rdclass is dns.rdataclass.IN
    assert records[0].rdata.rdtype is dns.rdatatype.TXT

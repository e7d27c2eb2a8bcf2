"""NSID (RFC 5001): which server answered, for operators of several.

A query that carries an (empty) NSID option gets the configured identifier in the reply's
OPT record; other queries get none, and nothing is sent when none is configured. NSD 4.6
with `nsid:` is the yardstick: it answers NSID in every reply with an OPT record (REFUSED
and truncated replies included) except BADVERS, and so does dynmx.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from dynmx.config import load_config
from dynmx.config_values import nsid_octets
from dynmx.errors import ConfigError
from tests.conftest import RunningServer
from tests.helpers_engine import ask, make_engine
from tests.nsd import Nsd, NsdUnavailable

ZONE_DIR = Path(__file__).resolve().parents[1] / "data" / "diff"
ZONES = {"diff.test": "diff.test.zone", "other.test": "other.test.zone"}
NSID = b"ns1.example"

Serve = Callable[..., RunningServer]


def _query(name: str, rdtype: str, nsid: bool = True, **options: object) -> dns.message.Message:
    edns_options = [dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")] if nsid else []
    return dns.message.make_query(name, rdtype, use_edns=0, options=edns_options, **options)  # type: ignore[arg-type]


def _nsid_of(reply: dns.message.Message) -> bytes | None:
    found = [option for option in reply.options if option.otype == dns.edns.OptionType.NSID]
    return found[0].to_wire() if found else None


# -- the engine, by plain calls ---------------------------------------------------------


def test_rfc5001_s2_3_a_query_asking_gets_the_identifier() -> None:
    assert _nsid_of(ask(make_engine(nsid=NSID), _query("www.example.test.", "A"))) == NSID


def test_rfc5001_s2_3_a_query_not_asking_gets_none() -> None:
    reply = ask(make_engine(nsid=NSID), _query("www.example.test.", "A", nsid=False))
    assert reply.edns == 0
    assert _nsid_of(reply) is None


def test_rfc5001_nothing_is_sent_when_no_identifier_is_configured() -> None:
    reply = ask(make_engine(), _query("www.example.test.", "A"))
    assert reply.edns == 0
    assert _nsid_of(reply) is None


@pytest.mark.parametrize(
    ("name", "rdtype", "rdclass", "rcode"),
    [
        ("missing.example.test.", "A", dns.rdataclass.IN, dns.rcode.NXDOMAIN),
        ("elsewhere.invalid.", "A", dns.rdataclass.IN, dns.rcode.REFUSED),
        ("version.bind.", "TXT", dns.rdataclass.CH, dns.rcode.REFUSED),
        ("example.test.", "AXFR", dns.rdataclass.IN, dns.rcode.NOTIMP),
    ],
)
def test_rfc5001_negative_and_error_replies_carry_it_too(
    name: str, rdtype: str, rdclass: int, rcode: int
) -> None:
    reply = ask(make_engine(nsid=NSID), _query(name, rdtype, rdclass=rdclass))
    assert reply.rcode() == rcode
    assert _nsid_of(reply) == NSID


def test_rfc6891_s6_1_3_badvers_carries_no_nsid() -> None:
    query = _query("www.example.test.", "A")
    query.use_edns(1, options=query.options)
    reply = ask(make_engine(nsid=NSID), query)
    assert reply.rcode() == dns.rcode.BADVERS
    assert _nsid_of(reply) is None


@pytest.mark.parametrize("name", ["manymx.example.test.", "www.big.example.test.", "bigtxt.example.test."])
def test_rfc6891_s7_the_identifier_counts_against_the_udp_payload(name: str) -> None:
    """Replies near 512 octets: with the option they stay within the payload (cut or TC=1)."""
    query = _query(name, "ANY" if "bigtxt" in name else "MX", payload=512)
    reply = make_engine(nsid=NSID).handle(query.to_wire())
    assert isinstance(reply, bytes)
    assert len(reply) <= 512
    assert _nsid_of(dns.message.from_wire(reply)) == NSID


def test_the_identifier_is_given_as_text_or_as_hex() -> None:
    assert nsid_octets("ns1.example") == b"ns1.example"
    assert nsid_octets("0x6e7331") == b"ns1"
    assert nsid_octets("") == b""


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0x6e7", "expected 0x and an even number of hex digits"),
        ("nöd", "expected printable ASCII or 0x and hex digits"),
        ("x" * 129, "expected at most 128 octets, got 129"),
    ],
)
def test_a_bad_identifier_is_refused_with_its_line(tmp_path: Path, value: str, reason: str) -> None:
    config = tmp_path / "dynmx.toml"
    config.write_text(f'[server]\nnsid = "{value}"\n')
    with pytest.raises(ConfigError, match=rf"dynmx.toml:2: server.nsid: {reason}"):
        load_config(config)


# -- against NSD ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nsd_port() -> Iterator[int]:
    try:
        nsd = Nsd(ZONE_DIR, ZONES, server_options=[f'nsid: "ascii_{NSID.decode()}"'])
    except NsdUnavailable as error:
        pytest.skip(str(error))
    with nsd:
        yield nsd.port


QUESTIONS = [
    ("www.diff.test.", "A", {}),
    ("missing.diff.test.", "A", {}),
    ("www.diff.test.", "TYPE1000", {}),
    ("x.ext.diff.test.", "A", {}),  # a referral (big-deleg's is a known difference: RFC 9471 TC)
    ("bigmx.diff.test.", "MX", {"payload": 512}),
    ("elsewhere.invalid.", "A", {}),
    ("version.bind.", "TXT", {"rdclass": dns.rdataclass.CH}),
]


@pytest.mark.interop
@pytest.mark.parametrize(("name", "rdtype", "options"), QUESTIONS)
def test_rfc5001_dynmx_answers_nsid_as_nsd_does(
    serve: Serve, tmp_path: Path, nsd_port: int, name: str, rdtype: str, options: dict[str, object]
) -> None:
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{ZONE_DIR}"\n'
        f'state_dir = "{tmp_path / "state"}"\nnsid = "{NSID.decode()}"\n'
    )
    server = serve("--config", str(config))
    query = _query(name, rdtype, **options)
    expected = dns.query.udp(query, "127.0.0.1", port=nsd_port, timeout=2, ignore_trailing=True)
    got = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    assert (got.rcode(), bool(got.flags & dns.flags.TC), _nsid_of(got)) == (
        expected.rcode(),
        bool(expected.flags & dns.flags.TC),
        _nsid_of(expected),
    )
    assert _nsid_of(got) == NSID


@pytest.mark.interop
def test_dig_shows_the_identifier(serve: Serve, tmp_path: Path) -> None:
    dig = shutil.which("dig")
    if dig is None:
        pytest.skip("dig not installed (./dev test installs dnsutils)")
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{ZONE_DIR}"\n'
        f'state_dir = "{tmp_path / "state"}"\nnsid = "0x{NSID.hex()}"\n'
    )
    server = serve("--config", str(config))
    result = subprocess.run(
        [dig, "@127.0.0.1", "-p", str(server.dns_port), "+nsid", "+norec", "diff.test", "SOA"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert '; NSID: 6e 73 31 2e 65 78 61 6d 70 6c 65 ("ns1.example")' in result.stdout

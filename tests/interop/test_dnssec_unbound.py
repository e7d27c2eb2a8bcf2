"""A zone dynmx signs (`[[zone]] dnssec = true`) through Debian's Unbound, validating with
the zone's DS (what `dynmx dnssec ds` prints) as its only trust anchor and dynmx as its only
path to the zone: pool MX, hint, address, NODATA and NXDOMAIN answers come back with AD
(RFC 4035 3.2.3, 4.9.3); a wrong DS gives SERVFAIL; `delv` and `kdig +dnssec` agree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from tests.conftest import ROOT, RunningServer, start_server, write_config
from tests.signing import POOL_ZONE as ZONE
from tests.unbound import Unbound, running_unbound

pytestmark = pytest.mark.skipif(
    shutil.which("unbound") is None or shutil.which("unbound-checkconf") is None,
    reason="unbound is not installed (apt-get install unbound)",
)

SIGNED = """[[zone]]
name = "example.test."
dnssec = true
[[pool]]
name = "rr.example.test."
strategy = "round-robin"
[[pool.member]]
host = "mx1.example.test."
preference = 10
probe = "none"
[[pool.member]]
host = "mx2.example.test."
preference = 10
probe = "none"
[[pool.hint]]
label = "urgent"
order = ["mx2.example.test."]
"""
POOL = "rr.example.test."
HINT = "urgent._hint.rr.example.test."


def _dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=30, cwd=ROOT
    )


class Lab:
    """dynmx serving the signed zone, its DS, and an Unbound trusting that DS."""

    def __init__(self, server: RunningServer, ds: str, unbound: Unbound, tmp: Path) -> None:
        self.server, self.ds, self.unbound, self.tmp = server, ds, unbound, tmp

    def resolve(self, name: str, qtype: str) -> dns.message.Message:
        """A stub's question to Unbound: RD, DO=1 (RFC 4035 3.2.1)."""
        query = dns.message.make_query(name, qtype, want_dnssec=True, use_edns=0, payload=1232)
        return dns.query.tcp(query, "127.0.0.1", port=self.unbound.port, timeout=5)

    def direct(self, name: str, qtype: str) -> dns.message.Message:
        query = dns.message.make_query(name, qtype, want_dnssec=True, use_edns=0, payload=1232)
        return dns.query.tcp(query, "127.0.0.1", port=self.server.dns_port, timeout=3)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("dnssec-unbound")
    config = write_config(tmp, ZONE, SIGNED)
    server = start_server("--config", str(config))
    try:
        run = _dynmx("dnssec", "ds", "example.test", "--config", str(config))
        assert run.returncode == 0, run.stderr
        ds = run.stdout.strip()
        assert ds.startswith("example.test. IN DS "), ds
        with running_unbound(tmp / "unbound", "example.test.", ds, server.dns_port) as unbound:
            yield Lab(server, ds, unbound, tmp)
    finally:
        server.stop()


def _validated(lab: Lab, reply: dns.message.Message, rcode: int) -> None:
    assert reply.rcode() == rcode, f"{dns.rcode.to_text(reply.rcode())}\n{reply}\n{lab.unbound.log_text()}"
    assert reply.flags & dns.flags.AD, f"AD not set:\n{reply}\n{lab.unbound.log_text()}"


def _mx(reply: dns.message.Message, owner: str) -> tuple[str, ...]:
    rrset = reply.find_rrset(reply.answer, dns.name.from_text(owner), dns.rdataclass.IN, dns.rdatatype.MX)
    return tuple(f"{rd.preference} {rd.exchange}" for rd in rrset)


def test_rfc4035_pool_mx_through_unbound_is_authenticated_and_still_rotates(lab: Lab) -> None:
    """Every pool answer Unbound gives has AD, is one of the variants dynmx serves, and the
    first host still changes (Unbound keeps nothing past the answer: cache-max-ttl 0)."""
    variants = {_mx(lab.direct(POOL, "MX"), POOL) for _ in range(8)}
    firsts = set()
    for _ in range(8):
        reply = lab.resolve(POOL, "MX")
        _validated(lab, reply, dns.rcode.NOERROR)
        got = _mx(reply, POOL)
        assert got in variants, f"{got} is none of {variants}"
        firsts.add(got[0].split()[1])
    assert firsts == {"mx1.example.test.", "mx2.example.test."}


def test_rfc4035_hint_name_mx_through_unbound_is_authenticated(lab: Lab) -> None:
    """A pool's hint name (its order laid over the zone and signed) validates in Unbound."""
    reply = lab.resolve(HINT, "MX")
    _validated(lab, reply, dns.rcode.NOERROR)
    assert _mx(reply, HINT)[0].endswith("mx2.example.test.")


def test_rfc4035_member_address_through_unbound_is_authenticated(lab: Lab) -> None:
    reply = lab.resolve("mx1.example.test.", "A")
    _validated(lab, reply, dns.rcode.NOERROR)
    owner = dns.name.from_text("mx1.example.test.")
    rrset = reply.find_rrset(reply.answer, owner, dns.rdataclass.IN, dns.rdatatype.A)
    assert [rd.address for rd in rrset] == ["192.0.2.1"]


@pytest.mark.parametrize(
    "name,qtype",
    [("mx1.example.test.", "AAAA"), ("mx1.example.test.", "TLSA"), ("example.test.", "TLSA")],
)
def test_rfc4035_3_1_3_1_nodata_through_unbound_is_authenticated(lab: Lab, name: str, qtype: str) -> None:
    """An existing name without the type: NOERROR, empty answer, AD (the NSEC proves it)."""
    reply = lab.resolve(name, qtype)
    _validated(lab, reply, dns.rcode.NOERROR)
    assert not reply.answer


@pytest.mark.parametrize("name,qtype", [("nope.example.test.", "A"), ("_25._tcp.mx1.example.test.", "TLSA")])
def test_rfc4035_3_1_3_2_nxdomain_through_unbound_is_authenticated(lab: Lab, name: str, qtype: str) -> None:
    """A name that does not exist: NXDOMAIN with AD. For DANE (RFC 7672 2.2) the TLSA name of
    an MX host is such a name: an authenticated denial, so a sender knows there is no TLSA."""
    reply = lab.resolve(name, qtype)
    _validated(lab, reply, dns.rcode.NXDOMAIN)
    assert not reply.answer


def test_rfc4035_5_wrong_ds_as_anchor_makes_unbound_servfail(lab: Lab) -> None:
    """The negative control: with a DS that matches no key of the zone, Unbound refuses the
    zone's answers (SERVFAIL), so the AD seen above is Unbound's verdict on dynmx's keys."""
    owner, klass, rtype, tag, algorithm, digest_type, digest = lab.ds.split()
    wrong = f"{owner} {klass} {rtype} {tag} {algorithm} {digest_type} {digest[::-1]}"
    assert wrong != lab.ds
    with running_unbound(lab.tmp / "unbound-wrong", "example.test.", wrong, lab.server.dns_port) as bad:
        query = dns.message.make_query(POOL, "MX", want_dnssec=True, use_edns=0, payload=1232)
        reply = dns.query.tcp(query, "127.0.0.1", port=bad.port, timeout=10)
        assert reply.rcode() == dns.rcode.SERVFAIL and not reply.answer, str(reply)
        assert "validation failure <rr.example.test. MX IN>: DS hash mismatches key" in bad.log_text()


POSITIVE, NEGATIVE = "; fully validated", "negative response, fully validated"
CHECKS = [
    (POOL, "MX", "NOERROR", POSITIVE),
    (HINT, "MX", "NOERROR", POSITIVE),
    ("mx1.example.test.", "A", "NOERROR", POSITIVE),
    ("mx1.example.test.", "TLSA", "NOERROR", NEGATIVE),
    ("_25._tcp.mx1.example.test.", "TLSA", "NXDOMAIN", NEGATIVE),
    ("nope.example.test.", "A", "NXDOMAIN", NEGATIVE),
]


@pytest.mark.parametrize("name,qtype,rcode,verdict", CHECKS)
def test_rfc4035_delv_against_dynmx_agrees(lab: Lab, name: str, qtype: str, rcode: str, verdict: str) -> None:
    """BIND's validator, asking dynmx directly and trusting only the same DS, calls each of
    these fully validated, as Unbound did."""
    delv = shutil.which("delv")
    if delv is None:
        pytest.skip("delv is not installed (apt-get install bind9-dnsutils)")
    _, _, _, tag, algorithm, digest_type, digest = lab.ds.split()
    anchor = lab.tmp / "delv-anchor.conf"
    anchor.write_text(
        f'trust-anchors {{\n "example.test." static-ds {tag} {algorithm} {digest_type} "{digest}";\n}};\n'
    )
    port = str(lab.server.dns_port)
    args = [delv, "-a", str(anchor), "+root=example.test.", "@127.0.0.1", "-p", port, name, qtype]
    run = subprocess.run(args, capture_output=True, text=True, timeout=20)
    assert verdict in run.stdout + run.stderr, f"{name} {qtype}: {run.stdout}{run.stderr}"
    unbound = lab.resolve(name, qtype)
    _validated(lab, unbound, dns.rcode.from_text(rcode))


@pytest.mark.parametrize("name,qtype,rcode", [check[:3] for check in CHECKS])
def test_rfc4035_kdig_through_unbound_and_dynmx_agree(lab: Lab, name: str, qtype: str, rcode: str) -> None:
    """Knot's kdig +dnssec: Unbound's answer carries AD and the same rcode dynmx gives, and
    dynmx's own answer carries the RRSIGs (an authoritative server never sets AD itself)."""
    kdig = shutil.which("kdig")
    if kdig is None:
        pytest.skip("kdig is not installed (apt-get install knot-dnsutils)")

    def ask(port: int) -> str:
        args = [kdig, "+dnssec", "+tcp", "+timeout=5", "+retry=0", "@127.0.0.1", "-p", str(port), name, qtype]
        run = subprocess.run(args, capture_output=True, text=True, timeout=20)
        assert run.returncode == 0, run.stdout + run.stderr
        return run.stdout

    resolved = ask(lab.unbound.port)
    assert f"status: {rcode}" in resolved and " ad" in resolved.split("Flags:")[1].split(";")[0], resolved
    served = ask(lab.server.dns_port)
    assert f"status: {rcode}" in served and "RRSIG" in served, served

"""NSD and Knot as secondaries of a zone dynmx signs (issue 24): they transfer the signed
zone and serve it validly, before and after an edit that dynmx NOTIFYs (RFC 1996) and they
then transfer again (an IXFR of a signed zone is answered with the full zone, RFC 1995 4).

A secondary serves the zone as transferred: the pool name's MX there is the static MX of the
zone file, signed, never the pool's rotation (that lives only in dynmx's compiled answers).
Validation is BIND's `delv` asking each secondary directly with the DS of dynmx's key as
its only trust anchor (RFC 4035 5), and dnspython's `dns.dnssec.validate` on the MX RRset.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.node
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from tests.conftest import EDITS, TEST_SECRET, RunningServer, start_server, wait_until
from tests.knot import Knot, KnotUnavailable
from tests.nsd import Nsd, NsdUnavailable, free_port
from tests.signing import POOL_ZONE as ZONE

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        shutil.which("delv") is None, reason="delv is not installed (apt-get install bind9-dnsutils)"
    ),
]

ORIGIN = dns.name.from_text("example.test.")
POOL = dns.name.from_text("rr.example.test.")
KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})
POOL_CONFIG = """dnssec = true
allow_transfer = ["127.0.0.0/8"]
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
"""
STATIC_MX = {"10 mx1.example.test.", "20 mx2.example.test."}  # the zone file's rr MX
POSITIVE, NEGATIVE = "; fully validated", "negative response, fully validated"
# (name, type) -> what delv must conclude from the secondary's answers.
CHECKS = {
    ("example.test.", "SOA"): POSITIVE,
    ("rr.example.test.", "MX"): POSITIVE,
    ("mx1.example.test.", "A"): POSITIVE,
    ("nope.example.test.", "A"): NEGATIVE,  # NXDOMAIN
    ("mx1.example.test.", "TLSA"): NEGATIVE,  # NODATA
    ("_25._tcp.mx1.example.test.", "TLSA"): NEGATIVE,  # NXDOMAIN: DANE's question (RFC 7672 2.2)
}


@dataclass
class Lab:
    dynmx: RunningServer
    nsd: Nsd
    knot: Knot
    anchor: Path
    keys: dict[dns.name.Name, dns.node.Node | dns.rdataset.Rdataset]
    denial: str

    @property
    def secondaries(self) -> dict[str, int]:
        return {"nsd": self.nsd.port, "knot": self.knot.port}


def _ask(port: int, name: str | dns.name.Name, rdtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True, use_edns=0, payload=1232)
    return dns.query.tcp(query, "127.0.0.1", port=port, timeout=3)


def _serial(port: int) -> int | None:
    try:
        reply = _ask(port, ORIGIN, "SOA")
    except (OSError, EOFError, dns.exception.DNSException):
        return None
    return int(reply.answer[0][0].serial) if reply.answer and reply.rcode() == dns.rcode.NOERROR else None


def _anchor(dnskey: dns.rdataset.Rdataset, path: Path) -> Path:
    """A delv trust anchor: the DS (SHA-256) of the key dynmx serves, as its parent would hold."""
    ds = dns.dnssec.make_ds(ORIGIN, next(iter(dnskey)), "SHA256")
    path.write_text(
        f'trust-anchors {{\n "example.test." static-ds {ds.key_tag} {ds.algorithm} {ds.digest_type} '
        f'"{ds.digest.hex()}";\n}};\n'
    )
    return path


@pytest.fixture
def lab(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """dynmx signing the zone (NSEC, or `request.param` as `denial`), NSD and Knot its
    secondaries, and the trust anchor."""
    denial = getattr(request, "param", "nsec")
    dns_port, nsd_port, knot_port = (free_port() for _ in range(3))
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{dns_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        + EDITS
        + f'notify = ["127.0.0.1:{nsd_port}", "127.0.0.1:{knot_port}"]\n'
        + POOL_CONFIG.replace("dnssec = true\n", f'dnssec = true\ndenial = "{denial}"\n', 1)
    )
    secondary = tmp_path / "nsd"
    secondary.mkdir()
    nsd_options = {
        "example.test": [f"request-xfr: 127.0.0.1@{dns_port} NOKEY", "allow-notify: 127.0.0.1 NOKEY"]
    }
    knot_clauses = (
        f"remote:\n  - id: primary\n    address: 127.0.0.1@{dns_port}\n"
        "acl:\n  - id: notify_from_primary\n    address: 127.0.0.1\n    action: notify\n"
        "zone:\n  - domain: example.test.\n    master: primary\n    acl: notify_from_primary\n"
    )
    try:
        nsd = Nsd(secondary, {"example.test": "example.test.zone"}, zone_options=nsd_options, port=nsd_port)
        knot = Knot(knot_clauses, port=knot_port)
    except (NsdUnavailable, KnotUnavailable) as error:
        pytest.skip(str(error))
    server = start_server("--config", str(config))
    try:
        reply = _ask(dns_port, ORIGIN, "DNSKEY")
        dnskey = reply.find_rrset(reply.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        nsd.start()
        knot.start()
        yield Lab(server, nsd, knot, _anchor(dnskey, tmp_path / "anchor.conf"), {ORIGIN: dnskey}, denial)
    finally:
        nsd.stop()
        knot.stop()
        server.stop()


def _caught_up(lab: Lab) -> int:
    """Both secondaries serve dynmx's serial (bounded wait); returns it."""
    serial = _serial(lab.dynmx.dns_port)
    assert serial is not None
    try:
        wait_until(lambda: all(_serial(port) == serial for port in lab.secondaries.values()), timeout=20)
    except AssertionError as error:
        got = {who: _serial(port) for who, port in lab.secondaries.items()}
        raise AssertionError(f"serial {serial} not on {got}\n{lab.nsd.log()}\n{lab.knot.log()}") from error
    return serial


def _delv(lab: Lab, port: int, name: str, qtype: str) -> str:
    args = ["delv", "-a", str(lab.anchor), "+root=example.test.", "@127.0.0.1", "-p", str(port), name, qtype]
    run = subprocess.run(args, capture_output=True, text=True, timeout=20)
    return run.stdout + run.stderr


def _all_validate(lab: Lab, checks: dict[tuple[str, str], str]) -> None:
    for who, port in lab.secondaries.items():
        for (name, qtype), verdict in checks.items():
            said = _delv(lab, port, name, qtype)
            assert verdict in said, f"{who} {name} {qtype}:\n{said}"


def _static_mx(lab: Lab, port: int, asks: int = 6) -> set[str]:
    """The MX RRsets a server gives for the pool name over `asks` DO=1 queries (each validated)."""
    seen: set[str] = set()
    for _ in range(asks):
        reply = _ask(port, POOL, "MX")
        mx = reply.find_rrset(reply.answer, POOL, dns.rdataclass.IN, dns.rdatatype.MX)
        sig = reply.find_rrset(reply.answer, POOL, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.MX)
        dns.dnssec.validate(mx, sig, lab.keys)
        seen.add(" | ".join(sorted(rd.to_text() for rd in mx)))
    return seen


@pytest.mark.parametrize("lab", ["nsec", "nsec3"], indirect=True)
def test_rfc4035_nsd_and_knot_secondaries_serve_the_signed_zone_validly(lab: Lab) -> None:
    """SOA, the pool name's MX, a member's address, NXDOMAIN and TLSA NODATA from each
    secondary: all fully validated by delv trusting only the DS of dynmx's key, with the
    zone denied by NSEC and by NSEC3 (RFC 5155; no salt, no extra iterations)."""
    _caught_up(lab)
    _all_validate(lab, CHECKS)
    chain = dns.rdatatype.from_text(lab.denial.upper())
    for port in lab.secondaries.values():
        denied = _ask(port, "nope.example.test.", "A")
        assert chain in {rrset.rdtype for rrset in denied.authority}, denied


def test_secondaries_serve_the_pool_name_with_the_static_mx_of_the_zone_file(lab: Lab) -> None:
    """dynmx rotates the pool's first place; NSD and Knot serve the zone file's MX, signed by
    dynmx, every time (what a transfer carries is the zone, not the policy)."""
    _caught_up(lab)
    static = {" | ".join(sorted(STATIC_MX))}
    assert _static_mx(lab, lab.nsd.port) == static
    assert _static_mx(lab, lab.knot.port) == static
    assert len(_static_mx(lab, lab.dynmx.dns_port)) == 2  # the rotation: 10 mx1/20 mx2, 10 mx2/20 mx1


def test_rfc1996_an_edit_is_notified_transferred_and_served_signed_by_both_secondaries(lab: Lab) -> None:
    """An UPDATE to dynmx (RFC 2136) moves the serial; the NOTIFY brings both secondaries to
    it (they ask IXFR and get the full signed zone); the new name and the NSEC chain that now
    holds it validate there, and so does everything checked before."""
    before = _caught_up(lab)
    update = dns.update.UpdateMessage(
        "example.test.", keyring=KEYRING, keyname=dns.name.from_text("ops-key.")
    )
    update.add("new", 300, "A", "192.0.2.44")
    update.delete("www")
    reply = dns.query.tcp(update, "127.0.0.1", port=lab.dynmx.dns_port, timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR, reply
    after = _caught_up(lab)
    assert after > before
    _all_validate(
        lab,
        {
            **CHECKS,
            ("new.example.test.", "A"): POSITIVE,
            ("new.example.test.", "TLSA"): NEGATIVE,
            ("www.example.test.", "A"): NEGATIVE,  # deleted: now NXDOMAIN
        },
    )
    for port in lab.secondaries.values():
        assert _ask(port, "www.example.test.", "A").rcode() == dns.rcode.NXDOMAIN
    ixfr = [
        line for line in lab.dynmx.log_text().splitlines() if "event=transfer" in line and "kind=IXFR" in line
    ]
    assert len(ixfr) >= 2, "both secondaries ask IXFR after the NOTIFY (answered with the full zone)"
    knot = [line.strip() for line in lab.knot.lines if "XFR" in line]
    print(f"\nserial {before} -> {after}\nknot: {knot}\nnsd: {lab.nsd.log()}")

"""Pre-signed zones over real sockets: validated by BIND's delv, transferred with their
signatures, and followed as a secondary of a signing Knot (RFC 4035 3.1, RFC 5936)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import dns.zone
import pytest

from tests.conftest import RunningServer, wait_until, write_config
from tests.knot import Knot, KnotUnavailable
from tests.nsd import free_port
from tests.signing import SignerUnavailable, sign_zone

pytestmark = pytest.mark.interop

Serve = Callable[..., RunningServer]
TRANSFER = '[[zone]]\nname = "example.test."\nallow_transfer = ["127.0.0.0/8"]\n'
ORIGIN = "example.test."
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@        SOA   ns1 hostmaster 100 7200 3600 1209600 300
@        NS    ns1
@        MX    10 mx1
ns1      A     127.0.0.1
mx1      A     192.0.2.25
www      A     192.0.2.80
a.ent    A     192.0.2.90
*.wc     A     192.0.2.100
secure   NS    ns.secure
secure   DS    12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ns.secure A    192.0.2.201
insecure NS    ns.example.net.
"""
# Questions and what a validator must conclude from dynmx's answers to them.
VALIDATED = {
    ("www.example.test", "A"): "; fully validated",
    ("x.wc.example.test", "A"): "; fully validated",
    ("secure.example.test", "DS"): "; fully validated",
    ("nope.example.test", "A"): "negative response, fully validated",
    ("www.example.test", "MX"): "negative response, fully validated",
    ("ent.example.test", "A"): "negative response, fully validated",
    ("x.wc.example.test", "TXT"): "negative response, fully validated",
    ("insecure.example.test", "DS"): "negative response, fully validated",
}


def _signed_zone(tmp_path: Path, nsec3: bool) -> str:
    """The text of ZONE signed by ldns-signzone (made in `tmp_path`, where the server's
    directory `server` is made too)."""
    (tmp_path / "server").mkdir()
    (tmp_path / "plain.zone").write_text(ZONE)
    try:
        sign_zone(tmp_path / "plain.zone", ORIGIN, tmp_path / "signed.zone", tmp_path / "keys", nsec3=nsec3)
    except SignerUnavailable as error:
        pytest.skip(str(error))
    return (tmp_path / "signed.zone").read_text()


def _trust_anchor(zone_text: str, path: Path) -> Path:
    """A delv anchor file holding the zone's KSK (DNSKEY flags 257)."""
    zone = dns.zone.from_text(zone_text, origin=ORIGIN, relativize=False)
    keys = zone.get_rdataset(ORIGIN, dns.rdatatype.DNSKEY)
    assert keys is not None
    ksk = next(key for key in keys if key.flags == 257)
    public = ksk.to_text().split(maxsplit=3)[3].replace(" ", "")
    path.write_text(f'trust-anchors {{\n "{ORIGIN}" static-key 257 3 {ksk.algorithm} "{public}";\n}};\n')
    return path


@pytest.mark.parametrize("nsec3", [False, True], ids=["nsec", "nsec3"])
def test_rfc4035_do1_answers_of_a_signed_zone_validate_with_delv(
    serve: Serve, tmp_path: Path, nsec3: bool
) -> None:
    """Positive, wildcard, DS, NXDOMAIN, NODATA, empty non-terminal, wildcard NODATA and an
    insecure delegation's missing DS: BIND's validator, trusting only the zone's KSK,
    calls each answer fully validated."""
    delv = shutil.which("delv")
    if delv is None:
        pytest.skip("delv is not installed (apt-get install bind9-dnsutils)")
    text = _signed_zone(tmp_path, nsec3)
    anchor = _trust_anchor(text, tmp_path / "anchor.conf")
    server = serve("--config", str(write_config(tmp_path / "server", text)))
    for (name, qtype), verdict in VALIDATED.items():
        run = subprocess.run(
            [
                delv,
                "-a",
                str(anchor),
                f"+root={ORIGIN}",
                "@127.0.0.1",
                "-p",
                str(server.dns_port),
                name,
                qtype,
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert verdict in run.stdout + run.stderr, f"{name} {qtype}: {run.stdout}{run.stderr}"


def test_rfc5936_axfr_of_a_signed_zone_carries_its_dnssec_records(serve: Serve, tmp_path: Path) -> None:
    """A secondary of dynmx gets the signatures and the NSEC3 chain with the data."""
    text = _signed_zone(tmp_path, nsec3=True)
    server = serve("--config", str(write_config(tmp_path / "server", text, TRANSFER)))
    got = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", ORIGIN, port=server.dns_port, timeout=5))
    original = dns.zone.from_text(text, origin=ORIGIN)
    assert got == original


def _knot_signing_primary(dynmx_port: int) -> Knot:
    clauses = (
        "acl:\n  - id: transfer\n    address: 127.0.0.0/8\n    action: transfer\n"
        "remote:\n  - id: dynmx\n"
        f"    address: 127.0.0.1@{dynmx_port}\n"
        "zone:\n  - domain: example.test.\n    dnssec-signing: on\n    acl: transfer\n    notify: dynmx\n"
    )
    try:
        return Knot(clauses, zone_files={"example.test.zone": ZONE})
    except KnotUnavailable as error:
        pytest.skip(str(error))


def _ask(port: int, name: str, qtype: str) -> dns.message.Message:
    msg = dns.message.make_query(name, qtype, want_dnssec=True, use_edns=0, payload=1232)
    return dns.query.tcp(msg, "127.0.0.1", port=port, timeout=3)


def _sections(reply: dns.message.Message) -> tuple[set[str], set[str]]:
    """Answer and authority, less the apex NS of a positive answer (Knot answers minimally)."""
    apex_ns = {dns.rdatatype.NS}
    authority = {r.to_text() for r in reply.authority if r.rdtype not in apex_ns and r.covers not in apex_ns}
    return {r.to_text() for r in reply.answer}, authority


def test_dynmx_as_secondary_of_a_signing_knot_answers_do1_like_its_primary(
    serve: Serve, tmp_path: Path
) -> None:
    """Knot signs the zone and is followed by dynmx: AXFR at start, then a change made with
    knotc is signed by Knot, NOTIFYed and transferred with its new RRSIGs and NSEC records;
    each DO=1 answer is the primary's."""
    dynmx_port = free_port()
    with _knot_signing_primary(dynmx_port) as knot:
        knot.start(wait_zone=ORIGIN)
        wait_until(lambda: bool(_ask(knot.port, ORIGIN, "DNSKEY").answer), timeout=10)
        zones = tmp_path / "zones"
        zones.mkdir()
        config = tmp_path / "dynmx.toml"
        config.write_text(
            f'[server]\nlisten = ["127.0.0.1:{dynmx_port}"]\nzones_dir = "{zones}"\n'
            f'state_dir = "{tmp_path / "state"}"\n'
            f'[[zone]]\nname = "{ORIGIN}"\nprimary = "127.0.0.1:{knot.port}"\n'
        )
        server = serve("--config", str(config))
        questions = [("www.example.test.", "A"), ("nope.example.test.", "A"), ("www.example.test.", "MX")]

        last: list[str] = []

        def same(extra: list[tuple[str, str]]) -> bool:
            for name, qtype in questions + extra:
                ours, theirs = _ask(server.dns_port, name, qtype), _ask(knot.port, name, qtype)
                if (not ours.answer and not ours.authority) or _sections(ours) != _sections(theirs):
                    last[:] = [f"{name} {qtype}:\ndynmx {ours}\nknot {theirs}\n{server.log_text()}"]
                    return False
            return True

        _wait(lambda: same([]), last, 15)
        www = _ask(server.dns_port, "www.example.test.", "A")
        assert [r.rdtype for r in www.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]
        knot.control("zone-begin", ORIGIN)
        knot.control("zone-set", ORIGIN, "new", "300", "A", "192.0.2.44")
        knot.control("zone-commit", ORIGIN)
        _wait(lambda: same([("new.example.test.", "A"), ("nope.example.test.", "MX")]), last, 20)
        new = _ask(server.dns_port, "new.example.test.", "A")
        assert [r.rdtype for r in new.answer] == [dns.rdatatype.A, dns.rdatatype.RRSIG]
        assert new.ednsflags & dns.flags.DO


def _wait(check: Callable[[], bool], last: list[str], timeout: float) -> None:
    try:
        wait_until(check, timeout=timeout)
    except AssertionError:
        raise AssertionError("dynmx and Knot still differ: " + "".join(last)) from None

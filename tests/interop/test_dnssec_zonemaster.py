"""Zonemaster on a zone dynmx signs, delegated with its DS, against NSD serving the same
signed zone: Zonemaster's findings for dynmx are a subset of those for NSD (issue 24).

The setup is `tests/interop/test_zonemaster.py`'s (no port option, so everything is on port 53 of
loopback addresses): NSD serves a fake root and `test.` on 127.0.53.1, and `test.` holds the
DS of `mail.test.` (SHA-256 of the DNSKEY dynmx serves, as a parent given `dynmx dnssec ds`
would). `mail.test.` is served on 127.0.53.2 and .3, first by dynmx signing it
(`dnssec = true`), then by NSD serving the AXFR of dynmx's signed copy: the very same records
and signatures, so any difference is in how the zone is served. Transfers are allowed with
a TSIG key only, so Zonemaster's AXFR test sees both servers refuse it.

Zonemaster runs every module, DNSSEC included; findings at NOTICE and above are compared by
(test case, tag), and both sets are printed (`pytest -s`) for the record. With a round-robin
pool at the apex dynmx also gets ZONE09 (its two servers, asked once each, give different
MX rotations), which NSD serving the static transferred MX cannot: the one allowed extra.
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.dnssec
import dns.message
import dns.name
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.tsigkeyring
import dns.zone
import pytest

from tests.conftest import start_server
from tests.interop.test_zonemaster import (
    MAIL_ZONE,
    NAME_SERVERS,
    ROOT_SERVER,
    ROOT_ZONE,
    ROUND_ROBIN_POOL,
    TEST_ZONE,
    _skip_reason,
)
from tests.nsd import Nsd, NsdUnavailable

pytestmark = pytest.mark.interop

ORIGIN = dns.name.from_text("mail.test.")
XFR_SECRET = base64.b64encode(b"zonemaster-xfr-test-secret-0001").decode()
KEYRING = dns.tsigkeyring.from_text({"xfr-key.": ("hmac-sha256", XFR_SECRET)})
# What both servers get from the environment (loopback, IPv4 only; see tests/interop/test_zonemaster.py).
ENVIRONMENT = {
    ("ADDRESS01", "NAMESERVER_IP_PRIVATE_NETWORK"),
    ("ADDRESS02", "NAMESERVER_IP_WITHOUT_REVERSE"),
    ("DELEGATION01", "NO_IPV6_NS_CHILD"),
    ("DELEGATION01", "NO_IPV6_NS_DEL"),
}
# Findings dynmx may have that NSD has not, each with its reason; only for a zone with a pool.
ALLOWED_WITH_POOL = {
    ("ZONE09", "Z09_INCONSISTENT_MX_DATA"): "a round-robin pool answers each query with the next "
    "rotation, so two name servers asked once each give different MX sets (by design, as in "
    "tests/interop/test_zonemaster.py); NSD serves the transferred zone's static MX",
}


def _signing_config(tmp_path: Path, denial: str, extra: str = "") -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "mail.test.zone").write_text(MAIL_ZONE)
    listen = ", ".join(f'"{address}:53"' for address in NAME_SERVERS)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = [{listen}]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[key]]\nname = "xfr-key."\nsecret = "{XFR_SECRET}"\n'
        f'[[zone]]\nname = "mail.test."\ndnssec = true\ndenial = "{denial}"\n'
        'allow_transfer = ["xfr-key."]\n' + extra
    )
    return config


def _ds(server: str) -> str:
    """The DS of the zone's DNSKEY (digest type 2) as a `test.` zone line."""
    query = dns.message.make_query(ORIGIN, dns.rdatatype.DNSKEY, want_dnssec=True)
    reply = dns.query.tcp(query, server, port=53, timeout=5)
    dnskey = reply.find_rrset(reply.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    assert len(dnskey) == 1, reply
    return f"mail DS {dns.dnssec.make_ds(ORIGIN, next(iter(dnskey)), 'SHA256')}\n"


def _signed_copy(server: str, path: Path) -> Path:
    """The zone as dynmx serves it, by AXFR with the TSIG key, written for NSD."""
    xfr = dns.query.xfr(
        server, ORIGIN, port=53, timeout=10, keyring=KEYRING, keyname="xfr-key.", relativize=False
    )
    zone = dns.zone.from_xfr(xfr, relativize=False)
    assert zone.get_rdataset(ORIGIN, dns.rdatatype.DNSKEY) is not None
    zone.to_file(str(path), relativize=False)
    return path


@contextlib.contextmanager
def _parent(tmp_path: Path, ds: str) -> Iterator[Path]:
    """NSD serving the root and `test.` (with the DS) on ROOT_SERVER:53; yields the hints file."""
    zones = tmp_path / "parent"
    zones.mkdir()
    (zones / "root.zone").write_text(ROOT_ZONE)
    (zones / "test.zone").write_text(TEST_ZONE + ds)
    hints = tmp_path / "hints"
    hints.write_text(f". 3600000 NS a.root-servers.test.\na.root-servers.test. 3600000 A {ROOT_SERVER}\n")
    with Nsd(zones, {".": "root.zone", "test.": "test.zone"}, port=53, hosts=(ROOT_SERVER,)):
        yield hints


def _findings(hints: Path) -> dict[tuple[str, str], str]:
    """(test case, tag) -> level of every finding at INFO and above, IPv4 only."""
    args = ["zonemaster-cli", "mail.test", f"--hints={hints}", "--no-ipv6", "--json", "--level=INFO"]
    result = subprocess.run([*args, "--no-progress"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return {(entry["testcase"], entry["tag"]): entry["level"] for entry in json.loads(result.stdout)}


def _notable(findings: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """The findings at NOTICE and above."""
    return {key: level for key, level in findings.items() if level != "INFO"}


def _show(who: str, findings: dict[tuple[str, str], str]) -> str:
    return f"{who}: " + ", ".join(f"{case}/{tag}={level}" for (case, tag), level in sorted(findings.items()))


def _seen_signed(findings: dict[tuple[str, str], str], denial: str) -> None:
    """The DNSSEC module found the zone signed: algorithm, denial chain, CDS/CDNSKEY."""
    chain = "DS10_HAS_NSEC3" if denial == "nsec3" else "DS10_HAS_NSEC"
    wanted = {("DNSSEC05", "ALGORITHM_OK"), ("DNSSEC10", chain), ("DNSSEC15", "DS15_HAS_CDS_AND_CDNSKEY")}
    assert wanted <= set(findings), _show("got", findings)
    assert ("UNSPECIFIED", "NOT_SIGNED") not in findings


@pytest.mark.parametrize("denial,pool", [("nsec", False), ("nsec3", False), ("nsec", True)])
def test_zonemaster_finds_in_a_zone_dynmx_signs_only_what_it_finds_with_nsd_serving_it_presigned(
    tmp_path: Path, denial: str, pool: bool
) -> None:
    """All modules, DNSSEC01-18 included: dynmx's findings are NSD's (with a round-robin
    pool at the apex, plus ALLOWED_WITH_POOL), none of them in the DNSSEC module above
    NOTICE, and the zone is seen as signed (no NOT_SIGNED)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    config = _signing_config(tmp_path, denial, ROUND_ROBIN_POOL if pool else "")
    server = start_server("--config", str(config))
    try:
        ds = _ds(NAME_SERVERS[0])
        presigned = _signed_copy(NAME_SERVERS[0], tmp_path / "presigned.zone")
        with _parent(tmp_path, ds) as hints:
            dynmx = _findings(hints)
            server.stop()
            try:
                nsd = Nsd(tmp_path, {"mail.test.": presigned.name}, port=53, hosts=NAME_SERVERS)
            except NsdUnavailable as error:
                pytest.skip(str(error))
            with nsd:
                reference = _findings(hints)
    finally:
        server.stop()
    _seen_signed(dynmx, denial)
    _seen_signed(reference, denial)
    dynmx, reference = _notable(dynmx), _notable(reference)
    print(f"\ndenial={denial} pool={pool}\n{_show('dynmx', dynmx)}\n{_show('nsd', reference)}")
    assert set(reference) >= ENVIRONMENT, _show("nsd", reference)
    extra = set(dynmx) - set(reference) - (set(ALLOWED_WITH_POOL) if pool else set())
    assert not extra, f"{extra}\n{_show('dynmx', dynmx)}\n{_show('nsd', reference)}"
    dnssec_above_notice = {k: v for k, v in dynmx.items() if k[0].startswith("DNSSEC") and v != "NOTICE"}
    assert not dnssec_above_notice, _show("dynmx", dynmx)


def test_zonemaster_flags_a_parent_ds_that_matches_no_key_of_the_zone_dynmx_signs(tmp_path: Path) -> None:
    """The negative control: the same run with the DS digest reversed in `test.` gets a
    DNSSEC finding above NOTICE, so the clean DNSSEC results above are Zonemaster's verdict
    on dynmx's key and signatures."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    server = start_server("--config", str(_signing_config(tmp_path, "nsec")))
    try:
        owner, rtype, tag, algorithm, digest_type, digest = _ds(NAME_SERVERS[0]).split()
        wrong = f"{owner} {rtype} {tag} {algorithm} {digest_type} {digest[::-1]}\n"
        with _parent(tmp_path, wrong) as hints:
            findings = _notable(_findings(hints))
    finally:
        server.stop()
    dnssec = {key for key, level in findings.items() if key[0].startswith("DNSSEC") and level != "NOTICE"}
    assert dnssec, _show("dynmx with a wrong DS", findings)
    print(f"\n{_show('dynmx with a wrong DS', findings)}")

"""Sign test zones with real signers: ldns-signzone (Debian's ldnsutils) and Knot DNS.

The signed zones are what an operator would hand dynmx: made by a signer that is not
dnspython, so a test of serving them is not dnspython checked against itself. Keys are
ECDSA P-256 (algorithm 13), a KSK and a ZSK per zone, made in a directory of their own so
that a zone directory holds only zone files.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import dns.query
import dns.rdatatype
import dns.zone

from tests.knot import Knot, KnotUnavailable

TIMEOUT = 60.0


class SignerUnavailable(RuntimeError):
    """ldns-keygen/ldns-signzone are not installed (apt-get install ldnsutils)."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SignerUnavailable(f"{name} is not installed (apt-get install ldnsutils)")
    return path


def _run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr}{proc.stdout}")
    return proc.stdout.strip()


def sign_zone(
    source: Path, origin: str, target: Path, keydir: Path, nsec3: bool = False, opt_out: bool = False
) -> Path:
    """Sign the zone file `source` into `target`; NSEC3 with no salt and no extra
    iterations (RFC 9276 3.1), with the opt-out flag when `opt_out`."""
    keygen, signzone = _tool("ldns-keygen"), _tool("ldns-signzone")
    keydir.mkdir(parents=True, exist_ok=True)
    origin = origin.rstrip(".")
    ksk = _run([keygen, "-a", "ECDSAP256SHA256", "-k", origin], keydir)
    zsk = _run([keygen, "-a", "ECDSAP256SHA256", origin], keydir)
    cmd = [signzone, "-o", origin, "-f", str(target.resolve())]
    if nsec3:
        cmd += ["-n", "-a", "1", "-t", "0"] + (["-p"] if opt_out else [])
    _run([*cmd, str(source.resolve()), ksk, zsk], keydir)
    return target


def sign_zones(
    source_dir: Path, zones: dict[str, str], target_dir: Path, nsec3: bool = False, opt_out: bool = False
) -> Path:
    """Every zone of `zones` (origin -> file in `source_dir`) signed into `target_dir` under
    the same file name; the keys go to `target_dir`/../keys-<dir name>."""
    target_dir.mkdir(parents=True, exist_ok=True)
    keydir = target_dir.parent / f"keys-{target_dir.name}"
    for origin, filename in zones.items():
        sign_zone(source_dir / filename, origin, target_dir / filename, keydir, nsec3, opt_out)
    return target_dir


# A zone with a two-host MX name (rr) for the pool that the signing tests lay over it.
POOL_ZONE = """\
$ORIGIN example.test.
$TTL 3600
@      SOA ns1 hostmaster 1 7200 3600 1209600 300
@      NS  ns1
@      MX  10 mx1
ns1    A   127.0.0.1
mx1    A   192.0.2.1
mx2    A   192.0.2.2
www    A   192.0.2.80
rr     MX  10 mx1
rr     MX  20 mx2
"""

KNOT_POLICY = """acl:
  - id: transfer
    address: 127.0.0.1
    action: transfer
policy:
  - id: optout
    algorithm: ecdsap256sha256
    nsec3: on
    nsec3-opt-out: on
    nsec3-iterations: 0
    nsec3-salt-length: 0
zone:
"""


def sign_zones_knot(source_dir: Path, zones: dict[str, str], target_dir: Path) -> Path:
    """Every zone of `zones` signed by Knot DNS with NSEC3 opt-out (RFC 5155 6; no salt, no
    extra iterations): insecure delegations get no NSEC3 of their own, so answers about
    them need the closest provable encloser proof (7.2.7). Knot signs as a primary; the
    signed zones are taken from it by AXFR and written to `target_dir`."""
    clauses = KNOT_POLICY + "".join(
        f"  - domain: {origin}\n    dnssec-signing: on\n    dnssec-policy: optout\n    acl: transfer\n"
        for origin in zones
    )
    files = {f"{origin.rstrip('.')}.zone": (source_dir / name).read_text() for origin, name in zones.items()}
    try:
        knot = Knot(clauses, files)
    except KnotUnavailable as error:
        raise SignerUnavailable(str(error)) from error
    target_dir.mkdir(parents=True, exist_ok=True)
    with knot:
        for index, (origin, name) in enumerate(zones.items()):
            if index == 0:
                knot.start(wait_zone=origin)
            signed = _transfer_signed(knot.port, origin)
            signed.to_file(str(target_dir / name), relativize=False)
    return target_dir


def _transfer_signed(port: int, origin: str, attempts: int = 50) -> dns.zone.Zone:
    """The zone by AXFR once Knot has signed it (its DNSKEY is at the apex)."""
    for _ in range(attempts):
        try:
            zone = dns.zone.from_xfr(
                dns.query.xfr("127.0.0.1", origin, port=port, timeout=2, relativize=False), relativize=False
            )
        except Exception:  # not loaded or not signed yet: bounded retries
            zone = None
        if zone is not None and zone.get_rdataset(zone.origin, dns.rdatatype.DNSKEY) is not None:
            return zone
        time.sleep(0.1)
    raise RuntimeError(f"Knot served no signed {origin} in {attempts} tries")

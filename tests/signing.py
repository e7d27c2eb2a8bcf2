"""Sign test zones with a real signer (ldns-signzone from Debian's ldnsutils).

The signed zones are what an operator would hand dynmx: made by a signer that is not
dnspython, so a test of serving them is not dnspython checked against itself. Keys are
ECDSA P-256 (algorithm 13), a KSK and a ZSK per zone, made in a directory of their own so
that a zone directory holds only zone files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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

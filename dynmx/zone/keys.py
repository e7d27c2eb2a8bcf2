"""The DNSSEC signing key of a zone dynmx signs: one CSK (flags 257), made on first use.

Kept in `state_dir/keys/ZONE.key` (directory 0700, file 0600): JSON with the algorithm,
flags, creation time and the PEM private key. The same file gives the same DNSKEY and DS
after a restart. The private key is never logged nor shown; `ZoneKey.__repr__` leaves it
out. Keys are made and used through dnspython's `dns.dnssec` with `cryptography`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.name
import dns.rdtypes.ANY.DNSKEY
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from dynmx.errors import ConfigError

CSK_FLAGS = 257  # ZONE | SEP: one key signs the keys and the zone (RFC 6781 3.1.3)
ALGORITHMS = {"ecdsap256sha256": 13, "ed25519": 15}
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class ZoneKey:
    origin: dns.name.Name
    algorithm: int
    flags: int
    created: int  # seconds since the epoch
    private: PrivateKey = field(repr=False)
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY = field(repr=False)

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)


def key_path(state_dir: Path, origin: dns.name.Name) -> Path:
    """`state_dir/keys/<zone>.key`; the root zone is `_root.key`."""
    label = origin.to_text(omit_final_dot=True).lower() or "_root"
    return state_dir / "keys" / f"{label}.key"


def make_private(algorithm: str) -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _zone_key(
    origin: dns.name.Name, algorithm: int, flags: int, created: int, private: PrivateKey
) -> ZoneKey:
    dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags=flags)
    return ZoneKey(origin, algorithm, flags, created, private, dnskey)


def encode(key: ZoneKey) -> bytes:
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    record = {
        "zone": key.origin.to_text(),
        "algorithm": key.algorithm,
        "flags": key.flags,
        "created": key.created,
        "private_key": pem.decode(),
    }
    return (json.dumps(record, indent=1) + "\n").encode()


def decode(origin: dns.name.Name, data: bytes, where: Path) -> ZoneKey:
    try:
        record: dict[str, Any] = json.loads(data)
        private = serialization.load_pem_private_key(record["private_key"].encode(), password=None)
        algorithm, flags, created = int(record["algorithm"]), int(record["flags"]), int(record["created"])
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{where}: not a dynmx DNSSEC key file ({type(error).__name__}); move it away"
        ) from None
    if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{where}: the key is neither ECDSA P-256 nor Ed25519")
    return _zone_key(origin, algorithm, flags, created, private)


def load_key(state_dir: Path, origin: dns.name.Name) -> ZoneKey | None:
    """The zone's stored key, or None when it has none yet."""
    path = key_path(state_dir, origin)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(origin, data, path)


def ensure_key(state_dir: Path, origin: dns.name.Name, algorithm: str, now: float | None = None) -> ZoneKey:
    """The zone's key, made and stored (0600, created exclusively) when it has none. A
    stored key of another algorithm is kept and used: changing it is a key rollover,
    which is not done by a config edit."""
    found = load_key(state_dir, origin)
    if found is not None:
        return found
    path = key_path(state_dir, origin)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    created = int(time.time() if now is None else now)
    key = _zone_key(origin, ALGORITHMS[algorithm], CSK_FLAGS, created, make_private(algorithm))
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(encode(key))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # never replaces a key made meanwhile
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    stored = load_key(state_dir, origin)
    assert stored is not None
    return stored

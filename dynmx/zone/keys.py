"""The DNSSEC signing keys of a zone dynmx signs: CSKs (flags 257), the first made on first use.

Kept in `state_dir/keys/ZONE.key` (directory 0700, file 0600). A zone's first key is written
as one JSON record (algorithm, flags, creation time, PEM private key); once a rollover
starts, the file holds a list of such records under `keys`, each with its state and the
times it entered each state (`dynmx.zone.rollover`). Every change replaces the whole file
by rename (temp file, fsync, rename, fsync of the directory), so a crash leaves either the
old key set or the new one, and never loses the private key of a published key. The same
file gives the same DNSKEY and DS after a restart. The private key is never logged nor
shown; `ZoneKey.__repr__` leaves it out. Keys are made and used through dnspython's
`dns.dnssec` with `cryptography`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field, replace
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

# A key's states in a CSK rollover (RFC 7583 3.1 names: published, active, retired, removed).
PUBLISHED, ACTIVE, RETIRED, REMOVED = "published", "active", "retired", "removed"
DS_SEEN = "ds-seen"  # an event, not a state: the operator saw the parent serve this key's DS


@dataclass(frozen=True, slots=True)
class Role:
    """What a key in one state does in the signed zone."""

    in_dnskey: bool  # its DNSKEY is served at the apex
    signs_keys: bool  # it signs the DNSKEY, CDS and CDNSKEY RRsets (the KSK role)
    signs_zone: bool  # it signs every other RRset (the ZSK role)
    in_cds: bool  # its CDS and CDNSKEY are served: the parent is asked to hold its DS


# A CSK rollover as BIND's dnssec-policy rolls a CSK (ZSK pre-publication, RFC 7583 3.2.1; the
# new key signs the DNSKEY RRset from the start), with the CDS of both keys while the new one
# is pre-published, as Knot's `cds-publish: double-ds`, so the parent can hold both DS.
ROLES = {
    PUBLISHED: Role(in_dnskey=True, signs_keys=True, signs_zone=False, in_cds=True),
    ACTIVE: Role(in_dnskey=True, signs_keys=True, signs_zone=True, in_cds=True),
    RETIRED: Role(in_dnskey=True, signs_keys=True, signs_zone=False, in_cds=False),
    REMOVED: Role(in_dnskey=False, signs_keys=False, signs_zone=False, in_cds=False),
}


@dataclass(frozen=True)
class ZoneKey:
    origin: dns.name.Name
    algorithm: int
    flags: int
    created: int  # seconds since the epoch
    private: PrivateKey = field(repr=False)
    dnskey: dns.rdtypes.ANY.DNSKEY.DNSKEY = field(repr=False)
    state: str = ACTIVE
    # (event, seconds since the epoch): when it entered each state, and DS_SEEN
    events: tuple[tuple[str, int], ...] = ()

    @property
    def tag(self) -> int:
        return dns.dnssec.key_id(self.dnskey)

    @property
    def role(self) -> Role:
        return ROLES[self.state]

    def at(self, event: str) -> int | None:
        """When the key entered `event` (a state, or DS_SEEN); None if it did not."""
        found = [when for name, when in self.events if name == event]
        return found[-1] if found else None

    def entering(self, state: str, now: int) -> ZoneKey:
        """This key in `state` from `now` on."""
        return replace(self, state=state, events=(*self.events, (state, now)))

    def noting(self, event: str, now: int) -> ZoneKey:
        return replace(self, events=(*self.events, (event, now)))


def key_path(state_dir: Path, origin: dns.name.Name) -> Path:
    """`state_dir/keys/<zone>.key`; the root zone is `_root.key`."""
    label = origin.to_text(omit_final_dot=True).lower() or "_root"
    return state_dir / "keys" / f"{label}.key"


def make_private(algorithm: str) -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _zone_key(
    origin: dns.name.Name,
    algorithm: int,
    flags: int,
    created: int,
    private: PrivateKey,
    state: str = ACTIVE,
    events: tuple[tuple[str, int], ...] = (),
) -> ZoneKey:
    dnskey = dns.dnssec.make_dnskey(private.public_key(), algorithm, flags=flags)
    return ZoneKey(origin, algorithm, flags, created, private, dnskey, state, events)


def new_key(origin: dns.name.Name, algorithm: str, now: int) -> ZoneKey:
    """A new CSK of `algorithm` (a `dnssec_algorithm` name), published at `now`."""
    return _zone_key(
        origin, ALGORITHMS[algorithm], CSK_FLAGS, now, make_private(algorithm), PUBLISHED, ((PUBLISHED, now),)
    )


def _record(key: ZoneKey) -> dict[str, Any]:
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "zone": key.origin.to_text(),
        "algorithm": key.algorithm,
        "flags": key.flags,
        "created": key.created,
        "private_key": pem.decode(),
    }


def encode(key: ZoneKey) -> bytes:
    """The first key of a zone, in the one-record form."""
    return (json.dumps(_record(key), indent=1) + "\n").encode()


def encode_keys(origin: dns.name.Name, keys: tuple[ZoneKey, ...]) -> bytes:
    """A zone's key set, each key with its state and events."""
    records = [
        {**_record(key), "state": key.state, "events": [[name, when] for name, when in key.events]}
        for key in keys
    ]
    return (json.dumps({"zone": origin.to_text(), "keys": records}, indent=1) + "\n").encode()


def _decode_one(origin: dns.name.Name, record: dict[str, Any], where: Path) -> ZoneKey:
    try:
        private = serialization.load_pem_private_key(record["private_key"].encode(), password=None)
        algorithm, flags, created = int(record["algorithm"]), int(record["flags"]), int(record["created"])
        state = str(record.get("state", ACTIVE))
        events = tuple((str(name), int(when)) for name, when in record.get("events", [[ACTIVE, created]]))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(
            f"{where}: not a dynmx DNSSEC key file ({type(error).__name__}); move it away"
        ) from None
    if state not in ROLES:
        raise ConfigError(f"{where}: unknown key state {state!r}")
    if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{where}: the key is neither ECDSA P-256 nor Ed25519")
    return _zone_key(origin, algorithm, flags, created, private, state, events)


def decode_keys(origin: dns.name.Name, data: bytes, where: Path) -> tuple[ZoneKey, ...]:
    """Every key of a key file: the one-record form (one active key) or the `keys` list."""
    try:
        document: Any = json.loads(data)
    except ValueError:
        raise ConfigError(f"{where}: not a dynmx DNSSEC key file (not JSON); move it away") from None
    if isinstance(document, dict) and isinstance(document.get("keys"), list):
        return tuple(_decode_one(origin, record, where) for record in document["keys"])
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: not a dynmx DNSSEC key file; move it away")
    return (_decode_one(origin, document, where),)


def decode(origin: dns.name.Name, data: bytes, where: Path) -> ZoneKey:
    """The active key of a key file (the first, should there be two)."""
    keys = decode_keys(origin, data, where)
    active = [key for key in keys if key.state == ACTIVE]
    if not active:
        raise ConfigError(f"{where}: no key is active")
    return active[0]


def load_keys(state_dir: Path, origin: dns.name.Name) -> tuple[ZoneKey, ...]:
    """Every stored key of the zone, removed ones included; () when it has none yet."""
    path = key_path(state_dir, origin)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ()
    return decode_keys(origin, data, path)


def load_key(state_dir: Path, origin: dns.name.Name) -> ZoneKey | None:
    """The zone's active key, or None when it has none yet."""
    path = key_path(state_dir, origin)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(origin, data, path)


def save_keys(state_dir: Path, origin: dns.name.Name, keys: tuple[ZoneKey, ...]) -> None:
    """Replace the zone's key file by `keys`, atomically: a crash leaves the old set or this
    one, each whole and fsynced (the new file is made 0600 before any byte is written)."""
    path = key_path(state_dir, origin)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(encode_keys(origin, keys))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


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

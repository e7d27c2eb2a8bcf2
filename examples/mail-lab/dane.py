"""DANE for the mail lab: sink certificates, their TLSA records, and what Postfix's log says.

Each sink gets a key and a self-signed certificate for its MX host name, made at lab start;
the zone carries `_25._tcp.<host> TLSA 3 1 1 <SHA-256 of the SPKI>` (DANE-EE, RFC 7671 5.1:
the key is pinned, names and dates are not checked). A "rogue" sink presents a certificate
whose key is not the one its TLSA record names. The log reader pairs every Postfix delivery
with the TLS line its smtp process logged for that connection.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Identity:
    """A sink's certificate and key files, and the TLSA 3 1 1 data its record carries."""

    cert: Path
    key: Path
    tlsa: str


def spki_sha256(key: ec.EllipticCurvePrivateKey) -> str:
    """TLSA selector 1 (SubjectPublicKeyInfo), matching type 1 (SHA-256), as hex."""
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def make_identity(host: str, directory: Path, pinned_elsewhere: bool = False) -> Identity:
    """A P-256 key and a one-day self-signed certificate for `host`; with `pinned_elsewhere`
    the TLSA data names a different key (the certificate does not match its record)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    stem = directory / host.rstrip(".")
    cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pinned = ec.generate_private_key(ec.SECP256R1()) if pinned_elsewhere else key
    return Identity(cert_path, key_path, spki_sha256(pinned))


TLS_LINE = re.compile(r"postfix/smtp\[(\d+)\]: (\w+) TLS connection established to (\S+)\[([\d.]+)\]:\d+")
SENT_LINE = re.compile(
    r"postfix/smtp\[(\d+)\]: (\w+): to=<[^>]*>, relay=(\S+)\[([\d.]+)\]:\d+, .*status=sent"
)
MESSAGE_ID = re.compile(r"postfix/cleanup\[\d+\]: (\w+): message-id=(<[^>]+>)")


@dataclass(frozen=True)
class Delivery:
    """One `status=sent` line: the message, where it went, and the TLS its connection had."""

    message_id: str
    address: str
    tls: str  # Verified, Trusted, Untrusted, Anonymous, or "none" (no TLS line for that connection)


def deliveries(maillog: list[str]) -> list[Delivery]:
    """Pair each delivery with the last TLS line of the same smtp process to the same address.

    The lab turns off the connection cache, so each delivery is its own connection, and one
    smtp process handles one delivery at a time: the TLS line before a `status=sent` line of
    the same process id belongs to that connection."""
    message_ids: dict[str, str] = {}
    last_tls: dict[str, tuple[str, str]] = {}
    found: list[Delivery] = []
    for line in maillog:
        if match := MESSAGE_ID.search(line):
            message_ids[match.group(1)] = match.group(2)
        elif match := TLS_LINE.search(line):
            last_tls[match.group(1)] = (match.group(2), match.group(4))
        elif match := SENT_LINE.search(line):
            pid, queue_id, address = match.group(1), match.group(2), match.group(4)
            kind, tls_address = last_tls.pop(pid, ("none", ""))
            found.append(
                Delivery(
                    message_ids.get(queue_id, queue_id), address, kind if tls_address == address else "none"
                )
            )
    return found


REFUSED_CERT = re.compile(
    r"postfix/smtp\[(\d+)\]: server certificate verification failed for \S+\[([\d.]+)\]:\d+"
)
NOT_VERIFIED = re.compile(r"postfix/smtp\[(\d+)\]: (\w+): Server certificate not verified")


def refused_at(maillog: list[str], address: str) -> list[str]:
    """Message-IDs Postfix would not hand to `address`: a failed DANE match there, then
    `QUEUEID: Server certificate not verified` from the same smtp process."""
    message_ids: dict[str, str] = {}
    failed: dict[str, str] = {}
    found: list[str] = []
    for line in maillog:
        if match := MESSAGE_ID.search(line):
            message_ids[match.group(1)] = match.group(2)
        elif match := REFUSED_CERT.search(line):
            failed[match.group(1)] = match.group(2)
        elif (match := NOT_VERIFIED.search(line)) and failed.pop(match.group(1), "") == address:
            found.append(message_ids.get(match.group(2), match.group(2)))
    return found


def first_refusal(maillog: list[str], address: str) -> list[str]:
    """What Postfix logged for the first message it would not hand to `address`: the failed
    match, the untrusted session, the refusal, and the next MX's verified delivery."""
    pid = ""
    shown: list[str] = []
    for line in maillog:
        if not pid and (match := REFUSED_CERT.search(line)) and match.group(2) == address:
            pid = match.group(1)
        if pid and f"postfix/smtp[{pid}]:" in line:
            shown.append(line)
            if "status=" in line:
                break
    return shown

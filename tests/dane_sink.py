"""Helpers for the DANE probe tests: a certificate made at test time and TLSA records for it."""

from __future__ import annotations

import datetime
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Cert:
    """A self-signed certificate on disk, with its DER and SPKI for building TLSA records."""

    cert_file: Path
    key_file: Path
    der: bytes
    spki: bytes

    def context(self) -> ssl.SSLContext:
        """A server context for aiosmtpd's STARTTLS."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def tlsa(self, selector: int, mtype: int, usage: int = 3) -> str:
        """The TLSA rdata text for this certificate, as a zone file writes it."""
        selected = self.der if selector == 0 else self.spki
        data = {0: selected, 1: hashlib.sha256(selected).digest(), 2: hashlib.sha512(selected).digest()}[
            mtype
        ]
        return f"{usage} {selector} {mtype} {data.hex()}"


def make_cert(directory: Path, name: str) -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Cert(cert_file, key_file, cert.public_bytes(serialization.Encoding.DER), spki)

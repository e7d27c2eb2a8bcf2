"""DANE for SMTP (RFC 7672): does a server's certificate match the TLSA RRset we publish for it?

Sans-IO: a DER certificate and TLSA records in, a Verdict out. Only DANE-EE (usage 3) is
checked: it pins the server's own certificate or key, which is all a probe that sees only
the leaf can judge. DANE-TA (2) would need the chain up to the anchor, and PKIX-TA/PKIX-EE
(0, 1) are unusable for SMTP (RFC 7672 3.1.3); such records are left unchecked, not failed.
The digests come from `cryptography`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from dynmx.health.verdict import Verdict, printable

DANE_EE = 3
SELECTORS = {0: "cert", 1: "spki"}  # RFC 6698 2.1.2
MATCHING = {0: "exact", 1: "sha256", 2: "sha512"}  # RFC 6698 2.1.3
PORT_LABEL = "_25._tcp"  # SMTP to an MX is always port 25 (RFC 7672 2.2.3)
SHOWN_HEX = 16  # hex digits of each tried association shown in evidence


@dataclass(frozen=True, slots=True, order=True)
class Tlsa:
    """One TLSA record: usage, selector, matching type and the certificate association data."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    @property
    def checkable(self) -> bool:
        """DANE-EE with a selector and matching type we compute."""
        return self.usage == DANE_EE and self.selector in SELECTORS and self.mtype in MATCHING

    def describe(self) -> str:
        """As in a zone file, the data cut short: `3 1 1 8ad2c0…`."""
        shown = self.data.hex()
        if len(shown) > SHOWN_HEX:
            shown = shown[:SHOWN_HEX] + ".."
        return f"{self.usage} {self.selector} {self.mtype} {shown}"


def unchecked(records: Iterable[Tlsa]) -> tuple[Tlsa, ...]:
    """The records this probe does not judge (DANE-TA, PKIX, unknown selector or matching type)."""
    return tuple(record for record in records if not record.checkable)


def association(der: bytes, selector: int, mtype: int) -> bytes:
    """The certificate association data of `der` for a selector and matching type (RFC 6698 2.1).

    ValueError if `der` is not a certificate or the selector or matching type is not supported.
    """
    if selector not in SELECTORS or mtype not in MATCHING:
        raise ValueError(f"unsupported selector {selector} or matching type {mtype}")
    if selector == 0:
        selected = der
    else:
        public_key = x509.load_der_x509_certificate(der).public_key()
        selected = public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if mtype == 0:
        return selected
    digest = hashes.Hash(hashes.SHA256() if mtype == 1 else hashes.SHA512())
    digest.update(selected)
    return digest.finalize()


def judge(der: bytes, records: Iterable[Tlsa]) -> Verdict:
    """ok when any checkable record matches (RFC 7672 3.1), or when none is checkable;
    `tlsa-mismatch` naming the records tried and the certificate's SPKI SHA-256 otherwise."""
    tried = [record for record in records if record.checkable]
    if not tried:
        return Verdict("ok", "TLSA not checked: no DANE-EE record")
    try:
        x509.load_der_x509_certificate(der)
        spki = association(der, 1, 1).hex()
    except ValueError as exc:
        return Verdict("tls-handshake", printable(f"unreadable certificate: {exc}"))
    for record in tried:
        if association(der, record.selector, record.mtype) == record.data:
            return Verdict("ok", printable(f"TLSA {record.describe()} matches"))
    names = ", ".join(record.describe() for record in tried[:3])
    more = f" (+{len(tried) - 3} more)" if len(tried) > 3 else ""
    return Verdict("tlsa-mismatch", printable(f"cert spki-sha256={spki}; tried {names}{more}"))

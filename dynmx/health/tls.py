"""Implicit TLS for access probes (imaps, pop3s, submissions): handshake, then judge the expiry.

Probes connect by address, so the chain and the name cannot be checked the way a mail
client would; what a prober can see, and what operators forget, is expiry. The context
therefore verifies nothing, and the certificate's notAfter is read from its DER with the
small reader below: no new dependency, no private `ssl` API, no temporary files.
The handshake runs on the connection that is already open, so a refused or silent port
keeps its own reason and `tls-handshake` means only that TLS did not come up. Expiry is
measured on the wall clock (`time.time`), not on the probe's injected latency clock.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import ssl
import time
from dataclasses import dataclass, field

from dynmx.health.verdict import Verdict, printable

DAY = 86400.0
_UTC_TIME, _GENERALIZED_TIME, _SEQUENCE, _VERSION = 0x17, 0x18, 0x30, 0xA0


@dataclass(frozen=True, slots=True)
class Peer:
    """What the handshake told us: the certificate's notAfter (epoch seconds) and time left."""

    not_after: float
    expires_in: float  # seconds; negative once expired
    der: bytes = field(default=b"", repr=False)  # the leaf certificate, for DANE (dane.judge)

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(self.not_after))
        days = abs(self.expires_in) / DAY
        if self.expires_in <= 0:
            return f"certificate expired {days:.1f} days ago (notAfter {when})"
        return f"certificate expires in {days:.1f} days (notAfter {when})"


@functools.cache
def client_context() -> ssl.SSLContext:
    """A client context that checks neither chain nor name: we probe by address, and judge expiry."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def handshake(writer: asyncio.StreamWriter, server_name: str, deadline: float) -> Peer | Verdict:
    """Upgrade the open connection to TLS before `deadline`; the peer's expiry, or tls-handshake."""
    try:
        async with asyncio.timeout_at(deadline):
            await writer.start_tls(client_context(), server_hostname=server_name.rstrip(".") or None)
    except TimeoutError:  # before OSError: TimeoutError is one
        return Verdict("tls-handshake", "no TLS handshake before the deadline")
    except ssl.SSLError as exc:
        return Verdict("tls-handshake", printable(f"{exc.reason or type(exc).__name__}"))
    except OSError as exc:
        return Verdict("tls-handshake", printable(f"{type(exc).__name__}: {exc}"))
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object, ssl.SSLObject) else None
    if not der:
        return Verdict("tls-handshake", "the server sent no certificate")
    try:
        not_after = certificate_not_after(der)
    except ValueError as exc:
        return Verdict("tls-handshake", printable(f"unreadable certificate: {exc}"))
    return Peer(not_after, not_after - time.time(), der)


def judge_expiry(verdict: Verdict, peer: Peer | None, warn_days: int) -> Verdict:
    """Expired fails; close to expiry turns a healthy verdict into the warning `tls-expiring`."""
    if peer is None:
        return verdict
    if peer.expires_in <= 0:
        return Verdict("tls-expired", peer.describe())
    if verdict.ok and peer.expires_in < warn_days * DAY:
        return Verdict("tls-expiring", printable(f"{verdict.evidence}; {peer.describe()}"))
    return verdict


# -- DER: just enough of X.509 (RFC 5280 4.1) to reach validity.notAfter -----------------


def certificate_not_after(der: bytes) -> float:
    """notAfter of a DER certificate, in seconds since the epoch; ValueError if it is not one."""
    tag, start, end = _element(der, 0, len(der))
    _expect(tag, _SEQUENCE, "Certificate")
    tag, tbs, tbs_end = _element(der, start, end)
    _expect(tag, _SEQUENCE, "TBSCertificate")
    fields: list[tuple[int, int, int]] = []  # [version], serialNumber, signature, issuer, validity
    position = tbs
    while len(fields) < 5 and position < tbs_end:
        fields.append(_element(der, position, tbs_end))
        position = fields[-1][2]
    if fields and fields[0][0] == _VERSION:
        del fields[0]
    if len(fields) < 4:
        raise ValueError("TBSCertificate: too few fields")
    tag, validity, validity_end = fields[3]
    _expect(tag, _SEQUENCE, "Validity")
    _, _, not_before_end = _element(der, validity, validity_end)
    tag, start, end = _element(der, not_before_end, validity_end)
    return _time(tag, der[start:end])


def _element(der: bytes, position: int, limit: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `position`, which must end by `limit`."""
    if position + 2 > limit:
        raise ValueError("truncated")
    tag, first = der[position], der[position + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte tag")
    start = position + 2
    if first < 0x80:
        length = first
    else:
        size = first & 0x7F
        if not 1 <= size <= 4 or start + size > limit:
            raise ValueError("bad length")
        length = int.from_bytes(der[start : start + size], "big")
        start += size
    if start + length > limit:
        raise ValueError("truncated")
    return tag, start, start + length


def _expect(tag: int, wanted: int, what: str) -> None:
    if tag != wanted:
        raise ValueError(f"{what}: tag 0x{tag:02x}")


def _time(tag: int, value: bytes) -> float:
    """UTCTime (YYMMDDHHMMSSZ, 1950-2049) or GeneralizedTime (YYYYMMDDHHMMSSZ), RFC 5280 4.1.2.5."""
    text = value.decode("ascii", "replace")
    if tag == _UTC_TIME:
        century = 19 if text[:2].isdigit() and int(text[:2]) >= 50 else 20
        text = f"{century}{text}"
    elif tag != _GENERALIZED_TIME:
        raise ValueError(f"notAfter: tag 0x{tag:02x}")
    if not (len(text) == 15 and text.endswith("Z") and text[:14].isdigit()):
        raise ValueError(f"notAfter: not a time: {text!r}")
    month, day, hour, minute, second = (int(text[i : i + 2]) for i in range(4, 14, 2))
    try:
        moment = datetime.datetime(int(text[:4]), month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:
        raise ValueError(f"notAfter: not a time: {text!r}") from None
    return moment.timestamp()

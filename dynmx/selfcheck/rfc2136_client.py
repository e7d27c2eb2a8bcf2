"""The RFC 2136 adapter: a TSIG-signed UPDATE to the parent or a hidden primary.

It also carries a signed child's DS RRset to the parent zone (`push_ds`): the whole DS
RRset is replaced, on the condition that the child is delegated there (its NS RRset exists).

The update replaces the old address with the new one and, when the old one is known,
makes it a prerequisite (RFC 2136 2.4.2, "RRset exists, value dependent"): if someone
else changed the record meanwhile, the server answers NXRRSET and nothing is clobbered.
Without a known old value the whole A or AAAA RRset is replaced.

Answers, each named in the result message:

    NOERROR                               success (the answer's TSIG verified)
    NOTAUTH, REFUSED, NOTZONE, NOTIMP     stop until the config changes
    TSIG BADKEY, BADSIG                   stop: key name, algorithm or secret is wrong
    TSIG BADTIME                          back off: a clock is wrong, which NTP fixes, not the config
    NXRRSET, YXRRSET, NXDOMAIN, YXDOMAIN  back off: a prerequisite failed (someone else edited)
    SERVFAIL, FORMERR, others, timeouts   back off
    network errors (OSError)              retry after min_interval
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import dns.update

from dynmx.errors import ConfigError
from dynmx.selfcheck.registrar import Outcome, PushResult, check_settings, fingerprint_of

ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5")
Rcode = dns.rcode.Rcode
RCODES: dict[Rcode, tuple[Outcome, str]] = {
    Rcode.NOTAUTH: (
        Outcome.STOP,
        "the server is not authoritative for {zone} or does not accept key {key} for it",
    ),
    Rcode.REFUSED: (
        Outcome.STOP,
        "the server's policy refuses this update (allow-update/update-policy for {key})",
    ),
    Rcode.NOTZONE: (Outcome.STOP, "{host} is not inside {zone} on the server"),
    Rcode.NOTIMP: (Outcome.STOP, "the server does not take UPDATE messages"),
    Rcode.NXRRSET: (
        Outcome.BACKOFF,
        "prerequisite failed: the server does not hold {old} at {host}; "
        "someone else changed it, check the record there",
    ),
    Rcode.YXRRSET: (Outcome.BACKOFF, "prerequisite failed: an RRset exists that should not"),
    Rcode.NXDOMAIN: (Outcome.BACKOFF, "prerequisite failed: {host} does not exist on the server"),
    Rcode.YXDOMAIN: (Outcome.BACKOFF, "prerequisite failed: a name exists that should not"),
    Rcode.SERVFAIL: (Outcome.BACKOFF, "the server failed to apply the update"),
    Rcode.FORMERR: (Outcome.BACKOFF, "the server could not parse the update"),
}


@dataclass(frozen=True, slots=True)
class Rfc2136Settings:
    """Where to send UPDATEs and the TSIG key to sign them with."""

    name: str
    server: str  # an IP address: when our address just changed, resolving a name may not work
    zone: str
    key_name: str
    key_secret: str = field(repr=False)  # base64, as in BIND's key statement or tsig-keygen output
    port: int = 53
    key_algorithm: str = "hmac-sha256"
    ttl: int = 300
    timeout: float = 10.0

    def __post_init__(self) -> None:
        where = f"registrar.{self.name}"
        check_settings(self.name, None, self.timeout)
        try:
            ipaddress.ip_address(self.server)
        except ValueError:
            raise ConfigError(f"{where}.server: expected an IP address, got {self.server!r}") from None
        if not 0 < self.port < 65536:
            raise ConfigError(f"{where}.port: expected 1-65535, got {self.port}")
        for key in ("zone", "key_name"):
            try:
                dns.name.from_text(getattr(self, key))
            except dns.exception.DNSException as error:
                raise ConfigError(f"{where}.{key}: not a domain name ({error})") from None
        if self.key_algorithm.lower().rstrip(".") not in ALGORITHMS:
            raise ConfigError(f"{where}.key_algorithm: expected one of {', '.join(ALGORITHMS)}")
        try:
            secret = base64.b64decode(self.key_secret, validate=True)
        except (binascii.Error, ValueError):
            secret = b""
        if not secret:
            raise ConfigError(f"{where}.key_secret: expected the key's base64 secret (value not shown)")
        if not 0 <= self.ttl <= 2**31 - 1:
            raise ConfigError(f"{where}.ttl: expected 0-2147483647, got {self.ttl}")


class Rfc2136Adapter:
    """Pushes addresses with signed RFC 2136 UPDATEs over UDP (TCP when truncated)."""

    kind = "rfc2136"

    def __init__(self, settings: Rfc2136Settings) -> None:
        self.settings = settings
        self.zone = dns.name.from_text(settings.zone)
        self.key = dns.tsig.Key(settings.key_name, settings.key_secret, settings.key_algorithm.lower())
        public = (
            settings.name,
            settings.server,
            settings.port,
            settings.zone,
            settings.key_name,
            settings.key_algorithm,
            settings.ttl,
            settings.timeout,
        )
        self._fingerprint = fingerprint_of(self.kind, public, settings.key_secret)

    @property
    def name(self) -> str:
        return self.settings.name

    def fingerprint(self) -> str:
        return self._fingerprint

    def __repr__(self) -> str:
        s = self.settings
        return f"Rfc2136Adapter(name={s.name!r}, server={s.server!r}, zone={s.zone!r}, key={s.key_name!r})"

    def message(
        self, hostname: str, family: int, address: str, previous: str | None
    ) -> dns.update.UpdateMessage:
        """The signed UPDATE replacing `previous` (a prerequisite when known) by `address`."""
        rdtype = dns.rdatatype.A if family == 4 else dns.rdatatype.AAAA
        name = dns.name.from_text(hostname)
        update = dns.update.UpdateMessage(self.zone, keyring=self.key)
        new = dns.rdata.from_text(dns.rdataclass.IN, rdtype, address)
        old = None
        if previous is not None:
            try:
                old = dns.rdata.from_text(dns.rdataclass.IN, rdtype, previous)
            except (dns.exception.DNSException, ValueError):
                old = None  # not an address of this family: replace the RRset instead
        if old is not None:
            update.present(name, old)
            update.delete(name, old)
        else:
            update.delete(name, rdtype)
        update.add(name, self.settings.ttl, new)
        return update

    async def push(self, hostname: str, family: int, address: str, previous: str | None) -> PushResult:
        """Send one UPDATE and read the (verified) answer."""
        try:
            name = dns.name.from_text(hostname)
        except dns.exception.DNSException as error:
            return PushResult(Outcome.STOP, f"{hostname!r} is not a domain name ({error})")
        if not name.is_subdomain(self.zone):
            return PushResult(Outcome.STOP, f"{name} is not inside zone {self.zone}; fix zone in the config")
        response = await self._send(self.message(hostname, family, address, previous))
        if isinstance(response, PushResult):
            return response
        return self._verdict(response, name, address, previous)

    def ds_message(self, child: dns.name.Name, ds: Sequence[dns.rdata.Rdata]) -> dns.update.UpdateMessage:
        """The signed UPDATE to the parent zone that makes `child`'s DS RRset exactly `ds` (none:
        the DS is deleted, the child goes insecure). The child's NS RRset must exist there
        (RFC 2136 2.4.1): a DS belongs at a delegation, so without one nothing is written."""
        update = dns.update.UpdateMessage(self.zone, keyring=self.key)
        update.present(child, dns.rdatatype.NS)
        update.delete(child, dns.rdatatype.DS)
        for rdata in ds:
            update.add(child, self.settings.ttl, rdata)
        return update

    async def push_ds(self, child: dns.name.Name, ds: Sequence[dns.rdata.Rdata]) -> PushResult:
        """Replace `child`'s DS RRset in the parent zone by `ds`; the answer's TSIG is verified."""
        if child == self.zone or not child.is_subdomain(self.zone):
            return PushResult(
                Outcome.STOP, f"{child} is not a child zone of {self.zone}; set zone to its parent zone"
            )
        response = await self._send(self.ds_message(child, ds))
        if isinstance(response, PushResult):
            return response
        rcode = response.rcode()
        s = self.settings
        if rcode == Rcode.NOERROR:
            return PushResult(
                Outcome.SUCCESS, f"NOERROR: {len(ds)} DS of {child} in {self.zone} at {s.server}"
            )
        if rcode == Rcode.NXRRSET:
            detail = f"{self.zone} at {s.server} has no NS records for {child}: delegate it there first"
            return PushResult(Outcome.STOP, f"NXRRSET: {detail}")
        outcome, text = RCODES.get(rcode, (Outcome.BACKOFF, "unexpected answer"))
        detail = text.format(zone=self.zone, key=s.key_name, host=child, old="the old DS")
        return PushResult(outcome, f"{dns.rcode.to_text(rcode)}: {detail}")

    async def _send(self, update: dns.update.UpdateMessage) -> dns.message.Message | PushResult:
        """The verified answer to `update`, or the verdict on why there is none."""
        s = self.settings
        try:
            response, _ = await dns.asyncquery.udp_with_fallback(
                update, s.server, timeout=s.timeout, port=s.port
            )
        except dns.tsig.PeerBadKey:
            return PushResult(
                Outcome.STOP,
                f"NOTAUTH/BADKEY: the server does not know key {s.key_name} with algorithm {s.key_algorithm}",
            )
        except dns.tsig.PeerBadSignature:
            return PushResult(
                Outcome.STOP, f"NOTAUTH/BADSIG: the server's secret for key {s.key_name} differs"
            )
        except dns.tsig.PeerBadTime:
            return PushResult(
                Outcome.BACKOFF,
                "NOTAUTH/BADTIME: our clock and the server's differ by more "
                "than the TSIG fudge; fix NTP on one of them",
            )
        except dns.tsig.PeerError as error:
            return PushResult(Outcome.STOP, f"NOTAUTH: TSIG error from the server: {type(error).__name__}")
        except dns.exception.Timeout:
            return PushResult(
                Outcome.BACKOFF, f"no answer from {s.server} port {s.port} within {s.timeout} s"
            )
        except OSError as error:
            return PushResult(
                Outcome.RETRY, f"cannot reach {s.server} port {s.port}: {error.strerror or error}"
            )
        except dns.exception.DNSException as error:  # unsigned or forged answer: never a reason to stop
            return PushResult(Outcome.BACKOFF, f"unverifiable answer from {s.server}: {type(error).__name__}")
        return response

    def _verdict(
        self, response: dns.message.Message, name: dns.name.Name, address: str, previous: str | None
    ) -> PushResult:
        rcode = response.rcode()
        if rcode == Rcode.NOERROR:
            was = f" (was {previous})" if previous else ""
            return PushResult(Outcome.SUCCESS, f"NOERROR: {name} is {address}{was} at {self.settings.server}")
        outcome, text = RCODES.get(rcode, (Outcome.BACKOFF, "unexpected answer"))
        detail = text.format(
            zone=self.zone, key=self.settings.key_name, host=name, old=previous or "the old value"
        )
        return PushResult(outcome, f"{dns.rcode.to_text(rcode)}: {detail}")

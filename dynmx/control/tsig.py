"""TSIG (RFC 8945) on every signed request: verify it, sign the replies to it, answer its errors.

Sans-IO: request bytes and a keyring in, a verdict and reply bytes out; the clock is a
parameter. The MAC work is dnspython's (`dns.tsig.validate`, `dns.tsig.sign`); this
module finds the request's TSIG record, names a failure as §5.2 does, and puts the
TSIG record on a reply (§5.3): last in the additional section (after OPT), ARCOUNT
bumped, the MAC over the request MAC, the reply and the TSIG variables (§4.3).

    request --verify--> Verified (key, request MAC, time) --reply bytes--> sign(reply)
                    \\-> Refusal BADKEY | BADSIG | BADTIME --> tsig_error_reply + a log line

Errors (§5.2, §5.3.2): an unknown key name, or a known name with another algorithm, is
BADKEY; a MAC that does not verify is BADSIG; both are answered NOTAUTH with an unsigned
TSIG (empty MAC) carrying the error. A request whose MAC verified but whose time is
outside its fudge is BADTIME, answered with a signed TSIG (§5.2.3: the client's time in
Time Signed, ours in Other Data). Every refusal is logged once, without the secret, within
the rate limit of per-packet refusals (`ratelog`):
`event=tsig-refused peer=ADDR key=NAME reason=badkey|badsig|badtime opcode=OPCODE`.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from dynmx.control.ratelog import REFUSALS
from dynmx.errors import FormError
from dynmx.wire.query import Query
from dynmx.wire.response import RCODE_FORMERR, RCODE_NOTAUTH, append_record, header_only, question_only

log = logging.getLogger("dynmx.tsig")

Keyring = Mapping[dns.name.Name, dns.tsig.Key]
TsigRdata = dns.rdtypes.ANY.TSIG.TSIG

BADSIG = int(dns.rcode.BADSIG)
BADKEY = int(dns.rcode.BADKEY)
BADTIME = int(dns.rcode.BADTIME)
REASONS = {BADKEY: "badkey", BADSIG: "badsig", BADTIME: "badtime"}
_RR_HEAD = struct.Struct(">HHIH")  # type, class, TTL, RDLENGTH


def tsig_record(owner: dns.name.Name, rdata: dns.rdata.Rdata) -> bytes:
    """One TSIG RR in wire form: class ANY, TTL 0 (RFC 8945 §4.2), names uncompressed."""
    owner_wire = owner.to_wire()
    rdata_wire = rdata.to_wire()
    assert owner_wire is not None and rdata_wire is not None
    return owner_wire + _RR_HEAD.pack(dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata_wire)) + rdata_wire


@dataclass(frozen=True, slots=True)
class Verified:
    """A request whose TSIG verified: signs every reply to it with the same key (§5.3)."""

    key: dns.tsig.Key
    owner: dns.name.Name  # the key name as the request wrote it
    request: TsigRdata  # the request's TSIG: its MAC, algorithm, fudge, original ID
    time: int  # the server's clock when it verified; the replies' Time Signed

    @property
    def request_mac(self) -> bytes:
        mac: bytes = self.request.mac
        return mac

    @property
    def reserve(self) -> int:
        """Octets the TSIG record adds to a reply: a reply must leave room for it (§5.3)."""
        size = dns.tsig.mac_sizes.get(self.key.algorithm, 128)
        return len(tsig_record(self.owner, self.request.replace(mac=bytes(size), error=0, other=b"")))

    def sign(self, reply: bytes, error: int = 0, other: bytes = b"", time_signed: int | None = None) -> bytes:
        """`reply` with a TSIG record appended whose MAC covers the request MAC (§4.3.3)."""
        template = self.request.replace(mac=b"", error=error, other=other)
        when = self.time if time_signed is None else time_signed
        rdata, _ = dns.tsig.sign(reply, self.key, template, when, self.request_mac)  # type: ignore[no-untyped-call]
        return append_record(reply, tsig_record(self.owner, rdata))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request whose TSIG did not pass (§5.2): what to answer and what to log."""

    error: int  # BADKEY, BADSIG or BADTIME
    owner: dns.name.Name
    request: TsigRdata
    verified: Verified | None = None  # BADTIME only: the MAC was good, so the answer is signed

    @property
    def reason(self) -> str:
        return REASONS[self.error]


def read_tsig(data: bytes, offset: int, msg_id: int = 0, rd: bool = False) -> tuple[dns.name.Name, TsigRdata]:
    """The owner and RDATA of the TSIG record at `offset`; FormError when it cannot be read
    (§5.2: a TSIG that cannot be interpreted is FORMERR)."""
    try:
        owner, used = dns.name.from_wire(data, offset)
        end = offset + used
        rdlength = int.from_bytes(data[end + 8 : end + 10], "big")
        rdata = dns.rdata.from_wire(dns.rdataclass.ANY, dns.rdatatype.TSIG, data, end + 10, rdlength)
    except dns.exception.DNSException:
        raise FormError("TSIG record cannot be read (RFC 8945 5.2)", msg_id, rd) from None
    return owner, cast(TsigRdata, rdata)


def verify(data: bytes, offset: int, keyring: Keyring, now: int) -> Verified | Refusal:
    """Check the request's TSIG in §5.2's order (key, MAC, time) with dnspython.

    `offset` is where the TSIG record starts (`Query.tsig_offset`); raises FormError
    when that record cannot be read."""
    msg_id = (data[0] << 8) | data[1]
    owner, request = read_tsig(data, offset, msg_id, bool(data[2] & 1))
    key = keyring.get(owner)
    if key is None or key.algorithm != request.algorithm:
        return Refusal(BADKEY, owner, request)  # §5.2.1: key or algorithm not recognised
    try:
        dns.tsig.validate(data, key, owner, request, now, b"", offset)  # type: ignore[no-untyped-call]
    except dns.tsig.BadTime:  # raised after the MAC verified (§5.2.3)
        return Refusal(BADTIME, owner, request, Verified(key, owner, request, now))
    except (dns.tsig.BadKey, dns.tsig.BadAlgorithm, NotImplementedError):
        return Refusal(BADKEY, owner, request)
    except (dns.tsig.BadSignature, dns.tsig.PeerError, dns.exception.FormError):
        return Refusal(BADSIG, owner, request)  # a wrong MAC, or a request carrying a TSIG error
    return Verified(key, owner, request, now)


def _unsigned_error(reply: bytes, owner: dns.name.Name, request: TsigRdata, error: int) -> bytes:
    """`reply` with an unsigned TSIG carrying `error` (§5.3.2): empty MAC, the request's
    algorithm, time and fudge echoed."""
    msg_id = (reply[0] << 8) | reply[1]
    rdata = request.replace(mac=b"", original_id=msg_id, error=error, other=b"")
    return append_record(reply, tsig_record(owner, rdata))


def tsig_error_reply(data: bytes, query: Query, refusal: Refusal) -> bytes:
    """NOTAUTH with the TSIG error (§5.2): for BADTIME signed, the client's time in Time Signed
    and ours in Other Data (§5.2.3); for BADKEY and BADSIG an unsigned TSIG (§5.3.2)."""
    reply = question_only(data, query, RCODE_NOTAUTH)
    signer = refusal.verified
    if signer is not None:
        other = signer.time.to_bytes(6, "big")
        return signer.sign(reply, refusal.error, other, time_signed=signer.request.time_signed)
    return _unsigned_error(reply, refusal.owner, refusal.request, refusal.error)


def check(
    data: bytes, query: Query, keyring: Keyring, peer: object, now: int | None = None
) -> Verified | bytes:
    """Verify a signed request (`query.tsig_offset` set): what signs its replies, or the
    reply to send instead (FORMERR or the TSIG error), the refusal logged once."""
    assert query.tsig_offset is not None
    when = int(time.time()) if now is None else now
    try:
        verdict = verify(data, query.tsig_offset, keyring, when)
    except FormError:
        return header_only(query.msg_id, RCODE_FORMERR, query.rd, opcode=query.opcode)
    if isinstance(verdict, Verified):
        return verdict
    REFUSALS.refused(  # once per request, within the rate limit of per-packet refusals
        log,
        logging.WARNING,
        "tsig-refused",
        "peer=%s key=%s reason=%s opcode=%s",
        peer[0] if isinstance(peer, tuple) and peer else "-",
        verdict.owner,
        verdict.reason,
        dns.opcode.to_text(cast(dns.opcode.Opcode, query.opcode)),
    )
    return tsig_error_reply(data, query, verdict)


class Signer:
    """The engine's TSIG hook: the config's keys and a clock (injected in tests)."""

    def __init__(self, keyring: Keyring, clock: Callable[[], float] = time.time) -> None:
        self.keyring = keyring
        self.clock = clock

    def __call__(self, data: bytes, query: Query, peer: object) -> Verified | bytes:
        return check(data, query, self.keyring, peer, int(self.clock()))


def signed(reply: bytes, verified: Verified | None) -> bytes:
    """`reply` signed for a verified request, or as it is for an unsigned one."""
    return reply if verified is None else verified.sign(reply)


def parse(data: bytes, verified: Verified | None) -> dns.message.Message:
    """The request as a dnspython message, its TSIG not checked again: for a `verified`
    request the message holds the key as `from_wire` leaves it after verifying, so
    `dns.message.make_response` signs the reply (UPDATE, each AXFR/IXFR message)."""
    if verified is None:
        return dns.message.from_wire(data)
    message = dns.message.from_wire(data, keyring=lambda _message, _name: False)
    message.keyring = verified.key
    return message

"""The RFC 2136 adapter against a real fake parent on loopback UDP that checks TSIG and prerequisites."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.tsig
import pytest

from dynmx.errors import ConfigError
from dynmx.selfcheck.registrar import Outcome, PushResult
from dynmx.selfcheck.rfc2136_client import Rfc2136Adapter, Rfc2136Settings

SECRET = base64.b64encode(b"parent-test-secret-parent-test!!").decode()
OTHER_SECRET = base64.b64encode(b"some-other-secret-some-other-sec").decode()
ZONE = dns.name.from_text("example.test.")
HOST = "ns1.example.test."
A, AAAA = dns.rdatatype.A, dns.rdatatype.AAAA


@dataclass
class FakeParent:
    """Serves one zone over UDP: verifies TSIG with its keyring, applies prerequisites and updates."""

    records: dict[tuple[str, int], set[str]]
    rcode: dns.rcode.Rcode | None = None  # answer this instead of applying the update
    clock_skew: float = 0.0  # the server's clock runs this far ahead: BADTIME
    silent: bool = False
    sign: bool = True
    port: int = 0
    updates: list[dns.message.Message] = field(default_factory=list)

    def answer(self, wire: bytes) -> bytes | None:
        keyring = {dns.name.from_text("dynmx-key."): dns.tsig.Key("dynmx-key.", SECRET)}
        try:
            query = dns.message.from_wire(wire, keyring=keyring)
        except dns.message.UnknownTSIGKey:
            return tsig_error(wire, dns.rcode.BADKEY)
        except dns.tsig.BadSignature:
            return tsig_error(wire, dns.rcode.BADSIG)
        self.updates.append(query)
        if self.silent:
            return None
        assert query.tsig is not None
        if abs(query.tsig[0].time_signed - (time.time() + self.clock_skew)) > query.tsig[0].fudge:
            return tsig_error(wire, dns.rcode.BADTIME)
        response = dns.message.make_response(query)
        response.set_rcode(self.rcode if self.rcode is not None else self.apply(query))
        if not self.sign:
            response.keyring = None
            response.tsig = None
        return response.to_wire()

    def apply(self, update: dns.message.Message) -> dns.rcode.Rcode:
        if update.question[0].name != ZONE:
            return dns.rcode.NOTAUTH
        for rrset in update.answer:  # the prerequisite section of an UPDATE
            have = self.records.get((rrset.name.to_text(), rrset.rdtype), set())
            if rrset.deleting is None and not {rd.to_text() for rd in rrset} <= have:  # value dependent
                return dns.rcode.NXRRSET
        for rrset in update.authority:  # the update section
            key = (rrset.name.to_text(), rrset.rdtype)
            if rrset.deleting == dns.rdataclass.ANY:
                self.records.pop(key, None)
            elif rrset.deleting == dns.rdataclass.NONE:
                self.records.get(key, set()).difference_update(rd.to_text() for rd in rrset)
            else:
                self.records.setdefault(key, set()).update(rd.to_text() for rd in rrset)
        return dns.rcode.NOERROR


def tsig_error(wire: bytes, error: dns.rcode.Rcode) -> bytes:
    """NOTAUTH with an unsigned TSIG carrying `error` (RFC 8945 5.3.2), as BIND answers."""
    query = dns.message.from_wire(wire, keyring=False)
    assert query.tsig is not None
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NOTAUTH)
    request = query.tsig[0]
    rdata = request.replace(mac=b"", error=error, other=b"")
    owner = query.tsig.name.to_wire()
    body = bytes(rdata.to_wire())
    assert owner is not None
    record = owner + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(body)) + body
    out = bytes(response.to_wire())
    return out[:10] + (int.from_bytes(out[10:12], "big") + 1).to_bytes(2, "big") + out[12:] + record


@contextmanager
def fake_parent(**options: object) -> Iterator[FakeParent]:
    parent = FakeParent({(HOST, A): {"192.0.2.1"}}, **options)  # type: ignore[arg-type]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    parent.port = sock.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                wire, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            reply = parent.answer(wire)
            if reply is not None:
                sock.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield parent
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def adapter(parent: FakeParent, **options: object) -> Rfc2136Adapter:
    values: dict[str, object] = {
        "name": "parent", "server": "127.0.0.1", "port": parent.port, "zone": "example.test.",
        "key_name": "dynmx-key.", "key_secret": SECRET, "timeout": 2.0,
    }  # fmt: skip
    return Rfc2136Adapter(Rfc2136Settings(**{**values, **options}))  # type: ignore[arg-type]


def push(
    parent: FakeParent, address: str = "192.0.2.7", previous: str | None = "192.0.2.1", **options: object
) -> PushResult:
    family = 6 if ":" in address else 4
    return asyncio.run(adapter(parent, **options).push(HOST, family, address, previous))


def test_noerror_replaces_the_old_address_with_the_new() -> None:
    with fake_parent() as parent:
        result = push(parent)
    assert result == PushResult(Outcome.SUCCESS, f"NOERROR: {HOST} is 192.0.2.7 (was 192.0.2.1) at 127.0.0.1")
    assert parent.records[(HOST, A)] == {"192.0.2.7"}


def test_the_update_is_signed_and_has_the_old_value_as_prerequisite() -> None:
    with fake_parent() as parent:
        push(parent)
    (update,) = parent.updates
    assert update.had_tsig and update.keyname == dns.name.from_text("dynmx-key.")
    (prerequisite,) = update.answer
    assert (prerequisite.deleting, prerequisite.rdtype, prerequisite.ttl) == (None, A, 0)  # value dependent
    assert [rd.to_text() for rd in prerequisite] == ["192.0.2.1"]
    changes = [(rrset.deleting, [rd.to_text() for rd in rrset]) for rrset in update.authority]
    assert changes == [(dns.rdataclass.NONE, ["192.0.2.1"]), (None, ["192.0.2.7"])]  # delete old, add new


def test_without_a_known_old_value_the_rrset_is_replaced() -> None:
    with fake_parent() as parent:
        result = push(parent, previous=None)
    assert result.outcome is Outcome.SUCCESS and parent.updates[0].answer == []
    assert parent.records[(HOST, A)] == {"192.0.2.7"}


def test_ipv6_updates_the_aaaa_rrset() -> None:
    with fake_parent() as parent:
        result = push(parent, "2001:db8::7", previous=None)
    assert result.outcome is Outcome.SUCCESS and parent.records[(HOST, AAAA)] == {"2001:db8::7"}


def test_nxrrset_when_the_parent_does_not_hold_the_old_value() -> None:
    with fake_parent() as parent:
        result = push(parent, previous="192.0.2.99")
    assert result.outcome is Outcome.BACKOFF and result.message.startswith("NXRRSET: prerequisite failed")
    assert "192.0.2.99" in result.message and parent.records[(HOST, A)] == {"192.0.2.1"}


def test_notauth_for_a_zone_the_parent_does_not_serve() -> None:
    with fake_parent() as parent:
        result = asyncio.run(
            adapter(parent, zone="other.test.").push("ns1.other.test.", 4, "192.0.2.7", None)
        )
    assert result.outcome is Outcome.STOP and result.message.startswith(
        "NOTAUTH: the server is not authoritative"
    )


def test_refused_stops() -> None:
    with fake_parent(rcode=dns.rcode.REFUSED) as parent:
        result = push(parent)
    assert (
        result.outcome is Outcome.STOP
        and result.message.startswith("REFUSED: ")
        and "dynmx-key." in result.message
    )


def test_a_wrong_secret_is_badsig() -> None:
    with fake_parent() as parent:
        result = push(parent, key_secret=OTHER_SECRET)
    assert result.outcome is Outcome.STOP and result.message.startswith("NOTAUTH/BADSIG")


def test_an_unknown_key_is_badkey() -> None:
    with fake_parent() as parent:
        result = push(parent, key_name="stranger.")
    assert (
        result.outcome is Outcome.STOP
        and result.message.startswith("NOTAUTH/BADKEY: ")
        and "stranger." in result.message
    )


def test_clock_skew_is_badtime_and_backs_off() -> None:
    with fake_parent(clock_skew=3600.0) as parent:
        result = push(parent)
    assert (
        result.outcome is Outcome.BACKOFF
        and result.message.startswith("NOTAUTH/BADTIME")
        and "NTP" in result.message
    )


def test_an_unsigned_answer_is_not_trusted() -> None:
    with fake_parent(sign=False) as parent:
        result = push(parent)
    assert result.outcome is Outcome.BACKOFF and "unverifiable answer" in result.message


def test_a_silent_parent_backs_off_after_the_timeout() -> None:
    with fake_parent(silent=True) as parent:
        result = push(parent, timeout=0.3)
    assert result.outcome is Outcome.BACKOFF and "within 0.3 s" in result.message


def test_a_hostname_outside_the_zone_stops_without_sending() -> None:
    with fake_parent() as parent:
        result = asyncio.run(adapter(parent).push("ns1.elsewhere.test.", 4, "192.0.2.7", None))
    assert result.outcome is Outcome.STOP and parent.updates == []


def test_the_secret_never_shows() -> None:
    with fake_parent() as parent:
        rfc = adapter(parent)
    assert SECRET not in repr(rfc.settings) and SECRET not in repr(rfc) and SECRET not in rfc.fingerprint()


@pytest.mark.parametrize(
    ("option", "key"),
    [
        ({"key_secret": "not base64!"}, "key_secret"),
        ({"server": "parent.example.test"}, "server"),
        ({"port": 0}, "port"),
        ({"key_algorithm": "hmac-sha3"}, "key_algorithm"),
    ],
)
def test_settings_name_the_bad_key(option: dict[str, object], key: str) -> None:
    values: dict[str, object] = {
        "name": "parent", "server": "127.0.0.1", "zone": "example.test.", "key_name": "k.",
        "key_secret": SECRET,
    }  # fmt: skip
    with pytest.raises(ConfigError, match=rf"^registrar\.parent\.{key}: ") as error:
        Rfc2136Settings(**{**values, **option})  # type: ignore[arg-type]
    assert "not base64!" not in str(error.value)

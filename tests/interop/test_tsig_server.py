"""TSIG (RFC 8945) against a running dynmx: every signed request verified, every reply signed.

Clients: dnspython (which verifies a reply's TSIG when the query had one), BIND's dig and
nsupdate, Knot's kdig (each skipped when not installed). Failures (BADKEY, BADSIG,
BADTIME) are checked on the wire and in the log: one `event=tsig-refused` line each.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from tests.conftest import EDITS, TEST_SECRET, RunningServer, start_server, wait_until, write_config

KEY = f"hmac-sha256:ops-key:{TEST_SECRET}"
KEY_NAME = dns.name.from_text("ops-key.")
KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})
OTHER_ALGORITHM = {dns.name.from_text("ops-key."): dns.tsig.Key("ops-key.", TEST_SECRET, "hmac-sha512")}
WRONG_SECRET = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", "d3JvbmdzZWNyZXR3cm9uZ3NlY3JldA==")})
BIG_TXT = "".join(f'bigtxt TXT "{str(i) * 120}"\n' for i in range(6))  # ~750 octets: TC without EDNS
ZONE = f"""\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 100 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mx1  A   127.0.0.2
{BIG_TXT}"""


def _start(tmp_path: Path, extra: str = "") -> RunningServer:
    return start_server("--config", str(write_config(tmp_path, ZONE, extra + EDITS)))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = _start(tmp_path_factory.mktemp("tsig"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = _start(tmp_path_factory.mktemp("tsig-workers"), "workers = 1\n")
    yield running
    running.stop()


def _soa(keyring: dict[dns.name.Name, dns.tsig.Key] = KEYRING) -> dns.message.Message:
    msg = dns.message.make_query("example.test.", "SOA")
    msg.use_tsig(keyring, next(iter(keyring)))
    return msg


def _exchange(server: RunningServer, wire: bytes) -> bytes:
    """One datagram out, one back: for requests dnspython would sign again when sending."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(wire, server.address)
        return sock.recv(65535)


def _unverified(reply: bytes) -> tuple[dns.message.Message, dns.rdtypes.ANY.TSIG.TSIG]:
    """An error reply and its TSIG, read without checking it (dnspython raises on errors)."""
    message = dns.message.from_wire(reply, keyring=lambda _message, _name: False)
    assert message.tsig is not None, "the reply has no TSIG record"
    record: dns.rdtypes.ANY.TSIG.TSIG = message.tsig[0]
    return message, record


def _exchange_tcp(server: RunningServer, wire: bytes) -> bytes:
    """One message over TCP (RFC 1035 4.2.2 length prefix), one back."""
    with socket.create_connection(server.address, timeout=3) as sock:
        sock.sendall(len(wire).to_bytes(2, "big") + wire)
        stream = sock.makefile("rb")
        length = int.from_bytes(stream.read(2), "big")
        return bytes(stream.read(length))


@contextlib.contextmanager
def _logs_once(server: RunningServer, line: str) -> Iterator[None]:
    """The block makes the server log `line` once (counted from before it: the server is shared)."""
    before = server.log_text().count(line)
    yield
    wait_until(lambda: server.log_text().count(line) > before)
    time.sleep(0.2)  # a second line would come at once
    assert server.log_text().count(line) == before + 1, server.log_text()
    assert TEST_SECRET not in server.log_text()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed")
    return path


# -- signed queries get signed answers (RFC 8945 5.3) -------------------------------------


def test_rfc8945_5_3_signed_soa_query_over_udp_gets_a_signed_answer(server: RunningServer) -> None:
    reply = dns.query.udp(_soa(), "127.0.0.1", port=server.dns_port, timeout=3)  # dnspython verifies
    assert reply.had_tsig and reply.rcode() == dns.rcode.NOERROR
    assert reply.answer[0].rdtype == dns.rdatatype.SOA


def test_rfc8945_5_3_signed_soa_query_over_tcp_gets_a_signed_answer(server: RunningServer) -> None:
    reply = dns.query.tcp(_soa(), "127.0.0.1", port=server.dns_port, timeout=3)
    assert reply.had_tsig and reply.rcode() == dns.rcode.NOERROR
    assert reply.answer[0].rdtype == dns.rdatatype.SOA


@pytest.mark.interop
@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_rfc8945_5_3_dig_verifies_the_signed_answer(server: RunningServer, transport: str) -> None:
    dig = _tool("dig")
    command = [dig, "-y", KEY, "@127.0.0.1", "-p", str(server.dns_port), transport, "example.test", "SOA"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "status: NOERROR" in output, output
    assert "Couldn't verify" not in output and "could not be validated" not in output, output
    assert "TSIG PSEUDOSECTION" in output


@pytest.mark.interop
@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_rfc8945_5_3_kdig_verifies_the_signed_answer(server: RunningServer, transport: str) -> None:
    kdig = _tool("kdig")
    command = [kdig, "-y", KEY, "@127.0.0.1", "-p", str(server.dns_port), transport, "example.test", "SOA"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "status: NOERROR" in output, output
    assert "WARNING" not in output, output  # kdig: "reply verification for ... (expected a TSIG ...)"
    assert "TSIG PSEUDOSECTION" in output


@pytest.mark.interop
def test_rfc8945_nsupdate_without_a_zone_line_finds_the_zone_by_a_signed_soa_query(
    server: RunningServer,
) -> None:
    nsupdate = _tool("nsupdate")
    script = f"server 127.0.0.1 {server.dns_port}\nupdate add found.example.test 300 A 192.0.2.44\nsend\n"
    result = subprocess.run([nsupdate, "-y", KEY], input=script, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    lookup = dns.message.make_query("found.example.test.", "A")
    reply = dns.query.udp(lookup, "127.0.0.1", port=server.dns_port, timeout=3)
    assert [r.address for r in reply.answer[0]] == ["192.0.2.44"]


def test_rfc8945_5_3_a_truncated_udp_answer_is_signed(server: RunningServer) -> None:
    msg = dns.message.make_query("bigtxt.example.test.", "TXT")  # no EDNS: 512 octets
    msg.use_tsig(KEYRING, "ops-key.")
    reply = dns.query.udp(msg, "127.0.0.1", port=server.dns_port, timeout=3, raise_on_truncation=False)
    assert reply.flags & dns.flags.TC and reply.had_tsig


def test_rfc8945_5_3_a_signed_notify_is_answered_signed(server: RunningServer) -> None:
    """example.test. is no secondary zone: the NOTIFY is REFUSED, and the refusal signed."""
    notify = dns.message.make_query("example.test.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    notify.flags |= dns.flags.AA
    notify.use_tsig(KEYRING, "ops-key.")
    reply = dns.query.udp(notify, "127.0.0.1", port=server.dns_port, timeout=3)
    assert reply.had_tsig and reply.rcode() == dns.rcode.REFUSED
    assert reply.opcode() == dns.opcode.NOTIFY


# -- failures (RFC 8945 5.2, 5.3.2) ------------------------------------------------------

REFUSED = "event=tsig-refused peer=127.0.0.1 key={key} reason={reason} opcode={opcode}"


def test_rfc8945_5_2_1_known_key_with_another_algorithm_is_notauth_badkey(server: RunningServer) -> None:
    with _logs_once(server, REFUSED.format(key="ops-key.", reason="badkey", opcode="QUERY")):
        message, record = _unverified(_exchange(server, _soa(OTHER_ALGORITHM).to_wire()))
    assert message.rcode() == dns.rcode.NOTAUTH and record.error == dns.rcode.BADKEY
    assert record.mac == b""  # unsigned (5.3.2)


def test_rfc8945_5_2_1_unknown_key_is_notauth_badkey(server: RunningServer) -> None:
    stranger = dns.tsigkeyring.from_text({"stranger-key.": ("hmac-sha256", TEST_SECRET)})
    with _logs_once(server, REFUSED.format(key="stranger-key.", reason="badkey", opcode="QUERY")):
        message, record = _unverified(_exchange(server, _soa(stranger).to_wire()))
    assert message.rcode() == dns.rcode.NOTAUTH and record.error == dns.rcode.BADKEY


def test_rfc8945_5_2_2_bad_mac_is_notauth_badsig(server: RunningServer) -> None:
    with _logs_once(server, REFUSED.format(key="ops-key.", reason="badsig", opcode="QUERY")):
        message, record = _unverified(_exchange(server, _soa(WRONG_SECRET).to_wire()))
    assert message.rcode() == dns.rcode.NOTAUTH and record.error == dns.rcode.BADSIG
    assert record.mac == b""


def test_rfc8945_5_2_3_time_off_by_more_than_fudge_is_badtime_with_the_servers_time(
    server: RunningServer,
) -> None:
    msg = _soa()
    with mock.patch("time.time", return_value=time.time() - 1000):
        wire = msg.to_wire()  # signed 1000 s ago; the fudge is 300 s
    asked = int(time.time())
    with _logs_once(server, REFUSED.format(key="ops-key.", reason="badtime", opcode="QUERY")):
        message, record = _unverified(_exchange(server, wire))
    assert message.rcode() == dns.rcode.NOTAUTH and record.error == dns.rcode.BADTIME
    server_time = int.from_bytes(record.other, "big")
    assert len(record.other) == 6 and asked - 1 <= server_time <= int(time.time()) + 1
    assert record.mac != b""  # 5.2.3: the MAC verified, so the BADTIME reply is signed


def test_rfc8945_5_2_1_update_with_a_known_key_and_another_algorithm_is_badkey(server: RunningServer) -> None:
    update = dns.update.UpdateMessage("example.test.", keyring=OTHER_ALGORITHM, keyname=KEY_NAME)
    update.add("refused", 300, "A", "192.0.2.9")
    with _logs_once(server, REFUSED.format(key="ops-key.", reason="badkey", opcode="UPDATE")):
        message, record = _unverified(_exchange(server, update.to_wire()))
    assert message.rcode() == dns.rcode.NOTAUTH and record.error == dns.rcode.BADKEY
    assert message.opcode() == dns.opcode.UPDATE


def test_rfc8945_5_2_2_axfr_with_a_bad_mac_is_notauth_badsig(server: RunningServer) -> None:
    axfr = dns.message.make_query("example.test.", "AXFR")
    axfr.use_tsig(WRONG_SECRET, KEY_NAME)
    with _logs_once(server, REFUSED.format(key="ops-key.", reason="badsig", opcode="QUERY")):
        message, record = _unverified(_exchange_tcp(server, axfr.to_wire()))
    assert message.rcode() == dns.rcode.NOTAUTH and record.error == dns.rcode.BADSIG
    assert "event=transfer " not in server.log_text()


# -- answer workers sign too ---------------------------------------------------------------


def test_rfc8945_5_3_a_worker_signs_its_answer_over_udp_and_tcp(workers: RunningServer) -> None:
    for ask in (dns.query.udp, dns.query.tcp):
        reply = ask(_soa(), "127.0.0.1", port=workers.dns_port, timeout=3)
        assert reply.had_tsig and reply.rcode() == dns.rcode.NOERROR


def test_rfc8945_5_2_2_a_worker_refuses_a_bad_mac_and_logs_it_once(workers: RunningServer) -> None:
    with _logs_once(workers, REFUSED.format(key="ops-key.", reason="badsig", opcode="QUERY")):
        message, record = _unverified(_exchange(workers, _soa(WRONG_SECRET).to_wire()))
    assert message.rcode() == dns.rcode.NOTAUTH and record.error == dns.rcode.BADSIG

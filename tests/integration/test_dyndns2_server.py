"""The dyndns2 endpoint on a running dynmx, as routers, ddclient and inadyn call it: here on the
control listener (`[dyndns2] listen` unset), as before it had a listener of its own
(tests/interop/test_dyndns2_listener.py); logins are slowed on both."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.conftest import RunningServer, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
home A   192.0.2.1
"""
Serve = Callable[..., RunningServer]


@pytest.fixture
def server(serve: Serve, tmp_path: Path) -> RunningServer:
    config = write_config(
        tmp_path,
        ZONE,
        '[http]\nlisten = "127.0.0.1:0"\n'
        "[dyndns2]\nenabled = true\nttl = 60\nmin_interval = 0\n"
        '[[dyndns2.host]]\nhostname = "home.example.test."\nusername = "home"\npassword = "s3cret"\n',
    )
    return serve("--config", str(config))


def _get(server: RunningServer, query: str, user: str = "home", password: str = "s3cret") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/nic/update?{query}")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("User-Agent", "dynmx-test/1.0")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()


def _address(server: RunningServer) -> list[str]:
    reply = dns.query.udp(
        dns.message.make_query("home.example.test", "A"), "127.0.0.1", port=server.dns_port, timeout=2
    )
    return [r.address for r in reply.answer[0]]


def test_good_changes_the_record_at_once_and_nochg_follows(server: RunningServer) -> None:
    assert _get(server, "hostname=home.example.test&myip=192.0.2.7") == (200, "good 192.0.2.7")
    assert _address(server) == ["192.0.2.7"]
    assert _get(server, "hostname=home.example.test&myip=192.0.2.7") == (200, "nochg 192.0.2.7")


def test_wrong_password_is_badauth_and_changes_nothing(server: RunningServer) -> None:
    assert _get(server, "hostname=home.example.test&myip=192.0.2.8", password="nope") == (401, "badauth")
    assert _address(server) == ["192.0.2.1"]


def test_unknown_host_is_nohost(server: RunningServer) -> None:
    assert _get(server, "hostname=other.example.test&myip=192.0.2.8") == (200, "nohost")


def test_password_never_reaches_the_log(server: RunningServer) -> None:
    _get(server, "hostname=home.example.test&myip=192.0.2.9")
    assert "s3cret" not in server.log_text()


def test_a_brute_force_is_slowed_and_logged_and_the_right_password_then_waits(server: RunningServer) -> None:
    """Issue 23 item 10: 200 wrong passwords as fast as one client can send them. After three,
    the source waits (1 s, doubling) and is answered 429 badauth without its password being
    looked at, so the right one, found meanwhile, is no use; the failures are logged at a
    bounded rate."""
    query = "hostname=home.example.test&myip=192.0.2.9"
    started = time.monotonic()
    answers = Counter(_get(server, query, password=f"guess{n}")[0] for n in range(200))
    elapsed = time.monotonic() - started
    assert answers[401] <= 4 and answers[429] >= 196, answers
    assert _get(server, query) == (429, "badauth")  # the right password, while it waits
    assert _address(server) == ["192.0.2.1"]
    server.wait_for_log("reason=waiting")  # the log is read by a thread
    lines = [line for line in server.lines if "event=dyndns2-refused" in line]
    assert 4 <= len(lines) <= 10 * (elapsed + 1) + 2  # at most 10 lines a second, and summaries
    assert not any("guess" in line for line in server.lines)  # passwords are never logged
    assert "reason=badauth" in lines[0] and "source=127.0.0.1" in lines[0] and "failures=1" in lines[0]
    assert "s3cret" not in server.log_text()
    print(f"200 wrong passwords in {elapsed:.2f} s: {dict(answers)}")


def test_the_wait_ends_and_the_right_password_is_taken(server: RunningServer) -> None:
    query = "hostname=home.example.test&myip=192.0.2.10"
    for _ in range(3):
        assert _get(server, query, password="nope") == (401, "badauth")
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/nic/update?{query}")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"home:s3cret").decode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 429 and refused.value.headers["Retry-After"] == "1"
    time.sleep(1.1)
    assert _get(server, query) == (200, "good 192.0.2.10")
    assert _get(server, query, password="nope") == (401, "badauth")  # a right login forgot the failures
    assert _get(server, query, password="nope") == (401, "badauth")


def _served(server: RunningServer, rdtype: dns.rdatatype.RdataType) -> list[str]:
    reply = dns.query.udp(
        dns.message.make_query("home.example.test", rdtype), "127.0.0.1", port=server.dns_port, timeout=2
    )
    return sorted(rdata.to_text() for rrset in reply.answer for rdata in rrset if rrset.rdtype == rdtype)


def _serial(server: RunningServer) -> int:
    reply = dns.query.udp(
        dns.message.make_query("example.test", "SOA"), "127.0.0.1", port=server.dns_port, timeout=2
    )
    return int(reply.answer[0][0].serial)


def test_dual_stack_myip_sets_a_and_aaaa_under_one_serial(server: RunningServer) -> None:
    """`myip=v4,v6` as ddclient 3.11+ and routers send it: one line for the host, both records
    changed in one transaction (the serial moves once), served at once over UDP."""
    before = _serial(server)
    query = "hostname=home.example.test&myip=198.51.100.9,2001:db8::9"
    assert _get(server, query) == (200, "good 198.51.100.9 2001:db8::9")
    assert (_served(server, dns.rdatatype.A), _served(server, dns.rdatatype.AAAA)) == (
        ["198.51.100.9"],
        ["2001:db8::9"],
    )
    assert _serial(server) == before + 1
    assert _get(server, query) == (200, "nochg 198.51.100.9 2001:db8::9")
    assert _get(server, "hostname=home.example.test&myip=198.51.100.9&myipv6=2001:db8::10") == (
        200,
        "good 198.51.100.9 2001:db8::10",
    )
    assert _served(server, dns.rdatatype.AAAA) == ["2001:db8::10"]
    server.wait_for_log("event=dyndns2-update host=home.example.test. address=2001:db8::10")


def test_refusals_are_logged_as_key_value_lines_without_the_password(server: RunningServer) -> None:
    assert _get(server, "hostname=other.example.test&myip=192.0.2.8") == (200, "nohost")
    assert _get(server, "hostname=home.example.test&myip=192.0.2.8,192.0.2.9") == (400, "dnserr")
    assert _get(server, "hostname=home.example.test", password="Wrong-pass") == (401, "badauth")
    for needle in (
        "event=dyndns2-refused reason=nohost host=other.example.test source=127.0.0.1 user='home'\n",
        "event=dyndns2-refused reason=dnserr host=home.example.test source=127.0.0.1 user='home'\n",
        "event=dyndns2-refused reason=badauth host=home.example.test source=127.0.0.1 user='home' counted=",
    ):
        server.wait_for_log(needle)  # the log is read by a thread: wait for the line
    assert "s3cret" not in server.log_text() and "Wrong-pass" not in server.log_text()


def test_min_interval_counts_per_host_and_address_family(serve: Serve, tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        ZONE,
        '[http]\nlisten = "127.0.0.1:0"\n'
        "[dyndns2]\nenabled = true\nttl = 60\nmin_interval = 60\n"
        '[[dyndns2.host]]\nhostname = "home.example.test."\nusername = "home"\npassword = "s3cret"\n',
    )
    server = serve("--config", str(config))
    assert _get(server, "hostname=home.example.test&myip=192.0.2.7") == (200, "good 192.0.2.7")
    assert _get(server, "hostname=home.example.test&myip=2001:db8::7") == (200, "good 2001:db8::7")
    assert _get(server, "hostname=home.example.test&myip=2001:db8::7") == (200, "nochg 2001:db8::7")
    assert _get(server, "hostname=home.example.test&myip=192.0.2.8") == (200, "abuse")
    assert (_served(server, dns.rdatatype.A), _served(server, dns.rdatatype.AAAA)) == (
        ["192.0.2.7"],
        ["2001:db8::7"],
    )
    server.wait_for_log("event=dyndns2-refused reason=abuse host=home.example.test source=127.0.0.1")

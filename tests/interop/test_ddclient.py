"""A real dyndns2 client, Debian's ddclient, against a running dynmx on 127.0.0.1.

ddclient 3.10 sends one address per request: the one its `use=` (or `usev4=`) found, as
`myip=`. Its dyndns2 code reads no `usev6=` address, so a dual-stack host takes two
configurations (two cache files), one per family, and the A and AAAA updates come seconds
apart: `[dyndns2] min_interval` counts per host and family, so the second is not `abuse`.
The dual-stack request of ddclient 3.11 and later (`myip=v4,v6`) is tested by plain HTTP in
tests/integration/test_dyndns2_server.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.conftest import RunningServer, write_config

DDCLIENT = shutil.which("ddclient")
pytestmark = pytest.mark.skipif(DDCLIENT is None, reason="needs ddclient (./dev test installs it)")

Serve = Callable[..., RunningServer]
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
home A   192.0.2.1
"""
DYNDNS2 = """\
[dyndns2]
enabled = true
listen = "127.0.0.1:0"
ttl = 60
min_interval = 60
[[dyndns2.host]]
hostname = "home.example.test."
username = "home"
password = "s3cret"
"""
LISTENING = re.compile(r"event=listening proto=dyndns2 address=\S+ port=(\d+)")


@pytest.fixture
def dynmx(serve: Serve, tmp_path: Path) -> tuple[RunningServer, int]:
    """dynmx with its dyndns2 listener on a loopback port, plain HTTP."""
    server = serve("--config", str(write_config(tmp_path, ZONE, DYNDNS2)))
    match = LISTENING.search(server.wait_for_log("event=listening proto=dyndns2"))
    assert match is not None
    return server, int(match.group(1))


def ddclient(directory: Path, port: int, name: str, address: str, *options: str) -> str:
    """Run ddclient once in the foreground with its own config and cache in `directory`
    (never /etc or /var); `address` is the line that says where its address comes from."""
    assert DDCLIENT is not None
    config = directory / f"{name}.conf"
    config.write_text(
        "ssl=no\n"
        "protocol=dyndns2\n"
        f"server=127.0.0.1:{port}\n"
        "login=home\n"
        "password=s3cret\n"
        f"{address}\n"
        "home.example.test\n"
    )
    config.chmod(0o600)  # ddclient warns of a config others may read
    command = [DDCLIENT, "-daemon=0", "-foreground", "-verbose", "-noquiet", *options]
    command += ["-file", str(config), "-cache", str(directory / f"{name}.cache")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=directory)
    return run.stdout + run.stderr


def served(server: RunningServer, rdtype: str) -> list[str]:
    """home.example.test's addresses of `rdtype` as dynmx answers them over UDP."""
    query = dns.message.make_query("home.example.test", rdtype)
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(rdata.to_text() for rrset in reply.answer if rrset.rdtype == wanted for rdata in rrset)


def test_ddclient_sets_the_a_record_then_the_aaaa_record_seconds_later(
    dynmx: tuple[RunningServer, int], tmp_path: Path
) -> None:
    """One ddclient per family (3.10 sends one address a request); the AAAA update right
    after the A update of the same host is `good`, not `abuse` (min_interval per family)."""
    server, port = dynmx
    v4 = ddclient(tmp_path, port, "v4", "use=cmd, cmd='echo 198.51.100.9'")
    assert "myip=198.51.100.9 HTTP/1.1" in v4, v4
    assert "SUCCESS:  updating home.example.test: good: IP address set to 198.51.100.9" in v4, v4
    assert served(server, "A") == ["198.51.100.9"]

    v6 = ddclient(tmp_path, port, "v6", "use=cmd, cmd='echo 2001:db8::9'")
    assert "myip=2001:db8::9 HTTP/1.1" in v6, v6
    assert "SUCCESS:  updating home.example.test: good: IP address set to 2001:db8::9" in v6, v6
    assert served(server, "AAAA") == ["2001:db8::9"]
    assert served(server, "A") == ["198.51.100.9"]
    assert "WARNING" not in v4 + v6 and "event=dyndns2-refused" not in server.log_text()
    assert "s3cret" not in server.log_text()


def test_ddclient_forced_again_is_told_nochg_and_a_second_change_is_abuse(
    dynmx: tuple[RunningServer, int], tmp_path: Path
) -> None:
    server, port = dynmx
    assert "good" in ddclient(tmp_path, port, "v4", "use=no, usev4=ipv4, ipv4=198.51.100.9")
    unchanged = ddclient(tmp_path, port, "v4", "use=no, usev4=ipv4, ipv4=198.51.100.9")
    assert "GET /nic/update" not in unchanged, unchanged  # its cache knows: nothing sent
    forced = ddclient(tmp_path, port, "v4", "use=no, usev4=ipv4, ipv4=198.51.100.9", "-force")
    assert "nochg 198.51.100.9" in forced and "WARNING:  updating home.example.test: nochg" in forced, forced
    moved = ddclient(
        tmp_path, port, "v4", "use=no, usev4=ipv4, ipv4=198.51.100.10", "-force"
    )  # past its own wait
    assert "FAILED:   updating home.example.test: abuse" in moved, moved
    assert served(server, "A") == ["198.51.100.9"]
    line = server.wait_for_log("reason=abuse")
    assert "event=dyndns2-refused reason=abuse host=home.example.test source=127.0.0.1 user='home'" in line


def test_ddclient_3_10_sends_no_usev6_address_through_dyndns2(
    dynmx: tuple[RunningServer, int], tmp_path: Path
) -> None:
    """ddclient 3.10's dyndns2 code sends only `wantip` (from `use=`, else `usev4=`): a
    `usev6=` address is dropped and `myip=` goes out empty, which dyndns2 reads as "use the
    address the request came from" (here 127.0.0.1, into the A record). Hence `use=` for
    the IPv6 configuration with 3.10. From 3.11, ddclient sends `myip=v4,v6` (tested by
    plain HTTP in tests/integration/test_dyndns2_server.py)."""
    server, port = dynmx
    output = ddclient(tmp_path, port, "v6only", "usev6=ipv6, ipv6=2001:db8::10")
    agent = re.search(r"User-Agent: ddclient/(\d+)\.(\d+)", output)
    assert agent is not None, output
    if (int(agent.group(1)), int(agent.group(2))) >= (3, 11):
        pytest.skip(f"ddclient {agent.group(1)}.{agent.group(2)} sends its usev6 address")
    assert "&myip= HTTP/1.1" in output, output
    assert served(server, "AAAA") == []
    assert served(server, "A") == ["127.0.0.1"]

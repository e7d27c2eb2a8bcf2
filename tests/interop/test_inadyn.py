"""A second real dyndns2 client, Debian's inadyn, against a running dynmx on 127.0.0.1.

inadyn 2.10 sends one address per request, as `custom` provider with a dyndns2
`ddns-path`; `allow-ipv6 = true` lets it send an IPv6 address (percent-encoded), so a
dual-stack host is two configurations, one per family, with their own cache directories.
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
from tests.interop.test_ddclient import DYNDNS2, LISTENING, ZONE

INADYN = shutil.which("inadyn")
pytestmark = pytest.mark.skipif(INADYN is None, reason="needs inadyn (apt-get install inadyn)")

Serve = Callable[..., RunningServer]


@pytest.fixture
def dynmx(serve: Serve, tmp_path: Path) -> tuple[RunningServer, int]:
    server = serve("--config", str(write_config(tmp_path, ZONE, DYNDNS2)))
    match = LISTENING.search(server.wait_for_log("event=listening proto=dyndns2"))
    assert match is not None
    return server, int(match.group(1))


def inadyn(directory: Path, port: int, name: str, address: str, ipv6: bool = False) -> str:
    """Run inadyn once in the foreground with its own config and cache in `directory`;
    `checkip-command` prints `address`."""
    assert INADYN is not None
    config = directory / f"{name}.conf"
    config.write_text(
        ("allow-ipv6 = true\n" if ipv6 else "")
        + "verify-address = false\n"  # documentation addresses are not public ones
        "custom dynmx {\n"
        "    username = home\n"
        "    password = s3cret\n"
        "    hostname = home.example.test\n"
        "    ssl = false\n"
        f"    ddns-server = 127.0.0.1:{port}\n"
        '    ddns-path = "/nic/update?hostname=%h&myip=%i"\n'
        f'    checkip-command = "echo {address}"\n'
        "}\n"
    )
    config.chmod(0o600)
    cache = directory / f"{name}.cache"
    cache.mkdir(exist_ok=True)
    command = [INADYN, "--once", "--foreground", "--no-pidfile", "--loglevel=info"]
    command += [f"--config={config}", f"--cache-dir={cache}"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=directory)
    return run.stdout + run.stderr


def served(server: RunningServer, rdtype: str) -> list[str]:
    query = dns.message.make_query("home.example.test", rdtype)
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(rdata.to_text() for rrset in reply.answer if rrset.rdtype == wanted for rdata in rrset)


def test_inadyn_sets_the_a_record_then_the_aaaa_record_seconds_later(
    dynmx: tuple[RunningServer, int], tmp_path: Path
) -> None:
    server, port = dynmx
    v4 = inadyn(tmp_path, port, "v4", "198.51.100.9")
    assert re.search(
        r"Successful alias table update for home\.example\.test => new IP# 198\.51\.100\.9", v4
    ), v4
    assert served(server, "A") == ["198.51.100.9"]
    v6 = inadyn(tmp_path, port, "v6", "2001:db8::9", ipv6=True)
    assert "Successful alias table update for home.example.test => new IP# 2001:db8::9" in v6, v6
    assert served(server, "AAAA") == ["2001:db8::9"]
    assert served(server, "A") == ["198.51.100.9"]
    server.wait_for_log("event=dyndns2-update host=home.example.test. address=2001:db8::9")
    assert "event=dyndns2-refused" not in server.log_text()
    assert "s3cret" not in server.log_text()

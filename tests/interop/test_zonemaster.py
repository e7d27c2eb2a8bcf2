"""Zonemaster (the registries' delegation checker) run against a delegated dynmx zone.

Zonemaster tests a zone end to end: delegation from its parent, consistency between its
name servers, the name servers' EDNS, case and AXFR behaviour, SOA values, MX targets
(rfc-checklist.md, "External suites"). It has no port option, so everything listens on
port 53 of loopback addresses: NSD serves a fake root and `test.` on 127.0.53.1 (the
root hints point there), dynmx serves `mail.test.` on 127.0.53.2 and 127.0.53.3 (its two
name servers). Every query goes to those three addresses.

Findings at NOTICE and above are compared, tag by tag. Expected (and what NSD serving
this zone gets, checked first): ADDRESS01 and ADDRESS02 (name server addresses in 127/8, without PTR:
loopback itself), DELEGATION01 (no IPv6 name servers: the run is IPv4 only, since ::1 is
one address) and DNSSEC07/NOT_SIGNED (dynmx does not sign zones). Anything else fails,
e.g. AXFR open to Zonemaster (NAMESERVER03, a NOTICE).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import start_server
from tests.nsd import Nsd, NsdUnavailable

pytestmark = pytest.mark.interop

ROOT_SERVER = "127.0.53.1"
NAME_SERVERS = ("127.0.53.2", "127.0.53.3")
EXPECTED = {
    ("ADDRESS01", "NAMESERVER_IP_PRIVATE_NETWORK"),
    ("ADDRESS02", "NAMESERVER_IP_WITHOUT_REVERSE"),
    ("DELEGATION01", "NO_IPV6_NS_CHILD"),
    ("DELEGATION01", "NO_IPV6_NS_DEL"),
    ("DNSSEC07", "NEITHER_DNSKEY_NOR_DS"),
    ("UNSPECIFIED", "NOT_SIGNED"),
}

ROOT_ZONE = f"""$TTL 86400
. SOA a.root-servers.test. hostmaster.root-servers.test. 2026120301 1800 900 604800 86400
. NS a.root-servers.test.
test. NS ns.nic.test.
a.root-servers.test. A {ROOT_SERVER}
ns.nic.test. A {ROOT_SERVER}
"""
TEST_ZONE = f"""$ORIGIN test.
$TTL 86400
@ SOA ns.nic hostmaster.nic 2026120301 21600 3600 1209600 3600
@ NS ns.nic
ns.nic A {ROOT_SERVER}
a.root-servers A {ROOT_SERVER}
mail NS ns1.mail
mail NS ns2.mail
ns1.mail A {NAME_SERVERS[0]}
ns2.mail A {NAME_SERVERS[1]}
"""
MAIL_ZONE = f"""$ORIGIN mail.test.
$TTL 3600
@ SOA ns1 hostmaster 2026120301 21600 3600 1209600 3600
@ NS ns1
@ NS ns2
ns1 A {NAME_SERVERS[0]}
ns2 A {NAME_SERVERS[1]}
@ MX 10 mx1
@ MX 20 mx2
@ MX 90 relay
mx1 A 127.0.0.4
mx2 A 127.0.0.5
relay A 127.0.0.6
@ TXT "v=spf1 mx -all"
www A 127.0.0.7
"""
ROUND_ROBIN_POOL = """
[[pool]]
name = "mail.test."
strategy = "round-robin"
ttl = 300
  [[pool.member]]
  host = "mx1.mail.test."
  preference = 10
  probe = "none"
  [[pool.member]]
  host = "mx2.mail.test."
  preference = 20
  probe = "none"
  [[pool.member]]
  host = "relay.mail.test."
  preference = 90
  role = "relay"
  probe = "none"
"""


def _port_53_free(address: str) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((address, 53))
            except OSError:
                return False
    return True


def _skip_reason() -> str:
    if shutil.which("zonemaster-cli") is None:
        return "zonemaster-cli is not installed (./dev test installs it)"
    if os.geteuid() != 0:
        return "Zonemaster has no port option: port 53 needs root"
    busy = [address for address in (ROOT_SERVER, *NAME_SERVERS) if not _port_53_free(address)]
    if busy:
        return f"port 53 is taken on {', '.join(busy)}"
    return ""


@pytest.fixture
def fake_root(tmp_path: Path) -> Iterator[Path]:
    """NSD serving the root and `test.` on ROOT_SERVER:53; yields the root hints file."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    zones = tmp_path / "parent"
    zones.mkdir()
    (zones / "root.zone").write_text(ROOT_ZONE)
    (zones / "test.zone").write_text(TEST_ZONE)
    hints = tmp_path / "hints"
    hints.write_text(f". 3600000 NS a.root-servers.test.\na.root-servers.test. 3600000 A {ROOT_SERVER}\n")
    try:
        nsd = Nsd(zones, {".": "root.zone", "test.": "test.zone"}, port=53, hosts=(ROOT_SERVER,))
    except NsdUnavailable as error:
        pytest.skip(str(error))
    with nsd:
        yield hints


def _zone_dir(tmp_path: Path) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "mail.test.zone").write_text(MAIL_ZONE)
    return zones


@contextlib.contextmanager
def _dynmx(tmp_path: Path, extra: str = "") -> Iterator[None]:
    zones = _zone_dir(tmp_path)
    listen = ", ".join(f'"{address}:53"' for address in NAME_SERVERS)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = [{listen}]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n' + extra
    )
    server = start_server("--config", str(config))
    try:
        yield
    finally:
        server.stop()


def _findings(hints: Path) -> set[tuple[str, str]]:
    """(test case, tag) of every NOTICE, WARNING, ERROR and CRITICAL, over IPv4 only."""
    result = subprocess.run(
        [
            "zonemaster-cli",
            "mail.test",
            f"--hints={hints}",
            "--no-ipv6",
            "--json",
            "--level=NOTICE",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return {(entry["testcase"], entry["tag"]) for entry in json.loads(result.stdout)}


def test_zonemaster_findings_for_the_zone_served_by_nsd_are_the_expected_ones(
    tmp_path: Path, fake_root: Path
) -> None:
    """The yardstick: what NSD gets is the environment's (loopback, IPv4, unsigned)."""
    with Nsd(_zone_dir(tmp_path), {"mail.test.": "mail.test.zone"}, port=53, hosts=NAME_SERVERS):
        findings = _findings(fake_root)
    assert findings == EXPECTED


@pytest.mark.parametrize("workers", [0, 2])
def test_zonemaster_finds_in_a_dynmx_zone_only_what_it_finds_with_nsd(
    tmp_path: Path, fake_root: Path, workers: int
) -> None:
    """In one process and with answer workers (`workers` goes into [server])."""
    with _dynmx(tmp_path, f"workers = {workers}\n"):
        findings = _findings(fake_root)
    assert findings == EXPECTED


def test_zonemaster_sees_a_round_robin_pool_as_mx_data_differing_between_servers(
    tmp_path: Path, fake_root: Path
) -> None:
    """By design: each answer rotates the preferences, so two name servers asked once each
    give different MX sets (ZONE09, a WARNING). A static pool would be consistent."""
    with _dynmx(tmp_path, ROUND_ROBIN_POOL):
        findings = _findings(fake_root)
    assert findings == EXPECTED | {("ZONE09", "Z09_INCONSISTENT_MX_DATA")}

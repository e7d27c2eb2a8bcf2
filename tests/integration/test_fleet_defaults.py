"""[defaults] allow_update, allow_transfer and notify: the settings of every zone without a
[[zone]] block (Knot's `template: default`), so a zone `dynmx zone add` made is edited,
transferred and NOTIFYed without a config edit (issue 27: the next `record add` failed with
"no [[zone]] block allows updates")."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.zone
import pytest

from dynmx.config import from_mapping
from dynmx.errors import ConfigError
from tests.conftest import ROOT, TEST_SECRET, RunningServer, wait_until, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
"""
DEFAULTS = (
    f'[[key]]\nname = "ops-key."\nsecret = "{TEST_SECRET}"\n'
    '[defaults]\nns = ["ns1.example.test."]\nhostmaster = "hostmaster.example.test."\n'
    'allow_update = ["ops-key."]\nallow_transfer = ["127.0.0.0/8"]\n'
)
Serve = Callable[..., RunningServer]


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_zone_settings_fall_back_to_defaults_for_a_zone_without_a_block() -> None:
    config = from_mapping(
        {
            "key": [{"name": "ops-key.", "secret": TEST_SECRET}],
            "defaults": {"allow_update": ["ops-key."], "notify": ["127.0.0.1:5300"]},
            "zone": [{"name": "example.test."}],
        }
    )
    added = config.zone_settings("shop.example.test")
    assert added.allow_update == ("ops-key.",) and added.notify == ("127.0.0.1:5300",)
    assert config.zone_settings("EXAMPLE.test.").allow_update == ()  # its own block wins


def test_defaults_allow_update_must_name_a_key() -> None:
    with pytest.raises(ConfigError, match=r"defaults.allow_update\[0\]: no \[\[key\]\] named nobody"):
        from_mapping({"defaults": {"allow_update": ["nobody."]}})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, ZONE, DEFAULTS)


def test_record_add_in_a_zone_made_by_zone_add_succeeds_with_defaults_allow_update(
    serve: Serve, config: Path
) -> None:
    """Issue 27: `zone add` then `record add --server` (a TSIG-signed RFC 2136 UPDATE)."""
    server = serve("--config", str(config))
    added = dynmx("zone", "add", "shop.example.test", "-c", str(config))
    assert added.returncode == 0, added.stderr
    where = f"127.0.0.1:{server.dns_port}"
    result = dynmx(
        "record", "add", "www.shop.example.test", "A", "192.0.2.7", "--server", where, "-c", str(config)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reply = dns.query.udp(
        dns.message.make_query("www.shop.example.test.", "A"), "127.0.0.1", port=server.dns_port, timeout=2
    )
    assert reply.rcode() == dns.rcode.NOERROR
    assert [r.address for r in reply.answer[0]] == ["192.0.2.7"]


def test_a_zone_made_by_zone_add_is_transferable_under_defaults_allow_transfer(
    serve: Serve, config: Path
) -> None:
    server = serve("--config", str(config))
    assert dynmx("zone", "add", "shop.example.test", "-c", str(config)).returncode == 0
    axfr = dns.zone.from_xfr(
        dns.query.xfr("127.0.0.1", "shop.example.test.", port=server.dns_port, timeout=3)
    )
    assert axfr.get_rdataset("@", "SOA") is not None


def test_a_zone_made_by_zone_add_is_notified_to_defaults_notify(serve: Serve, tmp_path: Path) -> None:
    """RFC 1996: the secondaries in [defaults] notify hear of the new zone's later changes."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    config = write_config(tmp_path, ZONE, DEFAULTS + f'notify = ["127.0.0.1:{port}"]\n')
    server = serve("--config", str(config))
    assert dynmx("zone", "add", "shop.example.test", "-c", str(config)).returncode == 0
    seen: list[str] = []

    def notified() -> bool:
        try:
            data = listener.recv(4096)
        except TimeoutError:
            return False
        seen.append(dns.message.from_wire(data).question[0].name.to_text())
        return "shop.example.test." in seen

    try:
        wait_until(notified, timeout=5)
    finally:
        listener.close()
    assert server.process.poll() is None

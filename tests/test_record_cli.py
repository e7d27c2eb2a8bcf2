"""`dynmx record add|rm|set`: UPDATE+TSIG to a running server, or offline through the writer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import pytest

from dynmx.zone.loader import load_zone_file
from tests.conftest import EDITS, ROOT, RunningServer, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mail CNAME ns1
"""
Serve = Callable[..., RunningServer]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, ZONE, EDITS)


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=30, cwd=ROOT
    )


def addresses(server: RunningServer, name: str) -> set[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=server.dns_port, timeout=2)
    return {r.address for r in reply.answer[0]} if reply.answer else set()


def test_record_add_set_rm_reach_the_running_server(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    target = ["--config", str(config), "--server", f"127.0.0.1:{server.dns_port}"]
    assert dynmx("record", "add", "www.example.test", "A", "192.0.2.1", *target).returncode == 0
    assert addresses(server, "www.example.test") == {"192.0.2.1"}
    assert dynmx("record", "set", "www.example.test", "A", "192.0.2.2", "192.0.2.3", *target).returncode == 0
    assert addresses(server, "www.example.test") == {"192.0.2.2", "192.0.2.3"}
    assert dynmx("record", "rm", "www.example.test", "A", "192.0.2.2", *target).returncode == 0
    assert addresses(server, "www.example.test") == {"192.0.2.3"}


def test_bad_record_data_is_a_clear_error_and_changes_nothing(config: Path) -> None:
    zone_file = config.parent / "zones" / "example.test.zone"
    result = dynmx(
        "record", "add", "www.example.test", "A", "not-an-address", "--offline", "--config", str(config)
    )
    assert result.returncode == 2 and "bad record data for A" in result.stderr
    assert zone_file.read_text() == ZONE


def test_cname_conflict_is_refused_before_anything_is_sent(config: Path) -> None:
    result = dynmx(
        "record", "add", "mail.example.test", "A", "192.0.2.9", "--offline", "--config", str(config)
    )
    assert result.returncode == 2 and "CNAME conflict" in result.stderr


def test_name_outside_every_zone_is_refused(config: Path) -> None:
    result = dynmx("record", "add", "www.other.test", "A", "192.0.2.9", "--offline", "--config", str(config))
    assert result.returncode == 2 and "in no served zone" in result.stderr


def test_offline_edit_goes_through_the_writer(config: Path) -> None:
    result = dynmx(
        "record", "add", "www.example.test", "A", "192.0.2.7", "--offline", "--config", str(config)
    )
    assert result.returncode == 0, result.stderr
    zone = load_zone_file(config.parent / "zones" / "example.test.zone").zone
    assert {r.address for r in zone.get_rdataset("www.example.test.", "A")} == {"192.0.2.7"}  # type: ignore[union-attr]
    assert zone.get_rdataset("example.test.", "SOA")[0].serial == 2  # type: ignore[index]

"""`dynmx zone add|list|show|rm`: provisioning a mail domain and its delegation in the parent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dynmx.zone.loader import load_zone_file
from tests.conftest import ROOT

PARENT = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(PARENT)
    path = tmp_path / "dynmx.toml"
    path.write_text(
        f'[server]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[defaults]\nns = ["ns1.example.test."]\nhostmaster = "hostmaster.example.test."\n'
    )
    return path


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=30, cwd=ROOT
    )


def test_zone_add_creates_soa_ns_mx_and_the_parent_delegation(config: Path) -> None:
    zones = config.parent / "zones"
    result = dynmx(
        "zone",
        "add",
        "shop.example.test",
        "--ns",
        "ns.shop.example.test=192.0.2.53",
        "--mx",
        "mx1.example.test:20",
        "--a",
        "192.0.2.30",
        "--config",
        str(config),
    )
    assert result.returncode == 0, result.stderr
    child = load_zone_file(zones / "shop.example.test.zone").zone
    assert [str(r.exchange) for r in child.get_rdataset("shop.example.test.", "MX")] == ["mx1.example.test."]  # type: ignore[union-attr]
    parent = load_zone_file(zones / "example.test.zone").zone
    assert parent.get_rdataset("shop.example.test.", "NS") is not None
    assert parent.get_rdataset("ns.shop.example.test.", "A") is not None  # in-domain glue
    assert parent.get_rdataset("example.test.", "SOA")[0].serial != 1  # type: ignore[index]
    assert dynmx("check", "--zones", str(zones)).returncode == 0


def test_zone_add_of_an_existing_zone_is_refused(config: Path) -> None:
    result = dynmx("zone", "add", "example.test", "--config", str(config))
    assert result.returncode == 2 and "already exists" in result.stderr


def test_zone_add_with_an_in_zone_name_server_without_glue_writes_nothing(config: Path) -> None:
    zones = config.parent / "zones"
    result = dynmx(
        "zone", "add", "shop.example.test", "--ns", "ns.shop.example.test", "--config", str(config)
    )
    assert result.returncode == 2 and "would be invalid" in result.stderr
    assert sorted(p.name for p in zones.iterdir()) == ["example.test.zone"]
    assert (zones / "example.test.zone").read_text() == PARENT


def test_zone_list_show_and_rm(config: Path) -> None:
    assert dynmx("zone", "add", "shop.example.test", "--config", str(config)).returncode == 0
    listing = dynmx("zone", "list", "--config", str(config)).stdout
    assert "shop.example.test. serial" in listing
    assert (
        "shop.example.test. 3600 IN NS ns1.example.test."
        in dynmx("zone", "show", "shop.example.test", "--config", str(config)).stdout
    )
    assert dynmx("zone", "rm", "shop.example.test", "--config", str(config)).returncode == 0
    parent = load_zone_file(config.parent / "zones" / "example.test.zone").zone
    assert parent.get_rdataset("shop.example.test.", "NS") is None


@pytest.mark.parametrize("verb", ["add", "list", "show", "rm"])
def test_zone_help_shows_an_example(verb: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dynmx", "zone", verb, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0
    assert f"\n  dynmx zone {verb} " in result.stdout

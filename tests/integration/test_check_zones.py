"""What `dynmx check` says of `[[zone]]` blocks and MX pools against the zones served (plain calls),
and once through the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import dns.name
import dns.zone

from dynmx.answer.zoneset import ZoneData
from dynmx.config import from_mapping
from dynmx.policy.checks import check_policy
from tests.conftest import ROOT

ZONE = """\
$ORIGIN mail.example.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mx1  A   127.0.0.2
mx2  A   127.0.0.3
mx3  A   127.0.0.4
@    MX  10 mx1
@    MX  20 mx2
"""


def _zone(text: str = ZONE) -> ZoneData:
    origin = dns.name.from_text("mail.example.")
    return ZoneData(origin, dns.zone.from_text(text, origin, relativize=False))


def _check(config: dict[str, Any], text: str = ZONE) -> tuple[list[str], list[str]]:
    return check_policy(from_mapping(config), [_zone(text)])


def _pool(*hosts: str, roles: dict[str, str] | None = None) -> dict[str, Any]:
    members = [
        {"host": f"{host}.mail.example.", "probe": "none", "role": (roles or {}).get(host, "primary")}
        for host in hosts
    ]
    return {"name": "mail.example.", "member": members}


def test_a_zone_block_for_an_unserved_zone_is_a_problem_naming_the_closest_served_zone() -> None:
    problems, _ = _check({"zone": [{"name": "mail.exmaple.", "allow_query": ["127.0.0.0/8"]}]})
    assert problems == [
        "zone[0].name: mail.exmaple. is not a served zone, so this block applies to nothing"
        " (no file in zones_dir holds it); the closest served zone is mail.example."
    ]


def test_a_zone_block_of_a_served_zone_or_a_secondary_zone_is_no_problem() -> None:
    blocks = [{"name": "mail.example."}, {"name": "other.test.", "primary": "127.0.0.1:5300"}]
    problems, _ = _check({"zone": blocks})
    assert problems == []


def test_a_pool_whose_members_are_the_mx_targets_gets_no_warning() -> None:
    _, warnings = _check({"pool": [_pool("mx1", "mx2")]})
    assert warnings == []


def test_a_standby_member_need_not_be_an_mx_target() -> None:
    _, warnings = _check({"pool": [_pool("mx1", "mx2", "mx3", roles={"mx3": "standby"})]})
    assert warnings == []


def test_a_pool_member_not_among_the_mx_targets_is_warned_of_with_both_sets() -> None:
    problems, warnings = _check({"pool": [_pool("mx1", "mx3")]})
    assert problems == []
    assert warnings == [
        "pool[0].member: the members {mx1.mail.example., mx3.mail.example.} are not the MX targets"
        " of mail.example. in its zone {mx1.mail.example., mx2.mail.example.}: keep the zone's MX"
        " records to the pool's members in base order (secondaries and copies of the file serve them)"
    ]


def test_a_pool_name_without_mx_records_stays_a_problem() -> None:
    problems, _ = _check({"pool": [_pool("mx1")]}, ZONE.replace("@    MX  10 mx1\n@    MX  20 mx2\n", ""))
    assert problems == [
        "pool[0].name: mail.example. has no MX records in its zone (keep the pool's records there"
        " in base order, for secondaries and checks)"
    ]


def test_dynmx_check_fails_on_a_misspelt_zone_block(tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "mail.example.zone").write_text(ZONE)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[[zone]]\nname = "mail.exmaple."\nallow_query = ["127.0.0.0/8"]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "dynmx", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "zone[0].name: mail.exmaple. is not a served zone" in result.stdout
    assert "the closest served zone is mail.example." in result.stdout

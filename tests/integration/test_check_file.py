"""`dynmx check ZONEFILE`: one zone file checked alone, as nsd-checkzone and kzonecheck do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GOOD = """$TTL 300
@    SOA ns1 hostmaster 7 7200 3600 1209600 300
@    NS  ns1
ns1  A   192.0.2.1
@    MX  10 mx1
mx1  A   192.0.2.2
"""


def dynmx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "DYNMX_CONFIG"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=clean,
    )


def test_a_good_file_is_ok_with_its_zone_and_serial(tmp_path: Path) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(GOOD)
    result = dynmx("check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"ok: {path}: zone example.test. serial 7, 5 records\n"


def test_a_bad_file_gets_file_line_and_reason_and_exit_1(tmp_path: Path) -> None:
    good = tmp_path / "example.test.zone"
    good.write_text(GOOD)
    bad = tmp_path / "bad.test.zone"
    bad.write_text(GOOD.replace("192.0.2.2", "192.0.2"))
    result = dynmx("check", str(good), str(bad))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ok: {good}: ")
    assert lines[1].startswith(f"{bad}:6: ")


def test_a_file_without_apex_ns_is_refused_rfc1035_s5_2(tmp_path: Path) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(GOOD.replace("@    NS  ns1\n", ""))
    result = dynmx("check", str(path))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{path}:")
    assert "NS" in result.stdout


def test_origin_names_the_zone_of_a_file_named_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "db.mail"
    path.write_text(GOOD)
    result = dynmx("check", "--origin", "mail.test", "--json", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == [
        {"file": str(path), "ok": True, "zone": "mail.test.", "serial": 7, "records": 5}
    ]


def test_a_zone_file_is_checked_without_reading_any_config(tmp_path: Path) -> None:
    path = tmp_path / "example.test.zone"
    path.write_text(GOOD)
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    result = dynmx("check", str(path), env={"DYNMX_CONFIG": str(broken)})
    assert result.returncode == 0, result.stdout + result.stderr

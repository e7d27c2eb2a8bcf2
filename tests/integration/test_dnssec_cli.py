"""`dynmx dnssec ds|keys ZONE --json`: the key the server made, as machine-readable output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dns.dnssec
import dns.name

from dynmx.zone.keys import ensure_key

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = dns.name.from_text("example.test.")


def _dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "dynmx.toml"
    config.write_text(f'[server]\nstate_dir = "{tmp_path / "state"}"\nzones_dir = "{tmp_path}"\n')
    return config


def test_ds_json_is_the_sha256_ds_of_the_stored_key_rfc4509(tmp_path: Path) -> None:
    key = ensure_key(tmp_path / "state", ORIGIN, "ecdsap256sha256")
    result = _dynmx("dnssec", "ds", "example.test", "--json", "-c", str(_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "zone": "example.test.",
        "ds": [dns.dnssec.make_ds(ORIGIN, key.dnskey, "SHA256").to_text()],
    }


def test_keys_json_names_tag_algorithm_and_flags_and_no_private_key(tmp_path: Path) -> None:
    key = ensure_key(tmp_path / "state", ORIGIN, "ed25519")
    result = _dynmx("dnssec", "keys", "example.test", "--json", "-c", str(_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    [shown] = json.loads(result.stdout)
    assert (shown["tag"], shown["algorithm"], shown["flags"], shown["role"]) == (key.tag, 15, 257, "CSK")
    assert "PRIVATE" not in result.stdout


def test_ds_names_both_keys_while_the_new_one_is_pre_published_double_ds(tmp_path: Path) -> None:
    """During a rollover's pre-publication `ds` prints the DS of both keys (what the served CDS
    asks of the parent, RFC 7344), and after the switch the new key's alone."""
    from dynmx.zone.keys import new_key, save_keys
    from dynmx.zone.rollover import START, SWITCH, Timing, advance

    state = tmp_path / "state"
    timing = Timing(0, 0, 0, 0, 0)
    old = ensure_key(state, ORIGIN, "ecdsap256sha256")
    started = advance(START, (old,), timing, 1000, lambda at: new_key(ORIGIN, "ecdsap256sha256", at))
    save_keys(state, ORIGIN, started)
    config = str(_config(tmp_path))
    shown = json.loads(_dynmx("dnssec", "ds", "example.test", "--json", "-c", config).stdout)["ds"]
    assert shown == [dns.dnssec.make_ds(ORIGIN, key.dnskey, "SHA256").to_text() for key in started]
    save_keys(state, ORIGIN, advance(SWITCH, started, timing, 1000, lambda at: started[1]))
    shown = json.loads(_dynmx("dnssec", "ds", "example.test", "--json", "-c", config).stdout)["ds"]
    assert shown == [dns.dnssec.make_ds(ORIGIN, started[1].dnskey, "SHA256").to_text()]

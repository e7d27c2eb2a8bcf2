"""`dynmx pool ...`: config edits that keep the file loadable, and refuse what would break it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import pytest

from dynmx.config import load_config
from dynmx.config_choices import POOL_KINDS, PROBES, ROLES, STRATEGIES
from tests.conftest import ROOT, RunningServer, write_config

CONFIG = """\
# operators' comments survive edits
[server]
zones_dir = "zones"

[[pool]]
name = "example.test."
strategy = "round-robin"   # rotate
  [[pool.member]]
  host = "mx1.example.test."
  probe = "none"
  [[pool.member]]
  host = "mx2.example.test."
  probe = "none"

[log]
level = "info"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "dynmx.toml"
    path.write_text(CONFIG)
    return path


def pool(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dynmx", "pool", *args, "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT)


def test_member_add_and_rm_keep_comments_and_load(config: Path) -> None:
    assert pool(config, "member-add", "example.test", "mx3.example.test.", "--probe", "none").returncode == 0
    loaded = load_config(config)
    assert [m.host for m in loaded.pool[0].member] == [
        "mx1.example.test.",
        "mx2.example.test.",
        "mx3.example.test.",
    ]
    assert "# operators' comments survive edits" in config.read_text()
    assert pool(config, "member-rm", "example.test", "mx1.example.test.").returncode == 0
    assert [m.host for m in load_config(config).pool[0].member] == ["mx2.example.test.", "mx3.example.test."]
    assert load_config(config).log.level == "info"


def test_set_changes_strategy_and_ttl(config: Path) -> None:
    assert pool(config, "set", "example.test", "--strategy", "weighted", "--ttl", "60").returncode == 0
    loaded = load_config(config).pool[0]
    assert (loaded.strategy, loaded.ttl) == ("weighted", 60)


def test_an_edit_that_breaks_the_config_changes_nothing(config: Path) -> None:
    result = pool(config, "set", "example.test", "--ttl", "-1")
    assert result.returncode == 2 and "would make the config invalid" in result.stderr
    assert config.read_text() == CONFIG


def test_an_unknown_strategy_is_refused_naming_the_allowed_ones(config: Path) -> None:
    result = pool(config, "set", "example.test", "--strategy", "fastest")
    assert result.returncode == 2 and "'static', 'round-robin', 'weighted', 'least-load'" in result.stderr
    assert config.read_text() == CONFIG


def test_rm_removes_the_whole_pool(config: Path) -> None:
    assert pool(config, "rm", "example.test").returncode == 0
    assert load_config(config).pool == ()
    assert pool(config, "rm", "example.test").returncode == 2


MEMBERS = """\
[[pool]]
name = "example.test."
strategy = "static"
  [[pool.member]]
  host = "mx1.example.test."
  preference = 10
  probe = "none"   # no SMTP here
  [[pool.member]]
  host = "mx2.example.test."
  preference = 20
  weight = 2.0
  probe = "none"
  [[pool.member]]
  host = "mx3.example.test."
  preference = 30
  probe = "none"
"""


def test_member_set_changes_keys_in_place_and_keeps_the_rest(config: Path) -> None:
    config.write_text(
        CONFIG.replace('  probe = "none"\n  [[pool.member]]', '  probe = "none"   # kept\n  [[pool.member]]')
    )
    result = pool(config, "member-set", "example.test", "mx1.example.test", "--weight", "3", "--probe", "tcp")
    assert result.returncode == 0, result.stderr
    loaded = load_config(config).pool[0]
    assert [(m.host, m.weight, m.probe) for m in loaded.member] == [
        ("mx1.example.test.", 3.0, "tcp"),
        ("mx2.example.test.", 1.0, "none"),
    ]
    text = config.read_text()
    assert '  probe = "tcp"   # kept\n  weight = 3.0\n  [[pool.member]]' in text
    assert "# operators' comments survive edits" in text and 'strategy = "round-robin"   # rotate' in text


def test_member_set_of_a_non_member_or_without_keys_is_refused(config: Path) -> None:
    result = pool(config, "member-set", "example.test", "mx9.example.test", "--weight", "3")
    assert (
        result.returncode == 2 and "mx9.example.test is not a member of pool example.test." in result.stderr
    )
    result = pool(config, "member-set", "example.test", "mx1.example.test")
    assert result.returncode == 2 and "needs at least one of --preference, --weight" in result.stderr
    assert config.read_text() == CONFIG


def test_member_add_of_a_member_points_to_member_set(config: Path) -> None:
    result = pool(config, "member-add", "example.test", "mx1.example.test.")
    assert result.returncode == 2 and "change it with member-set" in result.stderr


def mx(server: RunningServer) -> list[str]:
    query = dns.message.make_query("example.test", "MX")
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    return [r.to_text() for r in sorted(reply.answer[0], key=lambda r: r.preference)]  # type: ignore[attr-defined]


def test_member_set_preference_reorders_the_running_servers_answer(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """The edit keeps the member's place and other keys, and the server applies it on reload."""
    zone = "$ORIGIN example.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\n"
    zone += "ns1 A 127.0.0.1\nmx1 A 127.0.0.2\nmx2 A 127.0.0.3\nmx3 A 127.0.0.4\n"
    zone += "@ MX 10 mx1\n@ MX 20 mx2\n@ MX 30 mx3\n"
    config = write_config(tmp_path, zone, MEMBERS)
    server = serve("--config", str(config))
    assert mx(server)[0] == "10 mx1.example.test."
    result = pool(config, "member-set", "example.test", "mx2.example.test", "--preference", "5")
    assert result.returncode == 0 and "the running server reloaded" in result.stdout, (
        result.stdout + result.stderr
    )
    assert mx(server)[0].endswith("mx2.example.test.")
    members = load_config(config).pool[0].member
    assert [(m.host, m.preference, m.weight) for m in members] == [
        ("mx1.example.test.", 10, 1.0),
        ("mx2.example.test.", 5, 2.0),
        ("mx3.example.test.", 30, 1.0),
    ]


@pytest.mark.parametrize(
    ("verb", "values"),
    [
        ("add", (*STRATEGIES, *POOL_KINDS)),
        ("set", (*STRATEGIES, *POOL_KINDS)),
        ("member-add", (*ROLES, *PROBES)),
        ("member-set", (*ROLES, *PROBES)),
    ],
)
def test_help_names_the_allowed_values_and_an_example(verb: str, values: tuple[str, ...]) -> None:
    command = [sys.executable, "-m", "dynmx", "pool", verb, "--help"]
    text = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT).stdout
    assert all(value in text for value in values), text
    assert f"dynmx pool {verb} example.test" in text

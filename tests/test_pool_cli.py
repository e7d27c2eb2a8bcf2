"""`dynmx pool ...`: config edits that keep the file loadable, and refuse what would break it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dynmx.config import load_config
from tests.conftest import ROOT

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
    result = pool(config, "set", "example.test", "--strategy", "fastest")
    assert result.returncode == 2 and "would make the config invalid" in result.stderr
    assert config.read_text() == CONFIG


def test_rm_removes_the_whole_pool(config: Path) -> None:
    assert pool(config, "rm", "example.test").returncode == 0
    assert load_config(config).pool == ()
    assert pool(config, "rm", "example.test").returncode == 2

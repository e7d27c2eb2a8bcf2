"""Files keep the mode and owner the operator gave them, and secrets readable by everyone
are pointed out (issue 23, item 11).

`dynmx pool member-add` turned a 0640 root:dynmx config into 0600 root:root (the server,
running as dynmx, could no longer read it), and an UPDATE's write-back made its zone file
0600. A config holding TSIG secrets or passwords that others may read is now warned about
at start (`event=config-readable-secrets`) and by `dynmx check`. Tests run as root, so they
check the owner too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from tests.conftest import EDITS, ROOT, TEST_SECRET, RunningServer, wait_until, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
ns1   A   127.0.0.1
mx1   A   127.0.0.2
mx2   A   127.0.0.3
"""
POOL = """\
[[pool]]
name = "example.test."
  [[pool.member]]
  host = "mx1.example.test."
  probe = "none"
"""
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
OWNER = (4242, 4243)  # uid, gid: a service account the file belongs to

Serve = Callable[..., RunningServer]


def _dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dynmx", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)


def _mode_and_owner(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_mode & 0o7777, info.st_uid, info.st_gid


@ROOT_ONLY
def test_pool_member_add_keeps_the_configs_mode_and_owner(tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE, POOL)
    os.chown(config, 0, OWNER[1])
    config.chmod(0o640)
    done = _dynmx("pool", "member-add", "example.test.", "mx2.example.test.", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert 'host = "mx2.example.test."' in config.read_text()
    assert _mode_and_owner(config) == (0o640, 0, OWNER[1])


@ROOT_ONLY
def test_an_updates_write_back_keeps_the_zone_files_mode_and_owner(serve: Serve, tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE, EDITS)
    zone_file = tmp_path / "zones" / "example.test.zone"
    os.chown(zone_file, *OWNER)
    zone_file.chmod(0o644)
    server = serve("--config", str(config))
    keyring = dns.tsigkeyring.from_text({"ops-key.": TEST_SECRET})
    update = dns.update.UpdateMessage("example.test.", keyring=keyring)
    update.add("new", 300, "A", "192.0.2.7")
    assert dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=10).rcode() == dns.rcode.NOERROR
    wait_until(lambda: "new.example.test." in zone_file.read_text())
    assert _mode_and_owner(zone_file) == (0o644, *OWNER)


def _with_a_secret(tmp_path: Path, mode: int) -> Path:
    config = write_config(tmp_path, ZONE, EDITS)
    config.chmod(mode)
    return config


def test_a_config_with_secrets_readable_by_others_is_warned_about_at_start(
    serve: Serve, tmp_path: Path
) -> None:
    config = _with_a_secret(tmp_path, 0o644)
    server = serve("--config", str(config))
    line = server.wait_for_log("event=config-readable-secrets")
    assert f"event=config-readable-secrets file={config} mode=0644" in line
    assert TEST_SECRET not in server.log_text()


def test_dynmx_check_warns_of_a_config_with_secrets_readable_by_others(tmp_path: Path) -> None:
    config = _with_a_secret(tmp_path, 0o604)
    checked = _dynmx("check", "--config", str(config))
    assert checked.returncode == 0  # a warning: the config is valid
    assert (
        f"{config}: warning: holds secrets and is readable by others (mode 0604): chmod o-r" in checked.stdout
    )


def test_a_secret_file_readable_by_others_is_warned_about(serve: Serve, tmp_path: Path) -> None:
    secret = tmp_path / "ops-key.secret"
    secret.write_text(TEST_SECRET + "\n")
    secret.chmod(0o644)
    config = write_config(
        tmp_path, ZONE, EDITS.replace(f'secret = "{TEST_SECRET}"', f'secret_file = "{secret}"')
    )
    config.chmod(0o644)  # holds no secret itself: not warned about
    server = serve("--config", str(config))
    line = server.wait_for_log("event=config-readable-secrets")
    assert f"file={secret} mode=0644" in line
    assert f"file={config} " not in server.log_text()
    assert "warning: holds secrets" in _dynmx("check", "--config", str(config)).stdout


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_a_config_only_its_owner_and_group_may_read_is_not_warned_about(
    serve: Serve, tmp_path: Path, mode: int
) -> None:
    config = _with_a_secret(tmp_path, mode)
    server = serve("--config", str(config))
    assert "event=config-readable-secrets" not in server.log_text()
    assert "warning" not in _dynmx("check", "--config", str(config)).stdout

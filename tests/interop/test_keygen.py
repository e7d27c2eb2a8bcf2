"""`dynmx key generate`: a TSIG key (RFC 8945) as a `[[key]]` block, as BIND's `tsig-keygen` and
Knot's `keymgr -t` print theirs; the block loads, and BIND's dig uses the printed line."""

from __future__ import annotations

import base64
import json
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from dynmx.app.update_service import load_keyring
from dynmx.cli import main
from dynmx.config import load_config
from tests.conftest import RunningServer, write_config

ZONE = """$ORIGIN example.test.
$TTL 300
@    SOA ns1 hostmaster 1 3600 600 86400 300
     NS  ns1
ns1  A   127.0.0.1
"""

Serve = Callable[..., RunningServer]


def generate(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["key", "generate", *args]) == 0
    return capsys.readouterr().out


def config_with(tmp_path: Path, output: str) -> Path:
    """A config serving example.test. with the printed block pasted at its end."""
    return write_config(tmp_path, ZONE, output)


def test_the_printed_block_loads_with_the_config_loader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(config_with(tmp_path, generate(capsys, "ops-key")))
    [key] = config.key
    assert (key.name, key.algorithm) == ("ops-key.", "hmac-sha256")
    assert len(base64.b64decode(key.secret, validate=True)) == 32  # the digest length of SHA-256


def test_hmac_sha512_gets_a_64_octet_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [key] = load_config(config_with(tmp_path, generate(capsys, "k", "--algorithm", "hmac-sha512"))).key
    assert key.algorithm == "hmac-sha512" and len(base64.b64decode(key.secret)) == 64


def test_two_keys_never_share_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert generate(capsys, "k") != generate(capsys, "k")


def test_secret_file_is_written_0600_and_the_block_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "ops-key.b64"
    config = load_config(config_with(tmp_path, generate(capsys, "ops-key", "--secret-file", str(secret))))
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert config.key[0].secret == "" and config.key[0].secret_file == str(secret)
    assert len(base64.b64decode(secret.read_text().strip(), validate=True)) == 32
    assert list(load_keyring(config)) and secret.read_text().strip() not in capsys.readouterr().out


def test_an_existing_secret_file_is_refused_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "ops-key.b64"
    secret.write_text("kept\n")
    assert main(["key", "generate", "ops-key", "--secret-file", str(secret)]) == 2
    assert "exists" in capsys.readouterr().err and secret.read_text() == "kept\n"


def test_json_holds_the_block_and_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    found = json.loads(generate(capsys, "ops-key", "--json"))
    assert found["name"] == "ops-key." and found["secret"] in found["block"]


def _dig_line(output: str, server: RunningServer) -> str:
    """The printed `dig -y` line, aimed at the server."""
    [line] = [line.strip("# ") for line in output.splitlines() if "dig -y" in line]
    return line.replace("@SERVER", f"@127.0.0.1 -p {server.dns_port} +notcp").replace("ZONE", "example.test.")


@pytest.mark.interop
@pytest.mark.parametrize("secret_file", [False, True], ids=["inline", "secret-file"])
def test_rfc8945_dig_with_the_printed_line_gets_a_signed_answer(
    serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str], secret_file: bool
) -> None:
    if shutil.which("dig") is None:
        pytest.skip("dig is not installed (./dev test installs it)")
    options = ["--secret-file", str(tmp_path / "key.b64")] if secret_file else []
    output = generate(capsys, "ops-key", *options)
    server = serve("-c", str(config_with(tmp_path, output)))
    result = subprocess.run(
        ["sh", "-c", _dig_line(output, server)], capture_output=True, text=True, timeout=20
    )
    text = result.stdout + result.stderr
    assert result.returncode == 0 and "status: NOERROR" in text, text
    assert "TSIG PSEUDOSECTION" in text and "Couldn't verify" not in text, text

"""The README's tutorial, run start to end from a clean clone as a newcomer would run it.

`git clone` of this repository (its committed HEAD) into a temporary folder; the clone's `.venv` is a
link to the one running these tests (a fresh `./dev setup` would download and install for minutes),
and PYTHONPATH points at the clone, so `dynmx` runs the clone's code. Then every `sh` and `console`
block of the tutorial runs in order in one bash session (tests/readme_blocks.py): the servers and
SMTP sinks it starts run in that session's background and end with it. DNS answers are checked with
dig over UDP on 127.0.0.1, as the README shows them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.readme_blocks import Block, Shell, blocks, clean_env, port_free, runnable

ROOT = Path(__file__).resolve().parents[2]
PORTS = (5300, 5301, 9300, 2525, 2526)  # the tutorial's DNS, control and SMTP ports


def tutorial_blocks(readme: str) -> list[Block]:
    return [b for b in runnable(blocks(readme)) if b.section.startswith("Tutorial")]


def server_logs(folder: Path, lines: int = 15) -> str:
    """The end of each log the tutorial's servers write, to tell why a step failed."""
    tails = [
        f"--- {log.name} (last {lines} lines):\n" + "\n".join(log.read_text().splitlines()[-lines:])
        for log in sorted(folder.glob("*.log"))
    ]
    return "\n".join(tails)


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig (Debian dnsutils) is not installed")
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_tutorial_runs_from_a_clean_clone(tmp_path: Path) -> None:
    """Every step of the tutorial succeeds and shows what the README says it shows."""
    busy = [port for port in PORTS if not port_free(port)]
    assert not busy, f"the tutorial's ports {busy} are in use on 127.0.0.1"
    clone = tmp_path / "dynmx"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=60)
    venv = Path(sys.prefix)
    assert (venv / "bin" / "activate").exists(), "run the tests from the project's .venv"
    (clone / ".venv").symlink_to(venv)
    steps = tutorial_blocks((clone / "README.md").read_text())
    assert len(steps) >= 10, "the tutorial lost its steps"
    scratch = tmp_path / "blocks"
    scratch.mkdir()
    shell = Shell(clone, clean_env(None, clone), scratch)  # `. .venv/bin/activate` is step 1
    try:
        for block in steps:
            try:
                shell.run(block)
            except AssertionError as error:
                raise AssertionError(f"{error}\n{server_logs(clone / 'tutorial')}") from None
    finally:
        shell.close()
    assert not (clone / "tutorial").exists(), "the tutorial's last step removes what it made"

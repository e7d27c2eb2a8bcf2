"""The README cannot drift: its command blocks run, its outputs hold, its configs load.

The tutorial's blocks are run by tests/interop/test_tutorial.py from a clean clone; every other `sh` and
`console` block runs here, in order, in one shell, in a copy of the working tree, against a server
started as `./dev serve` starts it (tests/readme_blocks.py has the convention).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.zone
import pytest

from dynmx.config import load_config
from tests.readme_blocks import KNOWN, Block, Shell, blocks, clean_env, port_free, runnable

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = blocks(README)
TUTORIAL = "Tutorial"
DEV_SERVE = re.compile(r'^\s*exec "\$VENV/bin/dynmx" serve (.+?)\s+"\$@"$', re.M)
# The most blocks that may be left unrun, each with its reason in the README.
MAX_NOT_RUN = 2


def in_tutorial(block: Block) -> bool:
    return block.section.startswith(TUTORIAL)


def dev_serve_args() -> list[str]:
    """What `./dev serve` runs after its install step, read from `dev` itself."""
    found = DEV_SERVE.search((ROOT / "dev").read_text())
    assert found, 'dev: no `exec "$VENV/bin/dynmx" serve ...` line in the serve branch'
    return ["serve", *found.group(1).split()]


def copy_tree(target: Path) -> None:
    """The working tree as git sees it (tracked and new files, nothing ignored), as a fresh checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in listed:
        if not raw:
            continue
        name = raw.decode()
        source = ROOT / name
        if not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)


@pytest.fixture
def dev_serve(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of the repository with `dynmx serve` running as `./dev serve` runs it."""
    args = dev_serve_args()
    for port in (5353, 9153):
        if not port_free(port):
            pytest.fail(f"127.0.0.1:{port} is in use; the README's commands need it (./dev serve running?)")
    tree = tmp_path / "dynmx"
    tree.mkdir()
    copy_tree(tree)
    env = clean_env(Path(sys.executable).parent, tree)
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dynmx"), *args],
        cwd=tree,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while "event=serving" not in (tmp_path / "serve.log").read_text():
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
        time.sleep(0.05)
    try:
        yield tree, env
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        log.close()


def test_readme_commands_and_outputs_hold_against_dev_serve(
    dev_serve: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Every `sh` block outside the tutorial succeeds and every `console` block shows what it says."""
    tree, env = dev_serve
    scratch = tmp_path / "blocks"
    scratch.mkdir()
    shell = Shell(tree, env, scratch)
    try:
        for block in runnable(BLOCKS):
            if not in_tutorial(block):
                shell.run(block)
    finally:
        shell.close()


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "toml"], ids=lambda b: f"line{b.line}")
def test_readme_toml_block_loads_with_the_config_loader(block: Block, tmp_path: Path) -> None:
    """A config example that `dynmx serve` would refuse is a wrong example. A block of member keys
    alone (`[[pool.member]]`) is loaded inside a pool."""
    text = block.text
    if text.lstrip().startswith("[[pool.member]]"):
        text = '[[pool]]\nname = "example.test."\n' + text
    path = tmp_path / "dynmx.toml"
    path.write_text(text)
    load_config(path)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "zone"], ids=lambda b: f"line{b.line}")
def test_readme_zone_block_parses_as_zone_data(block: Block) -> None:
    """Records shown for a zone file parse, relative to the example zone."""
    soa = "@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ 3600 IN NS ns1\nns1 A 192.0.2.1\n"
    zone = dns.zone.from_text(soa + block.text, origin="example.test.", relativize=True)
    assert len(zone.nodes) > 2


def test_every_readme_block_has_a_known_kind() -> None:
    """An unlabelled or unknown fence would silently escape every check."""
    unknown = [f"{b.where}: ```{b.lang}" for b in BLOCKS if b.lang not in KNOWN]
    assert not unknown, "label each block sh, console, toml, zone or text:\n" + "\n".join(unknown)


def test_readme_leaves_few_blocks_unrun_and_says_why() -> None:
    not_run = [b for b in BLOCKS if b.not_run is not None]
    assert all(b.lang in ("sh", "console") for b in not_run), [b.where for b in not_run]
    assert len(not_run) <= MAX_NOT_RUN, [f"{b.where}: {b.not_run}" for b in not_run]


def test_quick_start_shows_the_two_dev_commands_as_dev_has_them() -> None:
    """The quick start is `./dev serve` and `./dev test`, and `dev` documents and handles both."""
    quick = [b for b in BLOCKS if b.section == "Quick start" and b.lang == "sh"]
    commands = [line.split("#")[0].strip() for line in quick[0].text.splitlines() if line.strip()]
    assert commands == ["./dev serve", "./dev test"]
    dev = (ROOT / "dev").read_text()
    for word in ("serve", "test"):
        assert f"#   ./dev {word} " in dev and f"\n  {word})" in dev


def test_tutorial_and_reference_blocks_are_all_run_by_a_test() -> None:
    """Between this file and tests/interop/test_tutorial.py every runnable block is run once."""
    tutorial = [b for b in runnable(BLOCKS) if in_tutorial(b)]
    reference = [b for b in runnable(BLOCKS) if not in_tutorial(b)]
    assert len(tutorial) >= 10 and len(reference) >= 3
    consoles = [b for b in BLOCKS if b.lang == "console" and b.not_run is None]
    assert all(b.text.startswith("$ ") for b in consoles)


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    found: set[str] = set()
    fenced = False
    for line in markdown.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"^#{1,6} (.*)$", line)
        if heading and not fenced:
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize(
    "page", ["README.md", "docs/design.md", "docs/hardening.md", "docs/testing.md", "benchmarks/HISTORY.md"]
)
def test_links_lead_to_files_and_headings_that_exist(page: str) -> None:
    """Moving a section (README -> docs/) must not leave a link to nowhere."""
    text = (ROOT / page).read_text()
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", text):
        if link.startswith(("http://", "https://")):
            continue
        path, _, fragment = link.partition("#")
        target = (ROOT / page).parent / path if path else ROOT / page
        if not target.exists() or (
            fragment and target.suffix == ".md" and fragment not in anchors(target.read_text())
        ):
            broken.append(link)
    assert not broken, f"{page}: {broken}"

"""`dynmx completion bash|zsh`: scripts made from the parser, run in the real shells."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dynmx.cli.completion import script
from dynmx.cli.parser import build_parser

BASH_COMPLETE = """
source "$1"
read -ra COMP_WORDS <<<"$2"
[[ "$2" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_dynmx
printf '%s\\n' "${COMPREPLY[@]}"
"""

# Outside a completion widget `words` and `CURRENT` are plain variables, and compadd is
# stood in for by a function that keeps the candidates the typed prefix matches.
ZSH_COMPLETE = """
source "$1"
compadd() {
    [[ $1 == -- ]] && shift
    local w; for w in "$@"; do [[ $w == ${words[CURRENT]}* ]] && print -r -- $w; done; return 0
}
_files() { print -r -- '<files>'; }
words=( ${(s: :)2} ); [[ $2 == *' ' ]] && words+=( '' )
CURRENT=${#words}
_dynmx
"""


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("completion")
    made = {}
    for shell in ("bash", "zsh"):
        made[shell] = folder / f"dynmx.{shell}"
        made[shell].write_text(script(build_parser(), shell))
    return made


def complete(shell: str, scripts: dict[str, Path], line: str) -> list[str]:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    body = BASH_COMPLETE if shell == "bash" else ZSH_COMPLETE
    command = ["bash", "-c", body, "bash"] if shell == "bash" else ["zsh", "-f", "-c", body, "zsh"]
    result = subprocess.run([*command, str(scripts[shell]), line], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    return [word for word in result.stdout.split("\n") if word]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_script_is_valid_shell(shell: str, scripts: dict[str, Path]) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    result = subprocess.run([shell, "-n", str(scripts[shell])], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_a_subcommand_completes_from_its_prefix(shell: str, scripts: dict[str, Path]) -> None:
    assert complete(shell, scripts, "dynmx zo") == ["zone"]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_verbs_of_a_subcommand_complete(shell: str, scripts: dict[str, Path]) -> None:
    assert {"add", "list", "show", "rm"} <= set(complete(shell, scripts, "dynmx zone "))


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_options_complete_after_a_dash(shell: str, scripts: dict[str, Path]) -> None:
    assert set(complete(shell, scripts, "dynmx serve --l")) == {"--listen", "--log-level"}


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_an_options_choices_complete(shell: str, scripts: dict[str, Path]) -> None:
    found = complete(shell, scripts, "dynmx key generate ops --algorithm hmac-sha5")
    assert found == ["hmac-sha512"]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_a_positional_arguments_choices_complete(shell: str, scripts: dict[str, Path]) -> None:
    assert complete(shell, scripts, "dynmx completion ") == ["bash", "zsh"]


def test_bash_completes_a_file_after_config(scripts: dict[str, Path], tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    (tmp_path / "dynmx.toml").write_text("")
    body = f"cd {tmp_path}; {BASH_COMPLETE}"
    line = "dynmx status -c dyn"
    result = subprocess.run(
        ["bash", "-c", body, "bash", str(scripts["bash"]), line], capture_output=True, text=True, timeout=10
    )
    assert result.stdout.split() == ["dynmx.toml"]


def test_the_cli_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    from dynmx.cli import main

    assert main(["completion", "bash"]) == 0
    assert "complete -o default -F _dynmx dynmx" in capsys.readouterr().out

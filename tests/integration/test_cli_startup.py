"""`dynmx --version` and building the parser load no server, HTTP client or event loop: each
command imports what it runs inside the function that runs it (dynmx.cli's docstring)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("dynmx.app", "dynmx.server", "dynmx.control", "httpx", "asyncio", "dns.zone", "dns.query")

PROBE = """
import contextlib, io, json, runpy, sys
sys.argv = ["dynmx", *sys.argv[1:]]
with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
    runpy.run_module("dynmx", run_name="__main__")
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(*argv: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout)


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_version_imports_no_app_httpx_or_asyncio() -> None:
    modules = _modules_after("--version")
    assert "dynmx.cli" in modules  # the probe ran the CLI at all
    assert _heavy(modules) == []


def test_help_of_every_command_imports_no_app_httpx_or_asyncio() -> None:
    """`--help` builds the whole parser (every subcommand's arguments) and still loads none."""
    modules = _modules_after("record", "add", "--help")
    assert "dynmx.cli.record_parser" in modules
    assert _heavy(modules) == []


def test_version_alone_is_answered_before_the_parser_is_built() -> None:
    """`dynmx --version` is what scripts and packagers time: it loads neither the parser nor
    the error tree (argparse prints the same line for `--version` among other arguments)."""
    modules = _modules_after("--version")
    assert "dynmx.cli" in modules
    assert [m for m in modules if m.startswith("dynmx.") and m != "dynmx.cli"] == []

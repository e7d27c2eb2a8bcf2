"""The README's fenced blocks, and a shell that runs them as a reader would, in one session.

The convention (README "Tests"):

* ```sh blocks are commands: run in order, in one bash session (so `cd`, variables, `. activate`
  and background jobs carry over), every command must succeed.
* ```console blocks are checks: each `$ COMMAND` line is run and must succeed, and the lines below
  it are its output. Every line shown must appear in the output (order aside; runs of blanks count
  as one; `...` inside a line stands for any text); a line that is only `...` says more lines may
  come, otherwise the output has exactly the lines shown. A check is retried for a while until it
  holds, since what it checks (a probe verdict, a transfer) may still be on its way.
* ```toml blocks must load with dynmx's config loader; ```zone blocks must parse as zone data.
* ```text blocks (synopses with placeholders, sample output) are not run, nor is a block preceded by
  `<!-- not run: REASON -->`; those are kept few.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\S*)\s*$")
HEADING = re.compile(r"^(#{1,6}) (.*)$")
NOT_RUN = re.compile(r"^<!-- not run: (.+?) -->$")
RUNNABLE = ("sh", "console")
KNOWN = ("sh", "console", "toml", "zone", "text")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its text, where it is and why it is not run (if it is not)."""

    lang: str
    text: str
    line: int
    section: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def blocks(markdown: str) -> list[Block]:
    """Every fenced block, with the `##` section it is in."""
    found: list[Block] = []
    lines = markdown.split("\n")
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        heading = HEADING.match(line)
        if heading and len(heading.group(1)) == 2:
            section = heading.group(2)
        fence = FENCE.match(line)
        if not fence:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        reason = NOT_RUN.match(before.strip())
        found.append(
            Block(
                lang=fence.group(1),
                text="\n".join(body) + "\n",
                line=start + 1,
                section=section,
                not_run=reason.group(1) if reason else None,
            )
        )
        index += 1
    return found


def runnable(all_blocks: list[Block]) -> list[Block]:
    return [b for b in all_blocks if b.lang in RUNNABLE and b.not_run is None]


@dataclass(frozen=True)
class Check:
    """One `$ COMMAND` of a console block and the output shown under it."""

    command: str
    expected: list[str]


def checks(block: Block) -> list[Check]:
    found: list[Check] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            found.append(Check(line[2:], []))
        elif found:
            found[-1].expected.append(line)
        elif line.strip():
            raise AssertionError(f"{block.where}: output before the first '$ ' command: {line!r}")
    return found


def _normal(line: str) -> str:
    return " ".join(line.split())


def _pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in _normal(line).split("...")) + r"\Z")


def output_matches(expected: list[str], actual: str) -> str | None:
    """None when `actual` shows what `expected` says; else why not."""
    more = any(_normal(line) == "..." for line in expected)
    wanted = [_pattern(line) for line in expected if _normal(line) not in ("", "...")]
    got = [_normal(line) for line in actual.splitlines() if line.strip()]
    left = list(got)
    for pattern in wanted:
        hit = next((g for g in left if pattern.match(g)), None)
        if hit is None:
            return f"no line matches {pattern.pattern!r}"
        left.remove(hit)
    if left and not more:
        return f"lines not shown in the README: {left}"
    return None


class Shell:
    """One bash session fed the README's blocks; its background jobs die with it (own session)."""

    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path) -> None:
        self.scratch = scratch
        self.marker = f"__readme_{uuid.uuid4().hex}__"
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        fail = f'echo "{self.marker}FAIL $? in: $BASH_COMMAND"'
        self._send(f"set -o pipefail\ntrap '{fail}' ERR\n")
        self.count = 0

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def _until_marker(self, timeout: float) -> tuple[str, int]:
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no end after {timeout} s; output so far:\n{''.join(out)}") from None
            if line is None:
                raise AssertionError(f"the shell exited; output:\n{''.join(out)}")
            if line.startswith(self.marker + "END "):
                return "".join(out), int(line.split()[1])
            out.append(line)

    def run_sh(self, block: Block, timeout: float = 60.0) -> str:
        """Run a sh block as a sourced file; fail naming the command that failed."""
        self.count += 1
        script = self.scratch / f"block-{self.count}-line{block.line}.sh"
        script.write_text(block.text)
        self._send(f". {script}\nprintf '\\n%s %d\\n' '{self.marker}END' 0\n")
        out, _ = self._until_marker(timeout)
        failed = [line for line in out.splitlines() if line.startswith(self.marker + "FAIL")]
        if failed:
            shown = out.replace(self.marker + "FAIL", "FAILED: exit")
            raise AssertionError(f"{block.where}: a command failed:\n{shown}")
        return out

    def capture(self, command: str, timeout: float = 30.0) -> tuple[str, int]:
        """Output and exit status of one console command, with no ERR trap firing for it."""
        end = f"printf '\\n%s %d\\n' '{self.marker}END' $__rc\n"
        self._send(f"__rc=0; {{ {command}\n}} 2>&1 || __rc=$?\n{end}")
        return self._until_marker(timeout)

    def run_console(self, block: Block, within: float = 20.0) -> None:
        """Run the block's checks until all hold, for at most `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            problems: list[str] = []
            for check in checks(block):
                out, status = self.capture(check.command)
                if status != 0:
                    problems.append(f"$ {check.command}\nexit {status}\n{out}")
                    break
                why = output_matches(check.expected, out)
                if why:
                    problems.append(f"$ {check.command}\n{why}; output:\n{out}")
                    break
            if not problems:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{block.where}: after {within} s:\n" + "\n".join(problems))
            time.sleep(0.3)

    def run(self, block: Block) -> None:
        if block.lang == "sh":
            self.run_sh(block)
        else:
            self.run_console(block)

    def close(self) -> None:
        """End the session and every job it started (they share its process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.killpg(self.process.pid, signal.SIGKILL)


def clean_env(extra_path: Path | None, pythonpath: Path) -> dict[str, str]:
    """The environment of a newcomer's shell: no DYNMX_* settings from ours, no venv on PATH unless
    `extra_path`; the dynmx package imported from `pythonpath`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNMX_", "PYTEST_", "VIRTUAL_ENV"))}
    venv_bin = str(Path(sys.prefix) / "bin")
    path = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p != venv_bin]
    env["PATH"] = os.pathsep.join([str(extra_path), *path] if extra_path else path)
    env["PYTHONPATH"] = str(pythonpath)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind (TIME_WAIT)
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True

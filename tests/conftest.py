"""Shared fixtures: a real dynmx server in a subprocess on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"event=listening proto=(\S+) address=(\S+) port=(\d+)")


@dataclass
class RunningServer:
    """A `dynmx serve` subprocess and where it listens."""

    process: subprocess.Popen[str]
    dns_port: int = 0
    http_port: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.dns_port)

    def log_text(self) -> str:
        return "".join(self.lines)

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            time.sleep(0.02)
        raise AssertionError(f"log line {needle!r} not seen; log:\n{self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_server(*args: str, timeout: float = 30.0, prefix: Sequence[str] = ()) -> RunningServer:
    """Start `python -m dynmx serve ARGS` and wait until it says it is serving; `prefix` runs it
    under another command (`prlimit`, to give it a fault no test can cause from outside)."""
    command = [*prefix, sys.executable, "-m", "dynmx", "serve", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT, env=env
    )
    server = RunningServer(process)
    assert process.stderr is not None
    stream = process.stderr

    def pump() -> None:
        for line in stream:
            server.lines.append(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(server.lines):
            match = LISTENING.search(line)
            if match and match.group(1) == "udp+tcp" and not server.dns_port:
                server.dns_port = int(match.group(3))
            if match and match.group(1) == "http":
                server.http_port = int(match.group(3))
        if any("event=serving" in line for line in server.lines):
            return server
        if process.poll() is not None:
            break
        time.sleep(0.02)
    server.stop()
    raise AssertionError(f"dynmx did not start: {' '.join(command)}\n{server.log_text()}")


TEST_SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"  # base64 of a test-only TSIG secret
# A TSIG key allowed to UPDATE example.test. (serial policy "increment", so serials are predictable).
EDITS = (
    f'[[key]]\nname = "ops-key."\nsecret = "{TEST_SECRET}"\n'
    '[[zone]]\nname = "example.test."\nserial = "increment"\nallow_update = ["ops-key."]\n'
)


def write_config(tmp_path: Path, zone: str, extra: str = "") -> Path:
    """`zones/example.test.zone` holding `zone`, and a dynmx.toml serving it on an ephemeral port."""
    zones = tmp_path / "zones"
    zones.mkdir(exist_ok=True)
    (zones / "example.test.zone").write_text(zone)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        + extra
    )
    return config


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll `check` every 50 ms (bounded by `timeout`); return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def shared_free_port(addresses: Iterable[str]) -> int:
    """A TCP port free on every one of `addresses` (bounded tries), for servers on one port."""
    wanted = list(addresses)
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((wanted[0], 0))
            port = int(probe.getsockname()[1])
        try:
            for address in wanted[1:]:
                with socket.socket() as other:
                    other.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no port free on all of {wanted}")


class QuietSmtp:
    """An aiosmtpd handler that accepts nothing in particular: probes never send mail."""


@pytest.fixture
def smtp_controllers() -> Iterator[Callable[..., Controller]]:
    """`start(server_hostname, **options)` runs an aiosmtpd Controller on 127.0.0.1 (port picked
    here: not every aiosmtpd takes 0); all are stopped at teardown."""
    started: list[Controller] = []

    def start(server_hostname: str, **options: Any) -> Controller:
        controller = Controller(
            QuietSmtp(),
            hostname="127.0.0.1",
            port=_free_tcp_port(),
            server_hostname=server_hostname,
            **options,
        )
        controller.start()
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serve() -> Iterator[object]:
    """Factory fixture: `serve(*args)` starts a server; all are stopped at teardown."""
    started: list[RunningServer] = []

    def _start(*args: str, prefix: Sequence[str] = ()) -> RunningServer:
        server = start_server(*args, prefix=prefix)
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()


@pytest.fixture(autouse=True)
def fresh_refusal_log() -> Iterator[None]:
    """In-process tests each start with an empty rate limit for refusal lines (a process-wide
    limiter would let one test's refusals silence the next test's lines)."""
    from dynmx.control.ratelog import REFUSALS, LogLimiter

    REFUSALS.limiter = LogLimiter(REFUSALS.limiter.per_window, REFUSALS.limiter.window)
    yield


LAYERS = ("unit", "integration", "interop")


QUICK_DIVISOR = 5  # `-m unit`: examples per property test, divided by this


def pytest_configure(config: pytest.Config) -> None:
    """Every process the tests start (servers, CLI commands) imports dynmx anew: each keeps its
    bytecode in a cache outside the tree, as an installed package has it, even where the shell
    sets PYTHONDONTWRITEBYTECODE (every start would compile every module again)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    cache = Path(tempfile.gettempdir()) / f"dynmx-tests-pycache-{os.getuid()}"
    os.environ.setdefault("PYTHONPYCACHEPREFIX", str(cache))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its directory: `./dev test -m unit` runs the plain-call set. That
    inner-loop run tries a fifth of each property test's examples (at least 10); the whole
    suite, which CI runs, tries every one."""
    quick = config.getoption("markexpr") == "unit"
    for item in items:
        layer = item.path.parent.name
        if layer in LAYERS:
            item.add_marker(layer)
        test = getattr(item, "obj", None)
        chosen = getattr(test, "_hypothesis_internal_use_settings", None)  # set by @given
        if quick and chosen is not None:
            fewer = max(10, chosen.max_examples // QUICK_DIVISOR)
            test._hypothesis_internal_use_settings = hypothesis.settings(chosen, max_examples=fewer)  # type: ignore[union-attr]

"""The supervisor protocol (sd_notify(3)): READY=1 once serving, reloads and the stop announced.

A test socket stands in for systemd's: it receives the datagrams with the sender's
credentials, as systemd does to accept only the main process (`NotifyAccess=main`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dynmx.server import sdnotify
from tests.conftest import ROOT, RunningServer

ZONE = """$ORIGIN example.test.
$TTL 300
@ SOA ns1 hostmaster 1 7200 900 1209600 300
@ NS ns1
ns1 A 192.0.2.53
"""
CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Supervisor:
    """A notify socket that keeps every datagram with its sender's pid."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)
        self.messages: list[tuple[int, list[str]]] = []

    def receive(self, until: str, timeout: float = 10.0) -> list[str]:
        """Datagrams up to and including the first holding the line `until`; its fields."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(CREDENTIALS.size))
            except TimeoutError:
                break
            pid = next(
                CREDENTIALS.unpack(payload[: CREDENTIALS.size])[0]
                for level, kind, payload in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
            )
            fields = data.decode().split("\n")
            self.messages.append((pid, fields))
            if until in fields:
                return fields
        raise AssertionError(f"no datagram with {until!r}; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def supervisor() -> Iterator[tuple[Supervisor, str]]:
    """A supervisor on an abstract socket (no path length limit), and its NOTIFY_SOCKET value."""
    name = f"@dynmx-test-{uuid.uuid4().hex}"
    listening = Supervisor("\0" + name[1:])
    yield listening, name
    listening.close()


Serve = Callable[..., RunningServer]


def _serving(
    serve: Serve, tmp_path: Path, supervisor: tuple[Supervisor, str], *extra: str
) -> tuple[RunningServer, list[str]]:
    """A server on one zone, told to notify `supervisor` (the fixture stops it), and the
    fields of its READY=1 datagram."""
    listening, name = supervisor
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE)
    server = serve(
        "--zones",
        str(zones),
        "--listen",
        "127.0.0.1:0",
        *extra,
        prefix=("env", f"NOTIFY_SOCKET={name}"),
    )
    return server, listening.receive("READY=1")


# -- the protocol, by plain calls -------------------------------------------------------


def test_without_a_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready("serving 1 zones") is False


def test_ready_and_status_go_in_one_datagram_to_a_socket_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify"
    listening = Supervisor(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    try:
        assert sdnotify.ready("serving 3 zones") is True
        assert listening.receive("READY=1") == ["READY=1", "STATUS=serving 3 zones"]
        assert listening.messages[0][0] == os.getpid()
    finally:
        listening.close()


def test_an_at_sign_names_the_abstract_namespace(
    supervisor: tuple[Supervisor, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    listening, name = supervisor
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    assert sdnotify.stopping() is True
    assert listening.receive("STOPPING=1") == ["STOPPING=1", "STATUS=stopping"]


def test_reloading_carries_the_monotonic_clock_in_microseconds(
    supervisor: tuple[Supervisor, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd's Type=notify-reload requires MONOTONIC_USEC with RELOADING=1 (sd_notify(3))."""
    listening, name = supervisor
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert sdnotify.reloading() is True
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = listening.receive("RELOADING=1")
    stamp = next(int(field.split("=")[1]) for field in fields if field.startswith("MONOTONIC_USEC="))
    assert before <= stamp <= after


def test_an_unreachable_supervisor_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    with caplog.at_level(logging.WARNING, logger="dynmx.server"):
        assert sdnotify.ready("serving 1 zones") is False
    assert re.search(r"event=sd-notify-failed socket=\S+nobody-listens error=", caplog.text)


def test_a_notify_socket_that_is_no_unix_path_is_refused_with_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    with caplog.at_level(logging.WARNING, logger="dynmx.server"):
        assert sdnotify.ready("serving 1 zones") is False
    assert "event=sd-notify-failed socket=vsock:2:1234 error='not a Unix socket path'" in caplog.text


# -- a running server -------------------------------------------------------------------


def test_a_server_says_it_loads_then_that_it_is_ready_from_its_main_process(
    serve: Serve, tmp_path: Path, supervisor: tuple[Supervisor, str]
) -> None:
    listening, _ = supervisor
    server, ready = _serving(serve, tmp_path, supervisor)
    assert ready == ["READY=1", "STATUS=serving 1 zones"]
    assert listening.messages[0] == (server.process.pid, ["STATUS=loading zones"])
    assert all(pid == server.process.pid for pid, _ in listening.messages)


def test_a_reload_is_announced_and_so_is_its_end(
    serve: Serve, tmp_path: Path, supervisor: tuple[Supervisor, str]
) -> None:
    listening, _ = supervisor
    server, _ = _serving(serve, tmp_path, supervisor)
    server.process.send_signal(signal.SIGHUP)
    assert "RELOADING=1" in listening.receive("RELOADING=1")
    assert listening.receive("READY=1") == ["READY=1", "STATUS=serving 1 zones"]
    assert "event=reloaded" in server.wait_for_log("event=reloaded")


def test_a_stop_is_announced_before_the_server_exits(
    serve: Serve, tmp_path: Path, supervisor: tuple[Supervisor, str]
) -> None:
    listening, _ = supervisor
    server, _ = _serving(serve, tmp_path, supervisor)
    assert server.stop(signal.SIGTERM) == 0
    assert listening.receive("STOPPING=1", timeout=1.0) == ["STOPPING=1", "STATUS=stopping"]


def test_with_workers_only_the_main_process_notifies_once_the_workers_serve(
    serve: Serve, tmp_path: Path, supervisor: tuple[Supervisor, str]
) -> None:
    """systemd's default NotifyAccess=main drops datagrams from any other process."""
    listening, _ = supervisor
    server, _ = _serving(serve, tmp_path, supervisor, "--workers", "2")
    # The control process's word that a worker is ready (the worker's own line has its pid).
    assert len(re.findall(r"event=worker-ready worker=\d+ entries=", server.log_text())) == 2
    assert {pid for pid, _ in listening.messages} == {server.process.pid}


# -- the example unit file ------------------------------------------------------------


def test_the_example_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (./dev test installs systemd)")
    unit = (ROOT / "examples" / "systemd" / "dynmx.service").read_text()
    assert "ExecStart=/opt/dynmx/bin/dynmx serve" in unit
    # verify checks that ExecStart is executable: point it at this checkout's dynmx.
    installed = Path(sys.executable).parent / "dynmx"
    (tmp_path / "dynmx.service").write_text(unit.replace("/opt/dynmx/bin/dynmx", str(installed)))
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "dynmx.service")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""

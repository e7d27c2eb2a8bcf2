"""SIGTERM among many zones (issue 26): the server stops in order and its process ends at once,
without waiting for a slice of the fill or a write of the answer store in a thread; the next
start answers exactly what the zone files say, from a store never left torn."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode

from dynmx.app import lifecycle
from dynmx.app.root import App
from dynmx.config import load_config
from tests.conftest import RunningServer

Serve = Callable[..., RunningServer]
ZONES = 3000  # a staged start (1000 zones or more): compiled behind, three slices
OLD = time.time() - 3600  # older than the scan's racy window: the store trusts the stamps
EXIT_WITHIN = 3.0  # seconds from SIGTERM to the process gone (2 s asked; a loaded test machine)


def _zone(index: int) -> str:
    return (
        f"$ORIGIN z{index}.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\n"
        f"@ NS ns1\n@ MX 10 mx\nns1 A 192.0.2.53\nmx A 192.0.{index // 250}.{index % 250 + 1}\n"
    )


def _config(tmp_path: Path, zones: int) -> Path:
    directory = tmp_path / "zones"
    directory.mkdir()
    for index in range(zones):
        path = directory / f"z{index}.test.zone"
        path.write_text(_zone(index))
        os.utime(path, (OLD, OLD))
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{directory}"\nstate_dir = "{tmp_path / "state"}"\n'
    )
    return config


def _mx_address(server: RunningServer, index: int) -> str:
    query = dns.message.make_query(f"mx.z{index}.test", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query.to_wire(), server.address)
        reply = dns.message.from_wire(sock.recv(65535))
    assert reply.rcode() == dns.rcode.NOERROR, reply
    return str(reply.answer[0][0].address)


SAMPLE = [0, 1, 999, 1000, 1777, 2500, ZONES - 1]


def _answers_as_the_files_say(server: RunningServer) -> None:
    for index in SAMPLE:
        assert _mx_address(server, index) == f"192.0.{index // 250}.{index % 250 + 1}"


def _terminate(server: RunningServer) -> float:
    """SIGTERM; the seconds until the process is gone (bounded: killed after 30 s)."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(30)
    return time.monotonic() - started


def test_sigterm_while_staged_zones_compile_behind_ends_at_once_and_the_restart_answers_alike(
    serve: Serve, tmp_path: Path
) -> None:
    config = _config(tmp_path, ZONES)
    server = serve("--config", str(config))
    assert "pending=0" not in server.wait_for_log("event=serving")
    _answers_as_the_files_say(server)  # pending zones answer from the slow path meanwhile
    assert "event=compiled" not in server.log_text()
    seconds = _terminate(server)
    assert server.process.returncode == 0
    assert "event=stopped" in server.log_text()
    assert seconds < EXIT_WITHIN, f"exited {seconds:.2f} s after SIGTERM"
    again = serve("--config", str(config))
    _answers_as_the_files_say(again)
    again.wait_for_log("event=compiled", timeout=60)
    _answers_as_the_files_say(again)


def test_sigterm_while_the_store_is_written_leaves_it_whole_or_as_before(
    serve: Serve, tmp_path: Path
) -> None:
    """The write is one SQLite transaction: abandoned by the exit, the next start reads the
    rows of the last write that committed (none here) or all of this one, never part of it."""
    config = _config(tmp_path, ZONES)
    server = serve("--config", str(config))
    server.wait_for_log("event=compiled", timeout=60)  # the store write begins in a thread now
    seconds = _terminate(server)
    assert server.process.returncode == 0
    assert seconds < EXIT_WITHIN, f"exited {seconds:.2f} s after SIGTERM"
    again = serve("--config", str(config))
    read = again.wait_for_log("event=answer-store-read")
    assert f"zones={ZONES} " in read or "zones=0 " in read, read
    _answers_as_the_files_say(again)
    again.wait_for_log("event=compiled", timeout=60)
    _answers_as_the_files_say(again)


def test_a_stop_does_not_wait_for_a_store_write_still_in_its_thread(tmp_path: Path) -> None:
    """`lifecycle.run` ends once the server has stopped in order; `asyncio.run` would join the
    executor thread still writing the store (among 100,000 zones, tens of seconds)."""
    app = App(load_config(_config(tmp_path, 3)))
    writing, release = threading.Event(), threading.Event()
    save = app.answers.save

    def slow_save(*args: Any) -> None:
        writing.set()
        release.wait(30)  # a write that outlasts the stop by far
        save(*args)

    app.answers.save = slow_save  # type: ignore[method-assign]

    def stop_once_writing() -> None:
        if writing.wait(30):  # after start-up: the loop's SIGTERM handler is in place
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_once_writing, daemon=True).start()
    try:
        started = time.monotonic()
        lifecycle.run(app)
        seconds = time.monotonic() - started
    finally:
        release.set()
    assert writing.is_set()
    assert seconds < 10, f"run returned {seconds:.2f} s after start"  # not the 30 s write

"""Nothing in the state directory is unpickled by the workers (issue 23, item 12).

Before, the control process wrote its start-up zones to `state_dir/workers-start.zones`
(following a symlink placed there) and every worker, and every worker started again after a
crash, unpickled that path: whoever could write the state directory chose the code the
workers ran. Now the zones travel in a file with no name, passed to each worker as an open
file descriptor; these tests plant a pickle that would create a marker file, and a symlink,
where the file was, and check that neither is read or written while a worker starts, is
killed and starts again, and that the worker started again still takes the handed-over zones.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

from tests.conftest import RunningServer, wait_until, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
ns1   A   127.0.0.1
"""
OLD_NAME = "workers-start.zones"  # where the handover file used to be
READY = re.compile(r"logger=dynmx\.worker event=worker-ready worker=(\d+) pid=(\d+) .*handed=(\d+)")

Serve = Callable[..., RunningServer]


def _payload(marker: Path) -> bytes:
    """A pickle (protocol 0, by hand) whose loading calls `open(marker, "w")`."""
    return f"cbuiltins\nopen\n(V{marker}\nVw\ntR.".encode()


def _ready(server: RunningServer) -> list[tuple[int, int, int]]:
    """(worker, pid, zones handed over) of every `event=worker-ready` line so far."""
    found = []
    for line in list(server.lines):
        match = READY.search(line)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), int(match.group(3))))
    return found


def _restart_worker(server: RunningServer, index: int) -> tuple[int, int, int]:
    """Kill worker `index` and return the ready line of the one started in its place."""
    before = [row for row in _ready(server) if row[0] == index]
    os.kill(before[-1][1], signal.SIGKILL)
    wait_until(lambda: len([row for row in _ready(server) if row[0] == index]) > len(before), timeout=30)
    return [row for row in _ready(server) if row[0] == index][-1]


def _start(serve: Serve, tmp_path: Path) -> RunningServer:
    config = write_config(tmp_path, ZONE, "workers = 2\n")
    server = serve("--config", str(config))
    wait_until(lambda: len(_ready(server)) == 2, timeout=30)
    return server


def test_a_pickle_planted_where_the_handover_file_was_is_never_loaded(serve: Serve, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    state = tmp_path / "state"
    state.mkdir()
    planted = state / OLD_NAME
    planted.write_bytes(_payload(marker))
    server = _start(serve, tmp_path)
    assert all(handed == 1 for _, _, handed in _ready(server))
    planted.unlink(missing_ok=True)
    planted.write_bytes(_payload(marker))  # planted again while the workers run
    restarted = [_restart_worker(server, 1), _restart_worker(server, 0)]
    assert not marker.exists()
    assert [handed for _, _, handed in restarted] == [1, 1]  # they still take the handed-over zone
    assert server.stop() == 0
    assert not marker.exists()
    assert planted.read_bytes() == _payload(marker)  # neither read as zones nor overwritten


def test_a_symlink_placed_where_the_handover_file_was_is_not_followed(serve: Serve, tmp_path: Path) -> None:
    victim = tmp_path / "precious"
    victim.write_bytes(b"not for the server to write\n")
    state = tmp_path / "state"
    state.mkdir()
    (state / OLD_NAME).symlink_to(victim)
    server = _start(serve, tmp_path)
    assert _restart_worker(server, 1)[2] == 1
    assert victim.read_bytes() == b"not for the server to write\n"
    assert server.stop() == 0
    assert victim.read_bytes() == b"not for the server to write\n"
    assert (state / OLD_NAME).is_symlink()

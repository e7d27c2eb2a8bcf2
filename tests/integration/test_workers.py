"""`server.workers = N`: answer processes on one port (SO_REUSEPORT) fed by one control process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from tests.conftest import EDITS, TEST_SECRET, RunningServer, start_server, wait_until, write_config
from tests.control_token import authorized

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
ns1   A   127.0.0.1
mx1   A   127.0.0.2
mx2   A   127.0.0.3
mx3   A   127.0.0.4
rr    MX  10 mx1
rr    MX  20 mx2
rr    MX  30 mx3
"""
POOL = "".join(
    f'[[pool.member]]\nhost = "mx{i}.example.test."\npreference = {10 * i}\nprobe = "none"\n'
    for i in (1, 2, 3)
)
WORKERS = 2
SOCKETS = 24  # client sockets (source ports): the kernel hashes them over the workers

Serve = Callable[..., RunningServer]


def _config(folder: Path) -> Path:
    return write_config(
        folder,
        ZONE,
        f'workers = {WORKERS}\n[http]\nlisten = "127.0.0.1:0"\n'
        f'[[pool]]\nname = "rr.example.test."\nstrategy = "round-robin"\nttl = 30\n{POOL}' + EDITS,
    )


@pytest.fixture
def server(serve: Serve, tmp_path: Path) -> RunningServer:
    """A server of the test's own: for tests that edit, drain, reload, restart or stop it."""
    return serve("--config", str(_config(tmp_path)))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    """One server (and its folder) for the tests that only query it and read its log and state."""
    folder = tmp_path_factory.mktemp("workers")
    server = start_server("--config", str(_config(folder)))
    yield server, folder
    server.stop()


@pytest.fixture
def reader(shared: tuple[RunningServer, Path]) -> RunningServer:
    return shared[0]


def _status(server: RunningServer) -> dict[str, object]:
    with urllib.request.urlopen(authorized(server, "/status"), timeout=5) as reply:
        result: dict[str, object] = json.load(reply)
    return result


def _workers(server: RunningServer) -> dict[str, object]:
    workers = _status(server)["workers"]
    assert isinstance(workers, dict)
    return workers


def _ask_from_many(server: RunningServer, name: str, rdtype: str = "MX") -> list[dns.message.Message]:
    """One query from each of SOCKETS fresh sockets, so every worker gets some."""
    replies = []
    for index in range(SOCKETS):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(dns.message.make_query(name, rdtype, id=index).to_wire(), server.address)
            replies.append(dns.message.from_wire(sock.recvfrom(65535)[0]))
    return replies


def _add_address(server: RunningServer, name: str) -> None:
    """UPDATE (RFC 2136) adding `name`.example.test. A 192.0.2.7, acknowledged."""
    keyring = dns.tsigkeyring.from_text({"ops-key.": TEST_SECRET})
    update = dns.update.UpdateMessage("example.test.", keyring=keyring)
    update.add(name, 300, "A", "192.0.2.7")
    assert dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=10).rcode() == dns.rcode.NOERROR


def _reload(server: RunningServer) -> None:
    urllib.request.urlopen(authorized(server, "/reload", "POST"), timeout=30).close()


def _drain(server: RunningServer, host: str) -> None:
    request = authorized(server, f"/members/drain?pool=rr.example.test.&host={host}&drained=1", "POST")
    urllib.request.urlopen(request, timeout=5).close()


def _first(reply: dns.message.Message) -> str:
    return str(min(reply.answer[0], key=lambda r: r.preference).exchange)


def test_every_worker_is_started_and_answers(reader: RunningServer) -> None:
    server = reader
    workers = _workers(server)
    assert workers["count"] == WORKERS
    rows = workers["workers"]
    assert isinstance(rows, list) and all(row["ready"] for row in rows)
    assert len({row["pid"] for row in rows}) == WORKERS
    replies = _ask_from_many(server, "ns1.example.test", "A")
    assert all(r.rcode() == dns.rcode.NOERROR and r.answer for r in replies)
    wait_until(lambda: all(row["queries"] > 0 for row in _workers(server)["workers"]), timeout=10)  # type: ignore[index, union-attr]


def test_workers_start_from_the_control_processs_zones_not_the_files(reader: RunningServer) -> None:
    """Parsed once: each worker keeps the control process's version of every unchanged file."""
    server = reader
    assert "event=handover-written zones=1 " in server.log_text()
    ready = [line for line in server.lines if "logger=dynmx.worker event=worker-ready" in line]
    assert len(ready) == WORKERS
    assert all("zones=1 handed=1" in line for line in ready)


def test_the_handover_leaves_no_file_in_the_state_directory(shared: tuple[RunningServer, Path]) -> None:
    """The zones go to the workers in a file with no name (`tests/integration/test_handover_server.py`)."""
    server, tmp_path = shared
    assert "event=handover-written zones=1 kind=file " in server.log_text()
    assert not [p for p in (tmp_path / "state").iterdir() if "zones" in p.name]


def _restart_worker_1(server: RunningServer) -> str:
    """Kill worker 1 and wait for its successor; its `event=worker-ready` line."""
    rows = _workers(server)["workers"]
    assert isinstance(rows, list)
    os.kill(rows[1]["pid"], signal.SIGKILL)

    def restarted() -> list[str]:
        return [
            line
            for line in server.lines
            if "event=worker-ready worker=1 pid=" in line and f"pid={rows[1]['pid']} " not in line
        ]

    wait_until(lambda: bool(restarted()), timeout=20)
    return restarted()[0]


def test_a_worker_started_again_takes_the_start_up_zone_whose_file_is_unchanged(
    server: RunningServer,
) -> None:
    assert "zones=1 handed=1" in _restart_worker_1(server)


def test_a_worker_started_again_parses_a_file_changed_since_the_start(
    server: RunningServer, tmp_path: Path
) -> None:
    """The handed version is the start's; the file now holds an edit, which the worker serves."""
    _add_address(server, "new")
    zone_file = tmp_path / "zones" / "example.test.zone"
    wait_until(lambda: "new.example.test." in zone_file.read_text())  # written back: not behind
    assert "zones=1 handed=0" in _restart_worker_1(server)
    assert all(r.answer for r in _ask_from_many(server, "new.example.test", "A"))


def test_the_control_process_compiles_no_answer_of_its_own(reader: RunningServer) -> None:
    """It answers no query: its table stays staged (indexed, every zone pending)."""
    server = reader
    assert "zones=1 entries=" in server.wait_for_log("event=serving")
    assert server.wait_for_log("event=serving").rstrip().endswith("pending=1")
    assert "event=compiled" not in server.log_text()


def test_status_gives_the_size_of_a_workers_table_not_the_control_processs(reader: RunningServer) -> None:
    server = reader
    ready = re.search(r"event=worker-ready worker=\d+ pid=\d+ entries=(\d+)", server.log_text())
    assert ready is not None
    entries = int(ready.group(1))

    def reported() -> set[object]:  # each worker reports every second
        rows = _workers(server)["workers"]
        assert isinstance(rows, list)
        return {row["entries"] for row in rows}

    wait_until(lambda: reported() == {entries}, timeout=5)
    assert _status(server)["entries"] == entries


def test_tcp_is_answered_by_the_workers(reader: RunningServer) -> None:
    server = reader
    reply = dns.query.tcp(
        dns.message.make_query("ns1.example.test", "A"), "127.0.0.1", port=server.dns_port, timeout=5
    )
    assert reply.answer[0][0].address == "127.0.0.1"


def test_round_robin_is_fair_within_the_number_of_workers(reader: RunningServer) -> None:
    """Each worker rotates on its own: over all, first places differ by at most one per worker."""
    server = reader
    firsts: Counter[str] = Counter()
    for _ in range(10):
        firsts.update(_first(reply) for reply in _ask_from_many(server, "rr.example.test"))
    assert sum(firsts.values()) == 10 * SOCKETS
    assert set(firsts) == {"mx1.example.test.", "mx2.example.test.", "mx3.example.test."}
    assert max(firsts.values()) - min(firsts.values()) <= WORKERS * 10


def test_a_drained_member_leaves_every_workers_answers_at_once(server: RunningServer) -> None:
    _drain(server, "mx1.example.test.")
    replies = _ask_from_many(server, "rr.example.test")
    assert all("mx1.example.test." not in {str(r.exchange) for r in reply.answer[0]} for reply in replies)
    lag = _workers(server)["fact_lag_ms"]
    assert isinstance(lag, float) and 0 < lag < 100


def test_an_update_sent_to_a_worker_is_committed_once_and_seen_by_all_workers(server: RunningServer) -> None:
    """UPDATE reaches the one writer through the worker that received it (RFC 2136)."""
    keyring = dns.tsigkeyring.from_text({"ops-key.": TEST_SECRET})
    update = dns.update.UpdateMessage("example.test.", keyring=keyring)
    update.add("new", 300, "A", "192.0.2.7")
    reply = dns.query.udp(update, "127.0.0.1", port=server.dns_port, timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR
    wait_until(lambda: all(r.answer for r in _ask_from_many(server, "new.example.test", "A")), timeout=2)
    soa = _ask_from_many(server, "example.test", "SOA")
    assert {r.answer[0][0].serial for r in soa} == {2}


@pytest.fixture
def large(serve: Serve, tmp_path: Path) -> RunningServer:
    """Workers over a zone of 3,000 names: compiling an edit of it takes each worker about a
    second here, long enough for a reply that does not wait for them to come first."""
    hosts = "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(3000))
    config = write_config(
        tmp_path,
        ZONE + hosts,
        f'workers = {WORKERS}\n[http]\nlisten = "127.0.0.1:0"\n'
        f'[[pool]]\nname = "rr.example.test."\nstrategy = "round-robin"\nttl = 30\n{POOL}' + EDITS,
    )
    return serve("--config", str(config))


def test_an_update_is_acknowledged_once_every_worker_answers_from_it(large: RunningServer) -> None:
    """Read-your-writes, as in one process: after NOERROR every worker has the record (an ACME
    DNS-01 check right after its RFC 2136 UPDATE may reach any worker). Before the reply
    waited for the workers, 13 to 24 of these 24 queries got NXDOMAIN."""
    _add_address(large, "fresh")
    stale = [r for r in _ask_from_many(large, "fresh.example.test", "A") if not r.answer]
    assert stale == []


def test_a_drain_while_an_edit_compiles_does_not_acknowledge_the_edit_early(large: RunningServer) -> None:
    """A drain is applied by each worker at once, an edit once its table is compiled; the
    drain's acknowledgement stood for the edit still compiling before it, and the UPDATE's
    NOERROR came before the workers had the record (24 of 24 queries stale, 3 runs)."""
    update = threading.Thread(target=_add_address, args=(large, "fresh"))
    update.start()
    large.wait_for_log("event=zone-published")  # the edit's table is compiling in the workers
    _drain(large, "mx1.example.test.")
    update.join(timeout=30)
    stale = [r for r in _ask_from_many(large, "fresh.example.test", "A") if not r.answer]
    assert stale == []


def test_a_reload_is_done_once_every_worker_answers_from_it(large: RunningServer, tmp_path: Path) -> None:
    """POST /reload (and `dynmx reload`) returns when the workers have the new files too."""
    zone = tmp_path / "zones" / "example.test.zone"
    zone.write_text(zone.read_text().replace("hostmaster 1 ", "hostmaster 5 ") + "fresh A 192.0.2.9\n")
    _reload(large)
    stale = [r for r in _ask_from_many(large, "fresh.example.test", "A") if not r.answer]
    assert stale == []


def test_a_killed_worker_is_started_again(server: RunningServer) -> None:
    rows = _workers(server)["workers"]
    assert isinstance(rows, list)
    os.kill(rows[0]["pid"], signal.SIGKILL)
    server.wait_for_log("event=worker-exited worker=0", timeout=10)
    wait_until(
        lambda: _workers(server)["restarts"] == 1 and all(r["ready"] for r in _workers(server)["workers"]),
        timeout=20,
    )  # type: ignore[union-attr]
    assert all(r.answer for r in _ask_from_many(server, "ns1.example.test", "A"))


def test_sigterm_stops_control_and_workers_within_five_seconds(server: RunningServer) -> None:
    rows = _workers(server)["workers"]
    assert isinstance(rows, list)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    for row in rows:
        with pytest.raises(ProcessLookupError):
            os.kill(row["pid"], 0)


def test_a_reload_does_not_parse_again_a_file_written_from_an_edit(server: RunningServer) -> None:
    """The control process names the bytes it wrote (`WriteBack.digests`): the workers, which
    hold that version already, keep it instead of parsing the file back."""
    _add_address(server, "new")
    _reload(server)
    wait_until(lambda: server.log_text().count("event=worker-reloaded") == WORKERS, timeout=10)
    reloaded = [line for line in server.lines if "event=worker-reloaded" in line]
    assert all("zones=1 changed=0" in line for line in reloaded), reloaded


def test_a_reload_reaches_every_worker(server: RunningServer, tmp_path: Path) -> None:
    zone = tmp_path / "zones" / "example.test.zone"
    zone.write_text(
        zone.read_text().replace("SOA ns1 hostmaster 1", "SOA ns1 hostmaster 5") + "fresh A 192.0.2.9\n"
    )
    _reload(server)
    wait_until(lambda: all(r.answer for r in _ask_from_many(server, "fresh.example.test", "A")), timeout=5)
    assert {r.answer[0][0].serial for r in _ask_from_many(server, "example.test", "SOA")} == {5}


# The written-back zone file outgrows this, the state directory's databases do not.
FILE_LIMIT = 128 * 1024


@pytest.fixture
def unwritable(serve: Serve, tmp_path: Path) -> RunningServer:
    """Workers over a zone whose file cannot be written back: under a file size limit (a
    full disk, as a test can cause it), an UPDATE leaves the file behind the journal."""
    hosts = "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(5000))
    config = write_config(
        tmp_path, ZONE + hosts, f'workers = {WORKERS}\n[http]\nlisten = "127.0.0.1:0"\n' + EDITS
    )
    return serve("--config", str(config), prefix=["prlimit", f"--fsize={FILE_LIMIT}"])


def _edit_left_unwritten(server: RunningServer) -> None:
    _add_address(server, "fresh")
    server.wait_for_log("event=write-back-failed")
    wait_until(lambda: all(r.answer for r in _ask_from_many(server, "fresh.example.test", "A")), timeout=5)


def test_a_reload_keeps_the_workers_edit_whose_file_is_behind(
    unwritable: RunningServer, tmp_path: Path
) -> None:
    """Reading that file back would undo an acknowledged edit: the workers keep their version,
    as the control process does (`WriteBack.behind`)."""
    _edit_left_unwritten(unwritable)
    (tmp_path / "zones" / "other.test.zone").write_text(ZONE.replace("example.test.", "other.test."))
    _reload(unwritable)
    wait_until(lambda: all(r.answer for r in _ask_from_many(unwritable, "other.test", "SOA")), timeout=10)
    assert all(r.answer for r in _ask_from_many(unwritable, "fresh.example.test", "A"))


def test_a_worker_started_again_serves_the_edit_whose_file_is_behind(unwritable: RunningServer) -> None:
    """It reads the files, but not one the control process holds a newer version of."""
    _edit_left_unwritten(unwritable)
    _restart_worker_1(unwritable)
    assert all(r.answer for r in _ask_from_many(unwritable, "fresh.example.test", "A"))

"""The server over real sockets on 127.0.0.1: UDP, TCP (RFC 7766), reload, control HTTP, stop."""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import ROOT, RunningServer, start_server
from tests.control_token import authorized, token_env

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@       SOA ns1 hostmaster 1 7200 3600 1209600 300
@       NS  ns1
@       MX  10 mx1
ns1     A   127.0.0.1
mx1     A   127.0.0.2
big     TXT "{a}" "{a}" "{a}"
big     TXT "{b}" "{b}" "{b}"
""".format(a="a" * 200, b="b" * 200)

Serve = Callable[..., RunningServer]


@pytest.fixture
def zones(tmp_path: Path) -> Path:
    directory = tmp_path / "zones"
    directory.mkdir()
    (directory / "example.test.zone").write_text(ZONE)
    return directory


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server of ZONE on 127.0.0.1 for the tests that only query it."""
    directory = tmp_path_factory.mktemp("server") / "zones"
    directory.mkdir()
    (directory / "example.test.zone").write_text(ZONE)
    server = start_server("--zones", str(directory), "--listen", "127.0.0.1:0")
    yield server
    server.stop()


def _config(tmp_path: Path, zones: Path, extra: str = "") -> Path:
    path = tmp_path / "dynmx.toml"
    path.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\n{extra}\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    return path


def _udp(server: RunningServer, name: str, rdtype: str, **kwargs: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kwargs)  # type: ignore[arg-type]
    return dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)


def _tcp_exchange(sock: socket.socket, count: int) -> list[dns.message.Message]:
    replies = []
    sock.settimeout(3)
    buffer = b""
    while len(replies) < count:
        chunk = sock.recv(65535)
        assert chunk, "connection closed early"
        buffer += chunk
        while len(buffer) >= 2 and len(buffer) >= 2 + struct.unpack(">H", buffer[:2])[0]:
            length = struct.unpack(">H", buffer[:2])[0]
            replies.append(dns.message.from_wire(buffer[2 : 2 + length]))
            buffer = buffer[2 + length :]
    return replies


def test_udp_query_is_answered_authoritatively(plain: RunningServer) -> None:
    server = plain
    reply = _udp(server, "example.test", "MX")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.flags & dns.flags.AA
    assert [str(r.exchange) for r in reply.answer[0]] == ["mx1.example.test."]


def test_rfc7766_s8_truncated_udp_answer_is_complete_over_tcp(plain: RunningServer) -> None:
    server = plain
    over_udp = _udp(server, "big.example.test", "TXT")
    assert over_udp.flags & dns.flags.TC and not over_udp.answer
    query = dns.message.make_query("big.example.test", "TXT")
    over_tcp = dns.query.tcp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    assert not over_tcp.flags & dns.flags.TC
    assert len(over_tcp.answer[0]) == 2


def test_rfc7766_s6_2_pipelined_queries_on_one_connection_are_all_answered(plain: RunningServer) -> None:
    server = plain
    queries = [
        dns.message.make_query(n, "A", id=1000 + i)
        for i, n in enumerate(["ns1.example.test", "mx1.example.test", "nope.example.test"])
    ]
    wire = b"".join(struct.pack(">H", len(w)) + w for w in (q.to_wire() for q in queries))
    with socket.create_connection(server.address, timeout=3) as sock:
        sock.sendall(wire)
        replies = _tcp_exchange(sock, 3)
    by_id = {r.id: r for r in replies}
    assert set(by_id) == {1000, 1001, 1002}
    assert by_id[1002].rcode() == dns.rcode.NXDOMAIN


def test_rfc7766_s8_length_prefix_split_across_writes(plain: RunningServer) -> None:
    server = plain
    wire = dns.message.make_query("mx1.example.test", "A", id=77).to_wire()
    framed = struct.pack(">H", len(wire)) + wire
    with socket.create_connection(server.address, timeout=3) as sock:
        sock.sendall(framed[:1])
        time.sleep(0.1)
        sock.sendall(framed[1:5])
        time.sleep(0.1)
        sock.sendall(framed[5:])
        (reply,) = _tcp_exchange(sock, 1)
    assert reply.id == 77 and reply.answer


def test_rfc7766_s6_2_3_idle_tcp_connection_is_closed(serve: Serve, zones: Path, tmp_path: Path) -> None:
    server = serve("--config", str(_config(tmp_path, zones, "tcp_idle_timeout = 0.5")))
    with socket.create_connection(server.address, timeout=3) as sock:
        started = time.monotonic()
        assert sock.recv(10) == b""  # orderly close by the server
        assert time.monotonic() - started < 2.5


def test_slow_sender_is_cut_off_mid_message(serve: Serve, zones: Path, tmp_path: Path) -> None:
    """A message trickling in byte by byte (slowloris) must not hold a slot: closed after the deadline."""
    server = serve("--config", str(_config(tmp_path, zones, "tcp_message_timeout = 1.0")))
    wire = dns.message.make_query("mx1.example.test", "A").to_wire()
    framed = struct.pack(">H", len(wire)) + wire
    with socket.create_connection(server.address, timeout=3) as sock:
        started = time.monotonic()
        closed = False
        for byte in framed[:-1]:  # never the last byte; each one keeps the idle timer fresh
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 3:
                break
        if not closed:
            sock.settimeout(2)
            try:
                closed = sock.recv(10) == b""
            except ConnectionResetError:
                closed = True
        assert closed and time.monotonic() - started < 3.5


def test_a_client_that_does_not_read_is_paused_while_others_are_answered(serve: Serve, zones: Path) -> None:
    """Back-pressure: a pipelining client that never reads stops being read (bounded memory);
    the server answers everyone else meanwhile, and the stuck client later gets every reply."""
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    wire = dns.message.make_query("mx1.example.test", "A").to_wire()
    batch = (struct.pack(">H", len(wire)) + wire) * 256
    ceiling = 64 << 20  # bytes: far beyond what kernel buffers hold; reaching it means no back-pressure
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with sock:
        sock.connect(server.address)
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 10
        while sent < ceiling and time.monotonic() < deadline:
            if not select.select([], [sock], [], 1.0)[1]:
                break  # nothing could be written for a second: the server stopped reading
            with contextlib.suppress(BlockingIOError):
                sent += sock.send(batch[sent % len(batch) :])
        assert sent < ceiling, "the server kept reading although nothing was read back"
        assert _udp(server, "mx1.example.test", "A").answer  # everyone else is still served
        sock.setblocking(True)
        sock.sendall(batch[sent % len(batch) :])  # finish the last batch
        expected = (sent + len(batch) - sent % len(batch)) // (len(batch) // 256)
        sock.settimeout(10)
        received, buffer, last = 0, b"", b""
        while received < expected:
            chunk = sock.recv(1 << 20)
            assert chunk, f"connection closed after {received} of {expected} replies"
            buffer += chunk
            offset = 0
            while len(buffer) - offset >= 2:
                length = struct.unpack(">H", buffer[offset : offset + 2])[0]
                if len(buffer) - offset < 2 + length:
                    break
                last = buffer[offset + 2 : offset + 2 + length]
                offset += 2 + length
                received += 1
            buffer = buffer[offset:]
    assert received == expected
    assert dns.message.from_wire(last).answer


def test_listens_on_ipv6_loopback(serve: Serve, zones: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("::1 not configured")
    server = serve("--zones", str(zones), "--listen", "[::1]:0")
    query = dns.message.make_query("example.test", "SOA")
    reply = dns.query.udp(query, "::1", port=server.dns_port, timeout=2)
    assert reply.answer


def test_sighup_reload_serves_new_data(serve: Serve, zones: Path) -> None:
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    (zones / "example.test.zone").write_text(ZONE.replace(" 1 7200", " 2 7200") + "new A 127.0.0.9\n")
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_log("serial=2")
    assert _udp(server, "new.example.test", "A").answer


def test_reload_recompiles_the_zones_whose_answers_follow_a_changed_file(serve: Serve, zones: Path) -> None:
    """A reload parses only changed files; a CNAME chain into one still shows the new data."""
    (zones / "other.test.zone").write_text(
        "$TTL 60\n@ SOA ns1.example.test. h 1 2 3 4 5\n@ NS ns1.example.test.\n"
        "alias CNAME mx1.example.test.\n"
    )
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    assert _udp(server, "alias.other.test", "A").answer[-1][0].address == "127.0.0.2"
    changed = ZONE.replace(" 1 7200", " 2 7200").replace("127.0.0.2", "127.0.0.8")
    (zones / "example.test.zone").write_text(changed)
    server.process.send_signal(signal.SIGHUP)
    assert "zones=2 changed=1 incremental=yes table=new" in server.wait_for_log("event=reloaded")
    assert _udp(server, "alias.other.test", "A").answer[-1][0].address == "127.0.0.8"
    assert _udp(server, "mx1.example.test", "A").answer[0][0].address == "127.0.0.8"


def test_reload_logs_the_zones_that_arrived_or_left_and_no_others(serve: Serve, zones: Path) -> None:
    small = "$TTL 60\n@ SOA ns1.example.test. h 1 2 3 4 5\n@ NS ns1.example.test.\n"
    for name in ("other", "third"):
        (zones / f"{name}.test.zone").write_text(small)
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    (zones / "example.test.zone").write_text(ZONE.replace(" 1 7200", " 2 7200"))
    (zones / "other.test.zone").unlink()
    seen = len(server.lines)
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_log("event=reloaded")
    after = "".join(server.lines[seen:])
    assert "event=zone-loaded zone=example.test. serial=2" in after
    assert "event=zone-removed zone=other.test." in after
    assert "third.test." not in after


def test_reload_with_no_file_changed_keeps_the_table(serve: Serve, zones: Path) -> None:
    """Nothing to parse and nothing to compile: the served table stays as it is."""
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    server.process.send_signal(signal.SIGHUP)
    assert "zones=1 changed=0 incremental=yes table=kept" in server.wait_for_log("event=reloaded")
    assert _udp(server, "mx1.example.test", "A").answer[0][0].address == "127.0.0.2"


def test_bad_zone_on_reload_is_refused_and_previous_version_keeps_serving(serve: Serve, zones: Path) -> None:
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    (zones / "example.test.zone").write_text(ZONE + "broken A not-an-address\n")
    server.process.send_signal(signal.SIGHUP)
    line = server.wait_for_log("event=zone-refused")
    assert "example.test.zone:10:" in line
    assert _udp(server, "mx1.example.test", "A").answer


def test_reload_command_reaches_server_over_http(serve: Serve, zones: Path, tmp_path: Path) -> None:
    server = serve("--config", str(_config(tmp_path, zones)))
    (zones / "other.test.zone").write_text(
        "$TTL 60\n@ SOA ns1.example.test. h 1 2 3 4 5\n@ NS ns1.example.test.\nwww A 127.0.0.7\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "dynmx", "reload", "--http", f"127.0.0.1:{server.http_port}"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=token_env(server),  # no config: the token file is named
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _udp(server, "www.other.test", "A").answer


def test_status_and_metrics_endpoints(serve: Serve, zones: Path, tmp_path: Path) -> None:
    server = serve("--config", str(_config(tmp_path, zones)))
    _udp(server, "example.test", "SOA")
    base = f"http://127.0.0.1:{server.http_port}"
    with urllib.request.urlopen(authorized(server, "/status"), timeout=5) as response:
        status = json.loads(response.read())
    assert [z["name"] for z in status["zones"]] == ["example.test."]
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'dynmx_dns_queries_total{transport="udp"}' in metrics


def test_sigterm_stops_within_five_seconds(serve: Serve, zones: Path) -> None:
    server = serve("--zones", str(zones), "--listen", "127.0.0.1:0")
    with socket.create_connection(server.address, timeout=3):
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5


@pytest.mark.interop
def test_dig_reads_the_answer(plain: RunningServer) -> None:
    dig = shutil.which("dig")
    if dig is None:
        pytest.skip("dig not installed (./dev test installs dnsutils)")
    server = plain
    result = subprocess.run(
        [
            dig,
            "@127.0.0.1",
            "-p",
            str(server.dns_port),
            "example.test",
            "MX",
            "+short",
            "+tries=1",
            "+time=2",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.stdout.strip() == "10 mx1.example.test."


def test_check_accepts_good_zones(zones: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dynmx", "check", "--zones", str(zones)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0 and result.stdout.startswith("ok: 1 zone(s)")


def test_check_reports_file_and_line_and_exits_1(zones: Path) -> None:
    (zones / "bad.test.zone").write_text(
        "$TTL 60\n@ SOA ns1 h 1 2 3 4 5\n@ NS ns1\nns1 A 127.0.0.1\nwww CNAME ns1\nwww A 127.0.0.2\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "dynmx", "check", "--zones", str(zones)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "bad.test.zone:6:" in result.stdout


def test_example_zones_pass_check() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dynmx", "check", "--config", str(ROOT / "examples" / "dynmx.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout

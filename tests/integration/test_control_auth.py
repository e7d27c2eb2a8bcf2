"""The control listener under attack (issue 23, items 7-9), through a running server.

7. State changes (drain, load, reload) and the reads that show the configuration need the
   token of STATE_DIR/control.token; a foreign Origin (CSRF) and a foreign Host (DNS
   rebinding) are refused; the CLI still works, reading the token.
8. Idle connections are capped (overall and per source) and cut off after the timeout;
   DNS and /metrics go on being answered; a client's fault logs no traceback.
9. /routes looped by clients over many zones does not hold the event loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import stat
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.conftest import ROOT, RunningServer, wait_until, write_config
from tests.control_token import auth, token_env, token_file

Serve = Callable[..., RunningServer]
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mx1  A   127.0.0.1
mx2  A   127.0.0.1
@    MX  10 mx1
@    MX  20 mx2
"""
POOL = (
    '[[pool]]\nname = "example.test."\nstrategy = "least-load"\n'
    '[[pool.member]]\nhost = "mx1.example.test."\npreference = 10\nprobe = "none"\n'
    '[[pool.member]]\nhost = "mx2.example.test."\npreference = 20\nprobe = "none"\n'
)
DRAIN = "/members/drain?pool=example.test.&host=mx1.example.test.&drained=1"
LOAD = "/members/load?pool=example.test.&host=mx1.example.test.&value=0.9"


def _server(serve: Serve, tmp_path: Path, http: str = "") -> RunningServer:
    config = write_config(tmp_path, ZONE, '[http]\nlisten = "127.0.0.1:0"\n' + http + POOL)
    return serve("--config", str(config))


def _call(
    server: RunningServer, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{server.http_port}{path}"
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _states(server: RunningServer) -> dict[str, str]:
    status, body = _call(server, "/status", headers=auth(server))
    assert status == 200
    members = json.loads(body)["pools"][0]["members"]
    return {m["host"]: m["state"] for m in members}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dynmx", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


# -- 7: authentication, CSRF, DNS rebinding ------------------------------------------------


def test_state_changes_need_the_token(serve: Serve, tmp_path: Path) -> None:
    server = _server(serve, tmp_path)
    wrong = {"Authorization": "Bearer " + "x" * 43}
    for path in (DRAIN, LOAD, "/reload", "/selfcheck"):
        assert _call(server, path, "POST")[0] == 401, path
        assert _call(server, path, "POST", wrong)[0] == 401, path
    assert _states(server)["mx1.example.test."] == "up"  # the refused drain changed nothing
    assert _call(server, DRAIN, "POST", auth(server)) == (200, b"ok\n")
    assert _call(server, LOAD, "POST", auth(server)) == (200, b"ok\n")
    status, body = _call(server, "/reload", "POST", auth(server))
    assert status == 200 and json.loads(body)["ok"] is True
    assert _states(server)["mx1.example.test."] == "admin-down"
    assert (
        "x" * 43 not in server.log_text() and token_file(server).read_text().strip() not in server.log_text()
    )
    assert "event=control-refused reason=token" in server.log_text()


def test_the_token_file_is_made_private_at_first_start_and_kept(serve: Serve, tmp_path: Path) -> None:
    server = _server(serve, tmp_path)
    path = token_file(server)
    info = path.lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) >= 43
    server.stop()
    again = _server(serve, tmp_path)
    assert token_file(again).read_text().strip() == token  # the CLI's copy stays valid


def test_reads_that_show_the_configuration_need_the_token_unless_public(serve: Serve, tmp_path: Path) -> None:
    server = _server(serve, tmp_path)
    for path in ("/status", "/routes", "/explain?name=example.test."):
        assert _call(server, path)[0] == 401, path
        assert _call(server, path, headers=auth(server))[0] == 200, path
    status, body = _call(server, "/metrics")  # open: Prometheus scrapes it without credentials
    assert status == 200 and b"dynmx_http_responses_total" in body
    config = tmp_path / "dynmx.toml"  # `public_status` is applied by a reload
    config.write_text(config.read_text().replace("[http]\n", "[http]\npublic_status = true\n"))
    assert _call(server, "/reload", "POST", auth(server))[0] == 200
    for path in ("/status", "/routes", "/explain?name=example.test."):
        assert _call(server, path)[0] == 200, path
    assert _call(server, DRAIN, "POST")[0] == 401  # changes still need it


def test_a_foreign_origin_is_refused_even_with_the_token(serve: Serve, tmp_path: Path) -> None:
    server = _server(serve, tmp_path)
    evil = {**auth(server), "Origin": "http://evil.example"}
    assert _call(server, "/reload", "POST", evil)[0] == 403
    assert _call(server, DRAIN, "POST", evil)[0] == 403
    assert _call(server, "/metrics", headers={"Origin": "http://evil.example"})[0] == 403
    assert _call(server, "/status", headers={**auth(server), "Origin": "null"})[0] == 403
    other_port = {**auth(server), "Origin": f"http://127.0.0.1:{server.http_port + 1}"}
    assert _call(server, "/status", headers=other_port)[0] == 403
    own = {**auth(server), "Origin": f"http://127.0.0.1:{server.http_port}"}
    assert _call(server, "/reload", "POST", own)[0] == 200
    assert _states(server)["mx1.example.test."] == "up"
    assert "event=control-refused reason=origin" in server.log_text()


def test_a_rebound_host_name_is_refused(serve: Serve, tmp_path: Path) -> None:
    """DNS rebinding: a page at evil.example, its name now pointing at 127.0.0.1, reads as
    evil.example; its requests carry that Host (and a token it cannot have: refused anyway)."""
    server = _server(serve, tmp_path)
    port = server.http_port
    token = auth(server)
    assert _call(server, "/status", headers={**token, "Host": f"evil.example:{port}"})[0] == 403
    assert _call(server, "/metrics", headers={"Host": f"evil.example:{port}"})[0] == 403
    assert _call(server, "/routes", headers={**token, "Host": "evil.example"})[0] == 403
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", "127.0.0.2", f"[::1]:{port}"):
        assert _call(server, "/status", headers={**token, "Host": host})[0] == 200, host
    assert "event=control-refused reason=host" in server.log_text()


def test_allowed_hosts_and_public_status_are_applied_by_reload(serve: Serve, tmp_path: Path) -> None:
    server = _server(serve, tmp_path)
    named = {"Host": f"ns1.example.net:{server.http_port}"}
    assert _call(server, "/metrics", headers=named)[0] == 403
    config = tmp_path / "dynmx.toml"
    extra = 'allowed_hosts = ["NS1.example.net."]\npublic_status = true\n'
    config.write_text(config.read_text().replace("[http]\n", "[http]\n" + extra))
    assert _call(server, "/reload", "POST", auth(server))[0] == 200
    assert _call(server, "/metrics", headers=named)[0] == 200  # Prometheus scraping by name
    assert _call(server, "/status", headers=named)[0] == 200
    assert _call(server, "/status", headers={"Host": "evil.example"})[0] == 403


def test_the_cli_reads_the_token(serve: Serve, tmp_path: Path) -> None:
    server = _server(serve, tmp_path)
    config = str(tmp_path / "dynmx.toml")
    http = ["--http", f"127.0.0.1:{server.http_port}"]
    down = _cli("member", "down", "example.test", "mx1.example.test", "--config", config, *http)
    assert down.returncode == 0, down.stderr
    assert _states(server)["mx1.example.test."] == "admin-down"
    up = _cli("member", "up", "example.test", "mx1.example.test", "--config", config)  # the socket
    assert up.returncode == 0, up.stderr
    reload = _cli("reload", "--config", config, *http)
    assert reload.returncode == 0 and "reloaded" in reload.stdout, reload.stderr
    status = _cli("status", *http, env=token_env(server))  # no config: DYNMX_TOKEN_FILE names it
    assert status.returncode == 0 and "zone example.test." in status.stdout, status.stderr
    refused = _cli("status", *http, env={k: v for k, v in os.environ.items() if k != "DYNMX_TOKEN_FILE"})
    assert refused.returncode != 0 and "401" in refused.stderr and "control token" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_server_refuses_to_start_with_a_token_others_can_read(serve: Serve, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "control.token").write_text("t" * 43 + "\n")
    (state / "control.token").chmod(0o640)
    with pytest.raises(AssertionError, match="readable by others"):
        _server(serve, tmp_path)


# -- 8: bounded connections, timeouts, no tracebacks ---------------------------------------


def _threads(server: RunningServer) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def _dns_ok(server: RunningServer) -> float:
    started = time.monotonic()
    reply = dns.query.tcp(
        dns.message.make_query("example.test.", "SOA"), "127.0.0.1", port=server.dns_port, timeout=3
    )
    assert reply.answer
    return time.monotonic() - started


def _metrics_from(server: RunningServer, source: str) -> bytes:
    """GET /metrics from another loopback address (a scraper that is not the attacker)."""
    with socket.create_connection(
        ("127.0.0.1", server.http_port), timeout=5, source_address=(source, 0)
    ) as sock:
        sock.sendall(f"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{server.http_port}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


PER_SOURCE = 16  # [http] max_per_source, by default
TIMEOUT = 3.0  # [http] timeout, set below the default 10 s (the cut-off is the same rule, sooner)


def test_idle_connections_are_capped_and_cut_off_while_dns_and_metrics_go_on(
    serve: Serve, tmp_path: Path
) -> None:
    """With the default per-source cap: 300 connections that never finish a request."""
    server = _server(serve, tmp_path, f"timeout = {TIMEOUT}\n")
    before = _threads(server)
    held: list[socket.socket] = []
    try:
        opened = time.monotonic()
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
            sock.sendall(b"GET /status HTTP/1.1\r\n")  # a request begun, never finished
            held.append(sock)
        time.sleep(0.5)
        closed_at_once = 0
        for sock in held:
            sock.settimeout(0.05)
            try:
                closed_at_once += sock.recv(1) == b""
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed_at_once += 1
        assert closed_at_once >= 300 - PER_SOURCE  # one source holds at most max_per_source
        assert _threads(server) <= before + PER_SOURCE + 4
        assert _dns_ok(server) < 1.0  # DNS over TCP is answered meanwhile
        assert b"dynmx_http_refused_connections_total" in _metrics_from(server, "127.0.0.2")
        for sock in held:  # those being served are cut off after the timeout
            sock.settimeout(TIMEOUT + 5)
            with contextlib.suppress(ConnectionResetError, TimeoutError):
                sock.recv(65536)
        assert time.monotonic() - opened < TIMEOUT + 3
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: _threads(server) <= before + 2, timeout=5)
    metrics = _metrics_from(server, "127.0.0.1").decode()
    name = 'dynmx_http_refused_connections_total{listener="http"}'
    refused = next(line for line in metrics.splitlines() if line.startswith(name))
    assert float(refused.split()[-1]) >= 300 - PER_SOURCE
    assert "event=http-connections-full listener=http" in server.log_text()
    assert "Traceback" not in server.log_text()


def test_a_slow_trickle_is_cut_off_at_the_deadline(serve: Serve, tmp_path: Path) -> None:
    """One octet every 0.1 s: no single wait is long, the request as a whole is."""
    server = _server(serve, tmp_path, "timeout = 1.5\nmax_connections = 4\n")
    closed = None
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as sock:
        started = time.monotonic()
        for byte in b"GET /metrics HTTP/1.0\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
                readable, _, _ = select.select([sock], [], [], 0.1)
                if readable and sock.recv(1) == b"":
                    closed = time.monotonic() - started
                    break
            except OSError:
                closed = time.monotonic() - started
                break
    assert closed is not None and 1.4 < closed < 2.5, closed
    assert "Traceback" not in server.log_text()


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the request aborted."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_an_aborted_request_logs_no_traceback(serve: Serve, tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE, '[http]\nlisten = "127.0.0.1:0"\n' + POOL)
    server = serve("--config", str(config))
    port = server.http_port
    for request in (
        b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",  # reset before the reply is written
        b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Half: ",  # reset in the headers
        b"POST /reload HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nabc",  # in the body
    ):
        for pause in (0, 0, 0.02, 0.05, 0.1):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(request)
            time.sleep(pause)
            _reset(sock)
    time.sleep(0.5)
    assert _dns_ok(server) < 1.0
    status, _ = _call(server, "/metrics")
    assert status == 200
    assert "Traceback" not in server.log_text(), server.log_text()
    assert "Exception occurred during processing" not in server.log_text()


# -- 9: heavy pages off the event loop -----------------------------------------------------

ZONES = 2000


def _many_zones(tmp_path: Path) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    for index in range(ZONES):
        name = f"z{index:05d}.test."
        (zones / f"{name}zone").write_text(
            f"$ORIGIN {name}\n$TTL 300\n@ SOA ns1 h 1 7200 900 1209600 300\n@ NS ns1\nns1 A 127.0.0.1\n"
            "@ MX 10 mx1\n@ MX 20 mx2\nmx1 A 127.0.0.1\nmx2 A 127.0.0.2\nwww A 127.0.0.3\n"
        )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
    )
    return config


def _latencies(server: RunningServer, count: int) -> list[float]:
    query = dns.message.make_query("www.z00007.test.", "A")
    found = []
    for _ in range(count):
        started = time.monotonic()
        dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=5)
        found.append(time.monotonic() - started)
        time.sleep(0.005)
    return found


def test_routes_looped_by_clients_does_not_hold_the_event_loop(serve: Serve, tmp_path: Path) -> None:
    server = serve("--config", str(_many_zones(tmp_path)))
    server.wait_for_log("event=compiled", timeout=120)
    headers = auth(server)
    status, body = _call(server, "/routes", headers=headers)
    assert status == 200 and body.count(b"smtp:[") == ZONES
    quiet = statistics.median(_latencies(server, 100))
    stop = threading.Event()
    pages = [0]

    def loop_routes() -> None:
        while not stop.is_set():
            assert _call(server, "/routes?format=json", headers=headers)[0] == 200
            pages[0] += 1

    clients = [threading.Thread(target=loop_routes, daemon=True) for _ in range(2)]
    for client in clients:
        client.start()
    try:
        time.sleep(0.5)
        busy = _latencies(server, 200)
    finally:
        stop.set()
        for client in clients:
            client.join(30)
    during = statistics.median(busy)
    print(
        f"DNS p50 quiet {quiet * 1000:.2f} ms, with /routes looped {during * 1000:.2f} ms, {pages[0]} pages"
    )
    assert pages[0] >= 10
    assert during < max(0.02, 5 * quiet), (quiet, during)

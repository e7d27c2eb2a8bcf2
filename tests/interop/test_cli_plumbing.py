"""The `dynmx` command's plumbing, as an operator meets it: which config it reads (NSD's and
Knot's default-path rule), the pid file (NSD's pidfile), what a busy address says, a closed
stdout, `--json` on read commands, and `./dev` as a newcomer runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest

from dynmx.cli import configpath, main
from tests.conftest import ROOT, RunningServer, start_server, wait_until, write_config

ZONE = """$ORIGIN example.test.
$TTL 300
@    SOA ns1 hostmaster {serial} 3600 600 86400 300
     NS  ns1
     MX  10 mx1
     MX  20 mx2
ns1  A   127.0.0.1
mx1  A   127.0.0.2
mx2  A   127.0.0.3
"""
POOL = """
[[pool]]
name = "example.test."
strategy = "round-robin"
  [[pool.member]]
  host = "mx1.example.test."
  preference = 10
  probe = "none"
  [[pool.member]]
  host = "mx2.example.test."
  preference = 20
  probe = "none"
"""

Serve = Callable[..., RunningServer]


def dynmx(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`python -m dynmx ARGS` with `env` over a copy of the environment without DYNMX_CONFIG."""
    clean = {k: v for k, v in os.environ.items() if k != configpath.CONFIG_ENV}
    clean |= {"COLUMNS": "1000"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=clean
    )


@pytest.fixture(autouse=True)
def no_default_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In-process calls see neither the caller's DYNMX_CONFIG nor a real /etc/dynmx."""
    monkeypatch.delenv(configpath.CONFIG_ENV, raising=False)
    monkeypatch.setattr(configpath, "DEFAULT_CONFIG", tmp_path / "etc-dynmx" / "dynmx.toml")


# -- which config: -c, else $DYNMX_CONFIG, else the system default ---------------------------------


def test_dynmx_config_names_the_config_when_c_is_absent(tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE.format(serial=1))
    result = dynmx("check", env={"DYNMX_CONFIG": str(config)}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: 1 zone(s): example.test." in result.stdout


def test_c_wins_over_dynmx_config(tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE.format(serial=1))
    result = dynmx("check", "-c", str(config), env={"DYNMX_CONFIG": str(tmp_path / "missing.toml")})
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_dynmx_config_that_is_missing_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = dynmx("check", env={"DYNMX_CONFIG": str(missing)})
    assert result.returncode == 1 and str(missing) in result.stdout


def test_the_system_config_is_read_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, ZONE.format(serial=1))
    monkeypatch.setattr(configpath, "DEFAULT_CONFIG", config)
    assert main(["check"]) == 0
    assert "ok: 1 zone(s): example.test." in capsys.readouterr().out


def test_a_command_that_needs_a_config_says_where_it_looked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["zone", "list"])
    assert stopped.value.code == 2
    assert "needs a config file: -c FILE, $DYNMX_CONFIG, or" in capsys.readouterr().err


def test_zones_without_c_reads_no_config_file(tmp_path: Path) -> None:
    """A directory served on its own does not pick up the system server's settings."""
    write_config(tmp_path, ZONE.format(serial=1))
    broken = tmp_path / "broken.toml"
    broken.write_text("this is not TOML [")
    result = dynmx("check", "--zones", str(tmp_path / "zones"), env={"DYNMX_CONFIG": str(broken)})
    assert result.returncode == 0, result.stdout + result.stderr


def test_help_names_the_config_that_would_be_read(tmp_path: Path) -> None:
    config = tmp_path / "named.toml"
    result = dynmx("status", "--help", env={"DYNMX_CONFIG": str(config)})
    assert f"now {config}, from $DYNMX_CONFIG" in result.stdout
    assert "none now" in dynmx("status", "--help").stdout


def test_status_finds_the_server_through_dynmx_config(serve: Serve, tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE.format(serial=7))
    serve("-c", str(config))
    result = dynmx("status", env={"DYNMX_CONFIG": str(config)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "zone example.test. serial 7" in result.stdout


# -- the pid file ------------------------------------------------------------------------------------


def _serial(server: RunningServer) -> int:
    query = dns.message.make_query("example.test.", dns.rdatatype.SOA)
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=3)
    return int(reply.answer[0][0].serial)


def test_serve_writes_state_dir_dynmx_pid_and_removes_it_on_a_clean_exit(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve("-c", str(write_config(tmp_path, ZONE.format(serial=1))))
    pid_file = tmp_path / "state" / "dynmx.pid"
    assert pid_file.read_text() == f"{server.process.pid}\n"
    assert server.stop() == 0
    assert not pid_file.exists()


def test_kill_hup_of_the_pid_file_reloads_the_running_server(serve: Serve, tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE.format(serial=1))
    server = serve("-c", str(config))
    (tmp_path / "zones" / "example.test.zone").write_text(ZONE.format(serial=2))
    pid_file = tmp_path / "state" / "dynmx.pid"
    subprocess.run(["sh", "-c", f'kill -HUP "$(cat {pid_file})"'], check=True, timeout=10)
    wait_until(lambda: _serial(server) == 2)


def test_reload_falls_back_to_the_pid_file_when_there_is_no_control_socket(
    serve: Serve, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ZONE.format(serial=1))
    server = serve("-c", str(config))
    (tmp_path / "state" / "control.sock").unlink()
    (tmp_path / "zones" / "example.test.zone").write_text(ZONE.format(serial=3))
    result = dynmx("reload", "-c", str(config))
    assert result.stdout.strip() == f"sent SIGHUP to {server.process.pid}", result.stderr
    wait_until(lambda: _serial(server) == 3)


def test_reload_does_not_signal_the_process_a_stale_pid_file_names(tmp_path: Path) -> None:
    """After a kill -9 the pid file stays, and its number may be another process's by now."""
    config = write_config(tmp_path, ZONE.format(serial=1))
    (tmp_path / "state").mkdir()
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "state" / "dynmx.pid").write_text(f"{bystander.pid}\n")
        result = dynmx("reload", "-c", str(config))
        assert result.returncode == 2 and "stale pid file" in result.stderr
        assert bystander.poll() is None  # SIGHUP would have ended it
    finally:
        bystander.kill()
        bystander.wait(5)


def test_pid_file_option_names_another_file(serve: Serve, tmp_path: Path) -> None:
    other = tmp_path / "run" / "other.pid"
    other.parent.mkdir()
    server = serve("-c", str(write_config(tmp_path, ZONE.format(serial=1))), "--pid-file", str(other))
    assert other.read_text() == f"{server.process.pid}\n"
    assert not (tmp_path / "state" / "dynmx.pid").exists()


# -- listeners: none unasked, and a busy one named ----------------------------------------------------


def test_serve_zones_without_a_config_opens_no_control_listener(serve: Serve, tmp_path: Path) -> None:
    """The unix control socket in state_dir is there; the HTTP listener waits for --http."""
    write_config(tmp_path, ZONE.format(serial=1))
    server = serve("--zones", str(tmp_path / "zones"), "--listen", "127.0.0.1:0")
    assert "proto=http" not in server.log_text()
    assert (tmp_path / "state" / "control.sock").exists()


def test_http_opens_the_control_listener(serve: Serve, tmp_path: Path) -> None:
    write_config(tmp_path, ZONE.format(serial=1))
    server = serve("--zones", str(tmp_path / "zones"), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
    assert server.http_port > 0


@pytest.fixture
def held_port() -> Iterator[Callable[[int], int]]:
    """`hold(kind)` binds a loopback port of that socket kind (TCP listening) until teardown."""
    held: list[socket.socket] = []

    def other_kind_free(port: int, kind: int) -> bool:
        """The same port of the other kind is free (so the server fails on `kind`, not on a
        connection of another test that happens to use the port)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM + socket.SOCK_STREAM - kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    def hold(kind: int) -> int:
        for _ in range(50):
            sock = socket.socket(socket.AF_INET, kind)
            sock.bind(("127.0.0.1", 0))
            if other_kind_free(sock.getsockname()[1], kind):
                break
            sock.close()
        if kind == socket.SOCK_STREAM:
            sock.listen()
        held.append(sock)
        return int(sock.getsockname()[1])

    yield hold
    for sock in held:
        sock.close()


@pytest.mark.parametrize(
    ("kind", "proto"), [(socket.SOCK_STREAM, "tcp"), (socket.SOCK_DGRAM, "udp")], ids=["tcp", "udp"]
)
def test_a_busy_dns_address_is_named_with_its_protocol(
    tmp_path: Path, held_port: Callable[[int], int], kind: int, proto: str
) -> None:
    write_config(tmp_path, ZONE.format(serial=1))
    port = held_port(kind)
    result = dynmx("serve", "--zones", str(tmp_path / "zones"), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"event=listen-failed addr=127.0.0.1:{port} proto={proto} service=dns error=" in result.stderr
    assert f"\ndynmx: cannot listen on 127.0.0.1:{port} ({proto}, dns): " in result.stderr
    assert "Traceback" not in result.stderr


def test_a_busy_control_address_is_named(tmp_path: Path, held_port: Callable[[int], int]) -> None:
    write_config(tmp_path, ZONE.format(serial=1))
    port = held_port(socket.SOCK_STREAM)
    zones = str(tmp_path / "zones")
    result = dynmx("serve", "--zones", zones, "--listen", "127.0.0.1:0", "--http", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"event=listen-failed addr=127.0.0.1:{port} proto=tcp service=http" in result.stderr
    assert f"dynmx: cannot listen on 127.0.0.1:{port} (tcp, http): " in result.stderr
    assert "Traceback" not in result.stderr


# -- a closed stdout ------------------------------------------------------------------------------------


@pytest.fixture
def big_status() -> Iterator[int]:
    """A control listener whose /status lists 20,000 zones: far more than a pipe holds."""
    zones = [{"name": f"z{index}.example.test.", "serial": 1} for index in range(20000)]
    body = json.dumps({"uptime_seconds": 1, "listen": ["127.0.0.1:53"], "zones": zones}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_closed_pipe_ends_status_quietly(tmp_path: Path, big_status: int) -> None:
    """`dynmx status | head -1`: the first line, and no BrokenPipeError traceback."""
    errors = tmp_path / "stderr"
    command = f'"$0" -m dynmx status --http 127.0.0.1:{big_status} 2>{errors} | head -1'
    env = {k: v for k, v in os.environ.items() if k != configpath.CONFIG_ENV}
    env["DYNMX_TOKEN_FILE"] = str(tmp_path / "no-token")
    result = subprocess.run(
        ["bash", "-c", f'set -o pipefail; {command}; echo "status=$?"', sys.executable],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.stdout.splitlines()[0] == "uptime 1s, listening on 127.0.0.1:53"
    assert errors.read_text() == ""
    assert result.stdout.splitlines()[1] == f"status={128 + signal.SIGPIPE}"  # as `cat` killed by SIGPIPE


# -- --json on every read command ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    tmp_path = tmp_path_factory.mktemp("pooled")
    config = write_config(tmp_path, ZONE.format(serial=1), POOL)
    server = start_server("-c", str(config))
    yield server, config
    server.stop()


@pytest.mark.parametrize(
    "command",
    [
        ["status", "--json"],
        ["explain", "example.test.", "--json"],
        ["routes", "--json"],
        ["check", "--json"],
        ["zone", "list", "--json"],
        ["zone", "show", "example.test.", "--json"],
        ["zone", "status", "--json"],
    ],
    ids=lambda command: " ".join(command[:-1]),
)
def test_read_commands_print_json_with_json(pooled: tuple[RunningServer, Path], command: list[str]) -> None:
    _, config = pooled
    result = dynmx(*command, "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict | list)


def test_zone_show_json_lists_the_records_of_the_zone(pooled: tuple[RunningServer, Path]) -> None:
    _, config = pooled
    shown = json.loads(dynmx("zone", "show", "example.test.", "--json", "-c", str(config)).stdout)
    assert shown["name"] == "example.test."
    assert {"name": "example.test.", "ttl": shown["records"][0]["ttl"], "type": "SOA"}.items() <= shown[
        "records"
    ][0].items()
    assert any(record["type"] == "MX" for record in shown["records"])


def test_routes_json_is_format_json(pooled: tuple[RunningServer, Path]) -> None:
    _, config = pooled
    alias = json.loads(dynmx("routes", "--json", "-c", str(config)).stdout)
    assert alias == json.loads(dynmx("routes", "--format", "json", "-c", str(config)).stdout)
    assert alias[0]["domain"] == "example.test."


def test_check_json_lists_problems_and_exits_1(tmp_path: Path) -> None:
    write_config(tmp_path, ZONE.format(serial=1) + "bad line here\n")
    result = dynmx("check", "--json", "--zones", str(tmp_path / "zones"))
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["ok"] is False
    assert report["problems"] and "example.test.zone" in report["problems"][0]


def test_registrar_discover_json_names_the_registrar_and_the_block(tmp_path: Path) -> None:
    from tests.integration.test_rdap import RDAP_HIT, bootstrap_file, directory_file, fake_rdap

    with fake_rdap(RDAP_HIT) as fake:
        options = ["--bootstrap", str(bootstrap_file(tmp_path, fake.base))]
        options += ["--directory", str(directory_file(tmp_path)), "--timeout", "5"]
        result = dynmx("registrar", "discover", "other.test", "--json", *options)
    found = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert found["registrar"]["iana_id"] == "9999" and found["adapter"]["adapter"] == "dyndns2"
    assert "[[registrar]]" in found["block"]


# -- ./dev -------------------------------------------------------------------------------------------------


def test_dev_without_a_command_prints_its_usage_and_nothing_else() -> None:
    result = subprocess.run([str(ROOT / "dev")], capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert "./dev dynmx ARGS" in result.stdout and "set -euo" not in result.stdout
    assert all(line.startswith(("dynmx's", "  ./dev")) for line in result.stdout.splitlines())


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "dynmx").exists(), reason="needs ./dev setup")
def test_dev_dynmx_runs_dynmx_in_the_callers_directory(tmp_path: Path) -> None:
    write_config(tmp_path, ZONE.format(serial=1))
    env = {k: v for k, v in os.environ.items() if k != configpath.CONFIG_ENV}
    result = subprocess.run(
        [str(ROOT / "dev"), "dynmx", "check", "--zones", "zones"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0 and "ok: 1 zone(s): example.test." in result.stdout, result.stderr

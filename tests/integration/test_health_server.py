"""The prober end to end: real SMTP sinks (aiosmtpd) on loopback addresses, a real dynmx.

Members are probed every 0.2 s (fall 2, rise 2, timeout 0.2 s), so a verdict takes
well under a second; every wait below is bounded.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdataclass
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import ROOT, RunningServer, shared_free_port, wait_until
from tests.control_token import authorized, token_env

ADDRESSES = {
    "mx1": "127.0.0.2",
    "mx2": "127.0.0.3",
    "mx3": "127.0.0.4",
    "relay": "127.0.0.5",
    "spare": "127.0.0.6",
}
ZONE = (
    "$ORIGIN example.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\n"
    "ns1 A 127.0.0.1\n"
    + "".join(f"{name} A {address}\n" for name, address in ADDRESSES.items())
    + "@ MX 10 mx1\n@ MX 20 mx2\n@ MX 30 mx3\n@ MX 90 relay\n"
)
ROLES = {"mx1": "primary", "mx2": "primary", "mx3": "primary", "relay": "relay", "spare": "standby"}
WAIT = 5.0

Serve = Callable[..., RunningServer]


class Sinks:
    """One aiosmtpd server per member address, all on one port; stop and start them at will."""

    def __init__(self) -> None:
        self.port = shared_free_port(ADDRESSES.values())
        self.running: dict[str, Controller] = {}

    def start(self, name: str) -> None:
        controller = Controller(object(), hostname=ADDRESSES[name], port=self.port)
        controller.start()
        self.running[name] = controller

    def stop(self, name: str) -> None:
        self.running.pop(name).stop()

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    sinks = Sinks()
    for name in ADDRESSES:
        sinks.start(name)
    yield sinks
    sinks.stop_all()


def _config(tmp_path: Path, port: int, hook_file: Path, webhook: str = "") -> Path:
    zones = tmp_path / "zones"
    zones.mkdir(exist_ok=True)
    (zones / "example.test.zone").write_text(ZONE)
    members = ""
    for index, (name, role) in enumerate(ROLES.items()):
        sources = 'sources = ["127.0.0.5/32"]\n' if name == "relay" else ""
        members += (
            f'[[pool.member]]\nhost = "{name}.example.test."\npreference = {10 * (index + 1)}\n'
            f'role = "{role}"\n'
            f'probe = "smtp"\nport = {port}\ninterval = 0.2\ntimeout = 0.2\nfall = 2\nrise = 2\n{sources}'
        )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        'chaos_status = true\n[http]\nlisten = "127.0.0.1:0"\n'
        '[[pool]]\nname = "example.test."\nstrategy = "round-robin"\nttl = 30\n'
        "promote_after = 1.0\ndemote_after = 0.5\n"
        f'on_promote = ["sh", "-c", "echo $DYNMX_POOL >> {hook_file}"]\n'
        + (f'on_promote_url = "{webhook}"\n' if webhook else "")
        + members
    )
    return config


@pytest.fixture
def hook_file(tmp_path: Path) -> Path:
    return tmp_path / "promoted.log"


@pytest.fixture
def server(serve: Serve, tmp_path: Path, sinks: Sinks, hook_file: Path) -> RunningServer:
    return serve("--config", str(_config(tmp_path, sinks.port, hook_file)))


def _exchanges(server: RunningServer, source: str = "127.0.0.1") -> list[str]:
    """The MX answer as hosts in preference order."""
    query = dns.message.make_query("example.test", "MX")
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2, source=source)
    return [str(r.exchange).split(".")[0] for r in sorted(reply.answer[0], key=lambda r: r.preference)]


def _status(server: RunningServer) -> dict[str, object]:
    with urllib.request.urlopen(authorized(server, "/status"), timeout=5) as response:
        status: dict[str, object] = json.loads(response.read())
    return status


def _member_states(server: RunningServer) -> dict[str, str]:
    pool = _status(server)["pools"][0]  # type: ignore[index]
    return {m["host"].split(".")[0]: m["state"] for m in pool["members"]}


def _cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args, "--http", f"127.0.0.1:{server.http_port}"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=token_env(server),
    )


def test_all_members_up_standby_not_listed(server: RunningServer) -> None:
    wait_until(lambda: set(_member_states(server).values()) == {"up"})
    assert set(_exchanges(server)) == {"mx1", "mx2", "mx3", "relay"}


def test_dead_member_leaves_the_answers_and_returns_after_rise(server: RunningServer, sinks: Sinks) -> None:
    wait_until(lambda: _member_states(server)["mx2"] == "up")
    sinks.stop("mx2")
    took = wait_until(lambda: "mx2" not in _exchanges(server))
    print(f"failover_s={took:.2f}")
    assert took < 2 * 0.2 + 0.2 + 1.0  # fall x interval + timeout, with slack for jitter and scheduling
    member = next(m for m in _status(server)["pools"][0]["members"] if m["host"].startswith("mx2"))  # type: ignore[index]
    assert member["state"] == "down" and member["reason"] == "refused"
    sinks.start("mx2")
    wait_until(lambda: "mx2" in _exchanges(server))


def test_all_primaries_down_relay_first_then_standby_promoted_then_demoted(
    server: RunningServer, sinks: Sinks, hook_file: Path
) -> None:
    wait_until(lambda: set(_member_states(server).values()) == {"up"})
    for name in ("mx1", "mx2", "mx3"):
        sinks.stop(name)
    wait_until(lambda: _exchanges(server)[0] == "relay")
    wait_until(lambda: _exchanges(server)[0] == "spare")  # promote_after 1 s
    assert _exchanges(server)[-1] == "relay"
    wait_until(lambda: hook_file.exists() and hook_file.read_text() == "example.test.\n")
    sinks.start("mx1")
    wait_until(lambda: "mx1" in _exchanges(server))
    wait_until(lambda: "spare" not in _exchanges(server))  # demote_after 0.5 s
    assert hook_file.read_text() == "example.test.\n"  # the hook ran once


def test_rfc5321_relay_never_sees_itself_from_its_own_address(server: RunningServer, sinks: Sinks) -> None:
    wait_until(lambda: set(_member_states(server).values()) == {"up"})
    for name in ("mx1", "mx2", "mx3"):
        sinks.stop(name)
    wait_until(lambda: _exchanges(server)[0] == "relay")
    from_relay = _exchanges(server, source="127.0.0.5")
    assert "relay" not in from_relay and {"mx1", "mx2", "mx3"} <= set(from_relay)


def test_all_down_fails_open_with_base_preferences(server: RunningServer, sinks: Sinks) -> None:
    wait_until(lambda: set(_member_states(server).values()) == {"up"})
    sinks.stop_all()
    wait_until(lambda: _status(server)["pools"][0]["fail_open"] is True)  # type: ignore[index]
    query = dns.message.make_query("example.test", "MX")
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    assert sorted((r.preference, str(r.exchange)) for r in reply.answer[0])[:4] == [
        (10, "mx1.example.test."),
        (20, "mx2.example.test."),
        (30, "mx3.example.test."),
        (40, "relay.example.test."),
    ]
    assert "event=pool-fail-open" in server.log_text()


def test_admin_down_survives_a_restart(serve: Serve, tmp_path: Path, sinks: Sinks, hook_file: Path) -> None:
    config = _config(tmp_path, sinks.port, hook_file)
    first = serve("--config", str(config))
    assert _cli(first, "member", "down", "example.test", "mx3.example.test").returncode == 0
    assert "mx3" not in _exchanges(first)
    first.stop()
    second = serve("--config", str(config))
    assert _member_states(second)["mx3"] == "admin-down"
    assert "mx3" not in _exchanges(second)
    assert _cli(second, "member", "up", "example.test", "mx3.example.test").returncode == 0
    wait_until(lambda: "mx3" in _exchanges(second))


def test_status_command_prints_members_and_first_choice(server: RunningServer) -> None:
    wait_until(lambda: set(_member_states(server).values()) == {"up"})
    result = _cli(server, "status")
    assert result.returncode == 0
    assert "pool example.test. round-robin" in result.stdout and "spare.example.test." in result.stdout


def test_explain_shows_answer_and_reasons(server: RunningServer) -> None:
    result = _cli(server, "explain", "example.test", "--from", "127.0.0.5")
    assert result.returncode == 0, result.stderr
    assert "relay relay.example.test." in result.stdout and "RFC 5321" in result.stdout


def test_chaos_txt_status_of_a_pool(server: RunningServer) -> None:
    wait_until(lambda: set(_member_states(server).values()) == {"up"})
    query = dns.message.make_query("status.example.test", "TXT", rdclass=dns.rdataclass.CH)
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    lines = sorted(b"".join(r.strings).decode() for r in reply.answer[0])
    assert "mx1.example.test. primary up ok" in lines


def test_promotion_webhook_is_posted_once(
    serve: Serve, tmp_path: Path, sinks: Sinks, hook_file: Path
) -> None:
    posts: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/promote"
        server = serve("--config", str(_config(tmp_path, sinks.port, hook_file, webhook=url)))
        wait_until(lambda: set(_member_states(server).values()) == {"up"})
        for name in ("mx1", "mx2", "mx3"):
            sinks.stop(name)
        wait_until(lambda: len(posts) == 1)
        assert posts[0] == {"event": "promote", "pool": "example.test.", "standbys": ["spare.example.test."]}
        time.sleep(0.5)
        assert len(posts) == 1
    finally:
        receiver.shutdown()
        receiver.server_close()

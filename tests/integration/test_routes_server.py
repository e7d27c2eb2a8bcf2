"""`dynmx routes --since CURSOR` against a running server: every change of a served route shows up.

Each test takes a cursor (`GET /routes?since=`, which answers the full table), changes
something (a drain, a probe verdict, a zone added or removed, a restart) and asks what
changed after the cursor.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import ROOT, RunningServer, _free_tcp_port, start_server, wait_until
from tests.control_token import authorized, token_env

Serve = Callable[..., RunningServer]
ZONE = (
    "$ORIGIN example.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\n"
    "ns1 A 127.0.0.1\nmx1 A 127.0.0.1\nmx2 A 127.0.0.1\n"
    "@ MX 10 mx1\n@ MX 20 mx2\nstatic MX 10 mx2\n"
)
OTHER = (
    "$ORIGIN other.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\n"
    "ns1 A 127.0.0.1\n@ MX 10 mx.other.test.\nmx A 127.0.0.1\n"
)


def _write_config(tmp_path: Path, smtp_port: int = 0) -> Path:
    """example.test. as a round-robin pool of mx1 and mx2; mx1 probed by SMTP when `smtp_port`."""
    zones = tmp_path / "zones"
    zones.mkdir(exist_ok=True)
    (zones / "example.test.zone").write_text(ZONE)
    probe = (
        f'probe = "smtp"\naddress = "127.0.0.1"\nport = {smtp_port}\n'
        "interval = 0.2\ntimeout = 0.2\nfall = 2\nrise = 2\n"
        if smtp_port
        else 'probe = "none"\n'
    )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        '[[pool]]\nname = "example.test."\nstrategy = "round-robin"\n'
        f'[[pool.member]]\nhost = "mx1.example.test."\npreference = 10\n{probe}'
        '[[pool.member]]\nhost = "mx2.example.test."\npreference = 20\nprobe = "none"\n'
    )
    return config


def _get(server: RunningServer, path: str, **params: str) -> tuple[bytes, str]:
    request = authorized(server, f"{path}?{urllib.parse.urlencode(params)}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read(), response.headers["Dynmx-Cursor"]


def _since(server: RunningServer, cursor: str) -> dict[str, Any]:
    body, _ = _get(server, "/routes", format="json", since=cursor)
    result: dict[str, Any] = json.loads(body)
    return result


def _cursor(server: RunningServer) -> str:
    return str(_since(server, "")["cursor"])


def _changed(server: RunningServer, cursor: str) -> dict[str, dict[str, Any]]:
    result = _since(server, cursor)
    assert not result["full"]
    return {route["domain"]: route for route in result["routes"]}


def _states(route: dict[str, Any]) -> dict[str, str]:
    return {hop["host"]: hop["state"] for hop in route["hops"]}


def _post(server: RunningServer, path: str, **params: str) -> None:
    request = authorized(server, f"{path}?{urllib.parse.urlencode(params)}", "POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200


def _drain(server: RunningServer, host: str) -> None:
    _post(server, "/members/drain", pool="example.test.", host=host, drained="1")


@pytest.fixture
def server(serve: Serve, tmp_path: Path) -> RunningServer:
    """A server of the test's own: for tests that drain or reload."""
    return serve("--config", str(_write_config(tmp_path)))


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the tests that only read its routes (no probes: nothing changes by itself)."""
    server = start_server("--config", str(_write_config(tmp_path_factory.mktemp("routes"))))
    yield server
    server.stop()


class Sink:
    """An SMTP server on 127.0.0.1 for mx1's probe; `stop()` makes the probe fail."""

    def __init__(self) -> None:
        self.controller: Controller | None = Controller(object(), hostname="127.0.0.1", port=_free_tcp_port())
        self.port = self.controller.port
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def sink() -> Iterator[Sink]:
    sink = Sink()
    yield sink
    sink.stop()


def test_a_cursor_comes_with_the_full_table(reader: RunningServer) -> None:
    server = reader
    result = _since(server, "")
    assert result["full"] is True and result["cursor"]
    assert sorted(route["domain"] for route in result["routes"]) == ["example.test.", "static.example.test."]


def test_nothing_changed_lists_nothing_and_keeps_the_cursor(reader: RunningServer) -> None:
    server = reader
    cursor = _cursor(server)
    assert _since(server, cursor) == {"cursor": cursor, "full": False, "routes": []}


def test_a_drain_shows_up_after_the_cursor(server: RunningServer) -> None:
    cursor = _cursor(server)
    _drain(server, "mx2.example.test.")
    changed = _changed(server, cursor)
    assert list(changed) == ["example.test."]
    assert _states(changed["example.test."]) == {"mx1.example.test.": "up"}  # drained: out of the route


def test_a_member_going_down_shows_up_after_the_cursor(serve: Serve, tmp_path: Path, sink: Sink) -> None:
    server = serve("--config", str(_write_config(tmp_path, sink.port)))
    wait_until(lambda: _states(_routes_by_domain(server)["example.test."])["mx1.example.test."] == "up")
    cursor = _cursor(server)
    sink.stop()
    wait_until(lambda: "example.test." in _changed(server, cursor))
    changed = _changed(server, cursor)
    assert list(changed) == ["example.test."]
    assert _states(changed["example.test."]) == {"mx2.example.test.": "up"}  # down: out of the route


def _routes_by_domain(server: RunningServer) -> dict[str, dict[str, Any]]:
    return {route["domain"]: route for route in _since(server, "")["routes"]}


def test_a_zone_added_by_reload_shows_up(server: RunningServer, tmp_path: Path) -> None:
    cursor = _cursor(server)
    (tmp_path / "zones" / "other.test.zone").write_text(OTHER)
    _post(server, "/reload")
    changed = _changed(server, cursor)
    assert list(changed) == ["other.test."]
    assert changed["other.test."]["removed"] is False
    assert [hop["host"] for hop in changed["other.test."]["hops"]] == ["mx.other.test."]


def test_a_zone_removed_by_reload_shows_up_as_removed(serve: Serve, tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    (tmp_path / "zones" / "other.test.zone").write_text(OTHER)
    server = serve("--config", str(config))
    cursor = _cursor(server)
    (tmp_path / "zones" / "other.test.zone").unlink()
    _post(server, "/reload")
    assert _changed(server, cursor) == {
        "other.test.": {"domain": "other.test.", "pool": None, "hops": [], "removed": True}
    }


def test_a_cursor_from_before_a_restart_gives_the_full_table(serve: Serve, tmp_path: Path) -> None:
    config = _write_config(tmp_path)
    first = serve("--config", str(config))
    cursor = _cursor(first)
    first.stop()
    second = serve("--config", str(config))
    result = _since(second, cursor)
    assert result["full"] is True and result["cursor"] != cursor
    assert sorted(route["domain"] for route in result["routes"]) == ["example.test.", "static.example.test."]


def test_without_since_the_json_is_the_plain_list_with_the_cursor_in_a_header(reader: RunningServer) -> None:
    server = reader
    body, cursor = _get(server, "/routes", format="json")
    assert [route["domain"] for route in json.loads(body)] == ["example.test.", "static.example.test."]
    assert _since(server, cursor)["full"] is False


def _cli(server: RunningServer, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dynmx", "routes", *args, "--http", f"127.0.0.1:{server.http_port}"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=token_env(server),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_routes_command_prints_the_cursor_as_a_comment_and_then_only_the_drained_domain(
    server: RunningServer,
) -> None:
    first = _cli(server).splitlines()
    assert first[0].startswith("# cursor: ") and first[1] == "# full: true"
    cursor = first[0].removeprefix("# cursor: ")
    _drain(server, "mx1.example.test.")
    lines = _cli(server, "--since", cursor).splitlines()
    assert lines[1:] == ["# full: false", "example.test    smtp:[mx2.example.test]"]
    assert lines[0] != first[0]


def test_routes_command_with_a_bare_since_gives_json_with_a_cursor(reader: RunningServer) -> None:
    server = reader
    result = json.loads(_cli(server, "--format", "json", "--since"))
    assert result["full"] is True and _since(server, result["cursor"])["routes"] == []

"""A reload through a running server applies every key it can and names the others.

`[dyndns2] enabled` turns the endpoint on and off, `[http] listen` moves or closes the
control listener, and a changed key only a restart applies is named in
`event=config-restart-needed keys=...` while the running value stays.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.conftest import RunningServer, wait_until, write_config
from tests.control_token import authorized

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
home A   192.0.2.1
"""
HOST = '[[dyndns2.host]]\nhostname = "home.example.test."\nusername = "home"\npassword = "s3cret"\n'
Serve = Callable[..., RunningServer]


def _dyndns2(enabled: bool) -> str:
    return f"[dyndns2]\nenabled = {str(enabled).lower()}\nmin_interval = 0\n{HOST}"


def _http(listen: str) -> str:
    return f'[http]\nlisten = "{listen}"\n'


def _start(serve: Serve, tmp_path: Path, extra: str) -> RunningServer:
    return serve("--config", str(write_config(tmp_path, ZONE, extra)))


def _rewrite(tmp_path: Path, extra: str) -> None:
    """The config file as `write_config` writes it, with another `extra` (the zone as it is)."""
    config = tmp_path / "dynmx.toml"
    header = config.read_text().split("\n", 4)[:4]
    config.write_text("\n".join(header) + "\n" + extra)


def _reload(server: RunningServer) -> dict[str, object]:
    request = authorized(server, "/reload", "POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        body: dict[str, object] = json.loads(response.read())
    return body


def _sighup(server: RunningServer) -> None:
    """SIGHUP, and wait until that reload is done (one more `event=reloaded` line)."""
    done = server.log_text().count("event=reloaded")
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: server.log_text().count("event=reloaded") > done, timeout=30)


def _update(port: int, address: str) -> tuple[int, str]:
    query = f"hostname=home.example.test&myip={address}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/nic/update?{query}")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"home:s3cret").decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode().strip()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode().strip()


def _address(server: RunningServer) -> list[str]:
    query = dns.message.make_query("home.example.test", "A")
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    return [r.address for r in reply.answer[0]]


def _status(port: int) -> int:
    """Whether a control listener answers at `port` (/metrics: it needs no token)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return int(response.status)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- [dyndns2] enabled ----------------------------------------------------------------------


def test_reload_with_dyndns2_disabled_answers_404_and_changes_no_record(serve: Serve, tmp_path: Path) -> None:
    server = _start(serve, tmp_path, _http("127.0.0.1:0") + _dyndns2(True))
    _rewrite(tmp_path, _http("127.0.0.1:0") + _dyndns2(False))
    assert _reload(server)["ok"] is True
    assert _update(server.http_port, "198.51.100.10") == (404, "not found")
    assert _address(server) == ["192.0.2.1"]
    server.wait_for_log("event=dyndns2-disabled")
    assert "dyndns2=off" in server.wait_for_log("event=config-reloaded")


def test_reload_with_dyndns2_enabled_serves_the_endpoint(serve: Serve, tmp_path: Path) -> None:
    server = _start(serve, tmp_path, _http("127.0.0.1:0") + _dyndns2(False))
    assert _update(server.http_port, "198.51.100.10") == (404, "not found")
    _rewrite(tmp_path, _http("127.0.0.1:0") + _dyndns2(True))
    assert _reload(server)["ok"] is True
    assert _update(server.http_port, "198.51.100.10") == (200, "good 198.51.100.10")
    assert _address(server) == ["198.51.100.10"]
    server.wait_for_log("event=dyndns2-enabled")


# -- keys only a restart applies ------------------------------------------------------------


def test_reload_names_changed_start_only_keys_in_config_restart_needed(serve: Serve, tmp_path: Path) -> None:
    server = _start(serve, tmp_path, _http("127.0.0.1:0"))
    _rewrite(tmp_path, "tcp_max_connections = 50\n" + _http("127.0.0.1:0") + "[rrl]\nrate = 50\n")
    assert _reload(server)["ok"] is True
    server.wait_for_log("event=config-restart-needed keys=server.tcp_max_connections,rrl.rate")


def test_reload_without_a_changed_start_only_key_names_none(serve: Serve, tmp_path: Path) -> None:
    server = _start(serve, tmp_path, _http("127.0.0.1:0") + _dyndns2(False))
    _rewrite(tmp_path, _http("127.0.0.1:0") + _dyndns2(True))
    assert _reload(server)["ok"] is True
    server.wait_for_log("event=config-reloaded")
    assert "event=config-restart-needed" not in server.log_text()


# -- [http] listen ----------------------------------------------------------------------------


def test_reload_moves_the_control_listener_to_the_new_address(serve: Serve, tmp_path: Path) -> None:
    server = _start(serve, tmp_path, _http("127.0.0.1:0"))
    port = _free_port()
    _rewrite(tmp_path, _http(f"127.0.0.1:{port}"))
    assert _reload(server)["ok"] is True  # answered by the listener it closes
    assert _status(port) == 200
    with pytest.raises(urllib.error.URLError):
        _status(server.http_port)
    server.wait_for_log(f"event=listening proto=http address=127.0.0.1 port={port}")
    server.wait_for_log(f"event=listener-closed proto=http address=127.0.0.1 port={server.http_port}")


def test_reload_with_an_empty_http_listen_closes_the_control_listener(serve: Serve, tmp_path: Path) -> None:
    server = _start(serve, tmp_path, _http("127.0.0.1:0"))
    _rewrite(tmp_path, _http(""))
    assert _reload(server)["ok"] is True
    with pytest.raises(urllib.error.URLError):
        _status(server.http_port)
    assert "http=off" in server.wait_for_log("event=config-reloaded")


def test_reload_with_an_http_listen_opens_the_control_listener(serve: Serve, tmp_path: Path) -> None:
    server = _start(serve, tmp_path, "")
    port = _free_port()
    _rewrite(tmp_path, _http(f"127.0.0.1:{port}"))
    _sighup(server)
    assert _status(port) == 200


def test_reload_to_an_http_address_in_use_keeps_the_running_listener(serve: Serve, tmp_path: Path) -> None:
    server = _start(serve, tmp_path, _http("127.0.0.1:0"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _rewrite(tmp_path, _http(f"127.0.0.1:{port}"))
        assert _reload(server)["ok"] is True
        server.wait_for_log(f"event=listen-failed proto=http address=127.0.0.1 port={port}")
    assert _status(server.http_port) == 200

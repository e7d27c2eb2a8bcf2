"""The self-connect check in a running server, all on loopback: probe, repair, registrar push.

The server resolves its own name through itself (a resolver on 127.0.0.1 that serves the
zone), learns "its public address" from two HTTP echo fakes (127.0.0.0/8 allowed as a test
prefix) and pushes to a fake dyndns2 registrar. Rounds are run on demand (`dynmx selfcheck`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dns.message
import dns.query
import pytest

from tests.conftest import ROOT, RunningServer, shared_free_port, wait_until
from tests.control_token import authorized, token_env
from tests.fake_servers import QuietHandler, http_server
from tests.integration.test_registrar_dyndns2 import FakeDyndns2, fake_dyndns2

Serve = Callable[..., RunningServer]

ZONE = """\
$ORIGIN example.test.
$TTL 300
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
ns1   A   {address}
"""


@contextmanager
def echo_servers(answer: str, count: int = 2) -> Iterator[list[int]]:
    """`count` HTTP echo services that all say `answer`; yields the request count of each."""
    hits = [0] * count
    with ExitStack() as servers:
        ports: list[int] = []
        for index in range(count):

            class Handler(QuietHandler):
                slot = index

                def do_GET(self) -> None:
                    hits[self.slot] += 1
                    self.reply(200, answer.encode())

            ports.append(servers.enter_context(http_server(Handler)))
        yield ports + hits  # ports, then hit counters


def _config(
    tmp_path: Path,
    published: str,
    dns_port: int,
    probe_port: int,
    echo: list[int],
    dyn: str,
    workers: int = 0,
) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE.format(address=published))
    sources = "".join(
        f'[[selfcheck.source]]\nkind = "http"\nurl = "http://127.0.0.1:{port}/"\n' for port in echo
    )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{dns_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "state"}"\nworkers = {workers}\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        '[[zone]]\nname = "example.test."\nserial = "increment"\n'
        "[selfcheck]\nenabled = true\n"
        f'names = ["ns1.example.test."]\nresolvers = ["127.0.0.1:{dns_port}"]\ndns_port = {probe_port}\n'
        'interval = 3600\ntimeout = 1\nquorum = 2\nallowed_prefixes = ["127.0.0.0/8"]\nmin_interval = 0\n'
        + sources
        + f'[[registrar]]\nname = "lab"\nadapter = "dyndns2"\nurl = "{dyn}"\n'
        'username = "lab-user"\npassword = "lab-secret"\n'
    )
    return config


def _round(server: RunningServer) -> dict[str, object]:
    """`dynmx selfcheck --json`: one round now, as an operator would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "dynmx", "selfcheck", "--http", f"127.0.0.1:{server.http_port}", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=token_env(server),
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _action(report: dict[str, object]) -> str:
    names = report["names"]
    assert isinstance(names, list)
    return str(names[0]["decisions"]["4"]["action"])


def _status(server: RunningServer) -> dict[str, object]:
    with urllib.request.urlopen(authorized(server, "/status"), timeout=5) as reply:
        status: dict[str, object] = json.load(reply)["selfcheck"]
    return status


def _first_round_done(server: RunningServer) -> None:
    wait_until(lambda: _status(server)["last_round"] is not None, timeout=15)


def _address(server: RunningServer) -> str:
    query = dns.message.make_query("ns1.example.test", "A")
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)
    return str(reply.answer[0][0].address)


@pytest.fixture
def dyn() -> Iterator[FakeDyndns2]:
    with fake_dyndns2("good 127.0.0.1", "good 127.0.0.1") as fake:
        yield fake


@pytest.mark.parametrize("workers", [0, 2], ids=["one-process", "two-workers"])
def test_probe_arrives_when_the_name_resolves_to_the_listener(
    serve: Serve, tmp_path: Path, dyn: FakeDyndns2, workers: int
) -> None:
    """With workers, the probe lands in a worker, which tells the control process."""
    port = shared_free_port(["127.0.0.1"])
    with echo_servers("127.0.0.1") as echo:
        server = serve(
            "--config", str(_config(tmp_path, "127.0.0.1", port, port, echo[:2], dyn.url, workers))
        )
        _first_round_done(server)
        report = _round(server)
        assert _action(report) == "ok"
        assert echo[2:] == [0, 0]  # no discovery when the probe came back
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics", timeout=5) as reply:
        metrics = reply.read().decode()
    assert 'dynmx_selfcheck_action{action="ok",family="4",name="ns1.example.test."} 1.0' in metrics
    assert "dynmx_selfcheck_rounds_total 2.0" in metrics


def test_changed_address_is_repaired_after_two_rounds_and_pushed_once(
    serve: Serve, tmp_path: Path, dyn: FakeDyndns2
) -> None:
    """Published 127.0.0.3 (nothing listens); discovery says 127.0.0.1: confirm, repair, push once."""
    port = shared_free_port(["127.0.0.1"])
    with echo_servers("127.0.0.1") as echo:
        server = serve("--config", str(_config(tmp_path, "127.0.0.3", port, port, echo[:2], dyn.url)))
        _first_round_done(server)  # round 1 (at start): probe lost, mismatch seen once
        assert _status(server)["last_round"]["names"][0]["decisions"]["4"]["action"] == "pending"  # type: ignore[index]
        assert _address(server) == "127.0.0.3"
        assert _action(_round(server)) == "update"  # round 2: confirmed, repaired
        assert _address(server) == "127.0.0.1"
        assert len(dyn.seen) == 1
        assert dyn.seen[0].query["hostname"] == ["ns1.example.test"]
        assert dyn.seen[0].query["myip"] == ["127.0.0.1"]
        assert _action(_round(server)) == "ok"  # round 3: the probe arrives, nothing is sent
        assert len(dyn.seen) == 1
    text = server.log_text()
    assert "event=selfcheck-repaired name=ns1.example.test." in text
    assert "lab-secret" not in text and "lab-secret" not in json.dumps(_status(server))
    warnings = _status(server)["warnings"]
    assert isinstance(warnings, list) and "holds glue" in warnings[0]  # ns1 is the zone's own NS


def test_hairpin_keeps_the_address_and_warns_once(serve: Serve, tmp_path: Path, dyn: FakeDyndns2) -> None:
    """Published = discovered but the probe never comes back (hairpin NAT): no update, one warning."""
    port, silent = shared_free_port(["127.0.0.1"]), shared_free_port(["127.0.0.1"])
    with echo_servers("127.0.0.1") as echo:
        server = serve("--config", str(_config(tmp_path, "127.0.0.1", port, silent, echo[:2], dyn.url)))
        _first_round_done(server)
        assert _action(_round(server)) == "hairpin"
        assert _action(_round(server)) == "hairpin"
    assert _address(server) == "127.0.0.1"
    assert server.log_text().count("action=hairpin") == 1
    assert all(seen.query["myip"] == ["127.0.0.1"] for seen in dyn.seen)

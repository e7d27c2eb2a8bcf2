"""MX pools over real sockets: each strategy's distribution, hints, client and name actions."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import ROOT, RunningServer, start_server
from tests.control_token import token_env

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@        SOA ns1 hostmaster 1 7200 3600 1209600 300
@        NS  ns1
ns1      A   127.0.0.1
mx1      A   127.0.0.2
mx2      A   127.0.0.3
mx3      A   127.0.0.4
relay    A   127.0.0.5
{mx}
suspended MX 10 mx1
suspended TXT "kept"
gone     A   127.0.0.9
"""
POOLS = ("rr", "weighted", "least", "static")
MX_LINES = "\n".join(
    f"{name} MX 10 mx1\n{name} MX 20 mx2\n{name} MX 30 mx3\n{name} MX 90 relay" for name in POOLS
)


def _pool(name: str, strategy: str, weights: tuple[int, int, int] = (1, 1, 1)) -> str:
    members = "".join(
        f'[[pool.member]]\nhost = "mx{i + 1}.example.test."\npreference = {10 * (i + 1)}\nweight = {w}\n'
        'probe = "none"\n'
        for i, w in enumerate(weights)
    )
    relay = '[[pool.member]]\nhost = "relay.example.test."\npreference = 90\nrole = "relay"\nprobe = "none"\n'
    hint = '[[pool.hint]]\nlabel = "urgent"\norder = ["mx3.example.test."]\n' if name == "rr" else ""
    return (
        f'[[pool]]\nname = "{name}.example.test."\nstrategy = "{strategy}"\nttl = 30\n{members}{relay}{hint}'
    )


CONFIG = """\
[server]
listen = ["127.0.0.1:0"]
zones_dir = "{zones}"
random_seed = 3
[http]
listen = "127.0.0.1:0"
{pools}
[[client]]
prefix = "127.0.0.2/32"
action = "hint"
hint = "urgent"
[[client]]
prefix = "127.0.0.3/32"
action = "refuse"
[[client]]
prefix = "127.0.0.4/32"
action = "drop"
[[name]]
name = "suspended.example.test."
action = "null-mx"
[[name]]
name = "gone.example.test."
action = "nxdomain"
"""

Serve = Callable[..., RunningServer]


def _config(tmp_path: Path) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE.format(mx=MX_LINES))
    pools = "\n".join(
        [
            _pool("rr", "round-robin"),
            _pool("weighted", "weighted", (3, 1, 0)),
            _pool("least", "least-load"),
            _pool("static", "static"),
        ]
    )
    config = tmp_path / "dynmx.toml"
    config.write_text(CONFIG.format(zones=zones, pools=pools))
    return config


@pytest.fixture
def server(serve: Serve, tmp_path: Path) -> RunningServer:
    """A server of the test's own: for tests that count from zero, set loads or reload."""
    return serve("--config", str(_config(tmp_path)))


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the tests that only query it (every answer they check holds from any
    point of a rotation; no probes, so nothing changes by itself)."""
    server = start_server("--config", str(_config(tmp_path_factory.mktemp("pools"))))
    yield server
    server.stop()


def _client(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.settimeout(2)
    return sock


def _ask(
    server: RunningServer, name: str, source: str = "127.0.0.1", rdtype: str = "MX"
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    with _client(source) as sock:
        sock.sendto(query.to_wire(), server.address)
        data, _ = sock.recvfrom(65535)
    return dns.message.from_wire(data)


def _firsts(server: RunningServer, name: str, count: int) -> list[str]:
    """Ask `count` times over one socket (bounded) and return each answer's best exchange."""
    firsts = []
    with _client("127.0.0.1") as sock:
        for index in range(count):
            query = dns.message.make_query(name, "MX", id=index)
            sock.sendto(query.to_wire(), server.address)
            reply = dns.message.from_wire(sock.recvfrom(65535)[0])
            best = min(reply.answer[0], key=lambda r: r.preference)
            firsts.append(str(best.exchange))
    return firsts


def test_round_robin_gives_each_primary_first_place_equally(reader: RunningServer) -> None:
    server = reader
    firsts = _firsts(server, "rr.example.test", 999)
    assert Counter(firsts) == {"mx1.example.test.": 333, "mx2.example.test.": 333, "mx3.example.test.": 333}
    assert all(len(set(firsts[i : i + 3])) == 3 for i in range(0, 999, 3))


def test_first_place_counter_per_member_is_exported(server: RunningServer) -> None:
    _firsts(server, "rr.example.test", 3)
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    labels = 'member="mx1.example.test.",name="rr.example.test.",pool="rr.example.test."'
    line = f"dynmx_pool_first_total{{{labels}}} 1.0"
    assert line in metrics


def test_weighted_first_place_follows_weights(reader: RunningServer) -> None:
    server = reader
    shares = Counter(_firsts(server, "weighted.example.test", 1000))
    assert set(shares) == {"mx1.example.test.", "mx2.example.test."}  # weight 0 is never first
    assert abs(shares["mx1.example.test."] / 1000 - 0.75) < 0.05


def test_least_load_puts_the_least_loaded_member_first(server: RunningServer) -> None:
    for host, load in (("mx1", 0.9), ("mx2", 0.2), ("mx3", 0.5)):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "dynmx",
                "member",
                "load",
                "least.example.test",
                f"{host}.example.test",
                str(load),
                "--http",
                f"127.0.0.1:{server.http_port}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            env=token_env(server),
        )
        assert result.returncode == 0, result.stderr
    assert set(_firsts(server, "least.example.test", 1000)) == {"mx2.example.test."}


def test_static_keeps_base_preferences(reader: RunningServer) -> None:
    server = reader
    reply = _ask(server, "static.example.test")
    assert sorted((r.preference, str(r.exchange)) for r in reply.answer[0]) == [
        (10, "mx1.example.test."),
        (20, "mx2.example.test."),
        (30, "mx3.example.test."),
        (90, "relay.example.test."),
    ]


def test_rfc5321_relay_is_always_ranked_after_primaries(reader: RunningServer) -> None:
    server = reader
    for _ in range(6):
        records = sorted(_ask(server, "rr.example.test").answer[0], key=lambda r: r.preference)
        assert str(records[-1].exchange) == "relay.example.test."


def test_hint_name_answers_the_hint_order(reader: RunningServer) -> None:
    server = reader
    reply = _ask(server, "urgent._hint.rr.example.test")
    assert [str(r.exchange) for r in reply.answer[0]] == ["mx3.example.test."]
    assert reply.answer[0].ttl == 30


def test_unknown_hint_label_is_nxdomain(reader: RunningServer) -> None:
    server = reader
    assert _ask(server, "nope._hint.rr.example.test").rcode() == dns.rcode.NXDOMAIN


def test_client_prefix_hint_answers_as_the_hint(reader: RunningServer) -> None:
    server = reader
    from_hinted = _ask(server, "rr.example.test", source="127.0.0.2")
    assert [str(r.exchange) for r in from_hinted.answer[0]] == ["mx3.example.test."]
    from_other = _ask(server, "rr.example.test", source="127.0.0.1")
    assert len(from_other.answer[0]) == 4


def test_client_prefix_refuse_and_drop(reader: RunningServer) -> None:
    server = reader
    assert _ask(server, "rr.example.test", source="127.0.0.3").rcode() == dns.rcode.REFUSED
    with _client("127.0.0.4") as sock:
        sock.settimeout(0.5)
        sock.sendto(dns.message.make_query("rr.example.test", "MX").to_wire(), server.address)
        with pytest.raises(TimeoutError):
            sock.recvfrom(65535)


def test_rfc7505_null_mx_name_action_keeps_other_records(reader: RunningServer) -> None:
    server = reader
    reply = _ask(server, "suspended.example.test")
    assert [(r.preference, str(r.exchange)) for r in reply.answer[0]] == [(0, ".")]
    assert _ask(server, "suspended.example.test", rdtype="TXT").answer


def test_nxdomain_name_action(reader: RunningServer) -> None:
    server = reader
    assert _ask(server, "gone.example.test", rdtype="A").rcode() == dns.rcode.NXDOMAIN


def test_pool_answer_over_tcp_rotates_too(reader: RunningServer) -> None:
    server = reader
    firsts = set()
    for _ in range(3):
        reply = dns.query.tcp(
            dns.message.make_query("rr.example.test", "MX"), "127.0.0.1", port=server.dns_port, timeout=2
        )
        firsts.add(str(min(reply.answer[0], key=lambda r: r.preference).exchange))
    assert len(firsts) == 3


def test_routes_export_postfix_transport_and_json(reader: RunningServer) -> None:
    server = reader
    common = ["--http", f"127.0.0.1:{server.http_port}"]
    postfix = subprocess.run(
        [sys.executable, "-m", "dynmx", "routes", *common],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=token_env(server),
    )
    assert postfix.returncode == 0, postfix.stderr
    lines = dict(line.split(None, 1) for line in postfix.stdout.splitlines())
    assert lines["static.example.test"] == "smtp:[mx1.example.test]"
    assert lines["suspended.example.test"].startswith("error:5.1.10")  # null MX (RFC 7505)
    as_json = subprocess.run(
        [sys.executable, "-m", "dynmx", "routes", "--format", "json", *common],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=token_env(server),
    )
    routes = {route["domain"]: route for route in json.loads(as_json.stdout)}
    assert [hop["state"] for hop in routes["rr.example.test."]["hops"]] == ["up", "up", "up", "up"]


def test_reload_keeps_settings_read_at_start_and_names_them_with_the_pool_change_applied(
    server: RunningServer, tmp_path: Path
) -> None:
    """As NSD and Knot: a reload does not half-apply what only a restart can (the answer
    engine's settings, rate limiting); it keeps them as running and says which changed."""
    config = tmp_path / "dynmx.toml"
    text = config.read_text().replace("random_seed = 3\n", 'random_seed = 3\nversion = "dynmx-new"\n')
    text = text.replace(
        'name = "rr.example.test."\nstrategy = "round-robin"',
        'name = "rr.example.test."\nstrategy = "static"',
    )
    config.write_text(text + "\n[rrl]\nrate = 50\n")
    reload = [sys.executable, "-m", "dynmx", "reload", "--http", f"127.0.0.1:{server.http_port}"]
    env = token_env(server)
    done = subprocess.run(reload, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    assert "event=config-restart-needed keys=server.version,rrl" in server.log_text()
    assert set(_firsts(server, "rr.example.test", 6)) == {"mx1.example.test."}  # the pool change applies
    version = dns.message.make_query("version.bind", "TXT", "CH")
    reply = dns.query.udp(version, "127.0.0.1", port=server.dns_port, timeout=2)
    assert reply.rcode() == dns.rcode.REFUSED  # still the running "" (REFUSED), not half a change


def test_reload_applies_a_changed_pool_and_refuses_a_broken_config(
    server: RunningServer, tmp_path: Path
) -> None:
    config = tmp_path / "dynmx.toml"
    text = config.read_text()
    config.write_text(
        text.replace(
            'name = "rr.example.test."\nstrategy = "round-robin"',
            'name = "rr.example.test."\nstrategy = "static"',
        )
    )
    reload = [sys.executable, "-m", "dynmx", "reload", "--http", f"127.0.0.1:{server.http_port}"]
    env = token_env(server)
    done = subprocess.run(reload, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    assert set(_firsts(server, "rr.example.test", 6)) == {"mx1.example.test."}
    config.write_text(text + "\n[[pool]]\nname = 3\n")
    result = subprocess.run(reload, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert result.returncode == 1 and "pool[4].name" in result.stdout
    assert set(_firsts(server, "rr.example.test", 6)) == {"mx1.example.test."}  # the last good config serves

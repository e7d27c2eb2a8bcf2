"""`dynmx explain` (every ordering of a weighted pool with its share) and `dynmx status`: both name
the target a query arriving now gets first, by plain calls and end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import pytest

from dynmx.app.explain import explain_query
from dynmx.config import from_mapping
from dynmx.policy.served import plan_all
from tests.conftest import ROOT, RunningServer
from tests.control_token import authorized, token_env

ORIGIN = "example.test."
HOSTS = ("mx1.example.test.", "mx2.example.test.", "mx3.example.test.")
ZONE = (
    f"$ORIGIN {ORIGIN}\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\n@ NS ns1\n"
    "ns1 A 127.0.0.1\nmx1 A 127.0.0.2\nmx2 A 127.0.0.3\nmx3 A 127.0.0.4\n"
    "@ MX 10 mx1\n@ MX 20 mx2\n@ MX 30 mx3\n"
)


def _pool(weights: tuple[float, ...]) -> dict[str, Any]:
    members = [
        {"host": host, "preference": 10 * (i + 1), "weight": weight, "probe": "none"}
        for i, (host, weight) in enumerate(zip(HOSTS, weights, strict=True))
    ]
    return {"name": ORIGIN, "strategy": "weighted", "member": members}


def _explain(weights: tuple[float, ...]) -> dict[str, object]:
    config = from_mapping({"pool": [_pool(weights)]})
    pool = config.pool[0]
    return explain_query(config, ORIGIN, pool, None, plan_all(pool, {}), 0, "", "")


def test_equal_weights_list_every_ordering_with_a_third_each() -> None:
    assert _explain((1.0, 1.0, 1.0))["answer"] == [
        {"share": 0.333, "answer": ["10 mx1.example.test.", "20 mx2.example.test.", "30 mx3.example.test."]},
        {"share": 0.333, "answer": ["10 mx2.example.test.", "20 mx1.example.test.", "30 mx3.example.test."]},
        {"share": 0.333, "answer": ["10 mx3.example.test.", "20 mx1.example.test.", "30 mx2.example.test."]},
    ]


def test_unequal_weights_give_each_ordering_its_fraction() -> None:
    answer = _explain((2.0, 1.0, 1.0))["answer"]
    assert isinstance(answer, list)
    assert [(item["share"], item["answer"][0]) for item in answer] == [
        (0.5, "10 mx1.example.test."),
        (0.25, "10 mx2.example.test."),
        (0.25, "10 mx3.example.test."),
    ]


def test_a_member_without_weight_has_no_ordering_of_its_own() -> None:
    answer = _explain((1.0, 1.0, 0.0))["answer"]
    assert isinstance(answer, list)
    assert [(item["share"], item["answer"][0]) for item in answer] == [
        (0.5, "10 mx1.example.test."),
        (0.5, "10 mx2.example.test."),
    ]


@pytest.fixture
def weighted_server(serve: Callable[..., RunningServer], tmp_path: Path) -> RunningServer:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE)
    members = "".join(
        f'[[pool.member]]\nhost = "{host}"\npreference = {10 * (i + 1)}\nweight = 1\nprobe = "none"\n'
        for i, host in enumerate(HOSTS)
    )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        f'[[pool]]\nname = "{ORIGIN}"\nstrategy = "weighted"\n' + members
    )
    return serve("--config", str(config))


def test_explain_command_prints_one_line_per_ordering_of_equal_weights(
    weighted_server: RunningServer,
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dynmx",
            "explain",
            "example.test",
            "--http",
            f"127.0.0.1:{weighted_server.http_port}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=token_env(weighted_server),
    )
    assert result.returncode == 0, result.stderr
    shares = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("33.3%:")]
    assert shares == [
        "33.3%: 10 mx1.example.test., 20 mx2.example.test., 30 mx3.example.test.",
        "33.3%: 10 mx2.example.test., 20 mx1.example.test., 30 mx3.example.test.",
        "33.3%: 10 mx3.example.test., 20 mx1.example.test., 30 mx2.example.test.",
    ]


def test_explain_endpoint_answers_every_ordering_as_json(weighted_server: RunningServer) -> None:
    query = urllib.parse.urlencode({"name": ORIGIN})
    with urllib.request.urlopen(authorized(weighted_server, f"/explain?{query}"), timeout=10) as response:
        answer = json.loads(response.read())["answer"]
    assert [item["share"] for item in answer] == [0.333, 0.333, 0.333]
    assert sorted(item["answer"][0] for item in answer) == [f"10 {host}" for host in HOSTS]


# -- status and explain say the same thing about the next query ------------------------------


def _rotating(counter: int) -> dict[str, object]:
    pool = _pool((1.0, 1.0, 1.0)) | {"strategy": "round-robin"}
    config = from_mapping({"pool": [pool]})
    return explain_query(config, ORIGIN, config.pool[0], None, plan_all(config.pool[0], {}), counter, "", "")


def test_a_rotation_names_the_ordering_the_selector_picks_next() -> None:
    """The counter is where `Selector.pick` stands: 4 queries into 3 orderings, the 5th gets the 2nd."""
    result = _rotating(4)
    assert result["next"] == {
        "mode": "rotate",
        "how": "each query gets the next ordering in turn",
        "orderings": 3,
        "index": 2,
        "first": "mx2.example.test.",
        "answer": ["10 mx2.example.test.", "20 mx3.example.test.", "30 mx1.example.test."],
    }
    assert result["why"] == [
        "round-robin: each query gets the next ordering in turn; a query arriving now gets"
        " ordering 2 of 3, mx2.example.test. first"
    ]


def test_with_several_answer_processes_no_ordering_is_called_next() -> None:
    """Each worker rotates on its own counter: naming one ordering as next would be a guess."""
    pool = _pool((1.0, 1.0, 1.0)) | {"strategy": "round-robin"}
    config = from_mapping({"server": {"workers": 2}, "pool": [pool]})
    result = explain_query(config, ORIGIN, config.pool[0], None, plan_all(config.pool[0], {}), 4, "", "")
    upcoming = result["next"]
    assert isinstance(upcoming, dict) and upcoming["first"] is None and upcoming["processes"] == 2
    assert "depends on the process a query reaches" in str(result["why"])


def test_a_weighted_pool_names_each_hosts_share_of_first_place() -> None:
    result = _explain((2.0, 1.0, 1.0))
    assert result["next"] == {
        "mode": "weighted",
        "how": "first place drawn per query in proportion to the members' weights",
        "orderings": 3,
        "first": None,
        "first_shares": {"mx1.example.test.": 0.5, "mx2.example.test.": 0.25, "mx3.example.test.": 0.25},
    }


def _server(serve: Callable[..., RunningServer], tmp_path: Path, strategy: str) -> RunningServer:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE)
    members = "".join(
        f'[[pool.member]]\nhost = "{host}"\npreference = {10 * (i + 1)}\nweight = {3 - i}\nprobe = "none"\n'
        for i, host in enumerate(HOSTS)
    )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        f'[[pool]]\nname = "{ORIGIN}"\nstrategy = "{strategy}"\n' + members
    )
    return serve("--config", str(config))


def _get(server: RunningServer, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(authorized(server, path), timeout=10) as response:
        body = json.loads(response.read())
    assert isinstance(body, dict)
    return body


def _cli(server: RunningServer, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dynmx", *args, "--http", f"127.0.0.1:{server.http_port}"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=token_env(server),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _first_mx(server: RunningServer) -> str:
    reply = dns.query.udp(dns.message.make_query(ORIGIN, "MX"), "127.0.0.1", port=server.dns_port, timeout=2)
    return str(min(reply.answer[0], key=lambda r: r.preference).exchange)


def test_status_and_explain_name_the_target_the_next_query_gets_first(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    """After two queries of a rotation of three, /status and /explain both say the third gets mx3
    first, and it does; the text of both says it in the same words."""
    server = _server(serve, tmp_path, "round-robin")
    assert [_first_mx(server) for _ in range(2)] == [HOSTS[0], HOSTS[1]]
    pool = _get(server, "/status")["pools"][0]
    explained = _get(server, "/explain?" + urllib.parse.urlencode({"name": ORIGIN}))
    assert pool["next"] == explained["next"]
    assert pool["next"]["first"] == HOSTS[2] and pool["next"]["index"] == 3

    status_text = _cli(server, "status")
    assert f"pool {ORIGIN} round-robin ttl" in status_text
    assert f"a query now gets {HOSTS[2]} first (ordering 3 of 3)" in status_text
    assert "  picks: each query gets the next ordering in turn" in status_text
    assert "(rotate)" not in status_text
    explain_text = _cli(server, "explain", ORIGIN)
    assert f"ordering 3 of 3, {HOSTS[2]} first" in explain_text
    assert _first_mx(server) == HOSTS[2]


def test_status_and_explain_show_each_members_weight_and_preference_in_a_weighted_pool(
    serve: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = _server(serve, tmp_path, "weighted")
    status_text = _cli(server, "status")
    assert f"first place drawn: {HOSTS[0]} 50.0%, {HOSTS[1]} 33.3%, {HOSTS[2]} 16.7%" in status_text
    assert "preference 10 weight 3" in status_text and "preference 30 weight 1" in status_text
    explain_text = _cli(server, "explain", ORIGIN)
    assert f"member {HOSTS[0]}" in explain_text and "preference 10 weight 3" in explain_text
    assert (
        f"weighted: first place drawn per query in proportion to the members' weights: {HOSTS[0]} 50.0%"
        in (explain_text)
    )

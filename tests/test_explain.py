"""`dynmx explain` of a weighted pool: every ordering with its share, by plain calls and end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

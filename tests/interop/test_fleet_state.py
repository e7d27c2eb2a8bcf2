"""Pool state over the catalog's transfers: drains, load readings and pool definitions made on
a dynmx primary reach a dynmx consumer (RFC 9432 §4.4 custom properties under `ext`), which
applies them beside its own probes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import ROOT, RunningServer, wait_until
from tests.interop.test_catalog_server import CATALOG, consumer_config
from tests.nsd import free_port

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mx1  A   127.0.0.2
mx2  A   127.0.0.3
mx3  A   127.0.0.4
rr   MX  10 mx1
rr   MX  20 mx2
rr   MX  30 mx3
"""
POOL = 'name = "rr.example.test."\nstrategy = "round-robin"\nttl = 30\n' + "".join(
    f'[[pool.member]]\nhost = "mx{i}.example.test."\npreference = {10 * i}\nprobe = "none"\n'
    for i in (1, 2, 3)
)
MX1 = "mx1.example.test."
Serve = Callable[..., RunningServer]
BOUND = 15.0  # seconds: NOTIFY of the catalog, an IXFR, the decision applied


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def firsts(port: int, tries: int = 9) -> set[str]:
    """The first MX target (lowest preference) of `tries` answers for the pool's name."""
    seen = set()
    for _ in range(tries):
        reply = dns.query.udp(
            dns.message.make_query("rr.example.test.", "MX"), "127.0.0.1", port=port, timeout=2
        )
        if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
            return set()
        first = min(reply.answer[0], key=lambda mx: mx.preference)
        seen.add(first.exchange.to_text())
    return seen


@pytest.fixture
def fleet(serve: Serve, tmp_path: Path) -> tuple[Path, int, int]:
    """A primary defining pool rr (round-robin) and a consumer whose config has no pool."""
    primary_port, consumer_port = free_port(), free_port()
    zones = tmp_path / "primary" / "zones"
    zones.mkdir(parents=True)
    (zones / "example.test.zone").write_text(ZONE)
    config = tmp_path / "primary" / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{primary_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "primary" / "state"}"\n'
        f'[defaults]\nallow_transfer = ["127.0.0.0/8"]\nnotify = ["127.0.0.1:{consumer_port}"]\n'
        f'[catalog]\nname = "{CATALOG}"\nallow_transfer = ["127.0.0.0/8"]\n'
        f'notify = ["127.0.0.1:{consumer_port}"]\n[[pool]]\n{POOL}'
    )
    serve("--config", str(config))
    (tmp_path / "consumer").mkdir()
    serve("--config", str(consumer_config(tmp_path / "consumer", consumer_port, primary_port)))
    return config, primary_port, consumer_port


def test_a_pool_defined_only_on_the_primary_is_served_by_the_consumer_with_rotation(
    fleet: tuple[Path, int, int],
) -> None:
    _, primary_port, consumer_port = fleet
    wait_until(lambda: len(firsts(consumer_port)) == 3, timeout=BOUND)  # rotation: every member first
    assert len(firsts(primary_port)) == 3


def test_member_down_on_the_primary_takes_the_host_out_on_the_consumer_and_up_brings_it_back(
    fleet: tuple[Path, int, int],
) -> None:
    config, primary_port, consumer_port = fleet
    wait_until(lambda: MX1 in firsts(consumer_port), timeout=BOUND)
    down = dynmx("member", "down", "rr.example.test.", MX1, "-c", str(config))
    assert down.returncode == 0, down.stdout + down.stderr
    assert MX1 not in firsts(primary_port)
    wait_until(lambda: MX1 not in firsts(consumer_port) and firsts(consumer_port), timeout=BOUND)
    up = dynmx("member", "up", "rr.example.test.", MX1, "-c", str(config))
    assert up.returncode == 0, up.stdout + up.stderr
    wait_until(lambda: MX1 in firsts(consumer_port), timeout=BOUND)


def test_load_readings_set_on_the_primary_order_the_consumers_least_load_answers(
    serve: Serve, tmp_path: Path
) -> None:
    primary_port, consumer_port = free_port(), free_port()
    zones = tmp_path / "primary" / "zones"
    zones.mkdir(parents=True)
    (zones / "example.test.zone").write_text(ZONE)
    config = tmp_path / "primary" / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{primary_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "primary" / "state"}"\n'
        f'[defaults]\nallow_transfer = ["127.0.0.0/8"]\nnotify = ["127.0.0.1:{consumer_port}"]\n'
        f'[catalog]\nname = "{CATALOG}"\nallow_transfer = ["127.0.0.0/8"]\n'
        f'notify = ["127.0.0.1:{consumer_port}"]\n[[pool]]\n' + POOL.replace("round-robin", "least-load")
    )
    serve("--config", str(config))
    (tmp_path / "consumer").mkdir()
    serve("--config", str(consumer_config(tmp_path / "consumer", consumer_port, primary_port)))
    for host, load in ((MX1, "0.9"), ("mx2.example.test.", "0.1"), ("mx3.example.test.", "0.9")):
        result = dynmx("member", "load", "rr.example.test.", host, load, "-c", str(config))
        assert result.returncode == 0, result.stdout + result.stderr
    assert firsts(primary_port) == {"mx2.example.test."}
    wait_until(lambda: firsts(consumer_port) == {"mx2.example.test."}, timeout=BOUND)

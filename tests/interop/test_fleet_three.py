"""Several name servers as one: a dynmx primary producing the catalog (RFC 9432), two dynmx
consumers whose config holds only `[catalog]` and the shared `[[pool]]` block, and Knot 3.2
as a catalog consumer. What is made on the primary (a zone, a record, a drain) is answered
by the secondaries within a bound; the pool answers stay dynamic on the dynmx secondaries,
which probe from where they stand and go on doing so when the primary is gone. `dynmx
fleet` on the primary tells which secondary serves which serial.

The members are real SMTP sinks (aiosmtpd) on loopback addresses, probed every 0.2 s, so a
probe verdict takes well under a second. The fleet is started once for the module; the
tests run in file order and the last one stops the primary.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from dynmx.app.fleet import SoaSeen, catalog_seen, serial_lt, verdict
from tests.conftest import ROOT, RunningServer, start_server, wait_until
from tests.integration.test_health_server import Sinks
from tests.interop.test_catalog_server import CATALOG, consumer_config, knot_consumer, primary_config, serves
from tests.knot import Knot, KnotUnavailable
from tests.nsd import free_port

ADDRESSES = {"mx1": "127.0.0.2", "mx2": "127.0.0.3", "mx3": "127.0.0.4"}
ZONE = (
    "$ORIGIN example.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\n"
    "ns1 A 127.0.0.1\n"
    + "".join(f"{name} A {address}\n" for name, address in ADDRESSES.items())
    + "rr MX 10 mx1\nrr MX 20 mx2\nrr MX 30 mx3\n"
)
POOL_NAME = "rr.example.test."
MX1, MX2 = "mx1.example.test.", "mx2.example.test."
ZONE_ADD_BOUND = 10.0  # the bounds, in seconds
EDIT_BOUND = 3.0
PROBE_BOUND = 5.0  # fall 2 x 0.2 s, then a recompile: well under
Serve = Callable[..., RunningServer]


def pool_block(smtp_port: int) -> str:
    return f'[[pool]]\nname = "{POOL_NAME}"\nstrategy = "round-robin"\nttl = 30\n' + "".join(
        f'[[pool.member]]\nhost = "{name}.example.test."\npreference = {10 * i}\nprobe = "smtp"\n'
        f"port = {smtp_port}\ninterval = 0.2\ntimeout = 0.2\nfall = 2\nrise = 2\n"
        for i, name in enumerate(ADDRESSES, start=1)
    )


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def firsts(port: int, tries: int = 9) -> set[str]:
    """The first MX target (lowest preference) of `tries` answers for the pool's name."""
    seen = set()
    for _ in range(tries):
        try:
            reply = dns.query.udp(dns.message.make_query(POOL_NAME, "MX"), "127.0.0.1", port=port, timeout=1)
        except (OSError, dns.exception.Timeout):
            return set()
        if reply.rcode() != dns.rcode.NOERROR or not reply.answer:
            return set()
        seen.add(min(reply.answer[0], key=lambda mx: mx.preference).exchange.to_text())
    return seen


def answer(port: int, name: str, rdtype: str) -> set[str]:
    try:
        reply = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=1)
    except (OSError, dns.exception.Timeout):
        return set()
    return {rdata.to_text() for rrset in reply.answer for rdata in rrset}


def exchanges(port: int) -> set[str]:
    """The MX targets answered for the pool's name."""
    return {text.split()[1] for text in answer(port, POOL_NAME, "MX")}


@dataclass
class Fleet:
    config: Path
    primary: RunningServer
    primary_port: int
    consumers: list[int]  # the dynmx secondaries' DNS ports
    knot_port: int
    sinks: Sinks

    @property
    def secondaries(self) -> list[int]:
        return [*self.consumers, self.knot_port]


def start_fleet(tmp_path: Path, sinks: Sinks) -> Iterator[Fleet]:
    primary_port, knot_port = free_port(), free_port()
    consumer_ports = [free_port(), free_port()]
    pool = pool_block(sinks.port)
    targets = ", ".join(f'"127.0.0.1:{port}"' for port in [*consumer_ports, knot_port])
    zones = tmp_path / "primary" / "zones"
    zones.mkdir(parents=True)
    (zones / "example.test.zone").write_text(ZONE)
    config = tmp_path / "primary" / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{primary_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "primary" / "state"}"\n'
        '[defaults]\nns = ["ns1.example.test."]\nhostmaster = "hostmaster.example.test."\n'
        f'allow_transfer = ["127.0.0.0/8"]\nnotify = [{targets}]\n'
        f'[catalog]\nname = "{CATALOG}"\nallow_transfer = ["127.0.0.0/8"]\nnotify = [{targets}]\n' + pool
    )
    (tmp_path / "knot").mkdir()
    try:
        knot = knot_consumer(primary_port, knot_port, tmp_path / "knot")
    except KnotUnavailable as error:
        pytest.skip(str(error))
    started: list[RunningServer] = []
    try:
        primary = start_server("--config", str(config))
        started.append(primary)
        for index, port in enumerate(consumer_ports):
            (tmp_path / f"consumer{index}").mkdir()
            consumer = consumer_config(tmp_path / f"consumer{index}", port, primary_port, pool)
            started.append(start_server("--config", str(consumer)))
        with knot:
            knot.start()
            fleet = Fleet(config, primary, primary_port, consumer_ports, knot_port, sinks)
            for port in fleet.secondaries:
                wait_until(lambda port=port: serves(port, "example.test."), timeout=15.0)
            yield fleet
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    sinks = Sinks()
    for name in ADDRESSES:
        sinks.start(name)
    try:
        yield from start_fleet(tmp_path_factory.mktemp("fleet"), sinks)
    finally:
        sinks.stop_all()


def test_zone_add_on_the_primary_is_served_by_every_secondary_within_10s(fleet: Fleet) -> None:
    start = time.monotonic()
    assert dynmx("zone", "add", "shop.example.test", "-c", str(fleet.config)).returncode == 0
    for port in fleet.secondaries:
        left = ZONE_ADD_BOUND - (time.monotonic() - start)
        wait_until(lambda port=port: serves(port, "shop.example.test."), timeout=max(left, 0.1))


def test_a_record_added_on_the_primary_is_answered_by_every_secondary_within_3s(fleet: Fleet) -> None:
    added = dynmx("record", "add", "www.example.test.", "A", "192.0.2.80", "-c", str(fleet.config))
    assert added.returncode == 0, added.stdout + added.stderr
    start = time.monotonic()
    for port in fleet.secondaries:
        left = EDIT_BOUND - (time.monotonic() - start)
        check = lambda port=port: answer(port, "www.example.test.", "A") == {"192.0.2.80"}  # noqa: E731
        wait_until(check, timeout=max(left, 0.1))


def test_a_drain_on_the_primary_reaches_both_dynmx_secondaries_within_3s_and_up_undoes_it(
    fleet: Fleet,
) -> None:
    for port in [fleet.primary_port, *fleet.consumers]:
        wait_until(lambda port=port: MX1 in firsts(port), timeout=PROBE_BOUND)
    down = dynmx("member", "down", POOL_NAME, MX1, "-c", str(fleet.config))
    assert down.returncode == 0, down.stdout + down.stderr
    start = time.monotonic()
    for port in fleet.consumers:
        left = EDIT_BOUND - (time.monotonic() - start)
        wait_until(lambda port=port: MX1 not in exchanges(port), timeout=max(left, 0.1))
    assert len(firsts(fleet.consumers[0])) == 2  # the other two still rotate
    up = dynmx("member", "up", POOL_NAME, MX1, "-c", str(fleet.config))
    assert up.returncode == 0, up.stdout + up.stderr
    start = time.monotonic()
    for port in fleet.consumers:
        left = EDIT_BOUND - (time.monotonic() - start)
        wait_until(lambda port=port: MX1 in firsts(port), timeout=max(left, 0.1))


def test_knot_serves_the_static_mx_set_of_the_zone_file(fleet: Fleet) -> None:
    """What a plain secondary loses: no rotation, no drain, no health; the file's MX set."""
    mx = answer(fleet.knot_port, POOL_NAME, "MX")
    assert mx == {"10 mx1.example.test.", "20 mx2.example.test.", "30 mx3.example.test."}
    assert firsts(fleet.knot_port) == {MX1}


def test_fleet_says_every_secondary_is_current(fleet: Fleet) -> None:
    seen: list[subprocess.CompletedProcess[str]] = []

    def current() -> bool:
        seen.append(dynmx("fleet", "--json", "-c", str(fleet.config)))
        return seen[-1].returncode == 0

    try:
        wait_until(current, timeout=EDIT_BOUND)
    except AssertionError:
        raise AssertionError(seen[-1].stdout + seen[-1].stderr) from None
    body = json.loads(seen[-1].stdout)
    targets = {s["target"] for s in body["secondaries"]}
    assert targets == {f"127.0.0.1:{port}" for port in fleet.secondaries}
    zones = {row["zone"] for s in body["secondaries"] for row in s["zones"]}
    assert zones == {CATALOG, "example.test.", "shop.example.test."}


def test_with_the_primary_stopped_secondaries_rotate_and_fail_over_by_their_own_probes(fleet: Fleet) -> None:
    fleet.primary.stop()
    every = {MX1, MX2, "mx3.example.test."}
    for port in fleet.consumers:  # round-robin: each first in turn
        wait_until(lambda port=port: firsts(port) == every, timeout=PROBE_BOUND)
    fleet.sinks.stop("mx2")
    for port in fleet.consumers:
        wait_until(lambda port=port: MX2 not in exchanges(port), timeout=PROBE_BOUND)
        assert firsts(port) == {MX1, "mx3.example.test."}
    fleet.sinks.start("mx2")
    for port in fleet.consumers:
        wait_until(lambda port=port: MX2 in firsts(port), timeout=PROBE_BOUND)


def test_fleet_names_the_secondary_that_is_behind_and_the_one_that_is_silent(
    serve: Serve, tmp_path: Path
) -> None:
    """A Knot secondary that refuses the primary's NOTIFY (no notify ACL) keeps the serial it
    took at start; the dynmx consumer follows. `dynmx fleet` says which is which (exit 1), then,
    with the consumer stopped, that it does not answer."""
    primary_port, consumer_port, knot_port = free_port(), free_port(), free_port()
    (tmp_path / "primary").mkdir()
    (tmp_path / "consumer").mkdir()
    config = primary_config(tmp_path / "primary", primary_port, [consumer_port, knot_port])
    head, tail = config.read_text().split("[catalog]")  # the catalog to the consumer only
    config.write_text(head + "[catalog]" + tail.replace(f', "127.0.0.1:{knot_port}"', ""))
    serve("--config", str(config))
    consumer = serve("--config", str(consumer_config(tmp_path / "consumer", consumer_port, primary_port)))
    clauses = (
        f"remote:\n  - id: primary\n    address: 127.0.0.1@{primary_port}\n"
        "zone:\n  - domain: example.test.\n    master: primary\n"
    )
    try:
        knot = Knot(clauses, port=knot_port)
    except KnotUnavailable as error:
        pytest.skip(str(error))
    with knot:
        knot.start(wait_zone="example.test.")
        wait_until(lambda: serves(consumer_port, "example.test."), timeout=15.0)
        added = dynmx("record", "add", "www.example.test.", "A", "192.0.2.80", "-c", str(config))
        assert added.returncode == 0, added.stdout + added.stderr
        wait_until(
            lambda: answer(consumer_port, "www.example.test.", "A") == {"192.0.2.80"}, timeout=EDIT_BOUND
        )
        result = dynmx("fleet", "--json", "-c", str(config))
        assert result.returncode == 1, result.stdout + result.stderr
        states = {
            (s["target"], row["zone"]): (row["state"], row["serial_there"], row["serial_here"])
            for s in json.loads(result.stdout)["secondaries"]
            for row in s["zones"]
        }
        assert states[(f"127.0.0.1:{knot_port}", "example.test.")] == ("behind", 1, 2)
        assert states[(f"127.0.0.1:{consumer_port}", "example.test.")] == ("current", 2, 2)
        assert states[(f"127.0.0.1:{consumer_port}", CATALOG)][0] == "current"
        text_out = dynmx("fleet", "-c", str(config)).stdout
        assert f"secondary 127.0.0.1:{knot_port}: 1 zone(s): 1 behind" in text_out
        assert "serial 1, 2 here: BEHIND" in text_out
        consumer.stop()
        silent = json.loads(dynmx("fleet", "--json", "-c", str(config)).stdout)
        consumer_rows = next(s for s in silent["secondaries"] if s["target"] == f"127.0.0.1:{consumer_port}")
        assert {row["state"] for row in consumer_rows["zones"]} == {"no answer"}


def test_a_serial_past_the_wrap_is_ahead_rfc1982_s3_2() -> None:
    assert serial_lt(2**32 - 1, 1) and not serial_lt(1, 2**32 - 1)
    assert verdict(1, SoaSeen(2**32 - 1, "NOERROR")) == "behind"
    assert verdict(2**32 - 1, SoaSeen(1, "NOERROR")) == "ahead"


def test_a_refused_catalog_soa_stands_on_its_last_transfer_and_a_refused_member_is_not_served() -> None:
    """RFC 9432 §1: a catalog is not for queries; Knot refuses its SOA. A member it refuses is gone."""
    row = {"transferred_serial": 7}
    assert verdict(7, catalog_seen(row, SoaSeen(None, "REFUSED"))) == "current"
    assert verdict(7, SoaSeen(None, "REFUSED")) == "not served"
    assert verdict(7, SoaSeen(None, "unreachable")) == "no answer"

"""A dynmx primary with `[catalog]` produces a catalog zone (RFC 9432, version 2) listing every
zone it is primary for; `zone add`/`zone rm` change it with a serial bump and NOTIFY, and
it transfers by AXFR and IXFR. Knot 3.2 (`catalog-role: interpret`) and a dynmx consumer
provision its members with no per-zone config."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.xfr
import dns.zone
import pytest

from dynmx.zone.catalog import member_id, parse_catalog
from tests.conftest import ROOT, TEST_SECRET, RunningServer, wait_until
from tests.knot import Knot, KnotUnavailable
from tests.nsd import free_port

CATALOG = "catalog.invalid."
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mx1  A   127.0.0.2
mx2  A   127.0.0.3
rr   MX  10 mx1
rr   MX  20 mx2
"""
POOL = '[[pool]]\nname = "rr.example.test."\nstrategy = "round-robin"\n' + "".join(
    f'[[pool.member]]\nhost = "mx{i}.example.test."\npreference = {10 * i}\nprobe = "none"\n' for i in (1, 2)
)
Serve = Callable[..., RunningServer]
BOUND = 15.0  # seconds a secondary may take to follow a change (NOTIFY, then a transfer)


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def primary_config(tmp_path: Path, dns_port: int, notify: list[int], extra: str = "") -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE)
    targets = ", ".join(f'"127.0.0.1:{port}"' for port in notify)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{dns_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        '[defaults]\nns = ["ns1.example.test."]\nhostmaster = "hostmaster.example.test."\n'
        f'allow_transfer = ["127.0.0.0/8"]\nnotify = [{targets}]\n'
        f'[catalog]\nname = "{CATALOG}"\nallow_transfer = ["127.0.0.0/8"]\nnotify = [{targets}]\n' + extra
    )
    return config


def consumer_config(tmp_path: Path, dns_port: int, primary_port: int, extra: str = "") -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{dns_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[catalog]\nname = "{CATALOG}"\nprimary = "127.0.0.1:{primary_port}"\n' + extra
    )
    return config


def catalog(port: int) -> dns.zone.Zone:
    xfr = dns.query.xfr("127.0.0.1", CATALOG, port=port, timeout=3, relativize=False)
    return dns.zone.from_xfr(xfr, relativize=False)


def soa_rcode(port: int, name: str) -> int | None:
    """The rcode of an SOA query, or None when the reply is not an authoritative answer."""
    try:
        reply = dns.query.udp(dns.message.make_query(name, "SOA"), "127.0.0.1", port=port, timeout=1)
    except (OSError, dns.exception.Timeout):
        return None
    return reply.rcode() if reply.answer else -1


def serves(port: int, name: str) -> bool:
    return soa_rcode(port, name) == dns.rcode.NOERROR


def test_the_catalog_lists_every_primary_zone_with_version_2_rfc9432_s4(serve: Serve, tmp_path: Path) -> None:
    port = free_port()
    server = serve("--config", str(primary_config(tmp_path, port, [])))
    zone = catalog(server.dns_port)
    origin = dns.name.from_text(CATALOG)
    assert zone.get_rdataset(origin, "NS")[0].target == dns.name.from_text("invalid.")  # §4.1
    assert parse_catalog(zone).members == {dns.name.from_text("example.test."): member_id("example.test.")}


def test_zone_add_and_rm_change_the_catalog_with_a_serial_bump_and_ixfr(serve: Serve, tmp_path: Path) -> None:
    port = free_port()
    config = primary_config(tmp_path, port, [])
    server = serve("--config", str(config))
    before = catalog(server.dns_port)
    serial = before.get_soa().serial
    assert dynmx("zone", "add", "shop.example.test", "-c", str(config)).returncode == 0
    after = catalog(server.dns_port)
    assert dns.name.from_text("shop.example.test.") in parse_catalog(after).members
    assert after.get_soa().serial > serial
    ixfr = dns.query.xfr(
        "127.0.0.1", CATALOG, rdtype=dns.rdatatype.IXFR, serial=serial, port=server.dns_port, timeout=3
    )
    messages = list(ixfr)
    assert any(rrset.rdtype == dns.rdatatype.PTR for m in messages for rrset in m.answer)  # a delta, not AXFR
    assert dynmx("zone", "rm", "shop.example.test", "-c", str(config)).returncode == 0
    assert dns.name.from_text("shop.example.test.") not in parse_catalog(catalog(server.dns_port)).members


def test_member_ids_are_stable_across_restarts(serve: Serve, tmp_path: Path) -> None:
    port = free_port()
    config = primary_config(tmp_path, port, [])
    server = serve("--config", str(config))
    first = parse_catalog(catalog(server.dns_port)).members
    server.stop()
    again = serve("--config", str(config))
    assert parse_catalog(catalog(again.dns_port)).members == first


def knot_consumer(primary_port: int, port: int, storage: Path) -> Knot:
    clauses = (  # Knot reads references in order: the member template after the remote, acl
        f"remote:\n  - id: primary\n    address: 127.0.0.1@{primary_port}\n"
        "acl:\n  - id: notify_from_primary\n    address: 127.0.0.1\n    action: notify\n"
        "template:\n  - id: member\n    master: primary\n    acl: notify_from_primary\n"
        f'    storage: "{storage}"\n    file: "%s.zone"\n'
        f"zone:\n  - domain: {CATALOG}\n    master: primary\n    acl: notify_from_primary\n"
        "    catalog-role: interpret\n    catalog-template: member\n"
    )
    return Knot(clauses, port=port)


def test_knot_and_dynmx_consumers_follow_zone_add_and_rm(serve: Serve, tmp_path: Path) -> None:
    """Knot 3.2 as an RFC 9432 consumer and a dynmx consumer serve the zone `zone add` made on
    the primary, within a bound, and stop serving it after `zone rm`; the pool decisions the
    catalog carries under `ext` (a pool, a drain) are ignored by Knot (§4.4)."""
    primary_port, knot_port, consumer_port = free_port(), free_port(), free_port()
    (tmp_path / "primary").mkdir()
    (tmp_path / "consumer").mkdir()
    config = primary_config(tmp_path / "primary", primary_port, [knot_port, consumer_port], POOL)
    primary = serve("--config", str(config))
    assert dynmx("member", "down", "rr.example.test.", "mx1.example.test.", "-c", str(config)).returncode == 0
    try:
        (tmp_path / "knot").mkdir()
        knot = knot_consumer(primary_port, knot_port, tmp_path / "knot")
    except KnotUnavailable as error:
        pytest.skip(str(error))
    with knot:
        knot.start()
        consumer = serve("--config", str(consumer_config(tmp_path / "consumer", consumer_port, primary_port)))
        for port in (knot_port, consumer_port):  # the zone the catalog held at their start
            wait_until(lambda port=port: serves(port, "example.test."), timeout=BOUND)
        assert dynmx("zone", "add", "shop.example.test", "-c", str(config)).returncode == 0
        for port in (knot_port, consumer_port):
            wait_until(lambda port=port: serves(port, "shop.example.test."), timeout=BOUND)
        assert dynmx("zone", "rm", "shop.example.test", "-c", str(config)).returncode == 0
        for port in (knot_port, consumer_port):
            wait_until(lambda port=port: not serves(port, "shop.example.test."), timeout=BOUND)
        assert serves(knot_port, "example.test.") and serves(consumer_port, "example.test.")
        assert "ext" in {label.decode() for name in catalog(primary_port).nodes for label in name.labels}
        assert primary.process.poll() is None and consumer.process.poll() is None, knot.log()


def test_a_zone_file_that_arrives_by_reload_joins_the_catalog(serve: Serve, tmp_path: Path) -> None:
    """Any way a zone appears counts, not only `zone add`: a file dropped in and a reload."""
    config = primary_config(tmp_path, free_port(), [])
    server = serve("--config", str(config))
    (tmp_path / "zones" / "other.test.zone").write_text(ZONE.replace("example.test.", "other.test."))
    assert dynmx("reload", "-c", str(config)).returncode == 0
    other = dns.name.from_text("other.test.")
    wait_until(lambda: other in parse_catalog(catalog(server.dns_port)).members, timeout=BOUND)


def test_the_catalog_answers_only_those_who_may_transfer_it(serve: Serve, tmp_path: Path) -> None:
    """Its pool definitions are the operator's: queries from outside allow_transfer are refused."""
    config = primary_config(tmp_path, free_port(), [])
    text = config.read_text()
    catalog_at = text.index("[catalog]")
    config.write_text(text[:catalog_at] + text[catalog_at:].replace("127.0.0.0/8", "127.0.0.2/32"))
    server = serve("--config", str(config))
    assert soa_rcode(server.dns_port, CATALOG) == -1  # refused to 127.0.0.1
    assert serves(server.dns_port, "example.test.")


def test_a_consumer_restarted_drops_members_removed_and_takes_members_added_meanwhile(
    serve: Serve, tmp_path: Path
) -> None:
    primary_port, consumer_port = free_port(), free_port()
    (tmp_path / "primary").mkdir()
    (tmp_path / "consumer").mkdir()
    config = primary_config(tmp_path / "primary", primary_port, [consumer_port])
    serve("--config", str(config))
    assert dynmx("zone", "add", "old.example.test", "-c", str(config)).returncode == 0
    consumer_toml = consumer_config(tmp_path / "consumer", consumer_port, primary_port)
    consumer = serve("--config", str(consumer_toml))
    wait_until(lambda: serves(consumer_port, "old.example.test."), timeout=BOUND)
    consumer.stop()
    assert dynmx("zone", "rm", "old.example.test", "-c", str(config)).returncode == 0
    assert dynmx("zone", "add", "new.example.test", "-c", str(config)).returncode == 0
    serve("--config", str(consumer_toml))
    wait_until(lambda: serves(consumer_port, "new.example.test."), timeout=BOUND)
    wait_until(lambda: not serves(consumer_port, "old.example.test."), timeout=BOUND)
    assert (tmp_path / "consumer" / "zones" / "old.example.test.zone.removed").exists()
    refused = dynmx("zone", "rm", "new.example.test", "-c", str(consumer_toml))  # the primary's to remove
    assert refused.returncode != 0 and "member of catalog catalog.invalid." in refused.stdout + refused.stderr


def test_a_dynmx_consumer_follows_a_catalog_knot_generates(serve: Serve, tmp_path: Path) -> None:
    """Knot 3.2 as the RFC 9432 producer (`catalog-role: generate`): dynmx serves its members."""
    knot_port, consumer_port = free_port(), free_port()
    other = ZONE.replace("example.test.", "other.test.")
    clauses = (
        f"remote:\n  - id: consumer\n    address: 127.0.0.1@{consumer_port}\n"
        "acl:\n  - id: xfr\n    address: 127.0.0.0/8\n    action: transfer\n"
        f"zone:\n  - domain: {CATALOG}\n    catalog-role: generate\n    acl: xfr\n    notify: consumer\n"
        + "".join(
            f"  - domain: {name}\n    catalog-role: member\n    catalog-zone: {CATALOG}\n"
            "    acl: xfr\n    notify: consumer\n"
            for name in ("example.test.", "other.test.")
        )
    )
    try:
        knot = Knot(clauses, {"example.test.zone": ZONE, "other.test.zone": other}, port=knot_port)
    except KnotUnavailable as error:
        pytest.skip(str(error))
    with knot:
        knot.start(wait_zone="example.test.")
        (tmp_path / "consumer").mkdir()
        serve("--config", str(consumer_config(tmp_path / "consumer", consumer_port, knot_port)))
        for name in ("example.test.", "other.test."):
            wait_until(lambda name=name: serves(consumer_port, name), timeout=BOUND)


def test_a_consumer_transfers_the_catalog_and_its_members_with_its_primary_key(
    serve: Serve, tmp_path: Path
) -> None:
    """`primary_key` signs every transfer request (RFC 8945), the members' as the catalog's:
    a primary that allows transfers only to that key serves them all."""
    primary_port, consumer_port = free_port(), free_port()
    (tmp_path / "primary").mkdir()
    (tmp_path / "consumer").mkdir()
    key = f'[[key]]\nname = "xfr-key."\nsecret = "{TEST_SECRET}"\n'
    config = primary_config(tmp_path / "primary", primary_port, [consumer_port], key)
    config.write_text(
        config.read_text().replace('allow_transfer = ["127.0.0.0/8"]', 'allow_transfer = ["xfr-key."]')
    )
    serve("--config", str(config))
    with pytest.raises(dns.xfr.TransferError):  # unsigned: refused
        catalog(primary_port)
    consumer = consumer_config(
        tmp_path / "consumer", consumer_port, primary_port, 'primary_key = "xfr-key."\n' + key
    )
    serve("--config", str(consumer))
    wait_until(lambda: serves(consumer_port, "example.test."), timeout=BOUND)
    assert dynmx("zone", "add", "shop.example.test", "-c", str(config)).returncode == 0
    wait_until(lambda: serves(consumer_port, "shop.example.test."), timeout=BOUND)


def test_zone_adds_and_a_drain_at_once_all_land_in_the_catalog(serve: Serve, tmp_path: Path) -> None:
    """Three `zone add` and a `member down` arrive together: each is its own edit of the
    catalog through the one owner, none overwrites another, and the serial moves forward."""
    port = free_port()
    config = primary_config(tmp_path, port, [], POOL)
    server = serve("--config", str(config))
    serial = catalog(server.dns_port).get_soa().serial
    base = [sys.executable, "-m", "dynmx"]
    commands = [[*base, "zone", "add", f"z{i}.example.test", "-c", str(config)] for i in range(3)]
    commands.append([*base, "member", "down", "rr.example.test.", "mx1.example.test.", "-c", str(config)])
    running = [
        subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands
    ]
    for process in running:
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors.decode()
    wanted = {dns.name.from_text(f"z{i}.example.test.") for i in range(3)}
    drain = ("rr.example.test.", "mx1.example.test.")

    def landed() -> bool:
        parsed = parse_catalog(catalog(server.dns_port))
        return wanted <= parsed.members.keys() and drain in parsed.shared.drains

    wait_until(landed, timeout=BOUND)
    assert catalog(server.dns_port).get_soa().serial > serial
    assert all(serves(server.dns_port, name.to_text()) for name in wanted)

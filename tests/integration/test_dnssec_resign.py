"""The daily re-sign of a zone dynmx signs moves its SOA serial, as Knot and BIND do when
they re-sign: committed like an edit with no change, so a secondary (which transfers the
signed copy whole) is NOTIFYed and fetches the renewed signatures before its own expire.

The server runs with tests/resign_clock on PYTHONPATH: its re-sign comes when the test
writes a trigger file, and the signer's clock moves a day on, as at a real UTC midnight."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import dns.dnssec
import dns.message
import dns.name
import dns.node
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.serial
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone

from dynmx.zone.signer import DAY
from tests.conftest import ROOT, TEST_SECRET, RunningServer, wait_until, write_config
from tests.fake_servers import free_port

Serve = Callable[..., RunningServer]
ORIGIN = dns.name.from_text("example.test.")
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@      SOA ns1 hostmaster 1 7200 3600 1209600 300
@      NS  ns1
@      MX  10 mx1
ns1    A   127.0.0.1
mx1    A   192.0.2.1
www    A   192.0.2.80
"""


def _start_primary(
    serve: Serve, tmp_path: Path, notify_port: int | None = None, settings: str = ""
) -> tuple[RunningServer, Path]:
    """A dynmx primary signing example.test. (with more `settings` for its [[zone]] block);
    the returned path re-signs it when written."""
    trigger = tmp_path / "resign-now"
    notify = f'notify = ["127.0.0.1:{notify_port}"]\n' if notify_port else ""
    extra = f'[[zone]]\nname = "example.test."\ndnssec = true\nallow_transfer = ["127.0.0.0/8"]\n{notify}'
    if settings:
        extra = f'[[key]]\nname = "ops-key."\nsecret = "{TEST_SECRET}"\n' + extra + settings
    (tmp_path / "primary").mkdir()
    config = write_config(tmp_path / "primary", ZONE, extra)
    env = [
        f"PYTHONPATH={ROOT / 'tests' / 'resign_clock'}{os.pathsep}{ROOT}",
        f"DYNMX_TEST_RESIGN_TRIGGER={trigger}",
    ]
    return serve("--config", str(config), prefix=["env", *env]), trigger


def _transfer(port: int) -> dns.zone.Zone:
    xfr = dns.query.xfr("127.0.0.1", "example.test.", port=port, timeout=5, relativize=False)
    return dns.zone.from_xfr(xfr, relativize=False)


def _serial(zone: dns.zone.Zone) -> int:
    soa = zone.get_rdataset(ORIGIN, dns.rdatatype.SOA)
    assert soa is not None
    return int(soa[0].serial)


def _served_serial(port: int) -> int | None:
    """The serial a server transfers, or None while it has no copy to transfer."""
    try:
        return _serial(_transfer(port))
    except dns.xfr.TransferError:
        return None


def _inceptions(zone: dns.zone.Zone) -> set[int]:
    return {
        int(sig.inception)
        for node in zone.nodes.values()
        for rds in node.rdatasets
        if rds.rdtype == dns.rdatatype.RRSIG
        for sig in rds
    }


def _validate(zone: dns.zone.Zone) -> int:
    """Every RRset of `zone` checked against its RRSIG and the zone's DNSKEY, on the day after
    today (the server's clock moved there); how many were."""
    dnskey = zone.get_rdataset(ORIGIN, dns.rdatatype.DNSKEY)
    assert dnskey is not None
    keys: dict[dns.name.Name, dns.node.Node | dns.rdataset.Rdataset] = {ORIGIN: dnskey}
    checked = 0
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype != dns.rdatatype.RRSIG:
                sig = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rds.rdtype)
                assert sig is not None, f"{name} {rds.rdtype} unsigned"
                dns.dnssec.validate((name, rds), (name, sig), keys, now=time.time() + DAY)
                checked += 1
    return checked


def test_rfc1982_the_daily_resign_serves_a_higher_serial_that_validates(serve: Serve, tmp_path: Path) -> None:
    """After the re-sign the served serial is newer, every RRset validates with the renewed
    RRSIGs, and the zone file is written back with the new serial (the journal's head)."""
    primary, trigger = _start_primary(serve, tmp_path)
    before = _transfer(primary.dns_port)
    trigger.write_text("")
    wait_until(lambda: _serial(_transfer(primary.dns_port)) != _serial(before), timeout=10)
    after = _transfer(primary.dns_port)
    assert dns.serial.Serial(_serial(after)) > dns.serial.Serial(_serial(before))
    assert _inceptions(after) and _inceptions(after).isdisjoint(_inceptions(before))
    assert _validate(after) > 5
    written = tmp_path / "primary" / "zones" / "example.test.zone"
    wait_until(lambda: f"serial {_serial(after)}" in written.read_text(), timeout=10)
    assert "event=dnssec-resign" in primary.log_text()


def test_rfc1996_a_secondary_is_notified_and_transfers_the_renewed_signatures(
    serve: Serve, tmp_path: Path
) -> None:
    """A dynmx secondary following the signing primary gets the re-signed zone by NOTIFY and
    transfer (its refresh is hours away): the new serial, RRSIGs with the new inception."""
    secondary_port = free_port()
    primary, trigger = _start_primary(serve, tmp_path, notify_port=secondary_port)
    zones = tmp_path / "secondary" / "zones"
    zones.mkdir(parents=True)
    config = tmp_path / "secondary" / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{secondary_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "secondary" / "state"}"\n'
        f'[[zone]]\nname = "example.test."\nprimary = "127.0.0.1:{primary.dns_port}"\n'
        'allow_transfer = ["127.0.0.0/8"]\n'
    )
    secondary = serve("--config", str(config))
    first = _transfer(primary.dns_port)
    wait_until(lambda: _served_serial(secondary.dns_port) == _serial(first), timeout=10)
    trigger.write_text("")
    wait_until(lambda: _serial(_transfer(primary.dns_port)) != _serial(first), timeout=10)
    renewed = _serial(_transfer(primary.dns_port))
    wait_until(lambda: _served_serial(secondary.dns_port) == renewed, timeout=10)
    copy = _transfer(secondary.dns_port)
    assert _inceptions(copy) and _inceptions(copy).isdisjoint(_inceptions(first))
    assert _validate(copy) > 5


def test_an_update_burst_across_the_daily_resign_loses_no_acknowledged_edit(
    serve: Serve, tmp_path: Path
) -> None:
    """Two writers at once: RFC 2136 UPDATEs keep coming while the daily re-sign commits its
    serial-only change through the same owner. Every acknowledged name is served and
    written back, the serial only moves forward, and the zone validates."""
    primary, trigger = _start_primary(
        serve, tmp_path, settings='serial = "increment"\nallow_update = ["ops-key."]\n'
    )
    keyring = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})
    before = _serial(_transfer(primary.dns_port))
    acknowledged = []
    for index in range(40):
        if index == 10:
            trigger.write_text("")
        update = dns.update.UpdateMessage("example.test.", keyring=keyring)
        update.add(f"h{index}", 300, "A", f"192.0.2.{index + 100}")
        reply = dns.query.tcp(update, "127.0.0.1", port=primary.dns_port, timeout=10)
        assert reply.rcode() == dns.rcode.NOERROR
        acknowledged.append(dns.name.from_text(f"h{index}.example.test."))
    wait_until(lambda: "event=dnssec-resign" in primary.log_text(), timeout=10)
    served = _transfer(primary.dns_port)
    assert all(served.get_rdataset(name, dns.rdatatype.A) is not None for name in acknowledged)
    assert dns.serial.Serial(_serial(served)) > dns.serial.Serial(before + 40)
    assert _validate(served) > 40
    written = tmp_path / "primary" / "zones" / "example.test.zone"
    wait_until(lambda: "h39.example.test." in written.read_text(), timeout=10)
    assert all(name.to_text() in written.read_text() for name in acknowledged)

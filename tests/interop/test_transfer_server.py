"""Zone distribution: AXFR (RFC 5936), IXFR from the journal (RFC 1995), NOTIFY (RFC 1996), NSD secondary."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import dns.zone
import pytest

from tests.conftest import EDITS, TEST_SECRET, RunningServer, wait_until, write_config
from tests.control_token import authorized
from tests.knot import Knot, KnotUnavailable
from tests.nsd import Nsd, NsdUnavailable, free_port

SECRET = TEST_SECRET
KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", SECRET)})
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 100 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mx1  A   127.0.0.2
"""
Serve = Callable[..., RunningServer]


def _config(tmp_path: Path, allow: str = "127.0.0.0/8", notify: str = "", zone: str = ZONE) -> Path:
    tmp_path.mkdir(exist_ok=True)
    extra = f'allow_transfer = ["{allow}"]\n' + (f'notify = ["{notify}"]\n' if notify else "")
    return write_config(tmp_path, zone, EDITS + extra)


def _update(server: RunningServer, name: str, address: str) -> None:
    update = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname="ops-key.")
    update.add(name, 300, "A", address)
    assert dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=3).rcode() == dns.rcode.NOERROR


def _axfr(server: RunningServer) -> dns.zone.Zone:
    return dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.test.", port=server.dns_port, timeout=3))


def test_rfc5936_axfr_transfers_the_whole_zone(serve: Serve, tmp_path: Path) -> None:
    server = serve("--config", str(_config(tmp_path)))
    zone = _axfr(server)
    assert zone.get_rdataset("mx1", "A") is not None
    assert zone.get_rdataset("@", "SOA")[0].serial == 100  # type: ignore[index]


def test_rfc5936_s4_2_axfr_from_a_peer_outside_allow_transfer_is_refused(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve("--config", str(_config(tmp_path, allow="192.0.2.0/24")))
    query = dns.message.make_query("example.test.", "AXFR")
    with socket.create_connection(server.address, timeout=3) as sock:
        dns.query.send_tcp(sock, query.to_wire())
        reply, _ = dns.query.receive_tcp(sock)
    assert reply.rcode() == dns.rcode.REFUSED and not reply.answer


def test_rfc1995_ixfr_sends_the_journalled_difference(serve: Serve, tmp_path: Path) -> None:
    server = serve("--config", str(_config(tmp_path)))
    _update(server, "www", "192.0.2.10")
    query = dns.message.make_query("example.test.", "IXFR")
    soa = dns.rrset.from_text(
        "example.test.",
        0,
        "IN",
        "SOA",
        "ns1.example.test. hostmaster.example.test. 100 7200 3600 1209600 300",
    )
    query.authority.append(soa)
    with socket.create_connection(server.address, timeout=3) as sock:
        dns.query.send_tcp(sock, query.to_wire())
        reply, _ = dns.query.receive_tcp(sock, one_rr_per_rrset=True)
    records = [(str(r.name), dns.rdatatype.to_text(r.rdtype)) for r in reply.answer]
    assert records[0] == ("example.test.", "SOA") and records[-1] == ("example.test.", "SOA")
    assert ("www.example.test.", "A") in records
    assert len(records) == 5  # new SOA, old SOA, new SOA, the addition, new SOA (RFC 1995 §4)


def _nsd_answer(nsd: Nsd, name: str) -> list[str]:
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=nsd.port, timeout=1)
    except dns.exception.Timeout:
        return []
    return [r.address for r in reply.answer[0]] if reply.answer else []


def _wait_for(nsd: Nsd, server: RunningServer, name: str, address: str) -> None:
    try:
        wait_until(lambda: _nsd_answer(nsd, name) == [address], timeout=15)
    except AssertionError:
        raise AssertionError(f"NSD does not answer {name}:\n{nsd.log()}\n{server.log_text()}") from None


@pytest.mark.interop
def test_nsd_secondary_follows_by_axfr_then_notify_and_ixfr(serve: Serve, tmp_path: Path) -> None:
    """NSD (Debian) as a secondary of dynmx: AXFR at start, then NOTIFY and IXFR after an UPDATE."""
    notify_port = free_port()  # NSD listens where dynmx's config sends NOTIFY
    server = serve("--config", str(_config(tmp_path, notify=f"127.0.0.1:{notify_port}")))
    zone_dir = tmp_path / "secondary"
    zone_dir.mkdir()
    options = {
        "example.test": [f"request-xfr: 127.0.0.1@{server.dns_port} NOKEY", "allow-notify: 127.0.0.1 NOKEY"]
    }
    try:
        nsd = Nsd(zone_dir, {"example.test": "example.test.zone"}, zone_options=options, port=notify_port)
    except NsdUnavailable as error:
        pytest.skip(str(error))
    nsd.start()
    try:
        _wait_for(nsd, server, "mx1.example.test", "127.0.0.2")  # the first AXFR
        _update(server, "www", "192.0.2.10")
        _wait_for(nsd, server, "www.example.test", "192.0.2.10")  # NOTIFY, then IXFR
        assert "event=notify-acked" in server.log_text()
        assert "kind=IXFR" in server.log_text()
    finally:
        nsd.stop()


def _answers(port: int, name: str) -> list[str]:
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=1)
    except dns.exception.Timeout:
        return []
    return [r.address for r in reply.answer[0]] if reply.answer else []


def _follows(port: int, change: Callable[[], None], address: str, *logs: Callable[[], str]) -> None:
    """The secondary on `port` gets ZONE, then the `change` that makes www.example.test. A `address`;
    an AssertionError carries the `logs` of both sides."""
    try:
        wait_until(lambda: _answers(port, "mx1.example.test") == ["127.0.0.2"], timeout=15)
        change()
        wait_until(lambda: _answers(port, "www.example.test") == [address], timeout=20)
    except AssertionError:
        raise AssertionError("the secondary did not follow:\n" + "\n".join(log() for log in logs)) from None


@pytest.mark.interop
def test_knot_secondary_follows_by_tsig_signed_axfr_then_notify_and_ixfr(
    serve: Serve, tmp_path: Path
) -> None:
    """Knot (Debian) as a secondary of dynmx, every transfer signed with TSIG (RFC 8945): AXFR
    at start, then NOTIFY and an IXFR (RFC 1995) after an UPDATE."""
    knot_port = free_port()
    server = serve("--config", str(_config(tmp_path, allow="ops-key.", notify=f"127.0.0.1:{knot_port}")))
    clauses = (
        f"key:\n  - id: ops-key.\n    algorithm: hmac-sha256\n    secret: {SECRET}\n"
        f"remote:\n  - id: primary\n    address: 127.0.0.1@{server.dns_port}\n    key: ops-key.\n"
        "acl:\n  - id: notify_from_primary\n    address: 127.0.0.1\n    action: notify\n"
        "zone:\n  - domain: example.test.\n    master: primary\n    acl: notify_from_primary\n"
    )
    try:
        knot = Knot(clauses, port=knot_port)
    except KnotUnavailable as error:
        pytest.skip(str(error))
    with knot:
        knot.start()
        _follows(
            knot.port, lambda: _update(server, "www", "192.0.2.10"), "192.0.2.10", knot.log, server.log_text
        )
        remote = f"incoming, remote 127.0.0.1@{server.dns_port}"  # allow_transfer has only the key
        assert f"AXFR, {remote}, finished" in knot.log(), knot.log()
        assert f"IXFR, {remote}, finished" in knot.log(), knot.log()
        assert "kind=IXFR" in server.log_text()


def _knot_primary(dynmx_port: int, key: bool = False) -> Knot:
    """Knot serving ZONE, NOTIFYing dynmx on `dynmx_port`; with `key` it transfers to ops-key. only."""
    key_clause = f"key:\n  - id: ops-key.\n    algorithm: hmac-sha256\n    secret: {SECRET}\n" if key else ""
    acl_key = "    key: ops-key.\n" if key else ""
    clauses = (
        f"{key_clause}remote:\n  - id: dynmx\n    address: 127.0.0.1@{dynmx_port}\n"
        f"acl:\n  - id: transfer\n    address: 127.0.0.0/8\n{acl_key}    action: transfer\n"
        "zone:\n  - domain: example.test.\n    notify: dynmx\n    acl: transfer\n"
    )
    try:
        return Knot(clauses, zone_files={"example.test.zone": ZONE})
    except KnotUnavailable as error:
        pytest.skip(str(error))


def _secondary_config(
    tmp_path: Path, dynmx_port: int, primary_port: int, zone_extra: str = "", workers: int = 0
) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir(exist_ok=True)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{dynmx_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "state"}"\nworkers = {workers}\n'
        f'[[key]]\nname = "ops-key."\nsecret = "{SECRET}"\n'
        f'[[zone]]\nname = "example.test."\nprimary = "127.0.0.1:{primary_port}"\n{zone_extra}'
    )
    return config


def _knot_edit(knot: Knot, name: str, address: str) -> None:
    knot.control("zone-begin", "example.test.")
    knot.control("zone-set", "example.test.", name, "300", "A", address)
    knot.control("zone-commit", "example.test.")


@pytest.mark.interop
def test_dynmx_as_secondary_of_knot_follows_an_ixfr_from_its_journal(serve: Serve, tmp_path: Path) -> None:
    """Knot as the primary: a change made with knotc is NOTIFYed, and dynmx's IXFR request is
    answered from Knot's journal (not an AXFR in its place)."""
    dynmx_port = free_port()
    with _knot_primary(dynmx_port) as knot:
        knot.start(wait_zone="example.test.")
        server = serve("--config", str(_secondary_config(tmp_path, dynmx_port, knot.port)))
        _follows(
            server.dns_port,
            lambda: _knot_edit(knot, "www", "192.0.2.44"),
            "192.0.2.44",
            knot.log,
            server.log_text,
        )
        ixfr = [line for line in knot.lines if "IXFR, outgoing" in line and "serial 100 -> 101" in line]
        assert ixfr, knot.log()  # the difference from the journal, not a whole zone
        assert "event=notify-received" in server.log_text()


@pytest.mark.interop
def test_rfc8945_dynmx_as_secondary_signs_its_transfer_requests_with_primary_key(
    serve: Serve, tmp_path: Path
) -> None:
    """A primary that transfers to a TSIG key only (Knot's acl with `key:`) is followed when the
    zone names that key as `primary_key`: the AXFR at start and the IXFR after a change."""
    dynmx_port = free_port()
    with _knot_primary(dynmx_port, key=True) as knot:
        knot.start(wait_zone="example.test.")
        config = _secondary_config(tmp_path, dynmx_port, knot.port, 'primary_key = "ops-key."\n')
        server = serve("--config", str(config))
        _follows(
            server.dns_port,
            lambda: _knot_edit(knot, "www", "192.0.2.45"),
            "192.0.2.45",
            knot.log,
            server.log_text,
        )
        assert any("AXFR, outgoing" in line for line in knot.lines), knot.log()
        ixfr = [line for line in knot.lines if "IXFR, outgoing" in line and "serial 100 -> 101" in line]
        assert ixfr, knot.log()
        with pytest.raises(dns.query.TransferError):  # Knot transfers to nobody without the key
            dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.test.", port=knot.port, timeout=3))


@pytest.mark.interop
def test_rfc8945_a_transfer_signed_with_the_wrong_secret_fails_and_is_logged(
    serve: Serve, tmp_path: Path
) -> None:
    """The primary answers NOTAUTH to a request its key does not verify (RFC 8945 §5.2.2); dynmx
    serves nothing for the zone and says why, instead of taking an unsigned answer."""
    dynmx_port = free_port()
    with _knot_primary(dynmx_port, key=True) as knot:
        knot.start(wait_zone="example.test.")
        config = _secondary_config(tmp_path, dynmx_port, knot.port, 'primary_key = "ops-key."\n')
        config.write_text(config.read_text().replace(SECRET, "d3JvbmdzZWNyZXR3cm9uZ3NlY3JldHdyb25nc2VjcmV0"))
        server = serve("--config", str(config))
        failed = "event=secondary-transfer-failed zone=example.test."
        line = server.wait_for_log(failed, timeout=15)
        assert line.rstrip().endswith(
            "error=PeerBadSignature"
        )  # Knot's TSIG error BADSIG, as dnspython names it
        assert _answers(server.dns_port, "mx1.example.test") == []


def _rcode(port: int, name: str = "example.test.", rdtype: str = "SOA") -> int:
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=2).rcode()


def _axfr_rcode(port: int) -> int:
    try:
        dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.test.", port=port, timeout=3))
    except dns.query.TransferError as error:
        return int(error.rcode)
    return dns.rcode.NOERROR


def _nsd_secondary(tmp_path: Path, primary_port: int) -> Nsd:
    """NSD (not started) as a secondary of example.test. following `primary_port`, giving AXFR
    to loopback (without `provide-xfr` it answered the AXFR of a zone with no copy REFUSED)."""
    (tmp_path / "nsd").mkdir()
    options = {
        "example.test": [f"request-xfr: 127.0.0.1@{primary_port} NOKEY", "provide-xfr: 127.0.0.0/8 NOKEY"]
    }
    try:
        return Nsd(tmp_path / "nsd", {"example.test": "example.test.zone"}, zone_options=options)
    except NsdUnavailable as error:
        pytest.skip(str(error))


@pytest.mark.interop
def test_a_secondary_zone_before_its_first_transfer_answers_servfail_as_nsd_does(
    serve: Serve, tmp_path: Path
) -> None:
    """No copy yet (the primary does not answer): SERVFAIL to queries and NOTAUTH to an AXFR,
    not REFUSED, as NSD answers."""
    silent = free_port()
    server = serve("--config", str(_secondary_config(tmp_path, 0, silent)))
    with _nsd_secondary(tmp_path, silent) as nsd:
        nsd_rcodes = [_rcode(nsd.port), _rcode(nsd.port, "www.example.test.", "A"), _axfr_rcode(nsd.port)]
    rcodes = [
        _rcode(server.dns_port),
        _rcode(server.dns_port, "www.example.test.", "A"),
        _axfr_rcode(server.dns_port),
    ]
    assert rcodes == nsd_rcodes == [dns.rcode.SERVFAIL, dns.rcode.SERVFAIL, dns.rcode.NOTAUTH]
    assert "event=zone-unavailable zone=example.test. reason=no-copy" in server.log_text()


FAST_EXPIRY = ZONE.replace("100 7200 3600 1209600 300", "100 1 1 4 300")  # refresh, retry 1 s; expire 4 s


@pytest.mark.parametrize("workers", [0, 2], ids=["one-process", "two-workers"])
def test_rfc1035_a_secondary_zone_answers_servfail_once_expire_passes_without_its_primary(
    serve: Serve, tmp_path: Path, workers: int
) -> None:
    """SOA EXPIRE (RFC 1035 §3.3.13): the copy is served while the primary is away for less,
    and no longer once EXPIRE seconds pass since it last answered."""
    primary = serve("--config", str(_config(tmp_path / "primary", zone=FAST_EXPIRY)))
    config = _secondary_config(tmp_path, 0, primary.dns_port, workers=workers)
    server = serve("--config", str(config))
    wait_until(lambda: _answers(server.dns_port, "mx1.example.test") == ["127.0.0.2"], timeout=15)
    primary.stop()
    stopped = time.monotonic()
    assert _answers(server.dns_port, "mx1.example.test") == ["127.0.0.2"]
    wait_until(lambda: _rcode(server.dns_port, "mx1.example.test.", "A") == dns.rcode.SERVFAIL, timeout=10)
    assert time.monotonic() - stopped > 2  # expire 4 s after the last refresh, at most 1 s before the stop
    assert "event=zone-unavailable zone=example.test. reason=expired" in server.log_text()


@pytest.mark.interop
def test_rfc1035_an_expired_secondary_zone_answers_servfail_as_nsd_does(serve: Serve, tmp_path: Path) -> None:
    """NSD 4.6.1 and dynmx follow one primary (SOA EXPIRE 4 s) that then stops: both answer
    SERVFAIL once EXPIRE passes. One difference, on purpose: NSD still transfers its expired
    copy, dynmx answers NOTAUTH (it does not pass stale data on to its own secondaries)."""
    primary = serve("--config", str(_config(tmp_path / "primary", zone=FAST_EXPIRY)))
    server = serve("--config", str(_secondary_config(tmp_path, 0, primary.dns_port)))
    with _nsd_secondary(tmp_path, primary.dns_port) as nsd:
        ports = (nsd.port, server.dns_port)
        wait_until(lambda: all(_answers(p, "mx1.example.test") == ["127.0.0.2"] for p in ports), timeout=15)
        primary.stop()
        wait_until(
            lambda: all(_rcode(p, "mx1.example.test.", "A") == dns.rcode.SERVFAIL for p in ports), timeout=10
        )
        assert _rcode(nsd.port) == _rcode(server.dns_port) == dns.rcode.SERVFAIL
        assert (_axfr_rcode(nsd.port), _axfr_rcode(server.dns_port)) == (dns.rcode.NOERROR, dns.rcode.NOTAUTH)


def test_status_and_metrics_report_the_secondary_zones_without_a_current_copy(
    serve: Serve, tmp_path: Path
) -> None:
    config = _secondary_config(tmp_path, 0, free_port())
    config.write_text(config.read_text() + '[http]\nlisten = "127.0.0.1:0"\n')
    server = serve("--config", str(config))
    with urllib.request.urlopen(authorized(server, "/status"), timeout=5) as reply:
        assert json.load(reply)["unavailable"] == ["example.test."]
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics", timeout=5) as reply:
        assert "dynmx_zone_unavailable_zones 1.0" in reply.read().decode().splitlines()


def _stale_copy(tmp_path: Path, age_days: float) -> None:
    """A copy of ZONE (SOA EXPIRE 14 days) whose file was last confirmed `age_days` ago."""
    zones = tmp_path / "zones"
    zones.mkdir()
    path = zones / "example.test.zone"
    path.write_text(ZONE)
    then = time.time() - age_days * 86400
    os.utime(path, (then, then))


@pytest.mark.parametrize(("age_days", "rcode"), [(13, dns.rcode.NOERROR), (15, dns.rcode.SERVFAIL)])
def test_rfc1035_a_restart_knows_a_copy_older_than_expire_from_its_file(
    serve: Serve, tmp_path: Path, age_days: float, rcode: int
) -> None:
    """The zone file's mtime is when the primary last confirmed the copy (NSD keeps it in
    xfrd.state): a restart serves a copy younger than EXPIRE and fails an older one."""
    _stale_copy(tmp_path, age_days)
    server = serve("--config", str(_secondary_config(tmp_path, 0, free_port())))
    assert _rcode(server.dns_port, "mx1.example.test.", "A") == rcode


def test_a_primary_that_confirms_an_expired_copy_makes_it_answer_again_and_stamps_its_file(
    serve: Serve, tmp_path: Path
) -> None:
    """An IXFR answered with our own serial (nothing newer) confirms the copy: it is served
    again, and its file's mtime is now, so a restart serves it too."""
    primary = serve("--config", str(_config(tmp_path / "primary", zone=ZONE)))
    _stale_copy(tmp_path, 15)
    started = time.time()
    server = serve("--config", str(_secondary_config(tmp_path, 0, primary.dns_port)))
    wait_until(lambda: _answers(server.dns_port, "mx1.example.test") == ["127.0.0.2"], timeout=15)
    log = server.log_text()
    assert "event=zone-unavailable zone=example.test. reason=expired" in log
    assert "event=zone-available zone=example.test." in log
    assert "event=secondary-updated" not in log  # confirmed, not transferred again
    assert (tmp_path / "zones" / "example.test.zone").stat().st_mtime >= started - 1


@pytest.mark.interop
def test_dynmx_as_secondary_of_nsd_follows_a_change(serve: Serve, tmp_path: Path) -> None:
    """dynmx follows NSD (the primary): AXFR at start, then NOTIFY and a transfer after NSD reloads."""
    primary_dir = tmp_path / "primary"
    primary_dir.mkdir()
    (primary_dir / "example.test.zone").write_text(ZONE)
    dynmx_port = free_port()
    options = {"example.test": [f"notify: 127.0.0.1@{dynmx_port} NOKEY", "provide-xfr: 127.0.0.0/8 NOKEY"]}
    try:
        nsd = Nsd(primary_dir, {"example.test": "example.test.zone"}, zone_options=options)
    except NsdUnavailable as error:
        pytest.skip(str(error))
    nsd.start()
    try:
        zones = tmp_path / "zones"
        zones.mkdir()
        config = tmp_path / "dynmx.toml"
        config.write_text(
            f'[server]\nlisten = ["127.0.0.1:{dynmx_port}"]\nzones_dir = "{zones}"\n'
            f'state_dir = "{tmp_path / "state"}"\n'
            f'[[zone]]\nname = "example.test."\nprimary = "127.0.0.1:{nsd.port}"\n'
        )
        server = serve("--config", str(config))

        def dynmx_has(name: str, address: str) -> bool:
            reply = dns.query.udp(
                dns.message.make_query(name, "A"), "127.0.0.1", port=server.dns_port, timeout=1
            )
            return bool(reply.answer) and [r.address for r in reply.answer[0]] == [address]

        wait_until(lambda: dynmx_has("mx1.example.test", "127.0.0.2"), timeout=15)
        (primary_dir / "example.test.zone").write_text(
            ZONE.replace(" 100 7200", " 101 7200") + "www  A   192.0.2.44\n"
        )
        assert nsd.pid is not None
        os.kill(nsd.pid, signal.SIGHUP)  # NSD re-reads the zone and NOTIFYs dynmx
        wait_until(lambda: dynmx_has("www.example.test", "192.0.2.44"), timeout=20)
        assert (zones / "example.test.zone").exists()  # what it received is persisted
        assert "event=secondary-updated" in server.log_text()
        assert "event=notify-received" in server.log_text()
    finally:
        nsd.stop()


def test_rfc8945_tsig_signed_axfr_is_allowed_by_key_and_every_message_verifies(
    serve: Serve, tmp_path: Path
) -> None:
    big = ZONE + "".join(f'h{i} TXT "{"x" * 200}"\n' for i in range(200))  # several messages
    config = write_config(tmp_path, big, EDITS + 'allow_transfer = ["192.0.2.0/24", "ops-key."]\n')
    server = serve("--config", str(config))
    xfr = dns.query.xfr(
        "127.0.0.1", "example.test.", port=server.dns_port, timeout=5, keyring=KEYRING, keyname="ops-key."
    )
    zone = dns.zone.from_xfr(xfr)  # dnspython checks the TSIG of every message (RFC 8945 §5.3.1)
    assert zone.get_rdataset("h199", "TXT") is not None
    assert "kind=AXFR messages=" in server.log_text() and "messages=1\n" not in server.log_text()
    query = dns.message.make_query("example.test.", "AXFR")
    with socket.create_connection(server.address, timeout=3) as sock:  # unsigned, from outside the prefix
        dns.query.send_tcp(sock, query.to_wire())
        reply, _ = dns.query.receive_tcp(sock)
    assert reply.rcode() == dns.rcode.REFUSED

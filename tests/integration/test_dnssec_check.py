"""A signing config dynmx cannot honour is refused by `dynmx check` (file:line: reason), at
the server's start (the zone is not served) and at a reload (the running config and zone stay).

The signed files are made by ldns-signzone (Debian's ldnsutils), as an operator would bring them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from dynmx.zone.keys import ensure_key, key_path
from tests.conftest import ROOT, RunningServer, write_config
from tests.signing import SignerUnavailable, sign_zone

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
"""
SIGN = '[[zone]]\nname = "example.test."\ndnssec = true\n'


def _dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def _line(config: Path, text: str) -> int:
    return config.read_text().splitlines().index(text) + 1


def _presigned(tmp_path: Path) -> str:
    """ZONE signed by ldns-signzone (NSEC), as text."""
    source = tmp_path / "unsigned.zone"
    source.write_text(ZONE)
    try:
        signed = sign_zone(source, "example.test.", tmp_path / "signed.zone", tmp_path / "ldns-keys")
    except SignerUnavailable as error:
        pytest.skip(str(error))
    return signed.read_text()


def _ask(server: RunningServer, qtype: str) -> dns.message.Message:
    query = dns.message.make_query(ORIGIN, qtype, want_dnssec=True)
    return dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=3)


def _dnskeys(server: RunningServer) -> set[str]:
    reply = _ask(server, "DNSKEY")
    return {rd.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.DNSKEY for rd in rrset}


def test_check_refuses_dnssec_on_a_file_signed_already(tmp_path: Path) -> None:
    """A pre-signed file is served as it is; `dnssec = true` on it would sign it twice."""
    config = write_config(tmp_path, _presigned(tmp_path), SIGN)
    run = _dynmx("check", "--config", str(config))
    assert run.returncode == 1
    zone_file = tmp_path / "zones" / "example.test.zone"
    assert (
        f"{config}:{_line(config, 'dnssec = true')}: zone[0].dnssec: {zone_file} is signed already"
        " (it holds DNSKEY at example.test.)" in run.stdout
    )


def test_check_refuses_an_algorithm_other_than_the_stored_keys(tmp_path: Path) -> None:
    """Changing dnssec_algorithm is a key rollover: the stored key would go on signing."""
    key = ensure_key(tmp_path / "state", ORIGIN, "ed25519")
    config = write_config(tmp_path, ZONE, SIGN + 'dnssec_algorithm = "ecdsap256sha256"\n')
    run = _dynmx("check", "--config", str(config), "--json")
    assert run.returncode == 1
    [problem] = json.loads(run.stdout)["problems"]
    line = _line(config, 'dnssec_algorithm = "ecdsap256sha256"')
    assert problem.startswith(
        f'{config}:{line}: zone[0].dnssec_algorithm: "ecdsap256sha256" is not the algorithm of the'
        f" zone's key (tag {key.tag}, ed25519, algorithm 15, in {key_path(tmp_path / 'state', ORIGIN)})"
    )
    assert problem.endswith('set dnssec_algorithm = "ed25519"')


def test_check_refuses_a_key_file_that_is_not_a_key(tmp_path: Path) -> None:
    path = key_path(tmp_path / "state", ORIGIN)
    path.parent.mkdir(parents=True)
    path.write_text("{}\n")
    config = write_config(tmp_path, ZONE, SIGN)
    run = _dynmx("check", "--config", str(config))
    assert run.returncode == 1
    assert f"zone[0].dnssec: {path}: not a dynmx DNSSEC key file" in run.stdout


def test_check_passes_a_signing_config_it_can_honour(tmp_path: Path) -> None:
    ensure_key(tmp_path / "state", ORIGIN, "ed25519")
    config = write_config(tmp_path, ZONE, SIGN + 'dnssec_algorithm = "ed25519"\n')
    run = _dynmx("check", "--config", str(config))
    assert run.returncode == 0, run.stdout


def test_check_passes_a_signed_file_served_as_it_is(tmp_path: Path) -> None:
    config = write_config(tmp_path, _presigned(tmp_path))
    assert _dynmx("check", "--config", str(config)).returncode == 0


def test_start_leaves_out_a_signed_file_with_dnssec_true(serve: Serve, tmp_path: Path) -> None:
    """The zone is refused as a broken zone file is: logged, in /status, not answered."""
    config = write_config(tmp_path, _presigned(tmp_path), SIGN)
    server = serve("--config", str(config))
    refused = server.wait_for_log("event=zone-refused")
    assert f"{config}:{_line(config, 'dnssec = true')}: zone[0].dnssec:" in refused
    assert _ask(server, "SOA").rcode() == dns.rcode.REFUSED
    assert not key_path(tmp_path / "state", ORIGIN).exists()  # nothing was signed


def test_reload_refuses_dnssec_true_on_a_served_signed_file_and_keeps_serving(
    serve: Serve, tmp_path: Path
) -> None:
    config = write_config(tmp_path, _presigned(tmp_path))
    server = serve("--config", str(config))
    before = _dnskeys(server)
    assert len(before) == 2  # ldns-signzone's KSK and ZSK
    config.write_text(config.read_text() + SIGN)
    run = _dynmx("reload", "--config", str(config))
    assert run.returncode == 1
    assert f"{config}:{_line(config, 'dnssec = true')}: zone[0].dnssec:" in run.stdout
    assert "event=config-refused" in server.log_text()
    assert _dnskeys(server) == before  # still served as the file signs it, not signed again
    assert not key_path(tmp_path / "state", ORIGIN).exists()


def test_reload_takes_dnssec_true_with_the_unsigned_file_put_back_at_once(
    serve: Serve, tmp_path: Path
) -> None:
    """Switching from a pre-signed file to signing by dynmx in one reload is not refused."""
    config = write_config(tmp_path, _presigned(tmp_path))
    server = serve("--config", str(config))
    (tmp_path / "zones" / "example.test.zone").write_text(ZONE.replace(" 1 7200", " 2 7200"))
    config.write_text(config.read_text() + SIGN)
    run = _dynmx("reload", "--config", str(config))
    assert run.returncode == 0, run.stdout + run.stderr
    key = ensure_key(tmp_path / "state", ORIGIN, "ecdsap256sha256")  # the one the server made
    assert _dnskeys(server) == {key.dnskey.to_text()}


def test_reload_keeps_the_signed_version_when_a_signed_file_replaces_it(serve: Serve, tmp_path: Path) -> None:
    """Under dnssec = true a hand-placed signed file is refused; the version dynmx signs stays."""
    config = write_config(tmp_path, ZONE, SIGN)
    server = serve("--config", str(config))
    before = _dnskeys(server)
    presigned = _presigned(tmp_path).replace(" 1 7200", " 5 7200")
    (tmp_path / "zones" / "example.test.zone").write_text(presigned)
    server.process.send_signal(signal.SIGHUP)
    refused = server.wait_for_log("event=zone-refused")
    assert "zone[0].dnssec:" in refused and "is signed already" in refused
    assert _dnskeys(server) == before
    soa = _ask(server, "SOA").answer[0]
    assert [rd.serial for rd in soa if rd.rdtype == dns.rdatatype.SOA] == [1]

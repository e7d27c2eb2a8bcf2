"""The DANE-aware smtp probe end to end: a real dynmx that serves the TLSA records itself and two
aiosmtpd sinks with STARTTLS on loopback. The member whose certificate does not match its
TLSA record (which every DANE sender would refuse, RFC 7672 3.1) leaves the MX answer after
`fall` probes, and returns once an UPDATE publishes a TLSA record that matches. Probes run
every 0.2 s (fall 2, rise 2); every wait is bounded."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import EDITS, TEST_SECRET, QuietSmtp, RunningServer, shared_free_port, wait_until
from tests.control_token import authorized
from tests.dane_sink import Cert, make_cert

ADDRESSES = {"mx1": "127.0.0.2", "mx2": "127.0.0.3"}
SNI: list[str | None] = []  # server names the sinks were asked for
KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})

Serve = Callable[..., RunningServer]


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Cert]:
    return {name: make_cert(tmp_path / "certs", f"{name}.example.test") for name in (*ADDRESSES, "stale")}


@pytest.fixture
def port(certs: dict[str, Cert]) -> Iterator[int]:
    """One STARTTLS sink per member address, each with its own certificate, all on one port."""
    port = shared_free_port(ADDRESSES.values())
    SNI.clear()
    controllers = []
    for name, address in ADDRESSES.items():
        context = certs[name].context()
        context.sni_callback = lambda _ssl, server_name, _context: SNI.append(server_name)
        controller = Controller(
            QuietSmtp(),
            hostname=address,
            port=port,
            server_hostname=f"{name}.example.test",
            tls_context=context,
        )
        controller.start()
        controllers.append(controller)
    yield port
    for controller in controllers:
        controller.stop()


@pytest.fixture
def server(serve: Serve, tmp_path: Path, certs: dict[str, Cert], port: int) -> RunningServer:
    """mx1's TLSA matches its certificate (beside a DANE-TA record, not checked); mx2's names a
    certificate it no longer serves."""
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(
        "$ORIGIN example.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\n"
        "ns1 A 127.0.0.1\n@ MX 10 mx1\n@ MX 20 mx2\n"
        + "".join(f"{name} A {address}\n" for name, address in ADDRESSES.items())
        + f"_25._tcp.mx1 TLSA {certs['mx1'].tlsa(1, 1)}\n"
        + f"_25._tcp.mx1 TLSA {certs['stale'].tlsa(0, 1, usage=2)}\n"
        + f"_25._tcp.mx2 TLSA {certs['stale'].tlsa(1, 1)}\n"
    )
    members = "".join(
        f'[[pool.member]]\nhost = "{name}.example.test."\npreference = {10 * (index + 1)}\n'
        f'probe = "smtp"\ntlsa = true\nport = {port}\ninterval = 0.2\ntimeout = 0.2\nfall = 2\nrise = 2\n'
        for index, name in enumerate(ADDRESSES)
    )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[http]\nlisten = "127.0.0.1:0"\n'
        + EDITS
        + '[[pool]]\nname = "example.test."\nstrategy = "round-robin"\nttl = 30\n'
        + members
    )
    return serve("--config", str(config))


def exchanges(server: RunningServer) -> set[str]:
    reply = dns.query.udp(
        dns.message.make_query("example.test", "MX"), "127.0.0.1", port=server.dns_port, timeout=2
    )
    return {str(r.exchange).split(".")[0] for r in reply.answer[0]}


def members(server: RunningServer) -> dict[str, dict[str, str]]:
    with urllib.request.urlopen(authorized(server, "/status"), timeout=5) as response:
        pool = json.loads(response.read())["pools"][0]
    return {m["host"].split(".")[0]: m for m in pool["members"]}


def test_mismatching_tlsa_takes_the_member_out_until_an_update_fixes_it(
    server: RunningServer, certs: dict[str, Cert]
) -> None:
    wait_until(lambda: members(server)["mx2"]["state"] == "down")
    mx2 = members(server)["mx2"]
    assert mx2["reason"] == "tlsa-mismatch"
    spki_sha256 = certs["mx2"].tlsa(1, 1).split()[3]
    assert f"spki-sha256={spki_sha256}" in mx2["evidence"]
    assert members(server)["mx1"]["state"] == "up"
    assert exchanges(server) == {"mx1"}
    line = server.wait_for_log("event=member-down")
    assert "host=mx2.example.test. " in line and "reason=tlsa-mismatch" in line

    update = dns.update.UpdateMessage(
        "example.test.", keyring=KEYRING, keyname=dns.name.from_text("ops-key.")
    )
    update.replace("_25._tcp.mx2.example.test.", 3600, "TLSA", certs["mx2"].tlsa(1, 1))
    assert dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=5).rcode() == dns.rcode.NOERROR
    wait_until(lambda: exchanges(server) == {"mx1", "mx2"})
    assert members(server)["mx2"]["state"] == "up"
    assert "mx2.example.test" in SNI  # RFC 7672 8.1: the TLSA base domain
    told = [line for line in server.lines if "event=tlsa-not-checked" in line]
    assert len(told) == 1 and "name=_25._tcp.mx1.example.test. records=2-0-1" in told[0], told

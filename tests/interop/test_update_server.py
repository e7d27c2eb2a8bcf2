"""RFC 2136 UPDATE with TSIG against a running dynmx: dnspython and BIND's nsupdate as clients."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from dynmx.zone.loader import load_zone_file
from tests.conftest import EDITS, TEST_SECRET, RunningServer, wait_until, write_config

SECRET = TEST_SECRET
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 100 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
mx1  A   127.0.0.2
"""
KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", SECRET)})

Serve = Callable[..., RunningServer]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    config = write_config(tmp_path, ZONE, EDITS)
    return config, tmp_path / "zones" / "example.test.zone"


def _update(server: RunningServer, keyring: object = KEYRING, **add: str) -> dns.message.Message:
    update = dns.update.UpdateMessage(
        "example.test.", keyring=keyring, keyname="ops-key." if keyring else None
    )
    for name, address in add.items():
        update.add(name, 300, "A", address)
    return dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=3)


def _lookup(server: RunningServer, name: str) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=server.dns_port, timeout=2)
    return [r.address for r in reply.answer[0]] if reply.answer else []


def test_rfc2136_signed_update_is_answered_at_once_and_the_reply_is_signed(
    serve: Serve, setup: tuple[Path, Path]
) -> None:
    config, _ = setup
    server = serve("--config", str(config))
    reply = _update(server, www="192.0.2.10")  # dnspython verifies the reply's TSIG (RFC 8945)
    assert reply.rcode() == dns.rcode.NOERROR and reply.had_tsig
    assert _lookup(server, "www.example.test") == ["192.0.2.10"]


def test_rfc2136_committed_update_reaches_the_zone_file_with_a_new_serial(
    serve: Serve, setup: tuple[Path, Path]
) -> None:
    """The file is written behind the acknowledgement (the journal makes it durable)."""
    config, zone_file = setup
    server = serve("--config", str(config))
    assert _update(server, www="192.0.2.10").rcode() == dns.rcode.NOERROR
    deadline = time.monotonic() + 10
    while "www" not in zone_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    loaded = load_zone_file(zone_file)
    assert loaded.zone.get_rdataset("www.example.test.", "A") is not None
    soa = loaded.zone.get_rdataset("example.test.", "SOA")
    assert soa is not None and soa[0].serial == 101


def test_unsigned_update_is_refused_and_changes_nothing(serve: Serve, setup: tuple[Path, Path]) -> None:
    config, zone_file = setup
    server = serve("--config", str(config))
    before = zone_file.read_text()
    reply = _update(server, keyring=None, www="192.0.2.10")
    assert reply.rcode() == dns.rcode.REFUSED
    assert _lookup(server, "www.example.test") == []
    assert zone_file.read_text() == before


def test_rfc8945_update_with_a_wrong_secret_is_notauth(serve: Serve, setup: tuple[Path, Path]) -> None:
    config, _ = setup
    server = serve("--config", str(config))
    wrong = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", "d3JvbmdzZWNyZXR3cm9uZ3NlY3JldA==")})
    update = dns.update.UpdateMessage("example.test.", keyring=wrong, keyname="ops-key.")
    update.add("www", 300, "A", "192.0.2.10")
    with socket.create_connection(server.address, timeout=3) as sock:
        dns.query.send_tcp(sock, update.to_wire())
        # RFC 8945 §5.3.2: NOTAUTH with TSIG error BADSIG, which dnspython reports as the peer's verdict.
        with pytest.raises(dns.tsig.PeerBadSignature):
            dns.query.receive_tcp(sock, keyring=wrong, request_mac=update.mac)
    assert _lookup(server, "www.example.test") == []


def test_acknowledged_update_survives_a_kill(serve: Serve, setup: tuple[Path, Path]) -> None:
    config, _ = setup
    first = serve("--config", str(config))
    assert _update(first, www="192.0.2.10").rcode() == dns.rcode.NOERROR
    first.stop(signal.SIGKILL)
    second = serve("--config", str(config))
    assert _lookup(second, "www.example.test") == ["192.0.2.10"]


def _nsupdate(server: RunningServer, key: str, name: str, address: str) -> subprocess.CompletedProcess[str]:
    """BIND's nsupdate adding one A record, signed with `key` (ALGORITHM:NAME:SECRET)."""
    nsupdate = shutil.which("nsupdate")
    if nsupdate is None:
        pytest.skip("nsupdate not installed (./dev test installs dnsutils)")
    script = (
        f"server 127.0.0.1 {server.dns_port}\nzone example.test\nupdate add {name} 300 A {address}\nsend\n"
    )
    return subprocess.run([nsupdate, "-y", key], input=script, capture_output=True, text=True, timeout=20)


@pytest.mark.interop
def test_bind_nsupdate_changes_a_running_zone(serve: Serve, setup: tuple[Path, Path]) -> None:
    config, _ = setup
    server = serve("--config", str(config))
    result = _nsupdate(server, f"hmac-sha256:ops-key:{SECRET}", "mail.example.test", "192.0.2.25")
    assert result.returncode == 0, result.stderr
    assert _lookup(server, "mail.example.test") == ["192.0.2.25"]


@pytest.mark.interop
def test_rfc8945_bind_nsupdate_reads_badsig_and_badkey(serve: Serve, setup: tuple[Path, Path]) -> None:
    config, _ = setup
    server = serve("--config", str(config))
    wrong = "d3JvbmdzZWNyZXR3cm9uZ3NlY3JldA=="
    for key, expected in (("ops-key", "NOTAUTH(BADSIG)"), ("other-key", "NOTAUTH(BADKEY)")):
        result = _nsupdate(server, f"hmac-sha256:{key}:{wrong}", "x.example.test", "192.0.2.9")
        assert expected in result.stdout + result.stderr


def test_key_rules_limit_names_and_types(serve: Serve, tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[key]]\nname = "ops-key."\nsecret = "{SECRET}"\nnames = ["*.dyn.example.test."]\ntypes = ["A"]\n'
        '[[zone]]\nname = "example.test."\nallow_update = ["ops-key."]\n'
    )
    server = serve("--config", str(config))
    assert _update(server, **{"home.dyn": "192.0.2.5"}).rcode() == dns.rcode.NOERROR
    assert _update(server, www="192.0.2.6").rcode() == dns.rcode.REFUSED  # outside the key's names
    update = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname="ops-key.")
    update.add("home.dyn", 300, "TXT", '"x"')
    assert dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=3).rcode() == dns.rcode.REFUSED
    assert _lookup(server, "www.example.test") == []


def test_updates_acknowledged_during_reloads_are_never_lost(serve: Serve, tmp_path: Path) -> None:
    """A reload reads the files off the loop while UPDATEs commit: what it read must not replace a
    newer committed version (found by the soak run: 4 of 988 acknowledged adds lost)."""
    big = ZONE + "".join(f"host{i} A 192.0.2.{i % 250 + 1}\n" for i in range(2000))
    config = write_config(tmp_path, big, EDITS + '[http]\nlisten = "127.0.0.1:0"\n')
    server = serve("--config", str(config))
    added = []
    for index in range(40):  # bounded: 40 updates, a reload started before every 4th
        if index % 4 == 0:
            server.process.send_signal(signal.SIGHUP)
        assert _update(server, **{f"race{index}": "192.0.2.200"}).rcode() == dns.rcode.NOERROR
        added.append(f"race{index}.example.test")
    server.wait_for_log("event=zone-loaded", timeout=10)
    reloads = sum(1 for index in range(40) if index % 4 == 0)  # one `event=reloaded` per SIGHUP
    wait_until(lambda: sum("event=reloaded " in line for line in server.lines) >= reloads, timeout=30)
    assert [name for name in added if not _lookup(server, name)] == []
    server.stop()
    restarted = serve("--config", str(config))
    assert [name for name in added if not _lookup(restarted, name)] == []


def test_answers_go_on_while_an_update_to_a_large_zone_compiles(
    serve: Serve, setup: tuple[Path, Path]
) -> None:
    """An edit compiles off the loop: queries sent after the UPDATE are answered before its
    acknowledgement, and the acknowledgement waits until the edit is served."""
    config, zone_file = setup
    zone_file.write_text(ZONE + "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(10_000)))
    server = serve("--config", str(config))
    times: dict[str, float] = {}

    def send_update() -> None:
        update = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname="ops-key.")
        update.add("www", 300, "A", "192.0.2.10")
        update.add("*.www", 300, "A", "192.0.2.10")  # a wildcard: the whole zone compiled, not a few names
        times["sent"] = time.monotonic()
        reply = dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=60)
        times["acked"] = time.monotonic()
        assert reply.rcode() == dns.rcode.NOERROR

    updater = threading.Thread(target=send_update)
    updater.start()
    answered_meanwhile = 0
    deadline = time.monotonic() + 60
    for _ in range(5000):
        if "acked" in times or time.monotonic() > deadline:
            break
        sent = time.monotonic()
        assert _lookup(server, "ns1.example.test") == ["127.0.0.1"]
        if "sent" in times and sent > times["sent"] + 0.05 and "acked" not in times:
            answered_meanwhile += 1
    updater.join(60)
    assert "acked" in times
    assert answered_meanwhile > 0, f"UPDATE took {times['acked'] - times['sent']:.2f} s, no answer meanwhile"
    assert _lookup(server, "www.example.test") == ["192.0.2.10"]


def test_rfc7766_s6_2_3_a_connection_waiting_for_its_update_reply_is_not_idle(
    tmp_path: Path, serve: Serve
) -> None:
    """The reply to an UPDATE waits for its compile, here longer than the idle timeout: the
    connection stays open for it (it was closed, and the client got EOF, not its NOERROR)."""
    large = ZONE + "".join(f"h{i} A 192.0.2.{i % 250 + 1}\n" for i in range(10_000))
    config = write_config(tmp_path, large, "tcp_idle_timeout = 0.1\n" + EDITS)
    server = serve("--config", str(config))
    update = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname="ops-key.")
    update.add("*.www", 300, "A", "192.0.2.10")  # a wildcard: the whole zone compiled, not a few names
    started = time.monotonic()
    reply = dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=60)
    assert reply.rcode() == dns.rcode.NOERROR
    assert time.monotonic() - started > 0.1  # slower than the idle timeout, or this proves nothing


def test_a_reload_after_an_update_keeps_the_edited_zone_without_parsing_its_file(
    serve: Serve, setup: tuple[Path, Path]
) -> None:
    """The file holds what the write-back wrote from the served version: nothing changed."""
    config, _ = setup
    server = serve("--config", str(config))
    assert _update(server, www="192.0.2.10").rcode() == dns.rcode.NOERROR
    server.process.send_signal(signal.SIGHUP)
    assert "changed=0 incremental=yes table=kept" in server.wait_for_log("event=reloaded")
    assert _lookup(server, "www.example.test") == ["192.0.2.10"]

"""A warm start through the real server: a restart with unchanged zone files answers from the
answer store (state_dir/answers.sqlite) exactly as a cold start does, and a kill -9 at any
point (while the store is written, after an UPDATE) leaves a restart serving exactly what the
zone files and the journal say."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from tests.conftest import EDITS, TEST_SECRET, RunningServer

Serve = Callable[..., RunningServer]
ZONES = 60
KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})


def zone_text(origin: str) -> str:
    return (
        f"$ORIGIN {origin}.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 900 1209600 300\n"
        '@ NS ns1\n@ MX 10 mx\n@ TXT "v=spf1 mx -all"\nns1 A 192.0.2.53\nmx A 192.0.2.25\n'
        "*.wild A 192.0.2.99\nalias CNAME mx.z1.test.\n"
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(zone_text("example.test"))
    for index in range(ZONES):
        (zones / f"z{index}.test.zone").write_text(zone_text(f"z{index}.test"))
    path = tmp_path / "dynmx.toml"
    path.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nstate_dir = "{tmp_path / "state"}"\n'
        + EDITS
    )
    time.sleep(2.1)  # past the racy window: the store trusts the files' stamps
    return path


QUESTIONS = [
    (f"{name}{origin}.", rdtype)
    for origin in ["example.test", *(f"z{i}.test" for i in range(0, ZONES, 7))]
    for name, rdtype in [
        ("", "MX"),
        ("", "TXT"),
        ("", "SOA"),
        ("mx.", "A"),
        ("nx.", "A"),
        ("a.wild.", "A"),
        ("alias.", "A"),
        ("", "AAAA"),
    ]
]


def answers(server: RunningServer) -> dict[tuple[str, str], bytes]:
    """Each question's reply, ID zeroed (the rest must be byte-identical)."""
    found = {}
    for name, rdtype in QUESTIONS:
        query = dns.message.make_query(name, rdtype)
        reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=3)
        found[(name, rdtype)] = b"\x00\x00" + reply.to_wire()[2:]
    return found


def update_txt(server: RunningServer, text: str) -> int:
    update = dns.update.UpdateMessage(
        "example.test.", keyring=KEYRING, keyname=dns.name.from_text("ops-key.")
    )
    update.add("kept.example.test.", 300, "TXT", f'"{text}"')
    return dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=5).rcode()


def txt(server: RunningServer) -> list[str]:
    query = dns.message.make_query("kept.example.test.", "TXT")
    reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=3)
    return [rdata.to_text() for rrset in reply.answer for rdata in rrset]


def test_restart_with_unchanged_files_answers_as_the_cold_start(serve: Serve, config: Path) -> None:
    cold = serve("--config", str(config))
    cold.wait_for_log("event=answer-store-written")
    expected = answers(cold)
    cold.stop()
    warm = serve("--config", str(config))
    line = warm.wait_for_log("event=answer-store-read")
    assert f"zones={ZONES + 1} stale=0" in line
    assert answers(warm) == expected


def test_a_changed_file_is_read_again_at_a_warm_start(serve: Serve, config: Path) -> None:
    first = serve("--config", str(config))
    first.wait_for_log("event=answer-store-written")
    first.stop()
    zone = config.parent / "zones" / "z7.test.zone"
    zone.write_text(zone_text("z7.test").replace("192.0.2.25", "198.51.100.25"))
    warm = serve("--config", str(config))
    assert f"zones={ZONES + 1} stale=0" in warm.wait_for_log("event=answer-store-read")
    assert f"zones={ZONES} changed=1" in warm.wait_for_log("event=answer-store-used")
    reply = dns.query.udp(
        dns.message.make_query("mx.z7.test.", "A"), "127.0.0.1", port=warm.dns_port, timeout=3
    )
    assert [r.to_text() for rrset in reply.answer for r in rrset] == ["198.51.100.25"]


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2])
def test_kill_9_while_the_store_is_written_then_restart_serves_the_files(
    serve: Serve, config: Path, delay: float
) -> None:
    cold = serve("--config", str(config))
    expected = answers(cold)
    time.sleep(delay)
    cold.stop(signal.SIGKILL)
    again = serve("--config", str(config))
    again.wait_for_log("event=answer-store-read")
    assert answers(again) == expected


def test_update_on_a_warm_start_then_kill_9_then_restart_serves_the_journal(
    serve: Serve, config: Path
) -> None:
    """The edited zone was served unread: the UPDATE reads it then; after kill -9 (the file may
    be behind the journal) the next start serves the change, not the stored answers."""
    first = serve("--config", str(config))
    first.wait_for_log("event=answer-store-written")
    first.stop()
    warm = serve("--config", str(config))
    assert update_txt(warm, "after a warm start") == dns.rcode.NOERROR
    assert txt(warm) == ['"after a warm start"']
    warm.stop(signal.SIGKILL)
    again = serve("--config", str(config))
    assert txt(again) == ['"after a warm start"']


def test_reload_after_a_warm_start_serves_a_changed_file(serve: Serve, config: Path) -> None:
    """SIGHUP after a warm start: the unread zones are kept by their stamps, the changed
    file is read and served, and a zone whose CNAME reaches into it follows the change."""
    first = serve("--config", str(config))
    first.wait_for_log("event=answer-store-written")
    first.stop()
    warm = serve("--config", str(config))
    zone = config.parent / "zones" / "z1.test.zone"
    new = zone_text("z1.test").replace("192.0.2.25", "198.51.100.1").replace("hostmaster 1 ", "hostmaster 2 ")
    zone.write_text(new)  # a hand edit with a newer serial: judged against the served version, taken
    warm.process.send_signal(signal.SIGHUP)
    warm.wait_for_log("event=reloaded")
    query = dns.message.make_query("alias.z5.test.", "A")  # alias CNAME mx.z1.test.
    reply = dns.query.udp(query, "127.0.0.1", port=warm.dns_port, timeout=3)
    assert [r.to_text() for rrset in reply.answer for r in rrset] == ["mx.z1.test.", "198.51.100.1"]


def test_reload_after_a_warm_start_refuses_a_change_without_a_new_serial(serve: Serve, config: Path) -> None:
    """The served version of an unread zone is the stored one: a hand edit that keeps the
    serial is refused against it and the served answers stay, as after a cold start."""
    first = serve("--config", str(config))
    first.wait_for_log("event=answer-store-written")
    first.stop()
    warm = serve("--config", str(config))
    zone = config.parent / "zones" / "z1.test.zone"
    zone.write_text(zone_text("z1.test").replace("192.0.2.25", "198.51.100.1"))
    warm.process.send_signal(signal.SIGHUP)
    assert "SOA serial is still 1" in warm.wait_for_log("event=zone-refused")
    reply = dns.query.udp(
        dns.message.make_query("mx.z1.test.", "A"), "127.0.0.1", port=warm.dns_port, timeout=3
    )
    assert [r.to_text() for rrset in reply.answer for r in rrset] == ["192.0.2.25"]


def _writes(server: RunningServer) -> int:
    return server.log_text().count("event=answer-store-written")


@pytest.mark.parametrize("change", ["added", "removed"])
def test_a_zone_added_or_removed_by_a_reload_is_written_to_the_store_so_the_restart_is_warm(
    serve: Serve, config: Path, change: str
) -> None:
    """Knot keeps its zone database current as zones come and go; without writing again the
    next start would find the store's origins changed and compile every zone."""
    first = serve("--config", str(config))
    first.wait_for_log("event=answer-store-written")
    zones = config.parent / "zones"
    if change == "added":
        (zones / "new.test.zone").write_text(zone_text("new.test"))
        served = ZONES + 2
    else:
        (zones / "z3.test.zone").unlink()
        served = ZONES
    first.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while _writes(first) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _writes(first) == 2
    first.stop()
    warm = serve("--config", str(config))
    assert f"zones={served} changed=0" in warm.wait_for_log("event=answer-store-used")
    reply = dns.query.udp(
        dns.message.make_query("mx.new.test." if change == "added" else "mx.z3.test.", "A"),
        "127.0.0.1",
        port=warm.dns_port,
        timeout=3,
    )
    assert reply.rcode() == (dns.rcode.NOERROR if change == "added" else dns.rcode.REFUSED)

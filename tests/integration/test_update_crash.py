"""Crash safety of the one writer: kill -9 during a stream of 500 UPDATEs loses no acknowledged change.

A client sends signed updates one after another (each adds one name); the server is
killed with SIGKILL at random moments and restarted. Afterwards every update the
server acknowledged is in the zone, the zone file parses, and the journal's serials
only ever increase (RFC 1982).
"""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from dynmx.control.journal import Journal
from dynmx.zone.loader import load_zone_file
from tests.conftest import EDITS, TEST_SECRET, RunningServer, write_config

SECRET = TEST_SECRET
KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", SECRET)})
UPDATES = 500
KILLS = 4
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
"""
Serve = Callable[..., RunningServer]


def _send(port: int, index: int) -> bool:
    """One update; True when the server acknowledged it with NOERROR."""
    update = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname="ops-key.")
    update.add(f"h{index}", 300, "A", f"10.0.{index // 256}.{index % 256}")
    try:
        return dns.query.tcp(update, "127.0.0.1", port=port, timeout=2).rcode() == dns.rcode.NOERROR
    except (OSError, EOFError, dns.exception.DNSException):  # EOFError: killed mid-reply
        return False


def _send_into(result: list[bool], port: int, index: int) -> None:
    result.append(_send(port, index))


def _newer(new: int, old: int) -> bool:
    return new != old and (new - old) % 2**32 < 2**31


@pytest.mark.timeout(300)
def test_kill_9_during_500_updates_loses_no_acknowledged_update(serve: Serve, tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE, EDITS)
    zone_file = tmp_path / "zones" / "example.test.zone"
    rng = random.Random(9)
    kill_at = sorted(rng.sample(range(20, UPDATES - 20), KILLS))
    acknowledged: list[int] = []
    server = serve("--config", str(config))
    deadline = time.monotonic() + 240
    index = 0
    while index < UPDATES and time.monotonic() < deadline:
        if kill_at and index == kill_at[0]:
            kill_at.pop(0)
            # Kill while this update is in flight: anywhere in parsing, journal, file write or reply.
            result: list[bool] = []
            sender = threading.Thread(target=_send_into, args=(result, server.dns_port, index))
            sender.start()
            time.sleep(rng.uniform(0, 0.02))
            server.stop(signal.SIGKILL)
            sender.join(5)
            server = serve("--config", str(config))
            if result and result[0]:
                acknowledged.append(index)
                index += 1
            continue  # an unacknowledged update is sent again (adding a record twice is no change)
        if _send(server.dns_port, index):
            acknowledged.append(index)
            index += 1
    server.stop(signal.SIGKILL)
    assert index == UPDATES, f"only {index} updates went through in time"
    final = serve("--config", str(config))  # start-up reconciles the journal with the file
    final.stop()
    zone = load_zone_file(zone_file).zone
    missing = [i for i in acknowledged if zone.get_rdataset(f"h{i}.example.test.", "A") is None]
    assert not missing, f"acknowledged but lost: {missing[:10]}"
    journal = Journal(tmp_path / "state" / "journal.sqlite")
    serials = [entry.new_serial for entry in journal.entries("example.test.")]
    journal.close()
    assert all(_newer(b, a) for a, b in itertools.pairwise(serials))
    print(f"updates={UPDATES} acknowledged={len(acknowledged)} kills={KILLS} journal_entries={len(serials)}")

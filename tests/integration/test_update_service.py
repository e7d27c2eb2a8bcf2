"""UpdateService under attack (issue 23 items 3 and 4), through the engine as `serve` wires it
(tests/helpers_fuzz.py `controlled_engine`), no sockets.

* What the raw wire says is checked before dnspython parses the message (RFC 2136 §3.1,
  §3.3): the zone, the TSIG and its key's place in `allow_update`, the record count
  (`[server] max_update_records`). 58 KB unsigned UPDATEs were parsed in full (~90 ms each)
  before they were refused.
* A large update is parsed and planned on a thread, committed back on the loop on the
  version it was planned on, and planned again if another edit committed meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.update
import pytest

from dynmx.app import update_service as app_update
from dynmx.control.writer import StaleBase, serial_of
from dynmx.zone.loader import LoadedZone
from tests.helpers_fuzz import (
    DYN_KEY,
    DYN_KEYRING,
    EXAMPLE,
    KEY_NAME,
    KEYRING,
    OUTSIDER,
    PEER,
    STRANGER_KEY,
    STRANGER_KEYRING,
    ControlledEngine,
    controlled_engine,
    settle,
)

LARGE = 300  # records: over LARGE_UPDATE, under max_update_records


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[ControlledEngine]:
    controlled = controlled_engine(tmp_path)
    yield controlled
    controlled.close()


def big_update(
    count: int, zone: str = "example.test.", keyring: object = None, keyname: str | None = None
) -> bytes:
    """An UPDATE adding `count` A records, as an attacker's 58 KB datagram (2,700 records)."""
    update = dns.update.UpdateMessage(zone, keyring=keyring, keyname=keyname)  # type: ignore[arg-type]
    for index in range(count):
        update.add(f"h{index}.out.{zone}", 300, "A", "192.0.2.1")
    return update.to_wire()


def rcode(reply: object) -> dns.rcode.Rcode:
    assert isinstance(reply, bytes)
    return dns.message.from_wire(reply, keyring=False).rcode()


def send(wired: ControlledEngine, data: bytes, peer: tuple[str, int] = PEER) -> object:
    return settle(wired.engine.handle(data, peer, False))


def test_rfc2136_3_3_unsigned_update_is_refused_before_it_is_parsed(wired: ControlledEngine) -> None:
    data = big_update(2700)
    assert len(data) > 50_000
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dns.message, "from_wire", _forbidden)
        reply = send(wired, data)
    assert rcode(reply) == dns.rcode.REFUSED


def test_rfc2136_3_3_key_not_in_allow_update_is_refused_before_the_update_is_parsed(
    wired: ControlledEngine,
) -> None:
    """The TSIG verifies (the reply is signed), but the key may not update this zone."""
    data = big_update(2700, keyring=STRANGER_KEYRING, keyname=STRANGER_KEY)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dns.message, "from_wire", _forbidden)
        reply = send(wired, data)
    assert isinstance(reply, bytes)
    parsed = dns.message.from_wire(reply, keyring=STRANGER_KEYRING, request_mac=_mac(data, STRANGER_KEYRING))
    assert parsed.rcode() == dns.rcode.REFUSED and parsed.had_tsig


def test_rfc2136_3_1_1_update_of_a_zone_not_served_is_notauth_before_it_is_parsed(
    wired: ControlledEngine,
) -> None:
    data = big_update(2700, zone="nowhere.test.")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dns.message, "from_wire", _forbidden)
        reply = send(wired, data)
    assert rcode(reply) == dns.rcode.NOTAUTH


def test_update_over_max_update_records_is_refused_before_it_is_parsed(wired: ControlledEngine) -> None:
    """Issue 23 item 3: `[server] max_update_records` (1,000 by default) caps one UPDATE."""
    data = big_update(1001, keyring=KEYRING, keyname=KEY_NAME)
    serial = serial_of(wired.zones[EXAMPLE].zone)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dns.message, "from_wire", _forbidden)
        reply = send(wired, data)
    assert rcode(reply) == dns.rcode.REFUSED
    assert serial_of(wired.zones[EXAMPLE].zone) == serial


def test_rfc5936_4_2_transfer_refused_before_the_request_is_parsed(wired: ControlledEngine) -> None:
    """An AXFR from a peer not in allow_transfer, carrying 2,000 junk records, is REFUSED unparsed."""
    axfr = dns.message.make_query("example.test.", "AXFR")
    for index in range(2000):
        axfr.additional.append(dns.rrset.from_text(f"j{index}.example.test.", 0, "IN", "A", "192.0.2.1"))
    data = axfr.to_wire()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dns.message, "from_wire", _forbidden)
        replies = wired.engine.handle_tcp(data, OUTSIDER)
    assert isinstance(replies, list) and rcode(replies[0]) == dns.rcode.REFUSED


def test_rfc2136_3_4_large_update_is_planned_on_a_thread_and_committed(
    wired: ControlledEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 23 item 3: planning ran on the event loop; from LARGE_UPDATE records it runs on the
    planner thread (the commit comes back to the loop)."""
    threads: list[str] = []
    evaluate = app_update.evaluate

    def watched(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return evaluate(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app_update, "evaluate", watched)
    data = big_update(LARGE, keyring=KEYRING, keyname=KEY_NAME)
    reply = wired.engine.handle(data, PEER, False)
    assert not isinstance(reply, bytes)  # to come: the plan is on its way
    assert rcode(settle(reply)) == dns.rcode.NOERROR
    assert threads and all(name.startswith("dynmx-update-plan") for name in threads)
    assert threading.current_thread().name not in threads
    assert wired.zones[EXAMPLE].zone.get_node("h7.out.example.test.") is not None


def test_rfc2136_3_4_large_update_out_of_the_keys_scope_is_refused(wired: ControlledEngine) -> None:
    data = big_update(LARGE, keyring=DYN_KEYRING, keyname=DYN_KEY)
    serial = serial_of(wired.zones[EXAMPLE].zone)
    assert rcode(send(wired, data)) == dns.rcode.REFUSED
    assert serial_of(wired.zones[EXAMPLE].zone) == serial


def test_large_update_planned_on_a_stale_version_is_planned_again(
    wired: ControlledEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The owner refuses a commit on a stale base; the update is planned again on the new head."""
    owner = wired.updates.owner
    commit = owner.commit_durably
    calls: list[int] = []

    async def stale_once(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise StaleBase("example.test.: planned on an older serial")
        return await commit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(owner, "commit_durably", stale_once)
    reply = send(wired, big_update(LARGE, keyring=KEYRING, keyname=KEY_NAME))
    assert rcode(reply) == dns.rcode.NOERROR and len(calls) == 2


def test_large_update_whose_zone_was_replaced_while_planned_is_planned_on_the_new_one(
    wired: ControlledEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version swapped in while the plan ran (a reload, say) is what the commit must build on."""
    plan = wired.updates.plan
    planned_on: list[LoadedZone] = []

    def replacing(zone: LoadedZone, *args: object) -> object:
        planned_on.append(zone)
        if len(planned_on) == 1:
            wired.zones[EXAMPLE] = LoadedZone(zone.origin, zone.zone, zone.path)  # a new version object
        return plan(zone, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(wired.updates, "plan", replacing)
    reply = send(wired, big_update(LARGE, keyring=KEYRING, keyname=KEY_NAME))
    assert rcode(reply) == dns.rcode.NOERROR
    assert len(planned_on) == 2 and planned_on[1] is not planned_on[0]


def test_large_update_stale_at_every_attempt_is_servfail(
    wired: ControlledEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def always_stale(*_: object, **__: object) -> object:
        raise StaleBase("example.test.: planned on an older serial")

    monkeypatch.setattr(wired.updates.owner, "commit_durably", always_stale)
    reply = send(wired, big_update(LARGE, keyring=KEYRING, keyname=KEY_NAME))
    assert rcode(reply) == dns.rcode.SERVFAIL


def test_large_updates_beyond_the_waiting_bound_are_servfail(wired: ControlledEngine) -> None:
    """At most `max_waiting` large updates wait for the planner; the next is turned away at once."""
    wired.updates.max_waiting = 1
    data = big_update(LARGE, keyring=KEYRING, keyname=KEY_NAME)

    async def two() -> tuple[object, object]:
        first = wired.engine.handle(data, PEER, False)
        second = wired.engine.handle(data, PEER, False)
        assert not isinstance(first, bytes) and isinstance(second, bytes)
        return await first, second  # type: ignore[misc]

    first, second = asyncio.run(two())
    assert rcode(first) == dns.rcode.NOERROR and rcode(second) == dns.rcode.SERVFAIL


def _forbidden(*_: object, **__: object) -> None:
    raise AssertionError("the message was parsed before it was refused")


def _mac(data: bytes, keyring: object) -> bytes:
    """The request MAC of a signed message (to verify the signed reply)."""
    return dns.message.from_wire(data, keyring=keyring).mac  # type: ignore[arg-type]

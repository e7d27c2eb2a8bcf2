"""Registrar push rules (sans-IO, injected clock), their SQLite state, and the glue warning."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.selfcheck.registrar import (
    AdapterState,
    AdapterStateStore,
    Outcome,
    PushReport,
    PushResult,
    RegistrarScheduler,
    glue_warning,
    push_all,
)

RULES = RegistrarScheduler()
DAY = 86400.0
T0 = 1_700_000_000.0
OK = PushResult(Outcome.SUCCESS, "good")
NOCHG = PushResult(Outcome.SUCCESS, "nochg", nochg=True)
STOP = PushResult(Outcome.STOP, "badauth")
BACKOFF = PushResult(Outcome.BACKOFF, "911")
RETRY = PushResult(Outcome.RETRY, "connection refused")


def fresh() -> AdapterState:
    return AdapterState("reg", "ns1.example.test.", 4, "fp")


def sent(state: AdapterState, address: str, result: PushResult, now: float) -> AdapterState:
    assert RULES.due(state, address, now)[0], RULES.due(state, address, now)
    return RULES.record(state, address, result, now)


@dataclass
class Scripted:
    """An adapter answering from a script; records what it was asked."""

    results: list[PushResult]
    config: str = "v1"
    name: str = "scripted"
    kind: str = "test"
    calls: list[tuple[str, int, str, str | None]] = field(default_factory=list)

    def fingerprint(self) -> str:
        return self.config

    async def push(self, hostname: str, family: int, address: str, previous: str | None) -> PushResult:
        self.calls.append((hostname, family, address, previous))
        return self.results.pop(0)


def offer(
    adapter: Scripted, store: AdapterStateStore, address: str, now: float, previous: str | None = None
) -> PushReport:
    reports = asyncio.run(push_all([adapter], store, "ns1.example.test.", 4, address, previous, now))
    return reports[0]


def test_a_new_address_is_due_at_once() -> None:
    assert RULES.due(fresh(), "192.0.2.1", T0) == (True, "address changed")


def test_the_confirmed_address_is_not_sent_again() -> None:
    state = sent(fresh(), "192.0.2.1", OK, T0)
    assert RULES.due(state, "192.0.2.1", T0 + DAY) == (False, "unchanged")


def test_the_confirmed_address_is_refreshed_after_max_interval() -> None:
    state = sent(fresh(), "192.0.2.1", OK, T0)
    assert not RULES.due(state, "192.0.2.1", T0 + 25 * DAY - 1)[0]
    assert RULES.due(state, "192.0.2.1", T0 + 25 * DAY) == (True, "forced refresh")


def test_a_change_within_min_interval_waits() -> None:
    state = sent(fresh(), "192.0.2.1", OK, T0)
    send, why = RULES.due(state, "192.0.2.2", T0 + 299)
    assert not send and "rate limited" in why
    assert RULES.due(state, "192.0.2.2", T0 + 300)[0]


def test_retry_waits_min_interval_only() -> None:
    state = sent(fresh(), "192.0.2.1", RETRY, T0)
    assert not RULES.due(state, "192.0.2.1", T0 + 299)[0]
    assert RULES.due(state, "192.0.2.1", T0 + 300)[0]


def test_stop_holds_for_any_address_and_any_time() -> None:
    state = sent(fresh(), "192.0.2.1", STOP, T0)
    send, why = RULES.due(state, "192.0.2.9", T0 + 100 * DAY)
    assert not send and why == "stopped until the config changes: badauth"


def test_backoff_starts_at_30_minutes_and_doubles_up_to_a_day() -> None:
    state, now, waits = fresh(), T0, []
    for _ in range(8):
        state = sent(state, "192.0.2.1", BACKOFF, now)
        waits.append(state.backoff_seconds)
        assert not RULES.due(state, "192.0.2.1", now + state.backoff_seconds - 1)[0]
        now += state.backoff_seconds
    assert waits == [1800, 3600, 7200, 14400, 28800, 57600, 86400, 86400]


def test_success_ends_the_backoff() -> None:
    state = sent(fresh(), "192.0.2.1", BACKOFF, T0)
    state = sent(state, "192.0.2.1", OK, T0 + 1800)
    assert state.backoff_until is None and state.backoff_seconds == 0
    assert sent(state, "192.0.2.2", BACKOFF, T0 + 1800 + 300).backoff_seconds == 1800


def test_one_nochg_is_accepted_as_confirmation() -> None:
    state = sent(fresh(), "192.0.2.1", NOCHG, T0)
    assert state.last_address == "192.0.2.1" and state.stopped_reason is None and state.nochg_count == 1


def test_a_second_nochg_stops_until_the_address_changes() -> None:
    state = sent(fresh(), "192.0.2.1", NOCHG, T0)
    state = sent(state, "192.0.2.2", NOCHG, T0 + 300)
    send, why = RULES.due(state, "192.0.2.2", T0 + 30 * DAY)  # not even the forced refresh
    assert not send and why.startswith("stopped until the address changes: repeated nochg")
    assert RULES.due(state, "192.0.2.3", T0 + 600)[0]


def test_nochg_on_a_forced_refresh_is_not_counted() -> None:
    state = sent(fresh(), "192.0.2.1", OK, T0)
    state = sent(state, "192.0.2.1", NOCHG, T0 + 25 * DAY)
    state = sent(state, "192.0.2.1", NOCHG, T0 + 50 * DAY)
    assert state.nochg_count == 0 and state.stopped_reason is None


def test_good_resets_the_nochg_count() -> None:
    state = sent(fresh(), "192.0.2.1", NOCHG, T0)
    state = sent(state, "192.0.2.2", OK, T0 + 300)
    state = sent(state, "192.0.2.3", NOCHG, T0 + 600)
    assert state.nochg_count == 1 and state.stopped_reason is None


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "registrar.db"
    store = AdapterStateStore(path)
    state = sent(fresh(), "192.0.2.1", BACKOFF, T0)
    store.save(state)
    store.close()
    reopened = AdapterStateStore(path)
    assert reopened.load("reg", "ns1.example.test.", 4) == state
    assert reopened.load("reg", "ns1.example.test.", 6) == AdapterState("reg", "ns1.example.test.", 6)
    assert reopened.all() == [state]
    reopened.close()


def test_the_state_file_is_in_wal_mode(tmp_path: Path) -> None:
    AdapterStateStore(tmp_path / "registrar.db").close()
    with sqlite3.connect(tmp_path / "registrar.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_push_all_stops_until_the_config_changes(tmp_path: Path) -> None:
    store = AdapterStateStore(tmp_path / "r.db")
    adapter = Scripted([STOP, OK])
    assert offer(adapter, store, "192.0.2.1", T0).result == STOP
    assert not offer(adapter, store, "192.0.2.2", T0 + 30 * DAY).sent
    adapter.config = "v2"
    report = offer(adapter, store, "192.0.2.2", T0 + 31 * DAY)
    assert report.sent and report.result == OK and report.state.fingerprint == "v2"
    assert len(adapter.calls) == 2


def test_push_all_persists_between_store_instances(tmp_path: Path) -> None:
    store = AdapterStateStore(tmp_path / "r.db")
    offer(Scripted([OK]), store, "192.0.2.1", T0)
    store.close()
    restarted = Scripted([])
    assert offer(restarted, AdapterStateStore(tmp_path / "r.db"), "192.0.2.1", T0 + DAY).reason == "unchanged"
    assert restarted.calls == []


def test_push_all_gives_the_last_confirmed_address_as_previous(tmp_path: Path) -> None:
    store = AdapterStateStore(tmp_path / "r.db")
    adapter = Scripted([OK, OK])
    offer(adapter, store, "192.0.2.1", T0, previous="192.0.2.100")
    offer(adapter, store, "192.0.2.2", T0 + 300, previous="192.0.2.200")
    assert [call[3] for call in adapter.calls] == ["192.0.2.100", "192.0.2.1"]


def test_push_all_turns_an_adapter_crash_into_backoff(tmp_path: Path) -> None:
    adapter = Scripted([])  # pop from an empty list: IndexError inside push
    report = offer(adapter, AdapterStateStore(tmp_path / "r.db"), "192.0.2.1", T0)
    assert report.result is not None and report.result.outcome is Outcome.BACKOFF
    assert "IndexError" in report.result.message and report.state.backoff_until == T0 + 1800


def test_push_all_runs_every_adapter(tmp_path: Path) -> None:
    store = AdapterStateStore(tmp_path / "r.db")
    first, second = Scripted([OK], name="one"), Scripted([STOP], name="two")
    reports = asyncio.run(push_all([first, second], store, "ns1.example.test.", 4, "192.0.2.1", None, T0))
    assert [(r.adapter, r.result) for r in reports] == [("one", OK), ("two", STOP)]


STEP = st.tuples(
    st.floats(min_value=0, max_value=30 * DAY),
    st.sampled_from(["192.0.2.1", "192.0.2.2", "192.0.2.3"]),
    st.sampled_from([OK, NOCHG, STOP, BACKOFF, RETRY]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=60))
def test_never_two_sends_within_min_interval_nor_a_send_of_the_confirmed_address(
    steps: list[tuple[float, str, PushResult]],
) -> None:
    state, now, last_send = fresh(), T0, None
    for delta, address, result in steps:
        now += delta
        if not RULES.due(state, address, now)[0]:
            continue
        assert last_send is None or now - last_send >= RULES.min_interval
        if state.last_address == address and state.last_success is not None:
            assert now - state.last_success >= RULES.max_interval
        state, last_send = RULES.record(state, address, result, now), now


def test_glue_warning_for_a_name_server_inside_its_zone() -> None:
    warning = glue_warning("ns1.example.test", "example.test.", ["NS1.example.test.", "ns.other.test."])
    assert warning is not None
    assert "ns1.example.test." in warning and "glue" in warning and "webhook" in warning
    assert "parent (test.)" in warning


def test_no_glue_warning_for_a_name_server_outside_its_zone() -> None:
    assert glue_warning("ns.other.test.", "example.test.", ["ns1.example.test.", "ns.other.test."]) is None


def test_no_glue_warning_for_a_name_that_is_not_a_name_server() -> None:
    assert glue_warning("home.example.test.", "example.test.", ["ns1.example.test."]) is None

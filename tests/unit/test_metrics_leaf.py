"""dynmx.metrics by plain calls: it imports nothing of dynmx, and reads at scrape time what app
hands it (callables for the hot path, the listeners, the logins and the refusal counts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dynmx.metrics import Metrics, SelfCheckSamples


@dataclass
class Stats:
    counters: dict[str, int] = field(default_factory=dict)
    firsts: dict[tuple[str, str, str], int] = field(default_factory=dict)


@dataclass
class Listener:
    active: int
    counts: dict[str, int]

    def snapshot(self) -> dict[str, int]:
        return self.counts


class Logins:
    def snapshot(self) -> dict[str, int]:
        return {"ok": 3, "badauth": 1}

    def waiting(self) -> int:
        return 2


def _lines(metrics: Metrics) -> set[str]:
    return {line for line in metrics.render().decode().splitlines() if not line.startswith("#")}


def test_collectors_read_what_app_hands_them_at_scrape_time() -> None:
    stats = Stats({"udp": 5, "tcp": 2, "entries": 7}, {("example.test.", "example.test.", "mx1"): 4})
    refusals = {"update-refused": 1}
    metrics = Metrics(refusals=lambda: refusals)
    http = Listener(1, {"status_200": 6, "connections_refused": 1})
    metrics.attach(lambda: stats, lambda: True, lambda: [("http", http), ("control", None)], Logins())
    stats.counters["udp"] = 9  # read when scraped, not when attached
    refusals["notify-refused"] = 2
    lines = _lines(metrics)
    assert {
        'dynmx_dns_queries_total{transport="udp"} 9.0',
        "dynmx_answer_table_entries 7.0",
        'dynmx_pool_first_total{member="mx1",name="example.test.",pool="example.test."} 4.0',
        'dynmx_control_refused_requests_total{kind="notify-refused"} 2.0',
        'dynmx_http_connections{listener="http"} 1.0',
        'dynmx_http_responses_total{listener="http",status="200"} 6.0',
        'dynmx_dyndns2_logins_total{result="badauth"} 1.0',
        "dynmx_dyndns2_waiting_sources 2.0",
    } <= lines
    assert not any('listener="control"' in line for line in lines)  # a listener that is not there


def test_no_refusal_counts_without_a_source() -> None:
    assert not any(line.startswith("dynmx_control_refused") for line in _lines(Metrics()))


def test_selfcheck_samples_become_gauges_and_counters() -> None:
    metrics = Metrics()
    samples = SelfCheckSamples(
        1700000000.0,
        actions=[("mx.example.test.", "4", "ok", 1), ("mx.example.test.", "4", "update", 0)],
        repairs=[("mx.example.test.", "6")],
        pushes=[("dyndns2", "sent")],
    )
    metrics.observe_selfcheck(samples)
    assert {
        "dynmx_selfcheck_rounds_total 1.0",
        "dynmx_selfcheck_last_round_timestamp_seconds 1.7e+09",
        'dynmx_selfcheck_action{action="ok",family="4",name="mx.example.test."} 1.0',
        'dynmx_selfcheck_action{action="update",family="4",name="mx.example.test."} 0.0',
        'dynmx_selfcheck_repairs_total{family="6",name="mx.example.test."} 1.0',
        'dynmx_registrar_pushes_total{adapter="dyndns2",outcome="sent"} 1.0',
    } <= _lines(metrics)

"""All Prometheus metrics in one place, named dynmx_<subsystem>_<name>_<unit>.

Per-query counts live as plain integers on the engine and transports (no locks on
the hot path); a collector reads them at scrape time. This module is a leaf: it imports
nothing from dynmx, and app hands it the callables and numbers it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class HotCounts(Protocol):
    """The hot path's plain counters (app's HotStats)."""

    @property
    def counters(self) -> Mapping[str, int]: ...
    @property
    def firsts(self) -> Mapping[tuple[str, str, str], int]: ...  # (pool, name, member)


class ListenerCounts(Protocol):
    """An HTTP listener's counts (server's ControlHttp)."""

    @property
    def active(self) -> int: ...
    def snapshot(self) -> Mapping[str, int]: ...


class LoginCounts(Protocol):
    """The dyndns2 login outcomes and waiting sources (control's dyndns2.Logins)."""

    def snapshot(self) -> Mapping[str, int]: ...
    def waiting(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SelfCheckSamples:
    """One self-check round as metric samples (built by selfcheck, which knows its reports)."""

    finished: float  # when the round ended, Unix time
    actions: list[tuple[str, str, str, int]] = field(default_factory=list)  # name, family, action, 0/1
    repairs: list[tuple[str, str]] = field(default_factory=list)  # name, family
    pushes: list[tuple[str, str]] = field(default_factory=list)  # adapter, outcome of a sent push


@dataclass(frozen=True, slots=True)
class DnssecSamples:
    """What signing did so far, read at scrape time (app builds it from the signature cache and
    the signed copies it serves)."""

    signatures: int  # RRSIGs made: signature cache misses
    cache_hits: int  # RRSIGs reused from the cache
    expiry: Mapping[str, float] = field(default_factory=dict)  # zone -> earliest RRSIG expiration served


class _DnssecCollector:
    """Signatures made and reused, zones signed, and when the first served signature expires."""

    def __init__(self, read: Callable[[], DnssecSamples]) -> None:
        self.read = read

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        samples = self.read()
        made = CounterMetricFamily("dynmx_dnssec_signatures", "RRSIGs made (signature cache misses)")
        made.add_metric([], samples.signatures)
        yield made
        hits = CounterMetricFamily(
            "dynmx_dnssec_signature_cache_hits", "RRSIGs reused from the signature cache"
        )
        hits.add_metric([], samples.cache_hits)
        yield hits
        zones = GaugeMetricFamily("dynmx_dnssec_signed_zones", "Zones dynmx signs and serves signed")
        zones.add_metric([], len(samples.expiry))
        yield zones
        expiry = GaugeMetricFamily(
            "dynmx_dnssec_signature_expiry_timestamp_seconds",
            "The earliest RRSIG expiration served in the zone (Unix time)",
            labels=["zone"],
        )
        for zone, when in sorted(samples.expiry.items()):
            expiry.add_metric([zone], when)
        yield expiry


class _HotPathCollector:
    """Reads the hot path's plain counters (this process's, or the workers' reports) at scrape time."""

    def __init__(self, stats: Callable[[], HotCounts], has_engine: Callable[[], bool]) -> None:
        self.stats = stats
        self.has_engine = has_engine

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self.stats()
        count = stats.counters.get
        queries = CounterMetricFamily("dynmx_dns_queries", "DNS messages received", labels=["transport"])
        queries.add_metric(["udp"], count("udp", 0))
        queries.add_metric(["tcp"], count("tcp", 0))
        yield queries
        slow = CounterMetricFamily(
            "dynmx_dns_slow_path", "Queries that left the fast path, by what happened", labels=["result"]
        )
        for key, value in stats.counters.items():
            if key.startswith("slow_"):
                slow.add_metric([key[5:]], value)
        yield slow
        if self.has_engine():
            entries = GaugeMetricFamily(
                "dynmx_answer_table_entries", "Precompiled responses in the table (one worker's)"
            )
            entries.add_metric([], count("entries", 0))
            yield entries
        firsts = CounterMetricFamily(
            "dynmx_pool_first",
            "Answers that ranked a member first, per pool and answered name",
            labels=["pool", "name", "member"],
        )
        for (pool, name, member), value in stats.firsts.items():
            firsts.add_metric([pool, name, member], value)
        yield firsts
        if "rrl_limited" in stats.counters:
            limited = CounterMetricFamily("dynmx_rrl_limited", "UDP replies over the rate limit")
            limited.add_metric([], count("rrl_limited", 0))
            yield limited
            slipped = CounterMetricFamily("dynmx_rrl_slipped", "Limited replies sent truncated")
            slipped.add_metric([], count("rrl_slipped", 0))
            yield slipped
        cache = GaugeMetricFamily("dynmx_answer_cache_entries", "Slow-path responses in the LRU")
        cache.add_metric([], count("cache", 0))
        yield cache
        open_now = GaugeMetricFamily("dynmx_tcp_connections", "Open TCP connections")
        open_now.add_metric([], count("tcp_open", 0))
        yield open_now
        refused = CounterMetricFamily("dynmx_tcp_refused_connections", "TCP connections over a cap")
        refused.add_metric([], count("tcp_refused", 0))
        yield refused
        cut = CounterMetricFamily("dynmx_tcp_slow_sender_closes", "TCP connections cut off mid-message")
        cut.add_metric([], count("tcp_slow_senders", 0))
        yield cut
        for name, text in (
            ("workers", "Answer processes running"),
            ("worker_restarts", "Answer processes restarted"),
        ):
            if name in stats.counters:
                gauge = GaugeMetricFamily(f"dynmx_{name}", text)
                gauge.add_metric([], count(name, 0))
                yield gauge


class _RefusalCollector:
    """Per-packet refusals by kind (UPDATE, NOTIFY, TSIG, transfer), counted whether or not their
    log line was written (`dynmx.control.ratelog`: the lines are rate-limited, the counts not)."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        refused = CounterMetricFamily(
            "dynmx_control_refused_requests",
            "Requests refused, by the event their log line names (the lines are rate-limited)",
            labels=["kind"],
        )
        for kind, value in sorted(self.counts().items()):
            refused.add_metric([kind], value)
        yield refused


class _ListenerCollector:
    """The HTTP listeners' counts (control, dyndns2, the control socket) and the dyndns2 logins,
    read at scrape time from the plain counters the listener threads keep."""

    def __init__(
        self, listeners: Callable[[], Iterable[tuple[str, ListenerCounts | None]]], logins: LoginCounts
    ) -> None:
        self.listeners = listeners
        self.logins = logins

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        open_now = GaugeMetricFamily(
            "dynmx_http_connections", "Connections being served, by listener", labels=["listener"]
        )
        refused = CounterMetricFamily(
            "dynmx_http_refused_connections",
            "Connections closed at once: the listener's max_connections were being served",
            labels=["listener"],
        )
        faults = CounterMetricFamily(
            "dynmx_http_client_faults",
            "Connections that ended in the client's fault: timeouts, resets, TLS errors, cut-short requests",
            labels=["listener"],
        )
        responses = CounterMetricFamily(
            "dynmx_http_responses", "Responses sent, by listener and status", labels=["listener", "status"]
        )
        for name, listener in self.listeners():
            if listener is None:
                continue
            counts = listener.snapshot()
            open_now.add_metric([name], listener.active)
            refused.add_metric([name], counts.get("connections_refused", 0))
            faults.add_metric([name], counts.get("client_faults", 0))
            for key, value in sorted(counts.items()):
                if key.startswith("status_"):
                    responses.add_metric([name, key[7:]], value)
        yield from (open_now, refused, faults, responses)
        logins = CounterMetricFamily(
            "dynmx_dyndns2_logins",
            "dyndns2 requests by login outcome: ok, badauth (wrong credentials), blocked (the source"
            " was waiting: not looked at), unauthenticated (none sent)",
            labels=["result"],
        )
        counts = self.logins.snapshot()
        for result in ("ok", "badauth", "blocked", "unauthenticated"):
            logins.add_metric([result], counts.get(result, 0))
        yield logins
        waiting = GaugeMetricFamily(
            "dynmx_dyndns2_waiting_sources", "Source addresses (IPv6: /64) that must wait after failed logins"
        )
        waiting.add_metric([], self.logins.waiting())
        yield waiting


class Metrics:
    """The registry and the metrics updated off the hot path."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, refusals: Callable[[], Mapping[str, int]] | None = None) -> None:
        """`refusals`: the per-kind refusal counts (control's ratelog), read at scrape time."""
        self.registry = CollectorRegistry()
        if refusals is not None:
            self.registry.register(_RefusalCollector(refusals))
        self.zones = Gauge("dynmx_zone_loaded_zones", "Zones being served", registry=self.registry)
        self.zone_problems = Gauge(
            "dynmx_zone_problems", "Problems found by the last load or reload", registry=self.registry
        )
        self.unavailable = Gauge(
            "dynmx_zone_unavailable_zones",
            "Secondary zones without a current copy, answering SERVFAIL",
            registry=self.registry,
        )
        self.write_failing = Gauge(
            "dynmx_zone_write_failing_zones",
            "Zones whose file cannot be written: their edits are refused (SERVFAIL) until it can",
            registry=self.registry,
        )
        self.reloads = Counter("dynmx_zone_reloads", "Zone loads and reloads", registry=self.registry)
        self.load_seconds = Gauge(
            "dynmx_zone_last_load_seconds", "Duration of the last load and compile", registry=self.registry
        )

        self.probes = Counter(
            "dynmx_health_probes", "Probe results", ["pool", "member", "result"], registry=self.registry
        )
        self.probe_latency = Gauge(
            "dynmx_health_probe_latency_seconds",
            "Latency of the last probe",
            ["pool", "member"],
            registry=self.registry,
        )
        self.member_up = Gauge(
            "dynmx_health_member_up",
            "1 while a member counts as up",
            ["pool", "member"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "dynmx_health_transitions",
            "Member state changes",
            ["pool", "member", "to"],
            registry=self.registry,
        )
        self.tls_expiry = Gauge(
            "dynmx_health_tls_cert_expiry_seconds",
            "Seconds until the probed certificate expires (negative: expired)",
            ["pool", "member"],
            registry=self.registry,
        )
        self.pool_fail_open = Gauge(
            "dynmx_pool_fail_open",
            "1 while a pool has no eligible member and answers everyone",
            ["pool"],
            registry=self.registry,
        )
        self.pool_promoted = Gauge(
            "dynmx_pool_promoted", "1 while a pool's standbys are promoted", ["pool"], registry=self.registry
        )

        self.selfcheck_rounds = Counter(
            "dynmx_selfcheck_rounds", "Self-check rounds run", registry=self.registry
        )
        self.selfcheck_last = Gauge(
            "dynmx_selfcheck_last_round_timestamp_seconds",
            "When the last round ended",
            registry=self.registry,
        )
        self.selfcheck_action = Gauge(
            "dynmx_selfcheck_action",
            "1 for the last decision per own name and family (ok, hairpin, pending, update, backoff)",
            ["name", "family", "action"],
            registry=self.registry,
        )
        self.selfcheck_repairs = Counter(
            "dynmx_selfcheck_repairs",
            "Own addresses repaired in our zone",
            ["name", "family"],
            registry=self.registry,
        )
        self.registrar_pushes = Counter(
            "dynmx_registrar_pushes",
            "Updates sent to registrars, by outcome",
            ["adapter", "outcome"],
            registry=self.registry,
        )
        self.ds_pushes = Counter(
            "dynmx_dnssec_ds_pushes",
            "DS sets sent to parents through the registrar adapters, by outcome",
            ["adapter", "outcome"],
            registry=self.registry,
        )

    def observe_ds_pushes(self, pushes: Iterable[tuple[str, str]]) -> None:
        """DS sets sent to parents: (adapter, outcome) of each push that was sent."""
        for adapter, outcome in pushes:
            self.ds_pushes.labels(adapter, outcome).inc()

    def observe_selfcheck(self, samples: SelfCheckSamples) -> None:
        self.selfcheck_rounds.inc()
        self.selfcheck_last.set(samples.finished)
        for name, family, action, value in samples.actions:
            self.selfcheck_action.labels(name, family, action).set(value)
        for name, family in samples.repairs:
            self.selfcheck_repairs.labels(name, family).inc()
        for adapter, outcome in samples.pushes:
            self.registrar_pushes.labels(adapter, outcome).inc()

    def attach(
        self,
        stats: Callable[[], HotCounts],
        has_engine: Callable[[], bool],
        listeners: Callable[[], Iterable[tuple[str, ListenerCounts | None]]],
        logins: LoginCounts,
    ) -> None:
        """Read the hot path and the HTTP listeners at scrape time, through what app hands over."""
        self.registry.register(_HotPathCollector(stats, has_engine))
        self.registry.register(_ListenerCollector(listeners, logins))

    def attach_dnssec(self, read: Callable[[], DnssecSamples]) -> None:
        """Read the signing counters and the served signatures' expiry at scrape time."""
        self.registry.register(_DnssecCollector(read))

    def observe_load(self, zones: int, problems: int, seconds: float) -> None:
        self.zones.set(zones)
        self.zone_problems.set(problems)
        self.reloads.inc()
        self.load_seconds.set(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

"""A pool in a zone dynmx signs, its members flapping under real SMTP probes, asked hundreds
of times in a row with DO=1 (issue 24): every answer's MX RRset validates against its own
RRSIG and the zone's DNSKEY (RFC 4035 5.3), no answer lists a member after dynmx marked it
down, and first place still follows the strategy among the members up: exactly even for
round-robin, within a few binomial standard deviations of the weights for weighted.

Each member is an aiosmtpd sink on its own loopback address (one port for all, as in
tests/integration/test_health_server.py), probed every 0.2 s (fall 2, rise 2, timeout 0.2 s). The flap
schedule is drawn from a seeded random source; every wait is bounded.

"Marked down" is dynmx's own log line `event=member-down`: it is written before the pool is
re-rendered in the same call, and the query loop runs on the same event loop, so a query
sent after the line was read must see the new answers. For each query the test notes the
member states it had read before sending and after the reply came: a member down in both
must be absent, one up in both must be present.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.node
import dns.query
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import pytest
from aiosmtpd.controller import Controller

from tests.conftest import RunningServer, shared_free_port, write_config

Serve = Callable[..., RunningServer]
ORIGIN = dns.name.from_text("example.test.")
POOL = dns.name.from_text("rr.example.test.")
ADDRESSES = {"mx1": "127.0.0.2", "mx2": "127.0.0.3", "mx3": "127.0.0.4"}
ZONE = (
    "$ORIGIN example.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\n"
    "ns1 A 127.0.0.1\n"
    + "".join(f"{name} A {address}\n" for name, address in ADDRESSES.items())
    + "rr MX 10 mx1\nrr MX 20 mx2\nrr MX 30 mx3\n"
)
FLIPS = 8  # member state changes in one run
AFTER = 40  # answers taken after each change was marked
FIRST = 30  # answers taken right after a sink changed, before looking for the mark
MARK_TIMEOUT = 4.0  # seconds for a change to be marked (fall/rise 2 x 0.2 s, timeout 0.2 s)
LOG_LAG = 0.3  # seconds for the log reader to catch up before an answer is judged wrong
PAUSE = 0.004  # between queries: some hundreds per second
WEIGHTS = {"mx1": 3, "mx2": 2, "mx3": 1}  # the weighted strategy's shares of first place
SIGMAS = 4.0  # how far a weighted count may stray from its expectation
EVENT = re.compile(r"event=member-(up|down) pool=rr\.example\.test\. host=(mx\d)\.example\.test\.")


class Sinks:
    """One aiosmtpd server per member address, all on one port; stop and start them at will."""

    def __init__(self) -> None:
        self.port = shared_free_port(ADDRESSES.values())
        self.running: dict[str, Controller] = {}

    def start(self, name: str) -> None:
        controller = Controller(object(), hostname=ADDRESSES[name], port=self.port)
        controller.start()
        self.running[name] = controller

    def stop(self, name: str) -> None:
        self.running.pop(name).stop()


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    sinks = Sinks()
    for name in ADDRESSES:
        sinks.start(name)
    yield sinks
    for name in list(sinks.running):
        sinks.stop(name)


def _config(tmp_path: Path, port: int, strategy: str) -> Path:
    members = "".join(
        f'[[pool.member]]\nhost = "{name}.example.test."\npreference = {10 * index}\n'
        f"weight = {WEIGHTS[name]}\n"
        f'probe = "smtp"\nport = {port}\ninterval = 0.2\ntimeout = 0.2\nfall = 2\nrise = 2\n'
        for index, name in enumerate(ADDRESSES, start=1)
    )
    pool = f'[[pool]]\nname = "rr.example.test."\nstrategy = "{strategy}"\nttl = 30\n'
    zone = '[[zone]]\nname = "example.test."\ndnssec = true\n'
    config = write_config(tmp_path, ZONE, zone + pool + members)
    text = config.read_text().replace("[server]\n", "[server]\nrandom_seed = 24\n", 1)  # the weighted draw
    config.write_text(text)
    return config


def _marked(server: RunningServer) -> dict[str, bool]:
    """Member -> up, as dynmx's log lines read so far say (no line yet: up, as dynmx counts it)."""
    states = dict.fromkeys(ADDRESSES, True)
    for line in list(server.lines):
        match = EVENT.search(line)
        if match:
            states[match.group(2)] = match.group(1) == "up"
    return states


class Run:
    """The DO=1 answers taken, each with the marks read before and after it."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        reply = self._ask(ORIGIN, dns.rdatatype.DNSKEY)
        dnskey = reply.find_rrset(reply.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        self.keys: dict[dns.name.Name, dns.node.Node | dns.rdataset.Rdataset] = {ORIGIN: dnskey}
        self.firsts: list[str] = []  # the lowest-preference host of each answer
        self.listed: list[frozenset[str]] = []  # the hosts of each answer
        self.problems: list[str] = []

    def _ask(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        query = dns.message.make_query(name, rdtype, want_dnssec=True, use_edns=0, payload=1232)
        return dns.query.udp(query, "127.0.0.1", port=self.server.dns_port, timeout=2)

    def one(self) -> None:
        before = _marked(self.server)
        reply = self._ask(POOL, dns.rdatatype.MX)
        after = _marked(self.server)
        index = len(self.firsts)
        mx = reply.find_rrset(reply.answer, POOL, dns.rdataclass.IN, dns.rdatatype.MX)
        sig = reply.find_rrset(reply.answer, POOL, dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.MX)
        try:
            dns.dnssec.validate(mx, sig, self.keys)
        except dns.exception.ValidationFailure as error:
            self.problems.append(f"answer {index}: {error}\n{reply}")
        hosts = {str(rd.exchange).split(".")[0]: rd.preference for rd in mx}
        suspects = [
            member
            for member in ADDRESSES
            if before[member] == after[member] and (member in hosts) != after[member]
        ]
        if suspects:  # the log is read by a thread: a verdict logged just before may not be read yet
            time.sleep(LOG_LAG)
            late = _marked(self.server)
            for member in suspects:
                if late[member] == after[member]:
                    state = (
                        "listed after it was marked down" if member in hosts else "missing while marked up"
                    )
                    self.problems.append(f"answer {index}: {member} {state}: {hosts}")
        self.firsts.append(min(hosts, key=lambda host: hosts[host]))
        self.listed.append(frozenset(hosts))
        time.sleep(PAUSE)

    def until_marked(self, member: str, up: bool) -> None:
        """Answers until dynmx marked `member` so (bounded), then AFTER more."""
        for _ in range(FIRST):
            self.one()
        deadline = time.monotonic() + MARK_TIMEOUT
        while _marked(self.server)[member] != up:
            assert time.monotonic() < deadline, f"{member} not marked {'up' if up else 'down'}"
            self.one()
        for _ in range(AFTER):
            self.one()


def _segments(run: Run) -> list[tuple[frozenset[str], list[str]]]:
    """Maximal runs of consecutive answers listing the same hosts: (hosts, first of each)."""
    segments: list[tuple[frozenset[str], list[str]]] = []
    for hosts, first in zip(run.listed, run.firsts, strict=True):
        if segments and segments[-1][0] == hosts:
            segments[-1][1].append(first)
        else:
            segments.append((hosts, [first]))
    return segments


def _flap(server: RunningServer, sinks: Sinks) -> tuple[Run, list[tuple[frozenset[str], list[str]]]]:
    """FLIPS seeded member changes, answers taken throughout; every answer already checked
    (signature, marked-down members absent, marked-up members present)."""
    run = Run(server)
    rng = random.Random(24)
    started = time.monotonic()
    for _ in range(FLIPS):
        down = [m for m in ADDRESSES if m not in sinks.running]
        bring_up = bool(down) and (len(down) == len(ADDRESSES) - 1 or rng.random() < 0.5)
        if bring_up:  # never all down: that is fail-open, another behaviour
            member = rng.choice(down)
            sinks.start(member)
        else:
            member = rng.choice(sorted(sinks.running))
            sinks.stop(member)
        run.until_marked(member, up=bring_up)
    took = time.monotonic() - started
    assert not run.problems, "\n".join(run.problems[:5])
    segments = _segments(run)
    sets = Counter(len(hosts) for hosts, _ in segments)
    print(
        f"\nanswers={len(run.firsts)} validated={len(run.firsts)} flips={FLIPS} segments={len(segments)}"
        f" by_members_up={dict(sets)} firsts={dict(Counter(run.firsts))} seconds={took:.1f}"
    )
    assert len(run.firsts) >= FLIPS * (FIRST + AFTER) and len(sets) >= 2
    return run, segments


def test_rfc4035_signed_round_robin_answers_validate_and_rotate_evenly_while_members_flap(
    serve: Serve, tmp_path: Path, sinks: Sinks
) -> None:
    """Round-robin is a counter walking the rotations: in any run of n consecutive answers
    from one set of k members, each member is first floor(n/k) or ceil(n/k) times."""
    server = serve("--config", str(_config(tmp_path, sinks.port, "round-robin")))
    _, segments = _flap(server, sinks)
    for hosts, firsts in segments:
        counts = Counter(firsts)
        low, high = len(firsts) // len(hosts), -(-len(firsts) // len(hosts))
        assert set(counts) <= hosts and all(low <= counts[h] <= high for h in hosts), (hosts, counts)


def test_rfc4035_signed_weighted_answers_validate_and_follow_the_weights_while_members_flap(
    serve: Serve, tmp_path: Path, sinks: Sinks
) -> None:
    """Weighted is a draw: while a set of members is up, each is first with probability
    weight / (sum of the up members' weights). Per run of one member set and over the
    whole test, each member's count of first places is within SIGMAS binomial standard
    deviations (plus one) of what the weights give (the draw is seeded: random_seed)."""
    server = serve("--config", str(_config(tmp_path, sinks.port, "weighted")))
    _, segments = _flap(server, sinks)
    expected = dict.fromkeys(ADDRESSES, 0.0)
    variance = dict.fromkeys(ADDRESSES, 0.0)
    observed = dict.fromkeys(ADDRESSES, 0)
    for hosts, firsts in segments:
        total = sum(WEIGHTS[h] for h in hosts)
        counts = Counter(firsts)
        assert set(counts) <= hosts, (hosts, counts)
        for host in hosts:
            share, n = WEIGHTS[host] / total, len(firsts)
            mean, var = n * share, n * share * (1 - share)
            assert abs(counts[host] - mean) <= SIGMAS * var**0.5 + 1, (hosts, counts, host, mean)
            expected[host] += mean
            variance[host] += var
            observed[host] += counts[host]
    for host in ADDRESSES:
        assert abs(observed[host] - expected[host]) <= SIGMAS * variance[host] ** 0.5 + 1, (
            observed,
            expected,
        )
    print(f"weighted firsts={dict(observed)} expected={ {h: round(v) for h, v in expected.items()} }")

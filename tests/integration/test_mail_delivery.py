"""Real mail follows the pool: a sender resolves MX through dynmx and delivers to aiosmtpd sinks.

The sender behaves as RFC 5321 5.1 says: it takes the lowest preference and picks at
random among equal ones. Each sink listens on its own loopback address (the MX
targets' A records), on one shared unprivileged port standing in for port 25.
"""

from __future__ import annotations

import random
import smtplib
from collections import Counter
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import dns.resolver
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import RunningServer, shared_free_port

SINKS = {"mx1": "127.0.0.2", "mx2": "127.0.0.3", "mx3": "127.0.0.4"}
MESSAGES = 300

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
@     MX  10 mx1
@     MX  20 mx2
@     MX  30 mx3
ns1   A   127.0.0.1
mx1   A   127.0.0.2
mx2   A   127.0.0.3
mx3   A   127.0.0.4
"""


class Sink:
    """An aiosmtpd handler that counts the messages it accepted."""

    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received += 1
        return "250 OK"


@pytest.fixture
def sinks() -> Iterator[tuple[int, dict[str, Sink]]]:
    port = shared_free_port(SINKS.values())
    handlers = {name: Sink() for name in SINKS}
    controllers = [Controller(handlers[name], hostname=address, port=port) for name, address in SINKS.items()]
    for controller in controllers:
        controller.start()
    yield port, handlers
    for controller in controllers:
        controller.stop()


def _deliver(server: RunningServer, smtp_port: int, count: int, rng: random.Random) -> None:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = server.dns_port
    resolver.lifetime = 2
    for index in range(count):
        records = list(resolver.resolve("example.test", "MX"))
        best = min(r.preference for r in records)
        exchange = rng.choice([r.exchange for r in records if r.preference == best])  # RFC 5321 5.1
        address = str(resolver.resolve(exchange, "A")[0])
        message = EmailMessage()
        message["From"] = "sender@sender.test"
        message["To"] = "user@example.test"
        message["Subject"] = f"message {index}"
        message.set_content("hello")
        with smtplib.SMTP(address, smtp_port, timeout=5) as smtp:
            smtp.send_message(message)


def _serve_pool(
    serve: Callable[..., RunningServer], tmp_path: Path, strategy: str, weights: str
) -> RunningServer:
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE)
    members = "".join(
        f'[[pool.member]]\nhost = "{name}.example.test."\npreference = {10 * (i + 1)}\nweight = {w}\n'
        'probe = "none"\n'
        for i, (name, w) in enumerate(zip(SINKS, weights.split(","), strict=True))
    )
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\nrandom_seed = 5\n'
        f'[[pool]]\nname = "example.test."\nstrategy = "{strategy}"\nttl = 30\n{members}'
    )
    return serve("--config", str(config))


def test_rfc5321_round_robin_spreads_real_mail_evenly(
    serve: Callable[..., RunningServer], tmp_path: Path, sinks: tuple[int, dict[str, Sink]]
) -> None:
    port, handlers = sinks
    server = _serve_pool(serve, tmp_path, "round-robin", "1,1,1")
    _deliver(server, port, MESSAGES, random.Random(1))
    assert Counter({name: sink.received for name, sink in handlers.items()}) == {
        "mx1": 100,
        "mx2": 100,
        "mx3": 100,
    }


def test_rfc5321_weighted_moves_real_mail_by_weight(
    serve: Callable[..., RunningServer], tmp_path: Path, sinks: tuple[int, dict[str, Sink]]
) -> None:
    port, handlers = sinks
    server = _serve_pool(serve, tmp_path, "weighted", "2,1,0")
    _deliver(server, port, MESSAGES, random.Random(2))
    received = {name: sink.received for name, sink in handlers.items()}
    assert sum(received.values()) == MESSAGES
    assert received["mx3"] == 0
    assert abs(received["mx1"] / MESSAGES - 2 / 3) < 0.08  # seeded draw; 300 draws: ~2.7 points sd

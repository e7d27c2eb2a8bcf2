"""Response rate limiting (NSD/Knot RRL): token buckets per prefix, slip, loopback exempt."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.zone
import pytest

from dynmx.answer.compiler import compile_table
from dynmx.answer.engine import Engine
from dynmx.answer.rrl import NXDOMAIN, POSITIVE, RateLimiter, RrlSettings, Verdict, classify
from dynmx.answer.zoneset import ZoneData
from dynmx.config import load_config
from dynmx.errors import ConfigError

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.2
"""


def limiter(rate: float = 5, slip: int = 2) -> RateLimiter:
    return RateLimiter(RrlSettings(rate=rate, slip=slip))


def test_replies_within_the_rate_are_sent() -> None:
    rrl = limiter(rate=5)
    assert [rrl.check("192.0.2.9", POSITIVE, b"www", 0.0) for _ in range(5)] == [Verdict.SEND] * 5


def test_over_the_rate_every_second_reply_slips_and_the_rest_drop() -> None:
    rrl = limiter(rate=5, slip=2)
    for _ in range(5):
        rrl.check("192.0.2.9", POSITIVE, b"www", 0.0)
    verdicts = [rrl.check("192.0.2.9", POSITIVE, b"www", 0.0) for _ in range(4)]
    assert verdicts == [Verdict.DROP, Verdict.SLIP, Verdict.DROP, Verdict.SLIP]
    assert (rrl.limited, rrl.slipped) == (4, 2)


def test_a_bucket_refills_with_time() -> None:
    rrl = limiter(rate=5)
    for _ in range(6):
        rrl.check("192.0.2.9", POSITIVE, b"www", 0.0)
    assert rrl.check("192.0.2.9", POSITIVE, b"www", 0.2) == Verdict.SEND  # 0.2 s x 5/s = one token


def test_addresses_in_one_slash24_share_a_bucket_and_others_do_not() -> None:
    rrl = limiter(rate=2, slip=0)
    rrl.check("192.0.2.9", POSITIVE, b"www", 0.0)
    rrl.check("192.0.2.10", POSITIVE, b"www", 0.0)
    assert rrl.check("192.0.2.11", POSITIVE, b"www", 0.0) == Verdict.DROP
    assert rrl.check("198.51.100.1", POSITIVE, b"www", 0.0) == Verdict.SEND


def test_loopback_is_exempt() -> None:
    rrl = limiter(rate=1, slip=0)
    assert all(rrl.check("127.0.0.1", NXDOMAIN, b"", 0.0) == Verdict.SEND for _ in range(100))


def test_an_exempt_prefix_is_never_limited_and_its_neighbours_are() -> None:
    """An operator's own resolvers and monitors (Knot's RRL whitelist)."""
    rrl = RateLimiter(RrlSettings(rate=1, slip=0, exempt=(ipaddress.ip_network("198.51.100.0/28"),)))
    assert all(rrl.check("198.51.100.7", NXDOMAIN, b"", 0.0) == Verdict.SEND for _ in range(100))
    assert [rrl.check("198.51.100.20", NXDOMAIN, b"", 0.0) for _ in range(2)] == [Verdict.SEND, Verdict.DROP]
    assert rrl.limited == 1


def test_exempt_prefixes_are_read_from_the_config_and_a_bad_one_is_refused_with_its_line(
    tmp_path: Path,
) -> None:
    config = tmp_path / "dynmx.toml"
    config.write_text('[rrl]\nexempt = ["198.51.100.5/28", "2001:db8::/48"]\n')
    assert load_config(config).rrl.exempt == ("198.51.100.0/28", "2001:db8::/48")
    config.write_text('[rrl]\nrate = 100\nexempt = ["198.51.100.0/33"]\n')
    with pytest.raises(ConfigError, match=r"dynmx.toml:3: rrl.exempt\[0\]: expected an address prefix"):
        load_config(config)


def test_engine_slips_a_truncated_reply_over_udp_and_tcp_is_never_limited() -> None:
    origin = dns.name.from_text("example.test.")
    engine = Engine(
        compile_table([ZoneData(origin, dns.zone.from_text(ZONE, origin=origin, relativize=False))])
    )
    engine.rrl = limiter(rate=2, slip=1)
    query = dns.message.make_query("www.example.test", "A").to_wire()
    peer = ("192.0.2.50", 5353)
    first = [engine.handle(query, peer, False) for _ in range(2)]
    assert all(reply is not None and classify(reply) == POSITIVE for reply in first)
    limited = engine.handle(query, peer, False)
    assert limited is not None
    message = dns.message.from_wire(limited)
    assert message.flags & dns.flags.TC and not message.answer  # RFC 7766: the client retries over TCP
    over_tcp = engine.handle(query, peer, True)
    assert over_tcp is not None and dns.message.from_wire(over_tcp).answer

"""`dynmx zone add` of a zone an existing zone's CNAME points into: from the moment the add
returns, the old zone's answer follows the chain into the new zone (RFC 1034 4.3.2, as NSD
follows a chain across the zones it serves), exactly as a server started on the new set
answers it; `dynmx zone rm` takes it back out. Only the zones the new one affects are
compiled again (tests/unit/test_zone_set_change.py); here the answers are checked over
real sockets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import ROOT, RunningServer, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
ns1   A   127.0.0.1
alias CNAME shop.test.
www   CNAME www.shop.test.
"""
DEFAULTS = '[defaults]\nns = ["ns1.example.test."]\nhostmaster = "hostmaster.example.test."\n'
Serve = Callable[..., RunningServer]


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def _ask(server: RunningServer, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    query.flags &= ~dns.flags.RD
    return dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=2)


def _sections(reply: dns.message.Message) -> tuple[int, int, list[str], list[str], list[str]]:
    return (
        reply.rcode(),
        reply.flags & dns.flags.AA,
        [r.to_text() for r in reply.answer],
        [r.to_text() for r in reply.authority],
        [r.to_text() for r in reply.additional],
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, ZONE, DEFAULTS)


def test_rfc1034_4_3_2_a_chain_into_a_zone_just_added_is_followed_as_after_a_restart(
    serve: Serve, config: Path
) -> None:
    server = serve("--config", str(config))
    before = _ask(server, "alias.example.test")
    assert [r.rdtype for r in before.answer] == [5]  # the CNAME alone: its target is in no zone served
    added = dynmx("zone", "add", "shop.test", "--a", "192.0.2.25", "-c", str(config))
    assert added.returncode == 0, added.stderr
    after = _ask(server, "alias.example.test")
    assert after.rcode() == dns.rcode.NOERROR and after.flags & dns.flags.AA
    assert [r.to_text() for r in after.answer] == [
        "alias.example.test. 3600 IN CNAME shop.test.",
        "shop.test. 3600 IN A 192.0.2.25",
    ]
    missing = _ask(server, "www.example.test")
    assert missing.rcode() == dns.rcode.NXDOMAIN  # RFC 6604: the chain, then the new zone's NXDOMAIN
    assert [r.rdtype for r in missing.answer] == [5]
    assert missing.authority[0].name.to_text() == "shop.test."
    served = {name: _sections(_ask(server, name)) for name in ("alias.example.test", "www.example.test")}
    server.stop()
    restarted = serve("--config", str(config))
    assert {name: _sections(_ask(restarted, name)) for name in served} == served


def test_a_chain_into_a_zone_just_removed_ends_at_its_cname_again(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    assert dynmx("zone", "add", "shop.test", "--a", "192.0.2.25", "-c", str(config)).returncode == 0
    assert len(_ask(server, "alias.example.test").answer) == 2
    removed = dynmx("zone", "rm", "shop.test", "-c", str(config))
    assert removed.returncode == 0, removed.stderr
    after = _ask(server, "alias.example.test")
    assert [r.to_text() for r in after.answer] == ["alias.example.test. 3600 IN CNAME shop.test."]
    assert _ask(server, "shop.test").rcode() == dns.rcode.REFUSED


def test_a_zone_added_after_a_warm_restart_is_chained_into_too(serve: Serve, config: Path) -> None:
    """The answers laid in from the answer store come with where their chains went (its index
    rows): the add compiles the zones it affects from that, and answers alike."""
    serve("--config", str(config)).stop()
    server = serve("--config", str(config))
    assert dynmx("zone", "add", "shop.test", "--a", "192.0.2.25", "-c", str(config)).returncode == 0
    assert len(_ask(server, "alias.example.test").answer) == 2

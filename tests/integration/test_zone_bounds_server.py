"""What a bad zone file can cost a running server is bounded (issue 23, item 13).

Before, a refused 40 MB file was parsed on the server's own threads: a minute of its GIL
(answers to other zones waited up to 1.3 s), 860-990 MiB at the peak and up to 850 MiB
kept afterwards, and one log line per problem (903,237 for a file of out-of-zone names).
Now a file over `max_zone_file_size` is refused unread, a large file is checked in a child
process that exits after it before the server reads it, and a file reports at most
`MAX_PROBLEMS` problems and a count.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.rcode

from dynmx.zone.batch import APART_FROM
from tests.conftest import RunningServer, wait_until, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@     SOA ns1 hostmaster 1 7200 3600 1209600 300
@     NS  ns1
ns1   A   127.0.0.1
"""
BIG_HEAD = """\
$ORIGIN big.test.
$TTL 300
@     SOA ns1 hostmaster 1 7200 900 1209600 300
@     NS  ns1
ns1   A   192.0.2.53
"""

Serve = Callable[..., RunningServer]


def _reload(server: RunningServer) -> str:
    """SIGHUP, and the log from it up to its `event=reloaded` line."""
    mark = len(server.lines)
    server.process.send_signal(signal.SIGHUP)
    wait_until(lambda: any("event=reloaded" in line for line in server.lines[mark:]), timeout=120)
    return "".join(server.lines[mark:])


def _soa(server: RunningServer, name: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(dns.message.make_query(name, "SOA").to_wire(), server.address)
        reply = dns.message.from_wire(sock.recvfrom(65535)[0])
    assert reply.rcode() == dns.rcode.NOERROR
    return int(reply.answer[0][0].serial)


def _peak_mib(server: RunningServer) -> float:
    """The server process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _start(serve: Serve, tmp_path: Path, extra: str = "") -> tuple[RunningServer, Path]:
    config = write_config(tmp_path, ZONE, extra)
    big = tmp_path / "zones" / "big.test.zone"
    big.write_text(BIG_HEAD)
    server = serve("--config", str(config))
    assert _soa(server, "big.test") == 1
    return server, big


def test_a_zone_file_over_max_zone_file_size_is_refused_unread(serve: Serve, tmp_path: Path) -> None:
    server, big = _start(serve, tmp_path, "max_zone_file_size = 1000\n")
    big.write_text(
        BIG_HEAD.replace(" 1 7200", " 2 7200") + "".join(f"h{i} A 192.0.2.1\n" for i in range(100))
    )
    size = big.stat().st_size
    log = _reload(server)
    expected = (
        f"{big}:0: zone file of {size:,} bytes, larger than max_zone_file_size (1,000 bytes): not loaded"
    )
    assert expected in log
    assert _soa(server, "big.test") == 1  # the previous version keeps serving


def _records(count: int) -> str:
    return "".join(f"h{i} 300 IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n" for i in range(count))


def test_a_large_bad_file_is_checked_in_a_child_and_costs_the_server_no_memory(
    serve: Serve, tmp_path: Path
) -> None:
    server, big = _start(serve, tmp_path)
    before = _peak_mib(server)
    big.write_text(BIG_HEAD.replace(" 1 7200", " 2 7200") + _records(100_000) + "bad 300 IN A 999.1.1.1\n")
    assert big.stat().st_size > 2 * APART_FROM
    log = _reload(server)
    assert f"{big}:100006: syntax error at '999.1.1.1'" in log
    assert _soa(server, "big.test") == 1
    # Parsed here, 100,000 records cost the server about 60 MiB more at its peak.
    assert _peak_mib(server) - before < 15


def test_a_file_reports_at_most_a_hundred_problems_and_counts_the_rest(serve: Serve, tmp_path: Path) -> None:
    server, big = _start(serve, tmp_path)
    outside = "".join(f"h{i}.elsewhere.example. 300 IN A 192.0.2.1\n" for i in range(500))
    big.write_text(BIG_HEAD + outside)
    log = _reload(server)
    refused = [line for line in log.splitlines() if "event=zone-refused" in line]
    assert len(refused) == 101
    assert f"{big}:106: and 400 more problems" in refused[-1]


def test_a_large_good_file_checked_in_a_child_is_then_served(serve: Serve, tmp_path: Path) -> None:
    server, big = _start(serve, tmp_path)
    big.write_text(BIG_HEAD.replace(" 1 7200", " 2 7200") + _records(60_000))
    assert big.stat().st_size > APART_FROM
    assert "event=zone-refused" not in _reload(server)
    assert _soa(server, "big.test") == 2

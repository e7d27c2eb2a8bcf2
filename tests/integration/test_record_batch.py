"""`dynmx record batch FILE`: many changes as one update (knotc zone-begin/zone-set/zone-commit).

Through a running server: one serial bump for the whole batch, nothing applied when a line
is bad or a removal finds nothing (the line is named), and a batch beside a concurrent
`record add` leaves both applied.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import pytest

from dynmx.zone.loader import load_zone_file
from tests.conftest import EDITS, ROOT, RunningServer, write_config

ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 7200 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
old  A   192.0.2.1
old  TXT "legacy"
"""
Serve = Callable[..., RunningServer]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, ZONE, EDITS)


def dynmx(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dynmx", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT, input=stdin)


def query(server: RunningServer, name: str, rdtype: str) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=server.dns_port, timeout=2)
    return sorted(r.to_text() for rrset in reply.answer for r in rrset)


def serial(server: RunningServer) -> int:
    return int(query(server, "example.test", "SOA")[0].split()[2])


BATCH = """\
# move www, retire old
add www.example.test 300 A 192.0.2.10
add www.example.test A 192.0.2.11

set example.test MX 10 mx1
set example.test MX 20 mx2
add example.test TXT "v=spf1 mx -all"
rm old.example.test
"""


def test_batch_is_one_update_with_one_serial_bump(serve: Serve, config: Path, tmp_path: Path) -> None:
    server = serve("--config", str(config))
    batch = tmp_path / "changes.txt"
    batch.write_text(BATCH)
    result = dynmx("record", "batch", str(batch), "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: 6 change(s)" in result.stdout
    assert serial(server) == 2
    assert query(server, "www.example.test", "A") == ["192.0.2.10", "192.0.2.11"]
    assert query(server, "example.test", "MX") == ["10 mx1.example.test.", "20 mx2.example.test."]
    assert query(server, "example.test", "TXT") == ['"v=spf1 mx -all"']
    assert query(server, "old.example.test", "A") == []


def test_batch_reads_stdin(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    result = dynmx("record", "batch", "-", "-c", str(config), stdin="add a.example.test A 192.0.2.5\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(server, "a.example.test", "A") == ["192.0.2.5"]


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("add www.example.test A not-an-address", "changes.txt:3: bad record data for A"),
        ("move www.example.test A 192.0.2.1", "changes.txt:3: unknown change 'move'"),
        ("add www.example.test 300 A", "changes.txt:3: add www.example.test. A needs the record data"),
        ("add www.other.test A 192.0.2.1", "changes.txt:3: www.other.test. is in no served zone"),
        ("add old.example.test CNAME ns1", "changes.txt:3: CNAME conflict"),
        ("rm example.test SOA", "changes.txt:3: the SOA record of example.test. cannot be removed"),
    ],
)
def test_a_bad_line_refuses_the_whole_batch(
    serve: Serve, config: Path, tmp_path: Path, line: str, said: str
) -> None:
    server = serve("--config", str(config))
    zone_file = config.parent / "zones" / "example.test.zone"
    batch = tmp_path / "changes.txt"
    batch.write_text(f"add new.example.test A 192.0.2.20\n\n{line}\nrm old.example.test TXT\n")
    result = dynmx("record", "batch", str(batch), "-c", str(config))
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert serial(server) == 1
    assert query(server, "new.example.test", "A") == []
    assert zone_file.read_text() == ZONE


def test_a_removal_that_finds_nothing_names_its_line_and_changes_nothing(
    serve: Serve, config: Path, tmp_path: Path
) -> None:
    server = serve("--config", str(config))
    batch = tmp_path / "changes.txt"
    batch.write_text("add new.example.test A 192.0.2.20\nrm old.example.test TXT\nrm old.example.test MX\n")
    result = dynmx("record", "batch", str(batch), "-c", str(config))
    assert result.returncode == 1
    assert "changes.txt:3: nothing matched: old.example.test. has no MX records" in result.stderr
    assert "changes.txt:2" not in result.stderr
    assert serial(server) == 1 and query(server, "new.example.test", "A") == []


def test_a_removal_of_what_the_batch_adds_is_not_refused(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    text = (
        "add tmp.example.test A 192.0.2.30\n"
        "add tmp.example.test A 192.0.2.31\n"
        "rm tmp.example.test A 192.0.2.30\n"
    )
    result = dynmx("record", "batch", "-", "-c", str(config), stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(server, "tmp.example.test", "A") == ["192.0.2.31"] and serial(server) == 2


def test_batch_and_a_concurrent_record_add_both_land(serve: Serve, config: Path, tmp_path: Path) -> None:
    """Two actors on one zone: the owner applies each whole, one after the other."""
    server = serve("--config", str(config))
    batch = tmp_path / "changes.txt"
    batch.write_text("".join(f"add b{i}.example.test A 192.0.2.{i}\n" for i in range(1, 201)))
    command = [sys.executable, "-m", "dynmx", "record"]
    actors = [subprocess.Popen([*command, "batch", str(batch), "-c", str(config)], cwd=ROOT)]
    actors += [
        subprocess.Popen(
            [*command, "add", f"s{i}.example.test", "A", f"198.51.100.{i}", "-c", str(config)], cwd=ROOT
        )
        for i in range(1, 4)
    ]
    assert [actor.wait(timeout=60) for actor in actors] == [0, 0, 0, 0]
    assert query(server, "b200.example.test", "A") == ["192.0.2.200"]
    assert all(query(server, f"s{i}.example.test", "A") == [f"198.51.100.{i}"] for i in range(1, 4))
    assert serial(server) == 1 + 1 + 3


def test_offline_batch_is_one_commit(config: Path) -> None:
    result = dynmx("record", "batch", "-", "--offline", "-c", str(config), stdin=BATCH)
    assert result.returncode == 0, result.stdout + result.stderr
    zone = load_zone_file(config.parent / "zones" / "example.test.zone").zone
    assert zone.get_rdataset("example.test.", "SOA")[0].serial == 2  # type: ignore[index]
    assert len(zone.get_rdataset("www.example.test.", "A")) == 2  # type: ignore[arg-type]


def test_batch_over_tsig_is_one_update(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    where = f"127.0.0.1:{server.dns_port}"
    result = dynmx("record", "batch", "-", "--server", where, "-c", str(config), stdin=BATCH)
    assert result.returncode == 0, result.stdout + result.stderr
    assert serial(server) == 2 and query(server, "example.test", "TXT") == ['"v=spf1 mx -all"']

"""`dynmx record add|rm|set`: UPDATE+TSIG to a running server, or offline through the writer.

Record data reads as the rdata of a zone-file line (nsupdate's `update add NAME TTL TYPE
DATA...`); a removal that finds nothing is an error, as knotc's zone-unset and pdnsutil's.
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
mail CNAME ns1
"""
Serve = Callable[..., RunningServer]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, ZONE, EDITS)


def dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=30, cwd=ROOT
    )


def addresses(server: RunningServer, name: str) -> set[str]:
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=server.dns_port, timeout=2)
    return {r.address for r in reply.answer[0]} if reply.answer else set()


def test_record_add_set_rm_reach_the_running_server(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    target = ["--config", str(config), "--server", f"127.0.0.1:{server.dns_port}"]
    assert dynmx("record", "add", "www.example.test", "A", "192.0.2.1", *target).returncode == 0
    assert addresses(server, "www.example.test") == {"192.0.2.1"}
    several = ("--data", "192.0.2.2", "--data", "192.0.2.3")
    assert dynmx("record", "set", "www.example.test", "A", *several, *target).returncode == 0
    assert addresses(server, "www.example.test") == {"192.0.2.2", "192.0.2.3"}
    assert dynmx("record", "rm", "www.example.test", "A", "192.0.2.2", *target).returncode == 0
    assert addresses(server, "www.example.test") == {"192.0.2.3"}


def test_bad_record_data_is_a_clear_error_and_changes_nothing(config: Path) -> None:
    zone_file = config.parent / "zones" / "example.test.zone"
    result = dynmx(
        "record", "add", "www.example.test", "A", "not-an-address", "--offline", "--config", str(config)
    )
    assert result.returncode == 2 and "bad record data for A" in result.stderr
    assert zone_file.read_text() == ZONE


def test_cname_conflict_is_refused_before_anything_is_sent(config: Path) -> None:
    result = dynmx(
        "record", "add", "mail.example.test", "A", "192.0.2.9", "--offline", "--config", str(config)
    )
    assert result.returncode == 2 and "CNAME conflict" in result.stderr


def test_name_outside_every_zone_is_refused(config: Path) -> None:
    result = dynmx("record", "add", "www.other.test", "A", "192.0.2.9", "--offline", "--config", str(config))
    assert result.returncode == 2 and "in no served zone" in result.stderr


def test_offline_edit_goes_through_the_writer(config: Path) -> None:
    result = dynmx(
        "record", "add", "www.example.test", "A", "192.0.2.7", "--offline", "--config", str(config)
    )
    assert result.returncode == 0, result.stderr
    zone = load_zone_file(config.parent / "zones" / "example.test.zone").zone
    assert {r.address for r in zone.get_rdataset("www.example.test.", "A")} == {"192.0.2.7"}  # type: ignore[union-attr]
    assert zone.get_rdataset("example.test.", "SOA")[0].serial == 2  # type: ignore[index]


def query(server: RunningServer, name: str, rdtype: str) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=server.dns_port, timeout=2)
    return sorted(r.to_text() for rrset in reply.answer for r in rrset)


def serial(server: RunningServer) -> int:
    return int(query(server, "example.test", "SOA")[0].split()[2])


def test_mx_data_as_several_words_is_one_record(serve: Serve, config: Path) -> None:
    """The words after TYPE are one zone-file rdata, however the shell split them."""
    server = serve("--config", str(config))
    result = dynmx("record", "add", "example.test", "MX", "10", "mx1", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(server, "example.test", "MX") == ["10 mx1.example.test."]


def test_txt_argument_with_spaces_is_one_string(serve: Serve, config: Path) -> None:
    """`TXT "v=spf1 mx -all"` from a shell is one string, not three (an SPF record must be one)."""
    server = serve("--config", str(config))
    result = dynmx("record", "add", "example.test", "TXT", "v=spf1 mx -all", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(server, "example.test", "TXT") == ['"v=spf1 mx -all"']


def test_txt_unquoted_words_are_one_string_each_as_in_a_zone_file(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    result = dynmx("record", "add", "-c", str(config), "t.example.test", "TXT", "--", "v=spf1", "mx", "-all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(server, "t.example.test", "TXT") == ['"v=spf1" "mx" "-all"']


def test_several_records_are_given_with_data(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    more = ("--data", "20 mx2", "--data", "30 mx3.example.test.")
    result = dynmx("record", "set", "example.test", "MX", "10", "mx1", *more, "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(server, "example.test", "MX") == [
        "10 mx1.example.test.",
        "20 mx2.example.test.",
        "30 mx3.example.test.",
    ]


def test_two_addresses_as_words_are_refused_with_a_hint(config: Path) -> None:
    zone_file = config.parent / "zones" / "example.test.zone"
    result = dynmx(
        "record", "set", "www.example.test", "A", "192.0.2.2", "192.0.2.3", "--offline", "-c", str(config)
    )
    assert result.returncode == 2 and "--data 192.0.2.2 --data 192.0.2.3" in result.stderr
    assert zone_file.read_text() == ZONE


@pytest.mark.parametrize(
    ("what", "said"),
    [
        (("nowhere.example.test",), "nothing matched: nowhere.example.test. has no records"),
        (("ns1.example.test", "AAAA"), "nothing matched: ns1.example.test. has no AAAA records"),
        (
            ("ns1.example.test", "A", "192.0.2.99"),
            "nothing matched: ns1.example.test. has no A record 192.0.2.99",
        ),
    ],
)
def test_rm_of_what_is_not_there_says_nothing_matched(
    serve: Serve, config: Path, what: tuple[str, ...], said: str
) -> None:
    """Through the running server: exit 1, no `ok`, the serial stays."""
    server = serve("--config", str(config))
    result = dynmx("record", "rm", *what, "-c", str(config))
    assert result.returncode == 1 and said in result.stderr
    assert "ok" not in result.stdout
    assert serial(server) == 1


@pytest.mark.parametrize(
    ("what", "said"),
    [
        (("nowhere.example.test",), "nothing matched: nowhere.example.test. has no records"),
        (("ns1.example.test", "AAAA"), "nothing matched: ns1.example.test. has no AAAA records"),
        (
            ("ns1.example.test", "A", "192.0.2.99"),
            "nothing matched: ns1.example.test. has no A record 192.0.2.99",
        ),
    ],
)
def test_offline_rm_of_what_is_not_there_says_nothing_matched(
    config: Path, what: tuple[str, ...], said: str
) -> None:
    zone_file = config.parent / "zones" / "example.test.zone"
    result = dynmx("record", "rm", *what, "--offline", "-c", str(config))
    assert result.returncode == 1 and said in result.stderr
    assert zone_file.read_text() == ZONE


def test_rm_of_a_name_removes_its_records(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    result = dynmx("record", "rm", "mail.example.test", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(server, "mail.example.test", "CNAME") == []


@pytest.mark.parametrize("path", ["--offline", "server"])
def test_rm_of_the_soa_is_refused(serve: Serve, config: Path, path: str) -> None:
    """RFC 2136 §3.4.2.3 ignores it; the CLI says why instead of `ok`."""
    if path == "server":
        serve("--config", str(config))
    where = ("--offline",) if path == "--offline" else ()
    result = dynmx("record", "rm", "example.test", "SOA", *where, "-c", str(config))
    assert result.returncode == 2 and "the SOA record of example.test. cannot be removed" in result.stderr


@pytest.mark.parametrize(
    ("verb", "said"),
    [
        ("add", "dynmx record add example.test MX 10 mx1"),
        ("rm", "nothing matched"),
        ("set", "dynmx record set www.example.test A --data"),
        ("batch", "rm  NAME [TYPE [DATA...]]"),
    ],
)
def test_help_says_how_data_is_read_with_examples(verb: str, said: str) -> None:
    text = dynmx("record", verb, "--help").stdout
    assert said in text and "examples:" in text
    assert verb == "batch" or "zone-file line" in text


@pytest.mark.parametrize(
    ("what", "said"),
    [
        (("nowhere.example.test",), "nothing matched: nowhere.example.test. has no records"),
        (("ns1.example.test", "AAAA"), "nothing matched: ns1.example.test. has no AAAA records"),
        (
            ("ns1.example.test", "A", "192.0.2.99"),
            "nothing matched: ns1.example.test. has no A record 192.0.2.99",
        ),
    ],
)
def test_rm_over_tsig_of_what_is_not_there_says_nothing_matched(
    serve: Serve, config: Path, what: tuple[str, ...], said: str
) -> None:
    server = serve("--config", str(config))
    target = ("--server", f"127.0.0.1:{server.dns_port}", "-c", str(config))
    result = dynmx("record", "rm", *what, *target)
    assert result.returncode == 1 and said in result.stderr
    assert serial(server) == 1


def test_rm_of_the_last_apex_ns_says_it_stays(serve: Serve, config: Path) -> None:
    """RFC 2136 §3.4.2.4 keeps the last NS of the apex: the CLI says so instead of `ok`."""
    server = serve("--config", str(config))
    result = dynmx("record", "rm", "example.test", "NS", "ns1", "-c", str(config))
    assert result.returncode == 1 and "or it is the zone's last NS" in result.stderr
    assert query(server, "example.test", "NS") == ["ns1.example.test."]


def test_rm_of_the_apex_ns_rrset_is_refused(config: Path) -> None:
    result = dynmx("record", "rm", "example.test", "NS", "--offline", "-c", str(config))
    assert (
        result.returncode == 2
        and "NS records of the apex example.test. cannot all be removed" in result.stderr
    )


def test_rm_over_tsig_of_a_record_with_a_relative_name_finds_it(serve: Serve, config: Path) -> None:
    server = serve("--config", str(config))
    target = ("--server", f"127.0.0.1:{server.dns_port}", "-c", str(config))
    assert dynmx("record", "add", "example.test", "MX", "10", "mx1", *target).returncode == 0
    result = dynmx("record", "rm", "example.test", "MX", "10", "mx1", *target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(server, "example.test", "MX") == []

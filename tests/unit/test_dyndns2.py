"""The dyndns2 endpoint of `dynmx.control.dyndns2.handle`, one behaviour per test."""

from __future__ import annotations

import base64
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.control.dyndns2 import DynState, handle, to_changes
from dynmx.control.dyndns2_logins import Login, Logins, source_key
from dynmx.control.dyndns2_parse import AAAA, A, DynHost, DynResult, Swap
from dynmx.control.ratelog import LogLimiter, RefusalLog
from dynmx.control.update import Op

HOSTS = [
    DynHost("home.example.test.", "alice", "s3cret-alice"),
    DynHost("cabin.example.test.", "alice", "s3cret-alice"),
    DynHost("office.example.test.", "bob", "s3cret-bob"),
]
CLIENT = "198.51.100.9"
NOW = 1000.0


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ALICE = basic("alice", "s3cret-alice")


class Zone:
    """`current` over a dict, recording which (hostname, rdtype) were asked."""

    def __init__(self, records: dict[tuple[str, int], list[str]] | None = None) -> None:
        self.records = records or {}
        self.asked: list[tuple[str, int]] = []

    def __call__(self, hostname: str, rdtype: int) -> list[str]:
        self.asked.append((hostname, rdtype))
        return self.records.get((hostname, rdtype), [])


def call(
    query: str,
    authorization: str | None = ALICE,
    zone: Zone | None = None,
    state: DynState | None = None,
    now: float = NOW,
    client_ip: str = CLIENT,
) -> DynResult:
    return handle(query, authorization, client_ip, HOSTS, zone or Zone(), state or DynState(), now)


def test_good_answers_the_new_address_and_hands_back_the_change() -> None:
    zone = Zone({("home.example.test.", A): ["192.0.2.1"]})
    result = call("hostname=home.example.test&myip=192.0.2.7", zone=zone)
    assert (result.status, result.body) == (200, "good 192.0.2.7")
    assert result.changes == {"home.example.test.": (Swap("192.0.2.7", "192.0.2.1"),)}


def test_nochg_when_the_zone_already_has_the_address() -> None:
    zone = Zone({("home.example.test.", A): ["192.0.2.7"]})
    result = call("hostname=home.example.test&myip=192.0.2.7", zone=zone)
    assert (result.status, result.body, result.changes) == (200, "nochg 192.0.2.7", {})


def test_badauth_without_an_authorization_header() -> None:
    result = call("hostname=home.example.test&myip=192.0.2.7", authorization=None)
    assert (result.status, result.body, result.changes) == (401, "badauth", {})
    assert result.headers["WWW-Authenticate"].startswith("Basic ")


def test_badauth_with_a_wrong_password() -> None:
    result = call("hostname=home.example.test&myip=192.0.2.7", authorization=basic("alice", "guess"))
    assert (result.status, result.body, result.changes) == (401, "badauth", {})


def test_badauth_with_another_users_name_for_the_password() -> None:
    result = call("hostname=home.example.test&myip=192.0.2.7", authorization=basic("bob", "s3cret-alice"))
    assert (result.status, result.body, result.changes) == (401, "badauth", {})


def test_nohost_for_a_host_of_another_user() -> None:
    result = call("hostname=office.example.test&myip=192.0.2.7")
    assert (result.status, result.body, result.changes) == (200, "nohost", {})


def test_nohost_for_an_unconfigured_host() -> None:
    result = call("hostname=elsewhere.example.test&myip=192.0.2.7")
    assert (result.status, result.body, result.changes) == (200, "nohost", {})


def test_notfqdn_for_a_name_without_a_dot() -> None:
    result = call("hostname=home&myip=192.0.2.7")
    assert (result.status, result.body, result.changes) == (200, "notfqdn", {})


def test_abuse_within_min_interval_then_good_after_it() -> None:
    state = DynState()
    query = "hostname=home.example.test&myip={}"
    assert call(query.format("192.0.2.7"), state=state, now=NOW).body == "good 192.0.2.7"
    early = call(query.format("192.0.2.8"), state=state, now=NOW + 59)
    assert (early.body, early.changes) == ("abuse", {})
    late = call(query.format("192.0.2.8"), state=state, now=NOW + 60)
    assert (late.body, late.changes) == ("good 192.0.2.8", {"home.example.test.": (Swap("192.0.2.8", None),)})
    assert state.last_update[("home.example.test.", A)] == NOW + 60


def test_several_hostnames_answer_one_line_each_in_order() -> None:
    zone = Zone({("cabin.example.test.", A): ["192.0.2.7"]})
    names = "home.example.test,office.example.test,cabin.example.test,x"
    result = call(f"hostname={names}&myip=192.0.2.7", zone=zone)
    assert result.body.split("\n") == ["good 192.0.2.7", "nohost", "nochg 192.0.2.7", "notfqdn"]
    assert result.changes == {"home.example.test.": (Swap("192.0.2.7", None),)}


def test_myip_omitted_uses_the_client_address() -> None:
    result = call("hostname=home.example.test")
    assert (result.body, result.changes) == (f"good {CLIENT}", {"home.example.test.": (Swap(CLIENT, None),)})


def test_ipv6_address_reads_and_changes_aaaa() -> None:
    zone = Zone({("home.example.test.", AAAA): ["2001:db8::1"]})
    result = call("hostname=home.example.test&myip=2001:DB8:0::7", zone=zone)
    assert result.body == "good 2001:db8::7"
    assert result.changes == {"home.example.test.": (Swap("2001:db8::7", "2001:db8::1"),)}
    assert zone.asked == [("home.example.test.", AAAA)]


def test_invalid_myip_is_a_malformed_request() -> None:
    result = call("hostname=home.example.test&myip=not-an-ip")
    assert (result.status, result.body, result.changes) == (400, "dnserr", {})


def test_to_changes_replaces_the_old_record_with_the_new() -> None:
    delete, add = to_changes("home.example.test.", [Swap("2001:db8::7", "2001:db8::1")], 60)
    assert (delete.op, add.op) == (Op.DELETE, Op.ADD)
    assert (delete.rdata.rdtype, str(delete.rdata), str(add.rdata)) == (AAAA, "2001:db8::1", "2001:db8::7")
    assert str(add.name) == "home.example.test." and add.ttl == 60


def test_repr_of_dynhost_hides_the_password() -> None:
    assert "s3cret" not in repr(HOSTS[0])
    assert "alice" in repr(HOSTS[0])


@settings(max_examples=300, deadline=None)
@given(
    query=st.text(alphabet=st.sampled_from("ahostnmyip=&,.%?:;/ 0123456789abcdef\x00é")) | st.text(),
    authorization=st.none() | st.text() | st.builds(lambda s: "Basic " + s, st.text()),
    client_ip=st.sampled_from([CLIENT, "2001:db8::9", "::ffff:192.0.2.1", "garbage", ""]),
)
def test_random_queries_and_headers_never_raise(
    query: str, authorization: str | None, client_ip: str
) -> None:
    for auth in (authorization, ALICE):
        result = call(query, authorization=auth, client_ip=client_ip)
        assert result.status in (200, 400, 401)
        assert "s3cret" not in result.body


# -- Logins: failed logins per source, and the waits they earn ------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fail(logins: Logins, client: str = CLIENT) -> Login:
    return logins.check(client, basic("alice", "guess"), HOSTS)


def test_three_failures_are_free_then_each_doubles_the_wait_up_to_the_ceiling() -> None:
    clock = Clock()
    logins = Logins(clock)
    waits = []
    for _ in range(14):
        login = _fail(logins)
        assert login.refusal is not None and login.refusal.status == 401
        waits.append(login.wait)
        clock.now += login.wait  # the attacker waits exactly as long as it must
    assert waits == [0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert logins.snapshot()["badauth"] == 14


def test_while_waiting_nothing_is_checked_not_even_the_right_password() -> None:
    clock = Clock()
    logins = Logins(clock)
    for _ in range(3):
        _fail(logins)
    assert _fail(logins).refusal == DynResult(429, "badauth", headers={"Retry-After": "1"})  # not counted
    clock.now += 0.5  # of a 1 s wait
    login = logins.check(CLIENT, ALICE, HOSTS)
    assert login.refusal == DynResult(429, "badauth", headers={"Retry-After": "1"})
    assert logins.snapshot() == {"badauth": 3, "blocked": 2}
    clock.now += 0.5
    assert logins.check(CLIENT, ALICE, HOSTS).refusal is None
    assert _fail(logins).wait == 0  # the right login forgot the failures


def test_other_sources_are_not_held_back_and_an_ipv6_64_is_one_source() -> None:
    clock = Clock()
    logins = Logins(clock)
    for _ in range(3):
        _fail(logins, "2001:db8:1:2::1")
    assert _fail(logins, "2001:db8:1:2:ffff::9").refusal == DynResult(
        429, "badauth", headers={"Retry-After": "1"}
    )
    assert logins.check("2001:db8:1:3::1", ALICE, HOSTS).refusal is None
    assert logins.check(CLIENT, ALICE, HOSTS).refusal is None
    for _ in range(3):
        _fail(logins, "::ffff:192.0.2.1")
    assert logins.check("192.0.2.1", ALICE, HOSTS).refusal is not None  # mapped IPv4 is IPv4
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert source_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert logins.waiting() == 2


def test_no_credentials_is_a_challenge_not_a_failure() -> None:
    logins = Logins(Clock())
    for _ in range(10):
        login = logins.check(CLIENT, None, HOSTS)
        assert login.refusal is not None and login.refusal.status == 401 and login.failures == 0
    assert logins.check(CLIENT, ALICE, HOSTS).refusal is None
    assert logins.snapshot() == {"unauthenticated": 10, "ok": 1}


def test_failures_are_forgotten_after_an_hour_and_the_oldest_source_first() -> None:
    clock = Clock()
    logins = Logins(clock, max_sources=3)
    for _ in range(5):
        _fail(logins)
    clock.now += 3600
    assert _fail(logins).failures == 1
    for index in range(4):
        _fail(logins, f"192.0.2.{index}")
    assert _fail(logins).failures == 1  # pushed out by newer sources


def test_failed_logins_are_logged_as_refusals_rate_limited_and_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    refusals = RefusalLog(LogLimiter(per_window=10, window=1.0), clock)
    logins = Logins(clock, refusals=refusals)
    with caplog.at_level(logging.WARNING, logger="dynmx.control.dyndns2"):
        for n in range(25):
            logins.check(f"192.0.2.{n}", basic("alice", "guess"), HOSTS, "hostname=home.example.test")
        clock.now += 1
        logins.check("2001:db8:1:2::9", basic("alice", "guess"), HOSTS, "hostname=home.example.test")
    lines = caplog.messages
    assert len(lines) == 12 and refusals.counts["dyndns2-refused"] == 26
    assert lines[0] == (
        "event=dyndns2-refused reason=badauth host=home.example.test source=192.0.2.0 user='alice'"
        " counted=192.0.2.0 failures=1 wait=0"
    )
    assert lines[10] == "event=dyndns2-refused suppressed=15"
    assert "source=2001:db8:1:2::9" in lines[11] and "counted=2001:db8:1:2::/64" in lines[11]
    assert not any("guess" in line for line in lines)


def test_a_waiting_source_is_logged_as_waiting(caplog: pytest.LogCaptureFixture) -> None:
    logins = Logins(Clock())
    with caplog.at_level(logging.WARNING, logger="dynmx.control.dyndns2"):
        for _ in range(3):
            _fail(logins)
        logins.check(CLIENT, ALICE, HOSTS, "hostname=home.example.test&myip=192.0.2.7")
    assert caplog.messages[-1] == (
        f"event=dyndns2-refused reason=waiting host=home.example.test source={CLIENT} user='alice'"
        f" counted={CLIENT} failures=3 wait=1"
    )
    assert not any("s3cret" in line or "guess" in line for line in caplog.messages)


def test_a_first_try_without_credentials_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="dynmx.control.dyndns2"):
        Logins(Clock()).check(CLIENT, None, HOSTS, "hostname=home.example.test")
        call("hostname=home.example.test", authorization=None)
    assert caplog.messages == []


# -- min_interval per host and address family; nochg --------------------------------------


def test_an_aaaa_change_right_after_an_a_change_of_the_host_is_not_abuse() -> None:
    """ddclient 3.10 sends one address per request: a dual-stack host is two requests."""
    state = DynState()
    assert call("hostname=home.example.test&myip=192.0.2.7", state=state).body == "good 192.0.2.7"
    aaaa = call("hostname=home.example.test&myip=2001:db8::7", state=state, now=NOW + 1)
    assert (aaaa.body, aaaa.changes) == (
        "good 2001:db8::7",
        {"home.example.test.": (Swap("2001:db8::7", None),)},
    )
    assert call("hostname=home.example.test&myip=192.0.2.8", state=state, now=NOW + 2).body == "abuse"
    assert call("hostname=home.example.test&myip=2001:db8::8", state=state, now=NOW + 2).body == "abuse"


def test_nochg_neither_starts_nor_extends_the_interval() -> None:
    state = DynState()
    zone = Zone({("home.example.test.", A): ["192.0.2.7"]})
    for second in range(0, 60, 10):  # a client repeating its address, as after losing its cache
        assert call(
            "hostname=home.example.test&myip=192.0.2.7", zone=zone, state=state, now=NOW + second
        ).body == ("nochg 192.0.2.7")
    assert state.last_update == {}
    moved = call("hostname=home.example.test&myip=192.0.2.8", zone=zone, state=state, now=NOW + 60)
    assert moved.body == "good 192.0.2.8"
    zone.records[("home.example.test.", A)] = ["192.0.2.8"]
    again = call("hostname=home.example.test&myip=192.0.2.8", zone=zone, state=state, now=NOW + 61)
    assert again.body == "nochg 192.0.2.8"  # the same address again within the interval: not abuse
    assert state.last_update == {("home.example.test.", A): NOW + 60}


# -- dual stack: myip=v4,v6 and myipv6 -----------------------------------------------------

DUAL = "hostname=home.example.test&myip=198.51.100.9,2001:db8::9"


def test_myip_with_an_ipv4_and_an_ipv6_address_changes_a_and_aaaa() -> None:
    zone = Zone({("home.example.test.", A): ["192.0.2.1"]})
    result = call(DUAL, zone=zone)
    assert (result.status, result.body) == (200, "good 198.51.100.9 2001:db8::9")
    assert result.changes == {
        "home.example.test.": (Swap("198.51.100.9", "192.0.2.1"), Swap("2001:db8::9", None))
    }
    assert zone.asked == [("home.example.test.", A), ("home.example.test.", AAAA)]


def test_dual_stack_order_and_case_do_not_matter_and_nochg_when_both_are_there() -> None:
    zone = Zone({("home.example.test.", A): ["198.51.100.9"], ("home.example.test.", AAAA): ["2001:db8::9"]})
    result = call("hostname=home.example.test&myip=2001:DB8::9,198.51.100.9", zone=zone)
    assert (result.body, result.changes) == ("nochg 198.51.100.9 2001:db8::9", {})


def test_dual_stack_good_changes_only_the_record_that_differs() -> None:
    zone = Zone({("home.example.test.", A): ["198.51.100.9"], ("home.example.test.", AAAA): ["2001:db8::1"]})
    result = call(DUAL, zone=zone)
    assert result.body == "good 198.51.100.9 2001:db8::9"
    assert result.changes == {"home.example.test.": (Swap("2001:db8::9", "2001:db8::1"),)}


def test_dual_stack_answers_one_line_per_hostname_in_order() -> None:
    """dyn.com: host-specific codes one per line, in the order of the hostnames; ddclient
    (3.11 and later, which sends myip=v4,v6) reads line i as the status of host i."""
    zone = Zone(
        {("cabin.example.test.", A): ["198.51.100.9"], ("cabin.example.test.", AAAA): ["2001:db8::9"]}
    )
    result = call(
        "hostname=home.example.test,office.example.test,cabin.example.test&myip=198.51.100.9,2001:db8::9",
        zone=zone,
    )
    assert result.body.split("\n") == [
        "good 198.51.100.9 2001:db8::9",
        "nohost",
        "nochg 198.51.100.9 2001:db8::9",
    ]


def test_a_host_is_refused_as_a_whole_when_one_family_is_too_soon() -> None:
    state = DynState()
    assert call("hostname=home.example.test&myip=2001:db8::7", state=state).body == "good 2001:db8::7"
    result = call(DUAL, state=state, now=NOW + 1)
    assert (result.body, result.changes) == ("abuse", {})
    assert state.last_update == {("home.example.test.", AAAA): NOW}


def test_myipv6_names_the_ipv6_address_beside_myip_or_alone() -> None:
    both = call("hostname=home.example.test&myip=198.51.100.9&myipv6=2001:db8::9")
    assert both.body == "good 198.51.100.9 2001:db8::9"
    alone = call("hostname=home.example.test&myip=&myipv6=2001:db8::9")  # a router without IPv4
    assert (alone.body, alone.changes) == (
        "good 2001:db8::9",
        {"home.example.test.": (Swap("2001:db8::9", None),)},
    )


@pytest.mark.parametrize(
    "myip",
    ["myip=198.51.100.9,198.51.100.10", "myip=2001:db8::9,2001:db8::10", "myipv6=198.51.100.9",
     "myip=2001:db8::9&myipv6=2001:db8::10", "myip=198.51.100.9,bogus", "myip=198.51.100.9;2001:db8::9"],
)  # fmt: skip
def test_two_addresses_of_a_family_or_ipv4_in_myipv6_are_a_malformed_request(myip: str) -> None:
    result = call(f"hostname=home.example.test&{myip}")
    assert (result.status, result.body, result.changes) == (400, "dnserr", {})


def test_the_same_address_twice_is_one_address() -> None:
    result = call("hostname=home.example.test&myip=2001:db8::9&myipv6=2001:DB8:0::9")
    assert result.body == "good 2001:db8::9"


# -- refusals are logged -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "authorization", "line"),
    [
        ("hostname=office.example.test&myip=192.0.2.7", ALICE, "reason=nohost host=office.example.test"),
        ("hostname=home&myip=192.0.2.7", ALICE, "reason=notfqdn host=home"),
        ("hostname=home.example.test&myip=bogus", ALICE, "reason=dnserr host=home.example.test"),
        ("myip=192.0.2.7", ALICE, "reason=notfqdn host=-"),
        (
            "hostname=home.example.test",
            basic("alice", "s3cret-wrong"),
            "reason=badauth host=home.example.test",
        ),
    ],
)
def test_each_refusal_is_logged_with_reason_host_and_source(
    caplog: pytest.LogCaptureFixture, query: str, authorization: str, line: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="dynmx.control.dyndns2"):
        call(query, authorization=authorization)
    assert caplog.messages == [f"event=dyndns2-refused {line} source={CLIENT} user='alice'"]
    assert "s3cret" not in caplog.text


def test_abuse_is_logged_per_host(caplog: pytest.LogCaptureFixture) -> None:
    state = DynState()
    call("hostname=home.example.test&myip=192.0.2.7", state=state)
    with caplog.at_level(logging.WARNING, logger="dynmx.control.dyndns2"):
        call("hostname=home.example.test,cabin.example.test&myip=192.0.2.8", state=state, now=NOW + 1)
    assert caplog.messages == [
        f"event=dyndns2-refused reason=abuse host=home.example.test source={CLIENT} user='alice'"
    ]


def test_a_requested_name_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dynmx.control.dyndns2"):
        call("hostname=x%0Aevent=forged%20reason=ok&myip=192.0.2.7")
    assert len(caplog.messages) == 1 and "\n" not in caplog.messages[0]
    assert "host=x?event?forged?reason?ok " in caplog.messages[0]


def test_refusal_lines_are_rate_limited_and_summarised(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    refusals = RefusalLog(LogLimiter(per_window=3, window=1.0), clock)
    with caplog.at_level(logging.WARNING, logger="dynmx.control.dyndns2"):
        for _ in range(50):
            handle(
                "hostname=office.example.test",
                ALICE,
                CLIENT,
                HOSTS,
                Zone(),
                DynState(),
                NOW,
                refusals=refusals,
            )
        clock.now += 1
        refusals.flush()
    assert len(caplog.messages) == 4 and refusals.counts["dyndns2-refused"] == 50
    assert caplog.messages[-1] == "event=dyndns2-refused suppressed=47"

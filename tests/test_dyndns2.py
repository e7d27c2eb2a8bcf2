"""The dyndns2 endpoint of `dynmx.control.dyndns2.handle`, one behaviour per test."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.control.dyndns2 import (
    AAAA,
    A,
    DynHost,
    DynResult,
    DynState,
    Login,
    Logins,
    handle,
    source_key,
    to_changes,
)
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
    assert result.changes == {"home.example.test.": ("192.0.2.7", "192.0.2.1")}


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
    assert (late.body, late.changes) == ("good 192.0.2.8", {"home.example.test.": ("192.0.2.8", None)})
    assert state.last_update["home.example.test."] == NOW + 60


def test_several_hostnames_answer_one_line_each_in_order() -> None:
    zone = Zone({("cabin.example.test.", A): ["192.0.2.7"]})
    names = "home.example.test,office.example.test,cabin.example.test,x"
    result = call(f"hostname={names}&myip=192.0.2.7", zone=zone)
    assert result.body.split("\n") == ["good 192.0.2.7", "nohost", "nochg 192.0.2.7", "notfqdn"]
    assert result.changes == {"home.example.test.": ("192.0.2.7", None)}


def test_myip_omitted_uses_the_client_address() -> None:
    result = call("hostname=home.example.test")
    assert (result.body, result.changes) == (f"good {CLIENT}", {"home.example.test.": (CLIENT, None)})


def test_ipv6_address_reads_and_changes_aaaa() -> None:
    zone = Zone({("home.example.test.", AAAA): ["2001:db8::1"]})
    result = call("hostname=home.example.test&myip=2001:DB8:0::7", zone=zone)
    assert result.body == "good 2001:db8::7"
    assert result.changes == {"home.example.test.": ("2001:db8::7", "2001:db8::1")}
    assert zone.asked == [("home.example.test.", AAAA)]


def test_invalid_myip_is_a_malformed_request() -> None:
    result = call("hostname=home.example.test&myip=not-an-ip")
    assert (result.status, result.body, result.changes) == (400, "dnserr", {})


def test_to_changes_replaces_the_old_record_with_the_new() -> None:
    delete, add = to_changes("home.example.test.", "2001:db8::7", "2001:db8::1", 60)
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


def test_failure_lines_are_rate_limited_and_carry_no_password() -> None:
    clock = Clock()
    logins = Logins(clock)
    logged = [login for login in (_fail(logins, f"192.0.2.{n}") for n in range(25)) if login.log]
    assert len(logged) == 10 and logged[0].user == "alice" and "guess" not in repr(logged[0])
    clock.now += 60
    login = _fail(logins, "192.0.2.99")
    assert login.log and login.suppressed == 15

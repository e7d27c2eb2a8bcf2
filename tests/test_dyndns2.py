"""The dyndns2 endpoint of `dynmx.control.dyndns2.handle`, one behaviour per test."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.control.dyndns2 import AAAA, A, DynHost, DynResult, DynState, handle, to_changes
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

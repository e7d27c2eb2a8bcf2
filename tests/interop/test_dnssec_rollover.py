"""CSK rollover of a zone dynmx signs: `dynmx dnssec rollover ZONE start|ds-seen|switch|finish`,
each step refused until its RFC 7583 wait has passed (computed from the zone's TTLs and the
configured delays), and the zone validating at every step from every DS set a resolver may
hold then (old, both, new). The timing rules are plain calls on `dynmx.zone.rollover`; the
server tests use a zone whose TTLs are 1 s and delays 0, so no test sleeps long."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DS
import dns.rrset
import dns.serial
import dns.tsigkeyring
import dns.update
import dns.zone
import pytest

from dynmx.config import load_config
from dynmx.errors import ConfigError
from dynmx.zone.keys import (
    ACTIVE,
    PUBLISHED,
    REMOVED,
    RETIRED,
    ZoneKey,
    ensure_key,
    key_path,
    load_key,
    load_keys,
    new_key,
    save_keys,
)
from dynmx.zone.rollover import (
    DS_SEEN_STEP,
    FINISH,
    START,
    SWITCH,
    RolloverRefused,
    Timing,
    advance,
    next_step,
)
from dynmx.zone.signer import SignatureCache, signed_zone
from tests.conftest import ROOT, TEST_SECRET, RunningServer, wait_until, write_config

Serve = Callable[..., RunningServer]
ORIGIN = dns.name.from_text("example.test.")
T0 = 1_800_000_000
TIMING = Timing(dnskey_ttl=3600, max_ttl=86400, propagation=300, parent_ds_ttl=86400, parent_propagation=3600)
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@      SOA ns1 hostmaster 1 7200 3600 1209600 300
@      NS  ns1
@      MX  10 mx1
ns1    A   127.0.0.1
mx1    A   192.0.2.1
www    A   192.0.2.80
"""


def _first(tmp_path: Path) -> tuple[ZoneKey, ...]:
    return (ensure_key(tmp_path, ORIGIN, "ecdsap256sha256", now=T0),)


def _make(at: int) -> ZoneKey:
    return new_key(ORIGIN, "ecdsap256sha256", at)


def _ds(*keys: ZoneKey) -> list[dns.rdtypes.ANY.DS.DS]:
    return [dns.dnssec.make_ds(ORIGIN, key.dnskey, "SHA256") for key in keys]


# -- the timing rules (RFC 7583), by plain calls ------------------------------------------------


def test_rfc7583_3_2_1_switch_waits_dnskey_ttl_plus_propagation_after_start(tmp_path: Path) -> None:
    """Ipub = DprpC + TTLkey: one second early is refused, naming the earliest UTC time and the
    rule; on time, the new key is active and the old retired."""
    started = advance(START, _first(tmp_path), TIMING, T0, _make)
    with pytest.raises(RolloverRefused) as refused:
        advance(SWITCH, started, TIMING, T0 + 3899, _make)
    assert refused.value.earliest == T0 + 3900
    assert "not before 2027-01-15T09:05:00Z (1 s from now)" in str(refused.value)
    assert "DNSKEY TTL 3600 s + propagation delay 300 s not yet elapsed" in str(refused.value)
    assert "since pre-publication (RFC 7583 3.2.1, Ipub) at 2027-01-15T08:00:00Z" in str(refused.value)
    switched = advance(SWITCH, started, TIMING, T0 + 3900, _make)
    assert [key.state for key in switched] == [RETIRED, ACTIVE]


def test_rfc7583_finish_needs_the_parent_ds_seen(tmp_path: Path) -> None:
    """The old key may go only once the parent serves the new DS (the operator says so, as
    Knot's zone-ksk-submitted): without it, finish is refused with no time to wait for."""
    switched = advance(SWITCH, advance(START, _first(tmp_path), TIMING, T0, _make), TIMING, T0 + 3900, _make)
    with pytest.raises(RolloverRefused) as refused:
        advance(FINISH, switched, TIMING, T0 + 10**7, _make)
    assert refused.value.earliest is None and "ds-seen" in str(refused.value)


def test_rfc7583_finish_waits_for_the_later_of_iret_and_the_ds_ttl(tmp_path: Path) -> None:
    """3.2.1 Iret (largest TTL + DprpC since the switch) and 3.3.2 (parent DS TTL + DprpP since
    the DS was seen): the later one rules, and the refusal names it."""
    started = advance(START, _first(tmp_path), TIMING, T0, _make)
    seen = advance(DS_SEEN_STEP, started, TIMING, T0 + 100, _make)
    switched = advance(SWITCH, seen, TIMING, T0 + 3900, _make)
    ds_ready, iret_ready = T0 + 100 + 86400 + 3600, T0 + 3900 + 86400 + 300
    assert ds_ready < iret_ready
    with pytest.raises(RolloverRefused) as refused:
        advance(FINISH, switched, TIMING, iret_ready - 1, _make)
    assert refused.value.earliest == iret_ready and "largest TTL 86400 s" in str(refused.value)
    late_seen = advance(
        DS_SEEN_STEP, advance(SWITCH, started, TIMING, T0 + 3900, _make), TIMING, T0 + 9000, _make
    )
    with pytest.raises(RolloverRefused) as refused:
        advance(FINISH, late_seen, TIMING, iret_ready, _make)
    assert refused.value.earliest == T0 + 9000 + 86400 + 3600 and "parent DS TTL 86400 s" in str(
        refused.value
    )
    done = advance(FINISH, switched, TIMING, iret_ready, _make)
    assert [key.state for key in done] == [REMOVED, ACTIVE]


def test_steps_out_of_order_are_refused_without_a_time(tmp_path: Path) -> None:
    """A second start while one runs, a switch or finish with none under way: refused, and no
    time would make them possible."""
    first = _first(tmp_path)
    started = advance(START, first, TIMING, T0, _make)
    for step, keys in ((START, started), (SWITCH, first), (FINISH, first), (FINISH, started)):
        with pytest.raises(RolloverRefused) as refused:
            advance(step, keys, TIMING, T0 + 10**8, _make)
        assert refused.value.earliest is None, step


def test_next_step_says_what_and_when(tmp_path: Path) -> None:
    first = _first(tmp_path)
    assert next_step(first, TIMING) is None
    started = advance(START, first, TIMING, T0, _make)
    step = next_step(started, TIMING)
    assert step is not None and step[:2] == (SWITCH, T0 + 3900)
    switched = advance(SWITCH, started, TIMING, T0 + 3900, _make)
    step = next_step(switched, TIMING)
    assert step is not None and step[0] == DS_SEEN_STEP


# -- the key file -------------------------------------------------------------------------------


def test_the_key_set_is_stored_0600_with_states_and_a_single_key_file_still_loads(tmp_path: Path) -> None:
    """The one-record file of a zone's first key loads as one active key; after a step the file
    holds every key with its state and events, 0600 in a 0700 directory, and loads back equal."""
    first = _first(tmp_path)
    [loaded_first] = load_keys(tmp_path, ORIGIN)
    assert (loaded_first.dnskey, loaded_first.state) == (first[0].dnskey, ACTIVE)
    started = advance(START, first, TIMING, T0, _make)
    save_keys(tmp_path, ORIGIN, started)
    path = key_path(tmp_path, ORIGIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = load_keys(tmp_path, ORIGIN)
    assert [(k.dnskey, k.state, k.events) for k in again] == [(k.dnskey, k.state, k.events) for k in started]
    loaded = load_key(tmp_path, ORIGIN)
    assert loaded is not None and loaded.dnskey == first[0].dnskey  # the active one
    assert [name for name in path.parent.iterdir()] == [path]  # no temp file left


def test_a_crash_while_saving_leaves_the_old_key_set_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new set is written to a temp file and renamed: a failure before the rename leaves
    the old file as it was (the new key is not published, so losing it loses nothing)."""
    first = _first(tmp_path)
    before = key_path(tmp_path, ORIGIN).read_bytes()

    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_keys(tmp_path, ORIGIN, advance(START, first, TIMING, T0, _make))
    assert key_path(tmp_path, ORIGIN).read_bytes() == before
    assert len(list(key_path(tmp_path, ORIGIN).parent.iterdir())) == 1


# -- signing at each phase ----------------------------------------------------------------------


def _validate(zone: dns.zone.Zone, ds_set: Iterable[dns.rdtypes.ANY.DS.DS]) -> int:
    """As a validator holding `ds_set`: the DNSKEY RRset must be signed by a key a DS matches,
    then every RRset validates with the DNSKEY RRset; how many did."""
    dnskeys = zone.get_rdataset(ORIGIN, dns.rdatatype.DNSKEY)
    assert dnskeys is not None
    wanted = {(ds.key_tag, ds.digest) for ds in ds_set}
    anchored = [
        k for k in dnskeys if (dns.dnssec.key_id(k), dns.dnssec.make_ds(ORIGIN, k, "SHA256").digest) in wanted
    ]
    if not anchored:
        raise dns.exception.ValidationFailure("no DNSKEY matches a DS")  # type: ignore[no-untyped-call]
    trusted = dns.rrset.from_rdata_list(ORIGIN, dnskeys.ttl, anchored)
    sigs = zone.get_rdataset(ORIGIN, dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY)
    assert sigs is not None
    dns.dnssec.validate((ORIGIN, dnskeys), (ORIGIN, sigs), {ORIGIN: trusted})  # raises when none matches
    checked = 0
    for name, node in zone.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype != dns.rdatatype.RRSIG:
                sig = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rds.rdtype)
                assert sig is not None, f"{name} {rds.rdtype} unsigned"
                dns.dnssec.validate((name, rds), (name, sig), {ORIGIN: dnskeys})
                checked += 1
    return checked


def _signers(zone: dns.zone.Zone, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> set[int]:
    sigs = zone.get_rdataset(name, dns.rdatatype.RRSIG, rdtype)
    return {sig.key_tag for sig in sigs} if sigs is not None else set()


def test_rfc7583_every_phase_validates_from_every_ds_set_a_resolver_may_hold(tmp_path: Path) -> None:
    """Before start: old DS. Pre-published: old, or both (the parent added the new, double-DS).
    Switched: old, both or new. Finished: both or new; the old DS alone no longer validates,
    which is why finish waits for the DS TTL after ds-seen. The zone data is signed by the
    active key only; the DNSKEY RRset by every published key; CDS names both keys while the new
    one is pre-published, then the new one only."""
    zone = dns.zone.from_text(ZONE, origin=ORIGIN, relativize=False)
    [old] = _first(tmp_path)
    started = advance(START, (old,), TIMING, T0, _make)
    new = started[1]
    switched = advance(SWITCH, advance(DS_SEEN_STEP, started, TIMING, T0, _make), TIMING, T0 + 3900, _make)
    finished = advance(FINISH, switched, TIMING, T0 + 10**6, _make)
    phases = [
        ((old,), [_ds(old)], {old.tag}, {old.tag}, {old.tag}),
        (started, [_ds(old), _ds(old, new)], {old.tag}, {old.tag, new.tag}, {old.tag, new.tag}),
        (switched, [_ds(old), _ds(old, new), _ds(new)], {new.tag}, {old.tag, new.tag}, {new.tag}),
        (finished, [_ds(old, new), _ds(new)], {new.tag}, {new.tag}, {new.tag}),
    ]
    www = dns.name.from_text("www", ORIGIN)
    for keys, ds_sets, zone_signers, key_signers, cds_tags in phases:
        signed = signed_zone(zone, keys, cache=SignatureCache())
        for ds_set in ds_sets:
            assert _validate(signed, ds_set) > 5
        assert _signers(signed, www, dns.rdatatype.A) == zone_signers
        assert _signers(signed, ORIGIN, dns.rdatatype.DNSKEY) == key_signers
        cds = signed.get_rdataset(ORIGIN, dns.rdatatype.CDS)
        assert cds is not None and {c.key_tag for c in cds} == cds_tags
    with pytest.raises(dns.exception.ValidationFailure):
        _validate(signed_zone(zone, finished, cache=SignatureCache()), _ds(old))


@pytest.mark.parametrize("nsec3", [False, True], ids=["nsec", "nsec3"])
def test_rfc9077_denial_ttl_is_the_lower_of_soa_ttl_and_minimum(tmp_path: Path, nsec3: bool) -> None:
    """An SOA TTL (60) below its MINIMUM (300): NSEC/NSEC3 records and their RRSIGs take 60,
    not MINIMUM (what dnspython's signer gives), and still validate."""
    text = ZONE.replace("$TTL 3600", "$TTL 60")
    zone = dns.zone.from_text(text, origin=ORIGIN, relativize=False)
    signed = signed_zone(zone, _first(tmp_path), cache=SignatureCache(), nsec3=nsec3)
    denial = dns.rdatatype.NSEC3 if nsec3 else dns.rdatatype.NSEC
    found = [
        (rds.ttl, node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, denial))
        for node in signed.nodes.values()
        for rds in node.rdatasets
        if rds.rdtype == denial
    ]
    assert found and all(ttl == 60 and sig is not None and sig.ttl == 60 for ttl, sig in found)
    assert _validate(signed, _ds(*_first(tmp_path))) > 5


def test_start_refuses_an_algorithm_change_rfc6781_4_1_4(tmp_path: Path) -> None:
    """A configured algorithm other than the active key's is an algorithm rollover (both
    algorithms must sign everything first): `start` refuses it rather than pre-publish a key
    of an algorithm that signs nothing."""
    from dynmx.app.keyroll import step_keys

    extra = '[[zone]]\nname = "example.test."\ndnssec = true\ndnssec_algorithm = "ed25519"\n'
    config = load_config(write_config(tmp_path, ZONE, extra))
    ensure_key(tmp_path / "state", ORIGIN, "ecdsap256sha256")
    zone = dns.zone.from_text(ZONE, origin=ORIGIN, relativize=False)
    with pytest.raises(RolloverRefused) as refused:
        step_keys(config, ORIGIN, zone, START, time.time())
    assert "RFC 6781 4.1.4" in str(refused.value) and refused.value.earliest is None


def test_ds_seen_is_recorded_with_no_server_running(tmp_path: Path) -> None:
    """`ds-seen` changes nothing served (it notes what the parent serves), so it needs no
    server: the key file records it, and `keys` says switch may run now."""
    config = write_config(tmp_path, FAST, FAST_SIGNED)
    state = tmp_path / "state"
    first = (ensure_key(state, ORIGIN, "ecdsap256sha256"),)
    save_keys(state, ORIGIN, advance(START, first, TIMING, time.time() - 10, _make))
    run = _step(config, "ds-seen")
    assert run.returncode == 0, run.stderr
    [_, new] = load_keys(state, ORIGIN)
    assert new.at("ds-seen") is not None
    listed = _dynmx("dnssec", "keys", "example.test", "-c", str(config))
    assert "next: rollover switch now" in listed.stdout, listed.stdout


# -- config -------------------------------------------------------------------------------------


def test_a_negative_propagation_delay_is_a_config_error_naming_file_line_and_key(tmp_path: Path) -> None:
    extra = '[[zone]]\nname = "example.test."\ndnssec = true\ndnssec_propagation_delay = -1\n'
    config = write_config(tmp_path, ZONE, extra)
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert "dynmx.toml:" in str(error.value) and "zone[0].dnssec_propagation_delay" in str(error.value)


# -- through a running server -------------------------------------------------------------------

FAST = """\
$ORIGIN example.test.
$TTL 1
@      SOA ns1 hostmaster 1 7200 3600 1209600 1
@      NS  ns1
@      MX  10 mx1
ns1    A   127.0.0.1
mx1    A   192.0.2.1
www    A   192.0.2.80
"""
FAST_SIGNED = """[[zone]]
name = "example.test."
dnssec = true
serial = "increment"
dnssec_propagation_delay = 0
dnssec_parent_ds_ttl = 1
dnssec_parent_propagation_delay = 0
"""


def _dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def _step(config: Path, step: str) -> subprocess.CompletedProcess[str]:
    return _dynmx("dnssec", "rollover", "example.test", step, "--config", str(config))


def _ask(server: RunningServer, name: str, qtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, qtype, want_dnssec=True, use_edns=0, payload=1232)
    return dns.query.tcp(query, "127.0.0.1", port=server.dns_port, timeout=3)


def _served(server: RunningServer, names: Iterable[tuple[str, str]]) -> dns.zone.Zone:
    """The answers of `names` (and the apex DNSKEY, CDS and SOA) as a zone, signatures kept."""
    zone = dns.zone.Zone(ORIGIN, relativize=False)
    asked = [("example.test.", "DNSKEY"), ("example.test.", "CDS"), ("example.test.", "SOA"), *names]
    with zone.writer() as txn:
        for name, qtype in asked:
            reply = _ask(server, name, qtype)
            assert reply.rcode() == dns.rcode.NOERROR, f"{name} {qtype}: {reply}"
            for rrset in reply.answer:
                txn.add(rrset)
    return zone


def _serial(server: RunningServer) -> int:
    reply = _ask(server, "example.test.", "SOA")
    return int(reply.answer[0][0].serial)


def _tags(server: RunningServer, qtype: str) -> set[int]:
    reply = _ask(server, "example.test.", qtype)
    rrset = reply.find_rrset(reply.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.from_text(qtype))
    return {dns.dnssec.key_id(k) if qtype == "DNSKEY" else k.key_tag for k in rrset}


def _delv(server: RunningServer, ds_set: list[dns.rdtypes.ANY.DS.DS], path: Path) -> str:
    """BIND's delv on www A, trusting only `ds_set` (as a resolver that cached it)."""
    delv = shutil.which("delv")
    assert delv is not None
    anchors = "".join(
        f' "example.test." static-ds {ds.key_tag} {ds.algorithm} {ds.digest_type} "{ds.digest.hex()}";\n'
        for ds in ds_set
    )
    path.write_text(f"trust-anchors {{\n{anchors}}};\n")
    command = [delv, "-a", str(path), "+root=example.test.", "@127.0.0.1", "-p", str(server.dns_port)]
    run = subprocess.run([*command, "www.example.test", "A"], capture_output=True, text=True, timeout=20)
    return run.stdout + run.stderr


def _check_phase(server: RunningServer, config: Path, tmp_path: Path, ds_sets: list[list[ZoneKey]]) -> None:
    served = _served(server, [("www.example.test.", "A"), ("example.test.", "MX")])
    for keys in ds_sets:
        assert _validate(served, _ds(*keys)) >= 5
        if shutil.which("delv") is not None:
            assert "; fully validated" in _delv(server, _ds(*keys), tmp_path / "anchor.conf")


def test_rfc7583_a_rollover_through_the_running_server_validates_at_every_step(
    serve: Serve, tmp_path: Path
) -> None:
    """start, switch (refused at once: exit 3, the earliest UTC time and the rule), ds-seen,
    finish: each step is served at once under a new serial, and the served answers validate
    with dnspython and delv from each DS set a resolver may hold at that step."""
    slower = FAST_SIGNED.replace("dnssec_propagation_delay = 0", "dnssec_propagation_delay = 2")
    config = write_config(tmp_path, FAST, slower)
    server = serve("--config", str(config))
    state = tmp_path / "state"
    [old] = load_keys(state, ORIGIN)
    _check_phase(server, config, tmp_path, [[old]])
    serial = _serial(server)

    started = _step(config, "start")
    assert started.returncode == 0, started.stderr
    early = _step(config, "switch")
    assert early.returncode == 3, early.stderr
    [_, new] = load_keys(state, ORIGIN)
    assert _tags(server, "DNSKEY") == _tags(server, "CDS") == {old.tag, new.tag}
    assert dns.serial.Serial(_serial(server)) > dns.serial.Serial(serial)
    _check_phase(server, config, tmp_path, [[old], [old, new]])
    assert "too early, not before 20" in early.stderr and "RFC 7583 3.2.1" in early.stderr
    assert "DNSKEY TTL 1 s + propagation delay 2 s not yet elapsed" in early.stderr
    shown = json.loads(_dynmx("dnssec", "keys", "example.test", "--json", "-c", str(config)).stdout)
    assert [row["state"] for row in shown] == [ACTIVE, PUBLISHED]

    wait_until(lambda: _step(config, "switch").returncode == 0, timeout=8)
    assert _tags(server, "CDS") == {new.tag} and _tags(server, "DNSKEY") == {old.tag, new.tag}
    _check_phase(server, config, tmp_path, [[old], [old, new], [new]])

    unseen = _step(config, "finish")
    assert unseen.returncode == 1 and "ds-seen" in unseen.stderr
    assert _step(config, "ds-seen").returncode == 0
    before = _serial(server)
    wait_until(lambda: _step(config, "finish").returncode == 0, timeout=8)
    assert _tags(server, "DNSKEY") == _tags(server, "CDS") == {new.tag}
    assert dns.serial.Serial(_serial(server)) > dns.serial.Serial(before)
    _check_phase(server, config, tmp_path, [[old, new], [new]])
    listed = _dynmx("dnssec", "keys", "example.test", "-c", str(config))
    assert f"tag={old.tag}" in listed.stdout and "state=removed" in listed.stdout
    assert "PRIVATE" not in listed.stdout + server.log_text()
    ds = _dynmx("dnssec", "ds", "example.test", "-c", str(config))
    assert ds.stdout.split()[3] == str(new.tag)


def test_a_step_that_changes_what_is_served_needs_the_running_server(tmp_path: Path) -> None:
    """With no server, `start` is refused (exit 1): its wait would count from a change no
    server serves yet. The key file is left as it was."""
    config = write_config(tmp_path, FAST, FAST_SIGNED)
    ensure_key(tmp_path / "state", ORIGIN, "ecdsap256sha256")
    before = key_path(tmp_path / "state", ORIGIN).read_bytes()
    run = _step(config, "start")
    assert run.returncode == 1 and "start the server" in run.stderr
    assert key_path(tmp_path / "state", ORIGIN).read_bytes() == before


def test_updates_arriving_across_a_rollover_step_are_all_served_and_validate(
    serve: Serve, tmp_path: Path
) -> None:
    """Two actors at once: RFC 2136 UPDATEs keep coming while `rollover switch` commits its
    serial-only change through the same owner. Every acknowledged name is served, signed by the
    new key and validating from the new DS; the serial only moves forward."""
    extra = FAST_SIGNED + 'allow_update = ["ops-key."]\n'
    config = write_config(tmp_path, FAST, f'[[key]]\nname = "ops-key."\nsecret = "{TEST_SECRET}"\n' + extra)
    server = serve("--config", str(config))
    assert _step(config, "start").returncode == 0
    keyring = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})
    before = _serial(server)
    time.sleep(1.1)  # DNSKEY TTL 1 s: switch may run from now on
    outcome: list[subprocess.CompletedProcess[str]] = []
    switching = threading.Thread(target=lambda: outcome.append(_step(config, "switch")))
    acknowledged, serials = [], []
    for index in range(40):
        if index == 5:
            switching.start()
        update = dns.update.UpdateMessage("example.test.", keyring=keyring)
        update.add(f"h{index}", 1, "A", f"192.0.2.{index + 100}")
        reply = dns.query.tcp(update, "127.0.0.1", port=server.dns_port, timeout=10)
        assert reply.rcode() == dns.rcode.NOERROR
        acknowledged.append((f"h{index}.example.test.", "A"))
        serials.append(_serial(server))
    switching.join(30)
    assert outcome and outcome[0].returncode == 0, outcome[0].stderr if outcome else "no result"
    assert all(dns.serial.Serial(b) >= dns.serial.Serial(a) for a, b in itertools.pairwise(serials))
    [old, new] = load_keys(tmp_path / "state", ORIGIN)
    assert (old.state, new.state) == (RETIRED, ACTIVE)
    served = _served(server, acknowledged)
    assert _validate(served, _ds(new)) > 40
    assert all(
        _signers(served, dns.name.from_text(name), dns.rdatatype.A) == {new.tag} for name, _ in acknowledged
    )
    assert dns.serial.Serial(_serial(server)) > dns.serial.Serial(before + 40)


def test_every_worker_serves_a_step_once_it_is_acknowledged(serve: Serve, tmp_path: Path) -> None:
    """With `workers = 2` each answer process signs from the key file itself: once `start` and
    `switch` return, every UDP answer (from new source ports, spread over the workers by the
    kernel) carries the new key set."""
    config = write_config(tmp_path, FAST, "workers = 2\n" + FAST_SIGNED)
    server = serve("--config", str(config))
    [old] = load_keys(tmp_path / "state", ORIGIN)

    def udp_signers(name: str, qtype: str) -> set[int]:
        query = dns.message.make_query(name, qtype, want_dnssec=True, use_edns=0, payload=1232)
        reply = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=3)
        return {sig.key_tag for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG for sig in rrset}

    assert _step(config, "start").returncode == 0
    [_, new] = load_keys(tmp_path / "state", ORIGIN)
    assert all(udp_signers("example.test.", "DNSKEY") == {old.tag, new.tag} for _ in range(30))
    time.sleep(1.1)
    assert _step(config, "switch").returncode == 0
    assert all(udp_signers("www.example.test.", "A") == {new.tag} for _ in range(30))

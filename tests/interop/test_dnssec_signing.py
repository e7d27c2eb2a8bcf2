"""Zones dynmx signs itself (`[[zone]] dnssec = true`): a CSK made on first start and kept
in state_dir, every answer signed when it is compiled, pool variants each with its own
RRSIG (RFC 4035 2.2, 3.1), validated by dnspython and by BIND's delv."""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.dnssec
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import pytest

from dynmx.zone.keys import ensure_key, key_path, load_key
from dynmx.zone.signer import SignatureCache, signed_zone
from tests.conftest import ROOT, RunningServer, wait_until, write_config
from tests.signing import POOL_ZONE as ZONE

Serve = Callable[..., RunningServer]
ORIGIN = dns.name.from_text("example.test.")
SIGNED = """[[zone]]
name = "example.test."
dnssec = true
[[pool]]
name = "rr.example.test."
strategy = "round-robin"
[[pool.member]]
host = "mx1.example.test."
preference = 10
probe = "none"
[[pool.member]]
host = "mx2.example.test."
preference = 10
probe = "none"
"""


def _ask(server: RunningServer, name: str, qtype: str) -> dns.message.Message:
    query = dns.message.make_query(name, qtype, want_dnssec=True, use_edns=0, payload=1232)
    return dns.query.tcp(query, "127.0.0.1", port=server.dns_port, timeout=3)


def _keys(server: RunningServer) -> dict[dns.name.Name, dns.rrset.RRset]:
    reply = _ask(server, "example.test.", "DNSKEY")
    dnskey = reply.find_rrset(reply.answer, ORIGIN, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
    return {ORIGIN: dnskey}


def _validate_section(section: list[dns.rrset.RRset], keys: dict[dns.name.Name, dns.rrset.RRset]) -> int:
    """Every RRset of `section` checked against its RRSIG; returns how many were."""
    checked = 0
    for rrset in section:
        if rrset.rdtype == dns.rdatatype.RRSIG:
            continue
        sig = next(
            s
            for s in section
            if s.rdtype == dns.rdatatype.RRSIG and s.covers == rrset.rdtype and s.name == rrset.name
        )
        dns.dnssec.validate(rrset, sig, keys)
        checked += 1
    return checked


def test_key_is_made_once_kept_0600_and_loaded_again(tmp_path: Path) -> None:
    """The CSK (flags 257, algorithm 13 by default) is stored 0600 in a 0700 directory and
    the same key comes back: same DNSKEY, same DS."""
    made = ensure_key(tmp_path, ORIGIN, "ecdsap256sha256")
    path = key_path(tmp_path, ORIGIN)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = load_key(tmp_path, ORIGIN)
    assert again is not None and again.dnskey == made.dnskey and made.flags == 257 and made.algorithm == 13
    assert ensure_key(tmp_path, ORIGIN, "ed25519").dnskey == made.dnskey  # no silent rollover
    assert "PRIVATE" not in repr(made)


@pytest.mark.parametrize(
    "algorithm,number,nsec3",
    [("ecdsap256sha256", 13, False), ("ed25519", 15, False), ("ecdsap256sha256", 13, True)],
)
def test_rfc4035_signed_zone_every_rrset_validates(
    tmp_path: Path, algorithm: str, number: int, nsec3: bool
) -> None:
    """Every RRset of the signed copy, NSEC and the CDS/CDNSKEY (RFC 7344) included, has an
    RRSIG that validates with the zone's DNSKEY; the operator's zone is left unsigned."""
    import dns.zone

    zone = dns.zone.from_text(ZONE, origin=ORIGIN, relativize=False)
    key = ensure_key(tmp_path, ORIGIN, algorithm)
    signed = signed_zone(zone, key, cache=SignatureCache(), nsec3=nsec3)
    keys = {ORIGIN: signed.get_rdataset(ORIGIN, dns.rdatatype.DNSKEY)}
    types = set()
    for name, node in signed.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype != dns.rdatatype.RRSIG:
                sig = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rds.rdtype)
                assert sig is not None and sig[0].algorithm == number
                dns.dnssec.validate((name, rds), (name, sig), keys)
                types.add(rds.rdtype)
    denial = {dns.rdatatype.NSEC3, dns.rdatatype.NSEC3PARAM} if nsec3 else {dns.rdatatype.NSEC}
    assert denial | {dns.rdatatype.CDS, dns.rdatatype.CDNSKEY} <= types
    assert zone.get_rdataset(ORIGIN, dns.rdatatype.DNSKEY) is None


def test_a_zone_with_more_signatures_than_the_cache_is_signed_again_from_it_once_fitted(
    tmp_path: Path,
) -> None:
    """Signing walks a zone in the same order each time: a cache smaller than the zone would
    evict every signature just before it is asked for again. Fitted to what is served, a
    third signing of the unchanged zone makes no signature."""
    import dns.zone

    zone = dns.zone.from_text(ZONE, origin=ORIGIN, relativize=False)
    key = ensure_key(tmp_path, ORIGIN, "ecdsap256sha256")
    cache = SignatureCache(size=3)
    signed_zone(zone, key, cache=cache)
    served = cache.calls
    assert served > 3 and cache.misses == served
    signed_zone(zone, key, cache=cache)
    assert cache.hits == 0  # each was evicted before it came round again
    cache.fit(served)
    signed_zone(zone, key, cache=cache)
    made, hits = cache.misses, cache.hits
    signed_zone(zone, key, cache=cache)
    assert cache.misses == made and cache.hits - hits == served


def test_each_compile_fits_the_shared_cache_to_the_signatures_served(tmp_path: Path) -> None:
    """`signed_zones` grows the process's cache to twice what its signed zones used, so a
    zone with more signatures than the default size is re-signed from the cache."""
    import dns.zone

    from dynmx.answer.zoneset import ZoneData
    from dynmx.config import load_config
    from dynmx.policy.signing import signed_zones
    from dynmx.zone.signer import CACHE

    config = load_config(write_config(tmp_path, ZONE, '[[zone]]\nname = "example.test."\ndnssec = true\n'))
    zone = dns.zone.from_text(ZONE, origin=ORIGIN, relativize=False)
    floor, CACHE.floor = CACHE.floor, 3
    try:
        before = CACHE.calls
        assert signed_zones(config, [ZoneData(ORIGIN, zone)], {}) is not None
        assert CACHE.size == 2 * (CACHE.calls - before) > 3
    finally:
        CACHE.floor = CACHE.size = floor


def test_check_refuses_dnssec_on_a_secondary_zone(tmp_path: Path) -> None:
    """A zone followed from a primary is served as the primary signed it: `dnssec = true`
    there is a config error that `dynmx check` names, not a second signer."""
    extra = '[[zone]]\nname = "example.test."\ndnssec = true\nprimary = "127.0.0.1:5300"\n'
    run = _dynmx("check", "--config", str(write_config(tmp_path, ZONE, extra)))
    assert run.returncode != 0
    assert "dnssec: a secondary zone" in run.stdout + run.stderr


def test_rfc4035_pool_answers_are_signed_per_variant_and_rotate(serve: Serve, tmp_path: Path) -> None:
    """Hundreds of consecutive DO=1 answers of a round-robin pool each validate against the
    DNSKEY (every variant RRset has its own RRSIG) and the first host still rotates."""
    server = serve("--config", str(write_config(tmp_path, ZONE, SIGNED)))
    keys = _keys(server)
    firsts = set()
    for _ in range(200):
        reply = _ask(server, "rr.example.test.", "MX")
        assert _validate_section(reply.answer, keys) == 1
        assert _validate_section(reply.additional, keys) >= 1  # the hosts' addresses
        mx = reply.find_rrset(
            reply.answer, dns.name.from_text("rr.example.test."), dns.rdataclass.IN, dns.rdatatype.MX
        )
        firsts.add(str(next(iter(mx)).exchange))
    assert firsts == {"mx1.example.test.", "mx2.example.test."}
    plain = dns.query.tcp(
        dns.message.make_query("rr.example.test.", "MX"), "127.0.0.1", port=server.dns_port, timeout=3
    )
    assert not any(r.rdtype == dns.rdatatype.RRSIG for r in plain.answer)
    www = _ask(server, "www.example.test.", "A")
    assert _validate_section(www.answer, keys) == 1
    nx = _ask(server, "nope.example.test.", "A")
    assert nx.rcode() == dns.rcode.NXDOMAIN and _validate_section(nx.authority, keys) >= 2


def _dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=30, cwd=ROOT
    )


def _ds_anchor(config: Path, path: Path) -> Path:
    """A delv anchor file holding the DS that `dynmx dnssec ds` prints (what the parent gets)."""
    run = _dynmx("dnssec", "ds", "example.test", "--config", str(config))
    assert run.returncode == 0, run.stderr
    owner, _, _, tag, algorithm, digest_type, digest = run.stdout.split()
    assert owner == "example.test."
    anchor = f'"example.test." static-ds {tag} {algorithm} {digest_type} "{digest}";'
    path.write_text(f"trust-anchors {{\n {anchor}\n}};\n")
    return path


# An empty non-terminal (ent), a wildcard and an insecure delegation, for the denials.
DEEPER = """\
a.ent  A   192.0.2.90
*.wc   A   192.0.2.100
insecure NS ns.example.net.
"""
VALIDATED = {
    ("x.wc.example.test", "A"): "; fully validated",
    ("ent.example.test", "A"): "negative response, fully validated",
    ("x.wc.example.test", "TXT"): "negative response, fully validated",
    ("insecure.example.test", "DS"): "negative response, fully validated",
    ("www.example.test", "A"): "; fully validated",
    ("rr.example.test", "MX"): "; fully validated",
    ("example.test", "CDS"): "; fully validated",
    ("nope.example.test", "A"): "negative response, fully validated",
    ("www.example.test", "TLSA"): "negative response, fully validated",
    ("_25._tcp.rr.example.test", "TLSA"): "negative response, fully validated",
}


@pytest.mark.parametrize("denial", ["nsec", "nsec3"])
def test_rfc4035_answers_of_a_zone_dynmx_signs_validate_with_delv(
    serve: Serve, tmp_path: Path, denial: str
) -> None:
    """Positive, pool MX, CDS, NXDOMAIN and TLSA NODATA/NXDOMAIN: BIND's validator, trusting
    only the DS that `dynmx dnssec ds` prints, calls each answer fully validated."""
    delv = shutil.which("delv")
    if delv is None:
        pytest.skip("delv is not installed (apt-get install bind9-dnsutils)")
    signed = SIGNED.replace("dnssec = true\n", f'dnssec = true\ndenial = "{denial}"\n', 1)
    config = write_config(tmp_path, ZONE + DEEPER, signed)
    server = serve("--config", str(config))
    anchor = _ds_anchor(config, tmp_path / "anchor.conf")
    for (name, qtype), verdict in VALIDATED.items():
        run = subprocess.run(
            [
                delv,
                "-a",
                str(anchor),
                "+root=example.test.",
                "@127.0.0.1",
                "-p",
                str(server.dns_port),
                name,
                qtype,
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert verdict in run.stdout + run.stderr, f"{name} {qtype}: {run.stdout}{run.stderr}"


def test_dnssec_keys_lists_the_key_and_ds_needs_one(serve: Serve, tmp_path: Path) -> None:
    """Before the first start there is no key (exit 1, says how to get one); after it,
    `keys` shows tag, algorithm, flags and the DNSKEY, never the private key."""
    config = write_config(tmp_path, ZONE, SIGNED)
    before = _dynmx("dnssec", "ds", "example.test", "--config", str(config))
    assert before.returncode == 1 and "start the server" in before.stderr
    server = serve("--config", str(config))
    served = _keys(server)[ORIGIN]
    run = _dynmx("dnssec", "keys", "example.test", "--config", str(config))
    assert run.returncode == 0, run.stderr
    tag = dns.dnssec.key_id(next(iter(served)))
    assert f"tag={tag} algorithm=13 (ECDSAP256SHA256) flags=257 (CSK)" in run.stdout
    assert "PRIVATE" not in run.stdout + run.stderr
    assert "PRIVATE" not in server.log_text()


def test_rfc4035_an_edit_keeps_the_zone_signed(serve: Serve, tmp_path: Path) -> None:
    """A record added through the running server is answered with its RRSIG, and the NSEC
    chain that denied the name before now holds it (the operator's file stays unsigned)."""
    config = write_config(tmp_path, ZONE, SIGNED)
    server = serve("--config", str(config))
    keys = _keys(server)
    before = _ask(server, "new.example.test.", "A")
    assert before.rcode() == dns.rcode.NXDOMAIN
    added = _dynmx("record", "add", "new.example.test", "A", "192.0.2.44", "-c", str(config))
    assert added.returncode == 0, added.stdout + added.stderr
    wait_until(lambda: bool(_ask(server, "new.example.test.", "A").answer), timeout=5)
    after = _ask(server, "new.example.test.", "A")
    assert _validate_section(after.answer, keys) == 1
    nodata = _ask(server, "new.example.test.", "TLSA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    nsec = [r for r in nodata.authority if r.rdtype == dns.rdatatype.NSEC]
    assert nsec and nsec[0].name == dns.name.from_text("new.example.test.")
    assert _validate_section(nodata.authority, keys) >= 2
    assert "RRSIG" not in (tmp_path / "zones" / "example.test.zone").read_text()


def test_rfc4035_hint_names_and_null_mx_are_signed(serve: Serve, tmp_path: Path) -> None:
    """What the policy lays over the zone is signed too: a pool's hint name (its MX
    variants) and a null MX (RFC 7505) validate, each with its own RRSIG."""
    extra = SIGNED + (
        '[[pool.hint]]\nlabel = "urgent"\norder = ["mx2.example.test."]\n'
        '[[name]]\nname = "www.example.test."\naction = "null-mx"\n'
    )
    server = serve("--config", str(write_config(tmp_path, ZONE, extra)))
    keys = _keys(server)
    hint = _ask(server, "urgent._hint.rr.example.test.", "MX")
    assert hint.answer and _validate_section(hint.answer, keys) == 1
    null = _ask(server, "www.example.test.", "MX")
    assert [r.to_text().split()[-2:] for r in null.answer if r.rdtype == dns.rdatatype.MX] == [["0", "."]]
    assert _validate_section(null.answer, keys) == 1


def test_rfc4035_a_health_change_serves_new_variants_signed(serve: Serve, tmp_path: Path) -> None:
    """A member going down brings a new variant set; its RRsets are signed before they are
    served, so every DO=1 answer before and after validates."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    zone = ZONE.replace("mx1    A   192.0.2.1", "mx1    A   127.0.0.1")
    pool = SIGNED.replace('probe = "none"', f'probe = "tcp"\nport = {port}\ninterval = 1\ntimeout = 0.5', 1)
    server = serve("--config", str(write_config(tmp_path, zone, pool)))
    keys = _keys(server)
    owner = dns.name.from_text("rr.example.test.")

    def exchanges() -> set[str]:
        reply = _ask(server, "rr.example.test.", "MX")
        assert _validate_section(reply.answer, keys) == 1
        mx = reply.find_rrset(reply.answer, owner, dns.rdataclass.IN, dns.rdatatype.MX)
        return {f"{rd.preference} {rd.exchange}" for rd in mx}

    up = exchanges() | exchanges()
    listener.close()
    wait_until(lambda: exchanges() | exchanges() != up, timeout=15)
    for _ in range(20):
        exchanges()


def test_rfc5936_axfr_of_a_zone_dynmx_signs_is_the_signed_zone(serve: Serve, tmp_path: Path) -> None:
    """A secondary gets the zone as it is served: DNSKEY, CDS, NSEC chain, and every RRset
    with an RRSIG that validates (IXFR too is answered in full: the journal is unsigned)."""
    allow = '\nallow_transfer = ["127.0.0.0/8"]\n'
    extra = SIGNED.replace("dnssec = true\n", "dnssec = true" + allow, 1)
    server = serve("--config", str(write_config(tmp_path, ZONE, extra)))
    import dns.zone

    got = dns.zone.from_xfr(
        dns.query.xfr("127.0.0.1", "example.test.", port=server.dns_port, timeout=5, relativize=False),
        relativize=False,
    )
    keys = {ORIGIN: got.get_rdataset(ORIGIN, dns.rdatatype.DNSKEY)}
    checked = 0
    for name, node in got.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype != dns.rdatatype.RRSIG:
                sig = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rds.rdtype)
                assert sig is not None, f"{name} {rds.rdtype} unsigned"
                dns.dnssec.validate((name, rds), (name, sig), keys)
                checked += 1
    assert got.get_rdataset(ORIGIN, dns.rdatatype.CDS) is not None and checked > 10


def test_signatures_are_renewed_each_day_before_they_expire() -> None:
    """Just after each UTC day starts (a new validity window, 14 days ahead), every zone
    dynmx signs is compiled again; the wait is never longer than a day and a minute."""
    import asyncio

    from dynmx.app.resign import resign_daily, until_next_window
    from dynmx.zone.signer import DAY, window

    noon = 100 * DAY + DAY / 2
    assert until_next_window(noon) == DAY / 2 + 60
    assert until_next_window(101 * DAY - 30) == 90
    assert window(101 * DAY + 60).expiration - window(noon).expiration == DAY
    waits: list[float] = []
    republished: list[str] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 2:
            raise asyncio.CancelledError

    async def republish(zone: Any) -> None:
        republished.append(str(zone.origin))

    zone = type("Zone", (), {"origin": ORIGIN})()
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(resign_daily(lambda: [zone], republish, lambda: noon, sleep))
    assert waits == [DAY / 2 + 60] * 3 and republished == ["example.test."] * 2


def test_rfc4035_5_3_3_a_lowered_ttl_keeps_its_original_ttl_and_signature(tmp_path: Path) -> None:
    """A pool RRset served with a TTL the prober lowered gets an RRSIG with that TTL, whose
    Original TTL is the pool's; it validates, and is the very signature of the full TTL."""
    from dynmx.zone.signer import ZoneSigner, window

    key = ensure_key(tmp_path, ORIGIN, "ecdsap256sha256")
    signer = ZoneSigner(key, window(), SignatureCache())
    owner = dns.name.from_text("rr.example.test.")
    full = dns.rdataset.from_text("IN", "MX", 300, "10 mx1.example.test.")
    lowered = dns.rdataset.from_text("IN", "MX", 20, "10 mx1.example.test.")
    sig = signer(owner, lowered, 300)
    assert sig.ttl == 20 and sig[0].original_ttl == 300
    assert sig[0] == signer(owner, full, 300)[0]
    keys = {ORIGIN: dns.rdataset.from_rdata(300, key.dnskey)}
    dns.dnssec.validate((owner, lowered), (owner, sig), keys)

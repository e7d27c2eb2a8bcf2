"""DNSSEC metrics over /metrics of a running server that signs a zone (`dnssec = true`):
signatures made, cache hits, zones signed, and the earliest RRSIG expiration served."""

from __future__ import annotations

import re
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype

from dynmx.app.dnssec_metrics import earliest_expiration
from dynmx.metrics import DnssecSamples, Metrics
from tests.conftest import RunningServer, write_config

Serve = Callable[..., RunningServer]
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@      SOA ns1 hostmaster 1 7200 3600 1209600 300
@      NS  ns1
ns1    A   127.0.0.1
mx1    A   192.0.2.1
mx2    A   192.0.2.2
rr     MX  10 mx1
rr     MX  20 mx2
"""
SIGNED = """[http]
listen = "127.0.0.1:0"
[[zone]]
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
preference = 20
probe = "none"
"""
SAMPLE = re.compile(r"^(dynmx_dnssec_[a-z_]+(?:\{[^}]*\})?) (\S+)$", re.MULTILINE)


def _samples(server: RunningServer) -> dict[str, float]:
    url = f"http://127.0.0.1:{server.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {name: float(value) for name, value in SAMPLE.findall(text)}


def _served_expirations(server: RunningServer) -> set[int]:
    found = set()
    for name, qtype in (("example.test.", "SOA"), ("example.test.", "DNSKEY"), ("rr.example.test.", "MX")):
        query = dns.message.make_query(name, qtype, want_dnssec=True, use_edns=0, payload=1232)
        reply = dns.query.tcp(query, "127.0.0.1", port=server.dns_port, timeout=3)
        found |= {
            rd.expiration for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG for rd in rrset
        }
    return found


def test_a_signed_server_reports_signatures_zones_and_earliest_expiry(serve: Serve, tmp_path: Path) -> None:
    server = serve("--config", str(write_config(tmp_path, ZONE, SIGNED)))
    samples = _samples(server)
    assert samples["dynmx_dnssec_signed_zones"] == 1
    assert samples["dynmx_dnssec_signatures_total"] > 0  # every RRset of the zone, the DNSKEY, the NSECs
    expiry = samples['dynmx_dnssec_signature_expiry_timestamp_seconds{zone="example.test."}']
    served = _served_expirations(server)
    assert served and expiry == min(served)


def test_an_edit_signs_only_what_changed_the_rest_are_cache_hits(serve: Serve, tmp_path: Path) -> None:
    config = write_config(tmp_path, ZONE, SIGNED)
    server = serve("--config", str(config))
    before = _samples(server)
    zone_file = tmp_path / "zones" / "example.test.zone"
    zone_file.write_text(
        ZONE.replace("SOA ns1 hostmaster 1 ", "SOA ns1 hostmaster 2 ") + "www A 192.0.2.80\n"
    )
    server.process.send_signal(signal.SIGHUP)
    server.wait_for_log("event=reloaded")
    after = _samples(server)
    made = after["dynmx_dnssec_signatures_total"] - before["dynmx_dnssec_signatures_total"]
    assert 0 < made < before["dynmx_dnssec_signatures_total"]


def test_an_unsigned_server_reports_no_signed_zone(serve: Serve, tmp_path: Path) -> None:
    server = serve("--config", str(write_config(tmp_path, ZONE, '[http]\nlisten = "127.0.0.1:0"\n')))
    samples = _samples(server)
    assert samples["dynmx_dnssec_signed_zones"] == 0
    assert not any(name.startswith("dynmx_dnssec_signature_expiry") for name in samples)


def test_the_collector_reads_what_it_is_handed_at_scrape_time() -> None:
    """metrics.py stays a leaf: the numbers come from a callable app hands over."""
    state = DnssecSamples(5, 7, {"example.test.": 1_700_000_000.0})
    metrics = Metrics()
    metrics.attach_dnssec(lambda: state)
    text = metrics.render().decode()
    assert "dynmx_dnssec_signatures_total 5.0" in text
    assert "dynmx_dnssec_signature_cache_hits_total 7.0" in text
    assert 'dynmx_dnssec_signature_expiry_timestamp_seconds{zone="example.test."} 1.7e+09' in text


def test_earliest_expiration_of_a_zone_without_rrsig_is_none() -> None:
    import dns.zone

    assert earliest_expiration(dns.zone.from_text(ZONE, "example.test.")) is None

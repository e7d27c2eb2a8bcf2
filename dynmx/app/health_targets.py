"""Where and how a pool member is probed: its address (configured or in our zones) and spec."""

from __future__ import annotations

import functools
import logging

import dns.name
import dns.rdataclass
import dns.rdatatype

from dynmx.answer.zoneset import ZoneSet
from dynmx.config import MemberConfig
from dynmx.health.dane import PORT_LABEL, Tlsa, unchecked
from dynmx.health.spec import ProbeSpec

log = logging.getLogger("dynmx.health")


def member_address(member: MemberConfig, zones: ZoneSet) -> str | None:
    """Where to probe a member: its configured address, else its A (or AAAA) in our zones."""
    if member.ip:
        return member.ip
    name = dns.name.from_text(member.host)
    zone = zones.find(name)
    node = zone.node(name) if zone is not None else None
    if node is None:
        return None
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        rdataset = node.get_rdataset(dns.rdataclass.IN, rdtype)
        if rdataset is not None:
            return str(next(iter(rdataset)).address)
    return None


def member_tlsa(member: MemberConfig, zones: ZoneSet) -> tuple[Tlsa, ...]:
    """The TLSA RRset we serve at _25._tcp.<host> when the member asks for the DANE check."""
    if not member.tlsa:  # config refuses tlsa on an IP literal host
        return ()
    name = dns.name.from_text(f"{PORT_LABEL}.{member.host}")
    zone = zones.find(name)
    node = zone.node(name) if zone is not None else None
    rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.TLSA) if node is not None else None
    if rdataset is None:
        return ()
    records = tuple(sorted(Tlsa(r.usage, r.selector, r.mtype, r.cert) for r in rdataset))
    left = unchecked(records)
    if left:
        _tell_unchecked(str(name), tuple(f"{r.usage}-{r.selector}-{r.mtype}" for r in left))
    return records


@functools.lru_cache(maxsize=1024)  # once per name and set of records, not on every retarget
def _tell_unchecked(name: str, kinds: tuple[str, ...]) -> None:
    log.info(
        "event=tlsa-not-checked name=%s records=%s checked=dane-ee-only",
        name,
        ",".join(kinds),
    )


def probe_spec(member: MemberConfig, address: str, helo_name: str, tlsa: tuple[Tlsa, ...] = ()) -> ProbeSpec:
    return ProbeSpec(
        kind=member.probe,
        address=address,
        port=member.probe_port,
        timeout=member.timeout,
        helo_name=helo_name.rstrip("."),
        require_starttls=member.starttls,
        url=member.url,
        expect_status=member.expect_status,
        body_match=member.body_match,
        load_field=member.load_field,
        load_metric=member.load_metric,
        tls_warn_days=member.tls_warn_days,
        # a DANE client names the TLSA base domain in SNI (RFC 7672 8.1)
        server_name=member.server_name or (member.host.rstrip(".") if tlsa else ""),
        tlsa=tlsa,
    )

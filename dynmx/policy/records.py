"""Orderings into the records a pool kind serves: MX, A/AAAA (address pools) or SRV.

An ordering is a list of (member, rank) best first. MX writes the rank as the
preference (RFC 5321 5.1); SRV writes it as the priority and the member's weight as
the weight (RFC 2782: lowest priority first, weighted among equals); address pools
write the addresses in that order, at most `answer_count` per family (as Route 53
multivalue answers), since resolvers and clients mostly try the first address first.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype

from dynmx.config_pools import MemberConfig, PoolConfig
from dynmx.policy.strategies import Ordering

IN = dns.rdataclass.IN
MX = dns.rdatatype.MX
SRV = dns.rdatatype.SRV
A = dns.rdatatype.A
AAAA = dns.rdatatype.AAAA


def rdtypes(pool: PoolConfig) -> tuple[int, ...]:
    """The record types a pool rewrites."""
    if pool.kind == "mx":
        return (MX,)
    if pool.kind == "srv":
        return (SRV,)
    families = {ipaddress.ip_address(m.ip).version for m in pool.member if m.ip}
    return tuple(t for t, v in ((A, 4), (AAAA, 6)) if v in families)


def _srv_weight(member: MemberConfig) -> int:
    return max(0, min(65535, round(member.weight)))


def rdatasets(pool: PoolConfig, ordering: Ordering, ttl: int) -> dict[int, dns.rdataset.Rdataset]:
    """The rdataset of each rewritten type for one ordering."""
    members = {m.host: m for m in pool.member}
    texts: dict[int, list[str]] = {t: [] for t in rdtypes(pool)}
    for host, rank in ordering:
        member = members[host]
        if pool.kind == "mx":
            texts[MX].append(f"{rank} {host}")
        elif pool.kind == "srv":
            texts[SRV].append(f"{rank} {_srv_weight(member)} {member.probe_port} {host}")
        else:
            address = ipaddress.ip_address(member.ip)
            family = A if address.version == 4 else AAAA
            if not pool.answer_count or len(texts[family]) < pool.answer_count:
                texts[family].append(str(address))
    found = {}
    for rdtype, lines in texts.items():
        if lines:
            rdatas = [dns.rdata.from_text(IN, dns.rdatatype.RdataType.make(rdtype), line) for line in lines]
            found[rdtype] = dns.rdataset.from_rdata_list(ttl, rdatas)
    return found


def placeholder(pool: PoolConfig) -> list[dns.rdataset.Rdataset]:
    """Base-order records, so hint names exist in the zone before the first plan."""
    ordering = tuple((m.host, m.preference) for m in pool.member)
    return list(rdatasets(pool, ordering, pool.ttl).values())


def family_pool(pool: PoolConfig, rdtype: int) -> PoolConfig:
    """The part of an address pool in one address family (A or AAAA), hints filtered alike."""
    version = 4 if rdtype == A else 6
    members = tuple(m for m in pool.member if m.ip and ipaddress.ip_address(m.ip).version == version)
    keep = {m.host for m in members}
    hints = tuple(
        replace(h, order=tuple(host for host in h.order if host in keep))
        for h in pool.hint
        if any(host in keep for host in h.order)
    )
    return replace(pool, member=members, hint=hints)

"""What `dynmx check` says about the policy against the zones it would serve.

Problems make the check fail; warnings are printed but do not (nested client prefixes
are how longest-prefix rules are meant to be written, so an overlap is worth a look,
not a refusal).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import dns.name
import dns.rdataclass
import dns.rdatatype

from dynmx.answer.zoneset import ZoneData, ZoneSet
from dynmx.config import Config

IN = dns.rdataclass.IN


def _has(zones: ZoneSet, name: dns.name.Name, rdtypes: Iterable[dns.rdatatype.RdataType]) -> bool | None:
    """Whether `name` has one of `rdtypes`; None when no served zone holds the name."""
    zone = zones.find(name)
    if zone is None:
        return None
    node = zone.node(name)
    return node is not None and any(node.get_rdataset(IN, t) is not None for t in rdtypes)


def check_policy(config: Config, zones: list[ZoneData]) -> tuple[list[str], list[str]]:
    """(problems, warnings) of pools, hints and client prefixes, each naming its config path."""
    zoneset = ZoneSet(zones)
    problems: list[str] = []
    warnings: list[str] = []
    address_types = (dns.rdatatype.A, dns.rdatatype.AAAA)
    for index, pool in enumerate(config.pool):
        where = f"pool[{index}]"
        owner = dns.name.from_text(pool.name)
        kinds = {"mx": (dns.rdatatype.MX,), "srv": (dns.rdatatype.SRV,), "address": address_types}
        has_records = _has(zoneset, owner, kinds[pool.kind])
        if has_records is None:
            problems.append(f"{where}.name: {pool.name} is in no served zone")
            continue
        if not has_records:
            wanted = "/".join(dns.rdatatype.to_text(t) for t in kinds[pool.kind])
            problems.append(
                f"{where}.name: {pool.name} has no {wanted} records in its zone "
                "(keep the pool's records there in base order, for secondaries and checks)"
            )
        for position, member in enumerate(pool.member):
            if member.ip:
                continue
            has_address = _has(zoneset, dns.name.from_text(member.host), address_types)
            if has_address is False:
                problems.append(f"{where}.member[{position}].host: {member.host} has no A or AAAA record")
            elif has_address is None:
                warnings.append(
                    f"{where}.member[{position}].host: {member.host} is outside the served zones; "
                    "its addresses cannot be checked here"
                )
    networks = [(i, ipaddress.ip_network(c.prefix)) for i, c in enumerate(config.client)]
    for index, network in networks:
        for other_index, other in networks[:index]:
            if network.version == other.version and network.overlaps(other):
                warnings.append(
                    f"client[{index}].prefix: {network} overlaps client[{other_index}].prefix {other} "
                    "(the longest prefix wins)"
                )
    for index, rule in enumerate(config.name):
        if zoneset.find(dns.name.from_text(rule.name)) is None:
            problems.append(f"name[{index}].name: {rule.name} is in no served zone")
    if config.selfcheck.enabled:
        for index, name in enumerate(config.selfcheck.names):
            found = _has(zoneset, dns.name.from_text(name), address_types)
            if found is None:
                problems.append(f"selfcheck.names[{index}]: {name} is in no served zone")
            elif not found:
                warnings.append(f"selfcheck.names[{index}]: {name} has no A or AAAA record yet")
    return problems, warnings

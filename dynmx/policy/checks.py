"""What `dynmx check` says about the policy against the zones it would serve.

Problems make the check fail; warnings are printed but do not (nested client prefixes
are how longest-prefix rules are meant to be written, so an overlap is worth a look,
not a refusal).
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Callable, Iterable

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from dynmx.answer.zoneset import ZoneData, ZoneSet
from dynmx.config import Config

IN = dns.rdataclass.IN


# (name, types) -> whether the name has one of the types; None when no served zone holds it
Has = Callable[[dns.name.Name, Iterable[dns.rdatatype.RdataType]], bool | None]
ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
KIND_TYPES = {"mx": (dns.rdatatype.MX,), "srv": (dns.rdatatype.SRV,), "address": ADDRESS_TYPES}


def _zoneset_has(zones: ZoneSet) -> Has:
    def has(name: dns.name.Name, rdtypes: Iterable[dns.rdatatype.RdataType]) -> bool | None:
        zone = zones.find(name)
        if zone is None:
            return None
        node = zone.node(name)
        return node is not None and any(node.get_rdataset(IN, t) is not None for t in rdtypes)

    return has


def _zone_has(origin: dns.name.Name, zone: dns.zone.Zone) -> Has:
    def has(name: dns.name.Name, rdtypes: Iterable[dns.rdatatype.RdataType]) -> bool | None:
        if not name.is_subdomain(origin):
            return None
        node = zone.nodes.get(name)
        return node is not None and any(node.get_rdataset(IN, t) is not None for t in rdtypes)

    return has


def check_policy(config: Config, zones: list[ZoneData]) -> tuple[list[str], list[str]]:
    """(problems, warnings) of pools, hints and client prefixes, each naming its config path."""
    zoneset = ZoneSet(zones)
    problems, warnings = _findings(config, _zoneset_has(zoneset), lambda name: True)
    problems += _unserved_zone_blocks(config, [zone.origin for zone in zones])
    warnings += _pools_beside_their_records(config, zoneset)
    networks = [(i, ipaddress.ip_network(c.prefix)) for i, c in enumerate(config.client)]
    for index, network in networks:
        for other_index, other in networks[:index]:
            if network.version == other.version and network.overlaps(other):
                warnings.append(
                    f"client[{index}].prefix: {network} overlaps client[{other_index}].prefix {other} "
                    "(the longest prefix wins)"
                )
    return problems, warnings


def _closest(name: dns.name.Name, served: list[dns.name.Name]) -> dns.name.Name | None:
    """The served zone whose name is most like `name` (a typo's intended zone)."""
    text = name.to_text().lower()
    return max(
        served, key=lambda o: difflib.SequenceMatcher(None, text, o.to_text().lower()).ratio(), default=None
    )


def _unserved_zone_blocks(config: Config, served: list[dns.name.Name]) -> list[str]:
    """A `[[zone]]` block for a zone no file serves (a typo: `mail.exmaple.`) protects nothing:
    its allow_query, allow_update, allow_transfer and notify apply to no zone, and the zone
    meant gets the defaults. A secondary zone's block is exempt: its primary brings the zone."""
    problems = []
    for index, block in enumerate(config.zone):
        origin = dns.name.from_text(block.name)
        if block.primary or origin in served or block.name == config.catalog.name:
            continue  # the catalog's block: its file is made at the server's first start
        closest = _closest(origin, served)
        meant = f"; the closest served zone is {closest}" if closest is not None else "; no zone is served"
        problems.append(
            f"zone[{index}].name: {block.name} is not a served zone, so this block applies to nothing"
            f" (no file in zones_dir holds it){meant}"
        )
    return problems


def _names(hosts: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(hosts)) + "}"


def _pools_beside_their_records(config: Config, zones: ZoneSet) -> list[str]:
    """An MX pool answers for its members, the zone's MX records are what secondaries, `dynmx
    check` and a copy of the file see: when they name other hosts, one of them is stale."""
    warnings = []
    for index, pool in enumerate(config.pool):
        if pool.kind != "mx":
            continue
        owner = dns.name.from_text(pool.name)
        zone = zones.find(owner)
        node = zone.node(owner) if zone is not None else None
        mx = node.get_rdataset(IN, dns.rdatatype.MX) if node is not None else None
        if mx is None:
            continue  # reported as a problem by `_findings`
        targets = {rdata.exchange.to_text().lower() for rdata in mx}
        members = {m.host.lower() for m in pool.member}
        listed = {m.host.lower() for m in pool.member if m.role != "standby"}
        if listed - targets or targets - members:
            warnings.append(
                f"pool[{index}].member: the members {_names(members)} are not the MX targets of"
                f" {pool.name} in its zone {_names(targets)}: keep the zone's MX records to the"
                " pool's members in base order (secondaries and copies of the file serve them)"
            )
    return warnings


def check_edit(
    config: Config,
    origin: dns.name.Name,
    before: dns.zone.Zone,
    after: dns.zone.Zone,
    names: set[dns.name.Name],
) -> list[str]:
    """The problems `dynmx check` would find after an edit of the names `names` and did not
    before it: what an edit may not bring in (a pool member without an address, a pool name
    without its records). Only the config entries naming a changed name are looked at."""
    touched = names.__contains__
    old, _ = _findings(config, _zone_has(origin, before), touched)
    new, _ = _findings(config, _zone_has(origin, after), touched)
    return [problem for problem in new if problem not in old]


def _findings(
    config: Config, has: Has, wanted: Callable[[dns.name.Name], bool]
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of the config entries whose name `wanted` takes."""
    problems: list[str] = []
    warnings: list[str] = []
    for index, pool in enumerate(config.pool):
        where = f"pool[{index}]"
        owner = dns.name.from_text(pool.name)
        if wanted(owner):
            has_records = has(owner, KIND_TYPES[pool.kind])
            if has_records is None:
                problems.append(f"{where}.name: {pool.name} is in no served zone")
                continue
            if not has_records:
                wanted_types = "/".join(dns.rdatatype.to_text(t) for t in KIND_TYPES[pool.kind])
                problems.append(
                    f"{where}.name: {pool.name} has no {wanted_types} records in its zone "
                    "(keep the pool's records there in base order, for secondaries and checks)"
                )
        for position, member in enumerate(pool.member):
            host = dns.name.from_text(member.host) if not member.ip else None
            if host is None or not wanted(host):
                continue
            has_address = has(host, ADDRESS_TYPES)
            if has_address is False:
                problems.append(f"{where}.member[{position}].host: {member.host} has no A or AAAA record")
            elif has_address is None:
                warnings.append(
                    f"{where}.member[{position}].host: {member.host} is outside the served zones; "
                    "its addresses cannot be checked here"
                )
    for index, rule in enumerate(config.name):
        name = dns.name.from_text(rule.name)
        if wanted(name) and has(name, ()) is None:
            problems.append(f"name[{index}].name: {rule.name} is in no served zone")
    if config.selfcheck.enabled:
        for index, text in enumerate(config.selfcheck.names):
            name = dns.name.from_text(text)
            if not wanted(name):
                continue
            found = has(name, ADDRESS_TYPES)
            if found is None:
                problems.append(f"selfcheck.names[{index}]: {text} is in no served zone")
            elif not found:
                warnings.append(f"selfcheck.names[{index}]: {text} has no A or AAAA record yet")
    return problems, warnings

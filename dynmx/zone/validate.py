"""Semantic checks of a zone's records, each problem tied to the line of the record at fault.

dnspython's own zone checks stop at the first error and know no line numbers, so the loader
records every record with its line and these checks run over that list, the way NSD's
`nsd-checkzone` and BIND's `named-checkzone` report all they find.

What is deliberately *not* reported, following NSD:
- RRsets whose records have different TTLs (RFC 2181 section 5.2): the smallest TTL is used.
- Occluded data (anything at or below a delegation point other than NS/DS there and glue
  below it): it is never served, so it is accepted silently.
- DNAME records: accepted without checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.NS import NS

from dynmx.errors import Problem

MAX_TTL = 2**31 - 1
"""RFC 2181 section 8: a TTL is an unsigned 31-bit number; larger values are an error here."""

_CNAME_COMPANIONS = frozenset({dns.rdatatype.CNAME, dns.rdatatype.RRSIG, dns.rdatatype.NSEC})
"""Types that may share a name with a CNAME (RFC 1034 section 3.6.2, RFC 4035 section 2.5)."""

_ADDRESS_TYPES = frozenset({dns.rdatatype.A, dns.rdatatype.AAAA})


@dataclass(frozen=True, slots=True)
class Record:
    """One record as read from a zone file, with where it was written (for problem reports)."""

    name: dns.name.Name
    ttl: int
    rdata: dns.rdata.Rdata
    file: str
    line: int


def validate(origin: dns.name.Name, records: Sequence[Record], *, file: str | None = None) -> list[Problem]:
    """Every problem in the records of the zone at `origin`, ordered by line.

    `file` names the zone file in zone-wide problems (no SOA, no NS); it defaults to the
    file of the first record.
    """
    zone_file = file if file is not None else (records[0].file if records else "<zone>")
    problems: list[Problem] = []
    in_zone: list[Record] = []
    for record in records:
        if record.rdata.rdclass != dns.rdataclass.IN:
            rdclass = dns.rdataclass.to_text(record.rdata.rdclass)
            problems.append(_at(record, f"class {rdclass} is not supported; only IN"))
            continue
        if not record.name.is_subdomain(origin):
            problems.append(_at(record, f"out-of-zone data: {record.name} is not in {origin}"))
            continue
        if record.ttl > MAX_TTL:
            problems.append(
                _at(
                    record,
                    f"TTL {record.ttl} of {record.name} "
                    f"{dns.rdatatype.to_text(record.rdata.rdtype)} exceeds "
                    f"{MAX_TTL} (RFC 2181 section 8)",
                )
            )
        in_zone.append(record)
    problems.extend(_check_apex(origin, in_zone, zone_file))
    problems.extend(_check_cnames(origin, in_zone))
    problems.extend(_check_name_servers(origin, in_zone))
    return sorted(problems, key=lambda problem: problem.line)


def _at(record: Record, reason: str) -> Problem:
    return Problem(record.file, record.line, reason)


def _distinct(records: Iterable[Record]) -> list[Record]:
    """Records with equal rdata once: duplicates merge into one RR, as in every server."""
    listed = list(records)
    if len(listed) < 2:
        return listed  # nothing to merge, and no rdata hashed (it renders the rdata: costly)
    seen: set[dns.rdata.Rdata] = set()
    kept: list[Record] = []
    for record in listed:
        if record.rdata not in seen:
            seen.add(record.rdata)
            kept.append(record)
    return kept


def _check_apex(origin: dns.name.Name, records: Sequence[Record], zone_file: str) -> list[Problem]:
    """Exactly one SOA, at the apex, and an NS RRset there (RFC 1035 section 5.2, RFC 1034 4.2.1)."""
    problems: list[Problem] = []
    apex_soas = _distinct(r for r in records if r.rdata.rdtype == dns.rdatatype.SOA and r.name == origin)
    if not apex_soas:
        problems.append(Problem(zone_file, 1, f"no SOA record at the zone apex {origin}"))
    for extra in apex_soas[1:]:
        problems.append(_at(extra, f"more than one SOA record at the zone apex {origin}"))
    for record in records:
        if record.rdata.rdtype == dns.rdatatype.SOA and record.name != origin:
            problems.append(_at(record, f"SOA record at {record.name} is not at the zone apex {origin}"))
    if not any(r.rdata.rdtype == dns.rdatatype.NS and r.name == origin for r in records):
        problems.append(Problem(zone_file, 1, f"no NS records at the zone apex {origin}"))
    return problems


def _check_cnames(origin: dns.name.Name, records: Sequence[Record]) -> list[Problem]:
    """A CNAME stands alone at its name, once, and never at the apex (RFC 1034 3.6.2, RFC 2181 10.1)."""
    by_name: dict[dns.name.Name, list[Record]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record)
    problems: list[Problem] = []
    for name, here in by_name.items():
        cnames = [r for r in here if r.rdata.rdtype == dns.rdatatype.CNAME]
        if not cnames:
            continue
        for extra in _distinct(cnames)[1:]:
            problems.append(_at(extra, f"more than one CNAME record at {name} (RFC 2181 section 10.1)"))
        if name == origin:
            # Conflicts with the apex SOA and NS by definition; one report says it all.
            problems.append(_at(cnames[0], f"CNAME at the zone apex {origin} (RFC 1034 section 3.6.2)"))
            continue
        others = [r for r in here if r.rdata.rdtype not in _CNAME_COMPANIONS]
        if others:
            # Report where the conflict arises: the later of the first CNAME and the first other record.
            culprit = max(cnames[0], others[0], key=here.index)
            problems.append(
                _at(
                    culprit, f"CNAME and other data at {name} (RFC 1034 section 3.6.2, RFC 2181 section 10.1)"
                )
            )
    return problems


def _delegations(origin: dns.name.Name, records: Sequence[Record]) -> set[dns.name.Name]:
    """Zone cuts below the apex; an NS RRset below another cut is occluded, not a cut."""
    owners = {r.name for r in records if r.rdata.rdtype == dns.rdatatype.NS and r.name != origin}
    return {
        owner for owner in owners if not any(owner != other and owner.is_subdomain(other) for other in owners)
    }


def _check_name_servers(origin: dns.name.Name, records: Sequence[Record]) -> list[Problem]:
    """In-zone NS targets need addresses: glue below a cut, authoritative data elsewhere."""
    cuts = _delegations(origin, records)
    addressed = {r.name for r in records if r.rdata.rdtype in _ADDRESS_TYPES}
    problems: list[Problem] = []
    reported: set[tuple[dns.name.Name, dns.name.Name]] = set()
    for record in records:
        if not isinstance(record.rdata, NS) or (record.name != origin and record.name not in cuts):
            continue
        target = record.rdata.target
        if (record.name, target) in reported or target in addressed:
            continue
        if record.name != origin and target.is_subdomain(record.name):
            problems.append(_at(record, f"glue missing for NS target {target} of delegation {record.name}"))
        elif target.is_subdomain(origin) and not any(target.is_subdomain(cut) for cut in cuts):
            problems.append(
                _at(record, f"NS target {target} of {record.name} has no address records (A or AAAA)")
            )
        else:
            continue
        reported.add((record.name, target))
    return problems

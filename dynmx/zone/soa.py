"""Reading a zone's SOA: a pure function of the zone, for whoever shows or compares serials."""

from __future__ import annotations

import dns.rdataclass
import dns.rdatatype
import dns.zone

from dynmx.zone.source import SourceZone


def serial_of(zone: dns.zone.Zone) -> int:
    """The SOA serial at the zone's apex (a loaded zone always has one); a released
    `SourceZone` knows it without being parsed again."""
    if isinstance(zone, SourceZone) and not zone.parsed:
        return zone.serial
    assert zone.origin is not None
    soa = zone.nodes[zone.origin].get_rdataset(dns.rdataclass.IN, dns.rdatatype.SOA)
    assert soa is not None
    return int(soa[0].serial)

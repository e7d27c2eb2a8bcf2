"""ZoneSet.find: the zone with the longest origin at or above a name, keyed by wire bytes."""

from __future__ import annotations

import dns.name
import dns.rdatatype
import dns.zone
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.answer.zoneset import ZoneData, ZoneSet, name_key


def _absolute(labels: list[str]) -> dns.name.Name:
    return dns.name.from_text(".".join(labels) + ".")


LABELS = st.sampled_from(["a", "B", "z09", "z10", "x", "test"])
NAMES = st.lists(LABELS, min_size=1, max_size=4).map(_absolute)


def _zone(origin: dns.name.Name) -> ZoneData:
    text = "@ 300 IN SOA ns hostmaster 1 2 3 4 5\n@ 300 IN NS ns\nns 300 IN A 192.0.2.1\n"
    return ZoneData(origin, dns.zone.from_text(text, origin=origin, relativize=False))


def _longest(origins: list[dns.name.Name], name: dns.name.Name) -> dns.name.Name | None:
    above = [origin for origin in origins if name.is_subdomain(origin)]
    return max(above, key=len) if above else None


@given(st.lists(NAMES, min_size=1, max_size=6, unique_by=name_key), NAMES)
@settings(max_examples=200, deadline=None)
def test_find_is_the_longest_served_origin_at_or_above_the_name(
    origins: list[dns.name.Name], name: dns.name.Name
) -> None:
    zones = ZoneSet(_zone(origin) for origin in origins)
    found = zones.find(name)
    expected = _longest(origins, name)
    assert (found.origin if found else None) == expected


@given(st.lists(NAMES, min_size=1, max_size=6, unique_by=name_key))
@settings(max_examples=100, deadline=None)
def test_rfc4035_s3_1_4_1_ds_at_a_child_apex_is_found_in_the_parent(origins: list[dns.name.Name]) -> None:
    zones = ZoneSet(_zone(origin) for origin in origins)
    for origin in origins:
        found = zones.find(origin, dns.rdatatype.DS)
        parent = _longest([o for o in origins if o != origin], origin)
        assert found is not None
        assert found.origin == (parent if parent is not None else origin)


def test_names_whose_dnspython_hashes_collide_are_told_apart() -> None:
    """`z09` and `z10` hash alike in dnspython; the wire keys do not."""
    z09, z10 = dns.name.from_text("z09.test."), dns.name.from_text("z10.test.")
    assert hash(z09) == hash(z10)
    zones = ZoneSet([_zone(z09), _zone(z10)])
    assert zones.find(dns.name.from_text("www.z10.test.")).origin == z10  # type: ignore[union-attr]


def test_rfc2308_s3_negative_soa_ttl_is_the_minimum_and_the_zones_soa_keeps_its_own() -> None:
    zone = _zone(dns.name.from_text("example.test."))  # SOA TTL 300, MINIMUM 5
    assert zone.negative_soa[1].ttl == 5
    assert list(zone.negative_soa[1]) == list(zone.soa[1])
    assert zone.soa[1].ttl == 300

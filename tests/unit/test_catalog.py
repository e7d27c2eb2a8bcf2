"""Catalog zones (RFC 9432 version 2), sans-IO: building one from a zone list and reading one."""

from __future__ import annotations

from pathlib import Path

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.config import from_mapping
from dynmx.errors import ConfigError
from dynmx.zone.catalog import (
    CatalogRefused,
    Shared,
    catalog_text,
    held,
    member_id,
    parse_catalog,
    records,
)

ORIGIN = dns.name.from_text("catalog.invalid.")
MEMBERS = [dns.name.from_text("example.test."), dns.name.from_text("shop.example.test.")]


NOTHING_SHARED = Shared()


def catalog(members: list[dns.name.Name], shared: Shared = NOTHING_SHARED, extra: str = "") -> dns.zone.Zone:
    zone = dns.zone.from_text(catalog_text(ORIGIN) + extra, origin=ORIGIN, relativize=False)
    with zone.writer() as txn:
        for name, rdata in records(ORIGIN, members, shared):
            txn.add(name, 0, rdata)
    return zone


def test_a_new_catalog_has_soa_ns_invalid_and_version_2_rfc9432_s4() -> None:
    zone = dns.zone.from_text(catalog_text(ORIGIN, 7), origin=ORIGIN, relativize=False)
    assert zone.get_soa().serial == 7
    assert [r.target for r in zone.get_rdataset(ORIGIN, "NS")] == [dns.name.from_text("invalid.")]
    version = zone.get_rdataset(dns.name.from_text("version", ORIGIN), "TXT")
    assert [r.strings for r in version] == [(b"2",)]


def test_members_are_ptrs_under_zones_with_an_id_from_the_name_rfc9432_s4_3() -> None:
    zone = catalog(MEMBERS)
    owner = dns.name.from_text(f"{member_id(MEMBERS[0])}.zones", ORIGIN)
    assert [r.target for r in zone.get_rdataset(owner, "PTR")] == [MEMBERS[0]]
    assert parse_catalog(zone).members == {m: member_id(m) for m in MEMBERS}


def test_member_id_is_the_same_whatever_the_case() -> None:
    assert member_id("Example.TEST.") == member_id(dns.name.from_text("example.test."))
    assert member_id("example.test.") != member_id("shop.example.test.")


def test_a_catalog_without_version_2_is_not_processed_rfc9432_s5_1() -> None:
    zone = catalog(MEMBERS)
    with zone.writer() as txn:
        txn.replace(dns.name.from_text("version", ORIGIN), 0, dns.rdata.from_text("IN", "TXT", '"1"'))
    with pytest.raises(CatalogRefused):
        parse_catalog(zone)


def test_a_member_id_with_two_ptrs_is_ignored() -> None:
    extra = "two.zones 0 IN PTR a.test.\ntwo.zones 0 IN PTR b.test.\n"
    parsed = parse_catalog(catalog(MEMBERS, extra=f"$ORIGIN {ORIGIN}\n{extra}"))
    assert set(parsed.members) == set(MEMBERS) and parsed.ignored


def test_unknown_properties_and_groups_are_ignored_rfc9432_s4_4() -> None:
    extra = (
        f'$ORIGIN {ORIGIN}\ngroup.{member_id(MEMBERS[0])}.zones 0 IN TXT "mail"\n'
        'colour.ext 0 IN TXT "blue"\nserial.other 0 IN TXT "x"\n'
    )
    parsed = parse_catalog(catalog(MEMBERS, extra=extra))
    assert set(parsed.members) == set(MEMBERS) and parsed.shared == Shared()


def test_shared_pool_state_rides_under_ext_and_reads_back() -> None:
    definition = '{"name":"mx.example.test.","member":[' + ",".join(['{"host":"a.test."}'] * 40) + "]}"
    shared = Shared(
        {"mx.example.test.": definition},
        frozenset({("mx.example.test.", "mx1.example.test.")}),
        {("mx.example.test.", "mx2.example.test."): 0.75},
    )
    zone = catalog(MEMBERS, shared)
    assert len(definition) > 255  # split into character-strings, joined back
    assert parse_catalog(zone).shared == shared
    assert held(zone) == records(ORIGIN, MEMBERS, shared)


def test_catalog_config_needs_a_name_and_makes_its_zone_block() -> None:
    with pytest.raises(ConfigError, match="catalog needs its zone name"):
        from_mapping({"catalog": {"notify": ["127.0.0.1:5300"]}})
    producer = from_mapping({"catalog": {"name": "catalog.invalid", "allow_transfer": ["127.0.0.0/8"]}})
    assert producer.zone_settings("catalog.invalid.").allow_transfer == ("127.0.0.0/8",)
    consumer = from_mapping({"catalog": {"name": "catalog.invalid", "primary": "127.0.0.1:5300"}})
    assert consumer.zone_settings("catalog.invalid.").primary == "127.0.0.1:5300"


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
names = st.lists(labels, min_size=1, max_size=3).map(lambda parts: dns.name.from_text(".".join(parts) + "."))


@settings(max_examples=50, deadline=None)
@given(st.lists(names, max_size=8, unique=True))
def test_parse_reads_back_what_records_built(members: list[dns.name.Name]) -> None:
    assert parse_catalog(catalog(members)).members == {m: member_id(m) for m in members}


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["zones", "ext", "pools.ext", "drains.ext", "x"]),
            labels,
            st.sampled_from(["PTR a.test.", 'TXT "p" "h"', 'TXT "a" "b" "c"', "A 192.0.2.1"]),
        ),
        max_size=10,
    )
)
def test_any_records_in_a_version_2_catalog_parse_without_error(
    extra: list[tuple[str, str, str]],
) -> None:
    text = f"$ORIGIN {ORIGIN}\n" + "".join(f"{label}.{where} 0 IN {data}\n" for where, label, data in extra)
    parsed = parse_catalog(catalog(MEMBERS, extra=text))
    assert set(MEMBERS) <= set(parsed.members)


def test_a_carried_pool_definition_reads_back_without_its_promotion_hooks() -> None:
    """A hook is a command or URL for the node it is configured on (perhaps with a token)."""
    from dynmx.app.catalog import pool_from_json, pool_json

    pool = from_mapping(
        {
            "pool": [
                {
                    "name": "mx.example.test.",
                    "strategy": "round-robin",
                    "on_promote": ["/usr/local/bin/page-ops"],
                    "on_promote_url": "https://hooks.example.test/?token=secret",
                    "member": [{"host": "mx1.example.test.", "probe": "none"}],
                }
            ]
        }
    ).pool[0]
    carried = pool_json(pool)
    assert "secret" not in carried and "page-ops" not in carried
    back = pool_from_json(carried)
    assert back.member == pool.member and back.on_promote == () and back.on_promote_url == ""


def test_a_carried_pool_definition_that_does_not_check_is_refused() -> None:
    from dynmx.app.catalog import pool_from_json

    with pytest.raises(ConfigError, match="member"):
        pool_from_json('{"name": "mx.example.test.", "member": []}')
    with pytest.raises(ConfigError, match="not JSON"):
        pool_from_json("{")


def test_dynmx_check_accepts_a_producer_catalog_before_its_file_exists(tmp_path: Path) -> None:
    """The catalog's zone block is made from [catalog]; its file comes at the first start."""
    from dynmx.policy.checks import _unserved_zone_blocks

    config = from_mapping({"catalog": {"name": "catalog.invalid."}}, base_dir=tmp_path)
    assert _unserved_zone_blocks(config, []) == []

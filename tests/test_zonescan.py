"""The zone-index cache: built once per zone version, and never keeps old versions alive."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import dns.name
import dns.zone

from dynmx.app import zonescan
from dynmx.zone.loader import LoadedZone

TEXT = "@ 300 IN SOA ns1 hostmaster {serial} 2 3 4 5\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n"


def _version(serial: int) -> LoadedZone:
    zone = dns.zone.from_text(TEXT.format(serial=serial), "example.test.", relativize=False)
    return LoadedZone(dns.name.from_text("example.test."), zone, Path("example.test.zone"))


def test_an_unchanged_zone_keeps_its_indexes() -> None:
    loaded = _version(1)
    first = zonescan.zone_data({loaded.path: loaded})
    assert zonescan.zone_data({loaded.path: loaded})[0] is first[0]


def test_replaced_versions_are_released() -> None:
    """The soak run found RSS growing with every edit: the cache held every version."""
    versions = [weakref.ref(_version(0).zone)]
    for serial in range(1, 30):
        loaded = _version(serial)
        zonescan.zone_data({loaded.path: loaded})
        versions.append(weakref.ref(loaded.zone))
        del loaded
    gc.collect()
    assert sum(ref() is not None for ref in versions) <= 1

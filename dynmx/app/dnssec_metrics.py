"""The DNSSEC metric samples, read at scrape time: the signature cache's counts and, per zone
dynmx signs, the earliest RRSIG expiration in the signed copy it serves.

A signed copy does not change once compiled, so its earliest expiration is computed once per
copy; pool variants are signed in the same validity window as their zone.
"""

from __future__ import annotations

from collections.abc import Callable

import dns.name
import dns.rdatatype
import dns.zone

from dynmx.config import Config
from dynmx.metrics import DnssecSamples
from dynmx.policy.signing import signed_copy
from dynmx.zone.signer import CACHE, SignatureCache


def earliest_expiration(zone: dns.zone.Zone) -> float | None:
    """The smallest RRSIG expiration (Unix time) in `zone`, None when it holds no RRSIG."""
    found = [  # every covered type: iterate_rdatasets(RRSIG) would match only RRSIGs covering none
        rdata.expiration
        for _, rdataset in zone.iterate_rdatasets()
        if rdataset.rdtype == dns.rdatatype.RRSIG
        for rdata in rdataset
    ]
    return float(min(found)) if found else None


class DnssecSampler:
    """`DnssecSamples` for `Metrics.attach_dnssec`, from the config the app runs now."""

    def __init__(self, config: Callable[[], Config], cache: SignatureCache = CACHE) -> None:
        self.config = config
        self.cache = cache
        self._seen: dict[dns.name.Name, tuple[dns.zone.Zone, float | None]] = {}

    def __call__(self) -> DnssecSamples:
        expiry: dict[str, float] = {}
        seen: dict[dns.name.Name, tuple[dns.zone.Zone, float | None]] = {}
        for block in self.config().zone:
            if not block.dnssec:
                continue
            origin = dns.name.from_text(block.name)
            copy = signed_copy(origin)
            if copy is None:
                continue
            known = self._seen.get(origin)
            when = known[1] if known is not None and known[0] is copy else earliest_expiration(copy)
            seen[origin] = (copy, when)
            if when is not None:
                expiry[origin.to_text()] = when
        self._seen = seen
        return DnssecSamples(self.cache.misses, self.cache.hits, expiry)

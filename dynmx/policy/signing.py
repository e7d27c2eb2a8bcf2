"""The zones with `[[zone]] dnssec = true`, signed before their answers are compiled.

The operator's zone (file, journal, transfers) stays unsigned; the compiler gets a signed
copy with the policy's overlay nodes (hint names, null MX) laid in and signed too, and a
`ZoneSigner` on its ZoneData for the pool variants it renders. A signed copy is kept per
zone version, overlay and validity window, so a compile that changed another zone or a
pool's health reuses it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import dns.name
import dns.node
import dns.zone

from dynmx.answer.zoneset import ZoneData
from dynmx.config import Config
from dynmx.zone.keys import ALGORITHMS, ZoneKey, ensure_key, key_path, load_key, load_keys
from dynmx.zone.signer import CACHE, ZoneSigner, signed_zone, window

log = logging.getLogger(__name__)

Overlay = Mapping[dns.name.Name, dns.node.Node]
# id(unsigned zone) -> (unsigned zone, fingerprint of overlay and window, signed ZoneData,
# signatures its signing used)
_signed: dict[int, tuple[object, tuple[object, ...], ZoneData, int]] = {}
_warned: set[dns.name.Name] = set()  # zones whose stored key is not of the configured algorithm


def _fingerprint(overlay: Overlay | None) -> tuple[object, ...]:
    if not overlay:
        return ()
    return tuple(
        sorted(
            (name.to_text(), tuple(sorted(rds.to_text() for rds in node.rdatasets)))
            for name, node in overlay.items()
        )
    )


# origin -> (the key file's identity (inode, size, mtime), its keys): read again when it changes
_files: dict[dns.name.Name, tuple[tuple[int, int, int], tuple[ZoneKey, ...]]] = {}


def zone_keys(config: Config, origin: dns.name.Name, algorithm: str) -> tuple[ZoneKey, ...]:
    """The zone's keys in their rollover states (the first made when it has none), read again
    only when the key file changed: a rollover step replaces it, and the next compile signs so."""
    path = key_path(config.path(config.server.state_dir), origin)
    cached = _files.get(origin)
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    if info is not None and cached is not None and cached[0] == (info.st_ino, info.st_size, info.st_mtime_ns):
        return cached[1]
    zone_key(config, origin, algorithm)  # makes the first key; logs a kept other algorithm once
    info = path.stat()  # before reading: a file replaced meanwhile is read again next time
    keys = load_keys(config.path(config.server.state_dir), origin)
    _files[origin] = ((info.st_ino, info.st_size, info.st_mtime_ns), keys)
    return keys


def zone_key(config: Config, origin: dns.name.Name, algorithm: str) -> ZoneKey:
    """The zone's active key, made when it has none."""
    state_dir = config.path(config.server.state_dir)
    found = load_key(state_dir, origin)
    if found is not None:
        if found.algorithm != ALGORITHMS[algorithm] and origin not in _warned:
            _warned.add(origin)  # an algorithm rollover is not done: the key is kept
            log.warning(
                "event=dnssec-algorithm-kept zone=%s key_algorithm=%d configured=%s tag=%d",
                origin,
                found.algorithm,
                algorithm,
                found.tag,
            )
        return found
    made = ensure_key(state_dir, origin, algorithm)
    log.info("event=dnssec-key-created zone=%s algorithm=%d tag=%d", origin, made.algorithm, made.tag)
    return made


def signed_zones(
    config: Config, zones: list[ZoneData], overlays: Mapping[dns.name.Name, Overlay]
) -> list[ZoneData] | None:
    """`zones` with each one configured `dnssec = true` signed; None when there is none."""
    wanted = {dns.name.from_text(z.name): z for z in config.zone if z.dnssec}
    if not wanted:
        _signed.clear()
        return None
    valid = window()
    current: dict[int, tuple[object, tuple[object, ...], ZoneData, int]] = {}
    out: list[ZoneData] = []
    for data in zones:
        settings = wanted.get(data.origin)
        if settings is None:
            out.append(data)
            continue
        overlay = overlays.get(data.origin)
        keys = zone_keys(config, data.origin, settings.dnssec_algorithm)
        held = tuple((key.tag, key.state) for key in keys)
        stamp = (valid, settings.denial, _fingerprint(overlay), held)
        cached = _signed.get(id(data.zone))
        if cached is None or cached[0] is not data.zone or cached[1] != stamp:
            signer = ZoneSigner(keys, valid)
            nsec3 = settings.denial == "nsec3"
            before = signer.cache.calls
            signed = signed_zone(
                data.zone, keys, cache=signer.cache, overlay=overlay, valid=valid, nsec3=nsec3
            )
            used = signer.cache.calls - before
            cached = (data.zone, stamp, ZoneData(data.origin, signed, signer=signer), used)
        current[id(data.zone)] = cached
        out.append(cached[2])
    _signed.clear()
    _signed.update(current)
    _latest.clear()
    _latest.update({data.origin: data.zone for _, _, data, _ in current.values()})
    CACHE.fit(sum(used for *_, used in current.values()))
    return out


# origin -> the signed copy compiled last: what a transfer of that zone serves.
_latest: dict[dns.name.Name, dns.zone.Zone] = {}


def signed_copy(origin: dns.name.Name) -> dns.zone.Zone | None:
    """The zone's signed copy last compiled (a version behind while an edit compiles: its
    SOA says so, and the NOTIFY after the compile brings the secondary back), or None when
    dynmx does not sign it."""
    return _latest.get(origin)

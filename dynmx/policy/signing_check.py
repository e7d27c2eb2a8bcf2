"""What `dynmx check`, the server's start and its reloads refuse about zones with `dnssec = true`.

A signing config dynmx cannot honour is refused before anything is signed, each problem
naming the config key (`zone[0].dnssec: ...`, placed at its line by `located`):

* the zone file is already signed (DNSKEY, RRSIG, NSEC, NSEC3, NSEC3PARAM, CDS or CDNSKEY in
  it): a pre-signed zone is served as it is, and signing it again would serve two signers'
  records side by side;
* no key of the zone is of the algorithm `dnssec_algorithm` names: dynmx would go on signing
  with the stored keys, and a change of algorithm is an algorithm rollover (RFC 6781 4.1.4:
  every RRset signed with both algorithms meanwhile), which dynmx does not do;
* the zone's key file cannot be read as a key.

(`dnssec = true` on a secondary zone is refused by the config itself: `ZoneConfig.problems`.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import dns.name
import dns.rdatatype
import dns.zone

from dynmx.config import Config
from dynmx.config_lines import key_line, parse_path
from dynmx.errors import ConfigError, Problem, ZoneLoadError
from dynmx.zone.keys import ALGORITHMS, ZoneKey, key_path, load_keys
from dynmx.zone.loader import LoadedZone, load_zone_file

# The records only a signer writes: their presence means the file was signed already. In
# the order a problem names them (the DNSKEY RRset is what makes a zone signed).
SIGNER_TYPES = (
    dns.rdatatype.DNSKEY,
    dns.rdatatype.NSEC3PARAM,
    dns.rdatatype.CDS,
    dns.rdatatype.CDNSKEY,
    dns.rdatatype.RRSIG,
    dns.rdatatype.NSEC,
    dns.rdatatype.NSEC3,
)
KeysOf = Callable[[dns.name.Name], Sequence[ZoneKey]]


def signer_record(zone: dns.zone.Zone) -> tuple[dns.name.Name, dns.rdatatype.RdataType] | None:
    """An (owner, type) of a record only a signer writes, the apex's DNSKEY first; None if
    there is none."""
    origin = zone.origin
    assert origin is not None
    found = []
    for name, rdataset in zone.iterate_rdatasets():
        if rdataset.rdtype in SIGNER_TYPES:
            owner = name if name.is_absolute() else name.derelativize(origin)
            found.append((owner != origin, SIGNER_TYPES.index(rdataset.rdtype), owner, rdataset.rdtype))
    if not found:
        return None
    _, _, owner, rdtype = min(found, key=lambda item: item[:2])
    return owner, rdtype


def stored_keys(config: Config) -> KeysOf:
    """The zone's stored keys still in its DNSKEY RRset, read from `state_dir/keys` (raises
    ConfigError for a bad file)."""
    state_dir = config.path(config.server.state_dir)

    def keys_of(origin: dns.name.Name) -> Sequence[ZoneKey]:
        return tuple(key for key in load_keys(state_dir, origin) if key.role.in_dnskey)

    return keys_of


def _algorithm_name(number: int) -> str:
    return next((name for name, n in ALGORITHMS.items() if n == number), str(number))


def signing_problems(
    config: Config, zones: Iterable[LoadedZone], keys_of: KeysOf
) -> dict[dns.name.Name, list[str]]:
    """The problems of each zone in `zones` configured `dnssec = true`, by origin."""
    blocks = {dns.name.from_text(b.name): (i, b) for i, b in enumerate(config.zone) if b.dnssec}
    found: dict[dns.name.Name, list[str]] = {}
    if not blocks:  # no zone to look up among every one served
        return found
    for loaded in zones:
        entry = blocks.get(loaded.origin)
        if entry is None:
            continue
        index, block = entry
        where = f"zone[{index}]"
        problems = []
        record = signer_record(loaded.zone)
        if record is not None:
            owner, rdtype = record
            problems.append(
                f"{where}.dnssec: {loaded.path} is signed already (it holds {dns.rdatatype.to_text(rdtype)}"
                f" at {owner}); dynmx serves a signed file as it is and would sign it again on top: remove"
                " dnssec = true to serve it as signed, or give dynmx the unsigned zone to sign"
            )
        try:
            keys = keys_of(loaded.origin)
        except ConfigError as error:
            problems.append(f"{where}.dnssec: {error}")
            keys = ()
        wanted = ALGORITHMS[block.dnssec_algorithm]
        if keys and all(key.algorithm != wanted for key in keys):
            key = keys[0]
            stored = _algorithm_name(key.algorithm)
            file = key_path(config.path(config.server.state_dir), loaded.origin)
            problems.append(
                f'{where}.dnssec_algorithm: "{block.dnssec_algorithm}" is not the algorithm of the zone\'s'
                f" key (tag {key.tag}, {stored}, algorithm {key.algorithm}, in {file}); dynmx would go on"
                " signing with that key: a new algorithm needs an algorithm rollover (RFC 6781 4.1.4,"
                f' signatures of both algorithms), which dynmx does not do; set dnssec_algorithm = "{stored}"'
            )
        if problems:
            found[loaded.origin] = problems
    return found


def located(config: Config, text: str) -> Problem:
    """A config problem (`zone[0].dnssec: ...`) at its file and line, as config errors are."""
    if config.source is None:
        return Problem("config", 0, text)
    try:
        source = config.source.read_text(encoding="utf-8-sig")
    except OSError:
        return Problem(str(config.source), 0, text)
    return Problem(str(config.source), key_line(source, parse_path(text)), text)


def refuse_unsignable(
    config: Config,
    zones: dict[Path, LoadedZone],
    before: dict[Path, LoadedZone],
    keys_of: KeysOf | None = None,
) -> list[Problem]:
    """Refuse, in place, each new zone version in `zones` that signing cannot honour: the
    version served before stays (a reload), or the zone is not served (the start). Versions
    already served are not judged again: the config was checked against them."""
    fresh = {path: zone for path, zone in zones.items() if before.get(path) is not zone}
    if not fresh:
        return []
    found = signing_problems(config, fresh.values(), keys_of or stored_keys(config))
    problems: list[Problem] = []
    for path, zone in fresh.items():
        texts = found.get(zone.origin)
        if not texts:
            continue
        problems += [located(config, text) for text in texts]
        old = before.get(path)
        if old is not None and old.origin == zone.origin:
            zones[path] = old
        else:
            del zones[path]
    return problems


def config_problems(
    config: Config,
    served: Iterable[LoadedZone],
    keys_of: KeysOf | None = None,
    load: Callable[[Path, dns.name.Name], LoadedZone] = load_zone_file,
) -> list[Problem]:
    """What refuses a reloaded `config` against the zones served now. A served zone found
    signed already is judged by its file as it is now: the operator may have put the
    unsigned zone there for the same reload."""
    keys = keys_of or stored_keys(config)
    served = list(served)
    found = signing_problems(config, served, keys)
    if not found:
        return []
    again = []
    for zone in served:
        if zone.origin in found:
            try:
                again.append(load(zone.path, zone.origin))
            except (ZoneLoadError, OSError):
                again.append(zone)
    found = signing_problems(config, again, keys)
    return [located(config, text) for texts in found.values() for text in texts]

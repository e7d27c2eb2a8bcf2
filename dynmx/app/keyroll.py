"""A CSK rollover step (`dynmx.zone.rollover`) done by the one owner of the state directory.

While a server runs, `dynmx dnssec rollover` hands it the step over the control socket: it
checks the step's waiting time against the zone as served, commits a serial-only change
(journal, write-back, NOTIFY, as the daily re-sign does), replaces the key file and serves
the zone signed under the new key states at once. With no server, the command owns the
state directory itself and does the same to the files, served from the next start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import dns.name
import dns.zone

from dynmx.app.turns import commit_in_turn
from dynmx.config import Config, ZoneConfig
from dynmx.zone.keys import ACTIVE, ALGORITHMS, ROLES, ZoneKey, load_keys, new_key, save_keys
from dynmx.zone.rollover import (
    DS_SEEN_STEP,
    START,
    RolloverRefused,
    Timing,
    advance,
    next_step,
    utc,
    zone_ttls,
)

if TYPE_CHECKING:
    from dynmx.app.root import App
    from dynmx.zone.loader import LoadedZone

log = logging.getLogger("dynmx.app.keyroll")


def signed_settings(config: Config, origin: dns.name.Name) -> ZoneConfig:
    for settings in config.zone:
        if dns.name.from_text(settings.name) == origin and settings.dnssec:
            return settings
    raise RolloverRefused(f"{origin} is not a zone dynmx signs (dnssec = true in its [[zone]])")


def timing(config: Config, origin: dns.name.Name, zone: dns.zone.Zone) -> Timing:
    """The zone's RFC 7583 parameters: its TTLs as served (pools' answer TTLs included) and
    the configured delays."""
    settings = signed_settings(config, origin)
    pools = [pool.ttl for pool in config.pool if dns.name.from_text(pool.name).is_subdomain(origin)]
    dnskey_ttl, max_ttl = zone_ttls(zone, max(pools, default=0))
    return Timing(
        dnskey_ttl,
        max_ttl,
        settings.dnssec_propagation_delay,
        settings.dnssec_parent_ds_ttl,
        settings.dnssec_parent_propagation_delay,
    )


def step_keys(
    config: Config, origin: dns.name.Name, zone: dns.zone.Zone, step: str, now: float
) -> tuple[ZoneKey, ...]:
    """The zone's keys after `step` at `now`, checked (RolloverRefused) but not yet stored."""
    settings = signed_settings(config, origin)
    keys = load_keys(config.path(config.server.state_dir), origin)
    if not keys:
        raise RolloverRefused(f"{origin} has no DNSSEC key yet: start the server to make it")
    wanted = ALGORITHMS[settings.dnssec_algorithm]
    if step == START and any(key.state == ACTIVE and key.algorithm != wanted for key in keys):
        raise RolloverRefused(
            f"dnssec_algorithm = {settings.dnssec_algorithm!r} differs from the active key's algorithm:"
            " this sequence rolls a key of the same algorithm; an algorithm rollover signs with both"
            " algorithms before publishing the new one (RFC 6781 4.1.4) and is not done here. Set"
            " dnssec_algorithm back to the active key's to roll it."
        )
    return advance(
        step,
        keys,
        timing(config, origin, zone),
        now,
        lambda at: new_key(origin, settings.dnssec_algorithm, at),
    )


def store(config: Config, origin: dns.name.Name, step: str, keys: tuple[ZoneKey, ...]) -> None:
    save_keys(config.path(config.server.state_dir), origin, keys)
    shown = " ".join(f"{key.tag}:{key.state}" for key in keys)
    log.info("event=dnssec-rollover zone=%s step=%s keys=%s", origin, step, shown)


def describe(
    origin: dns.name.Name, keys: tuple[ZoneKey, ...], plan: Timing | None, now: float
) -> dict[str, Any]:
    """What `dynmx dnssec keys` shows: each key, its state and times, and the next step (with
    `plan`, the zone's timing: without it, the zone's file was not found)."""
    rows = []
    for key in keys:
        role = ROLES[key.state]
        rows.append(
            {
                "tag": key.tag,
                "algorithm": key.algorithm,
                "flags": key.flags,
                "role": "CSK" if key.flags == 257 else "ZSK",
                "state": key.state,
                "created": utc(key.created),
                "events": {name: utc(when) for name, when in key.events},
                "signs": [what for what, on in (("keys", role.signs_keys), ("zone", role.signs_zone)) if on],
                "cds": role.in_cds,
                "dnskey": key.dnskey.to_text(),
            }
        )
    if plan is None:
        return {"zone": origin.to_text(), "keys": rows, "next": None, "timing": None}
    upcoming = next_step(keys, plan)
    following = None
    if upcoming is not None:
        step, at, rule = upcoming
        following = {"step": step, "earliest": utc(max(at, int(now))), "ready": at <= now, "rule": rule}
    timing_fields = {
        "dnskey_ttl": plan.dnskey_ttl,
        "max_ttl": plan.max_ttl,
        "propagation_delay": plan.propagation,
        "parent_ds_ttl": plan.parent_ds_ttl,
        "parent_propagation_delay": plan.parent_propagation,
    }
    return {"zone": origin.to_text(), "keys": rows, "next": following, "timing": timing_fields}


async def rollover(app: App, origin: dns.name.Name, step: str) -> dict[str, Any]:
    """One step on the running server: checked against the zone as served, then committed under
    a new serial and served signed under the new key states before this returns."""
    zone = app.zones_by_origin().get(origin)
    if zone is None:
        raise RolloverRefused(f"{origin} is not served")
    now = time.time()
    keys = step_keys(app.config, origin, zone.zone, step, now)
    if step == DS_SEEN_STEP:  # an observation: nothing served changes
        store(app.config, origin, step, keys)
        return describe(origin, keys, timing(app.config, origin, zone.zone), now)

    def publish(renewed: LoadedZone) -> Awaitable[None]:
        store(app.config, origin, step, keys)  # after the commit: a refused one changes nothing
        return app.publish_zone(renewed)

    renewed = await commit_in_turn(
        app.owner, origin, lambda: app.zones_by_origin().get(origin), lambda _: [], publish
    )
    if renewed is None:
        raise RolloverRefused(f"{origin} is not served")
    return describe(origin, keys, timing(app.config, origin, renewed.zone), now)

"""Signatures renewed before they expire: once a day, every zone dynmx signs is compiled
again, which signs it in the new day's validity window (`dynmx.zone.signer.window`: 14
days ahead), reusing nothing of the old window. The compile runs off the loop, as an
edit's does; queries are answered from the previous table meanwhile. The server's
`republish` commits the re-sign under a new SOA serial, so secondaries transfer it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from dynmx.zone.loader import LoadedZone
from dynmx.zone.signer import DAY

log = logging.getLogger(__name__)
AFTER_MIDNIGHT = 60.0  # seconds into the new window, so its day has surely begun


def until_next_window(now: float) -> float:
    """Seconds from `now` to just after the next UTC day starts (a new validity window)."""
    return (now // DAY + 1) * DAY + AFTER_MIDNIGHT - now


async def resign_daily(
    signed: Callable[[], Iterable[LoadedZone]],
    republish: Callable[[LoadedZone], Awaitable[object]],
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Forever (until cancelled): at each new window, `republish` every zone `signed` names."""
    while True:
        await sleep(until_next_window(clock()))
        for zone in signed():
            log.info("event=dnssec-resign zone=%s", zone.origin)
            await republish(zone)

"""Edits made inside the server (dyndns2, the self-check, the catalog, a key step) take the
zone's turn as an UPDATE does (`ZoneOwner.turn`; Knot's per-zone update queue): planned on the
zone's newest version, journaled off the loop, published before the turn is left.

Without the turn such an edit could be planned on the served version while an UPDATE's
journal entry is still on its way, and be refused as stale."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import dns.name

from dynmx.control.owner import ZoneOwner
from dynmx.control.update import Change
from dynmx.zone.loader import LoadedZone

_RUNNING: set[asyncio.Task[Any]] = set()
T = TypeVar("T")


async def shielded(work: Coroutine[Any, Any, T]) -> T:
    """`work` in a task of its own that the caller's cancellation does not reach (held here
    until done): an edit handed to the journal is always published, or the zone's next edit
    would find the journal ahead of the served version."""
    task = asyncio.ensure_future(work)
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)
    return await asyncio.shield(task)


async def commit_in_turn(
    owner: ZoneOwner,
    origin: dns.name.Name,
    newest: Callable[[], LoadedZone | None],
    changes_of: Callable[[LoadedZone], list[Change] | None],
    publish: Callable[[LoadedZone], Awaitable[None]],
) -> LoadedZone | None:
    """The new version, served when this returns; None when the zone is gone or `changes_of`
    says there is nothing to do (None). The turn runs `shielded`. Raises what the owner
    raises (StaleBase, WriteBlocked, an invalid result)."""

    async def turn() -> tuple[LoadedZone | None, Awaitable[None] | None]:
        async with owner.turn(origin):
            zone = newest()
            changes = changes_of(zone) if zone is not None else None
            if zone is None or changes is None:
                return None, None
            updated = await owner.commit_durably(zone, changes)
            return updated, publish(updated)

    updated, served = await shielded(turn())
    if served is not None:
        await served
    return updated

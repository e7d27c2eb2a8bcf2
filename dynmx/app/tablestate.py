"""The answer table's lifecycle as data: what is served, which edits wait, whether the store is written.

Rules of this module (h11's `_state.py` and NSD's `xfrd_zone` states are the models): pure,
no I/O, no event loop, no clock. `TablePublisher` (`dynmx.app.publisher`) reports what it
did as events and asks this module what to do next; every decision about the table's
lifecycle is a lookup in one of the tables below. Three parts move independently, each
with its own table, as h11's client and server do:

* TABLE, the table queries are answered from. NONE until the first one is served; STAGED
  while some zones are only indexed (the slow path answers them, from the same lookup, so
  the answers do not change when their entries arrive); FILLING while those are compiled
  behind, a slice at a time; COMPILED when every zone is. An edit that stages a large
  zone takes a COMPILED table back to STAGED.
* EDITS, the zones published (committed) and not yet served. IDLE; QUEUED, published and
  waiting for the reload lock; COMPILING, a batch taken and being compiled; BEHIND,
  published during that compile: they share the next batch, so a burst of edits costs
  one compile more, not one each. A waiter (the edit's acknowledgement) is released when
  the batch it joined is served or its compile failed: an edit is committed and journaled
  before it is published, so a failed compile is served by the next reload.
* STORE, the compiled answers kept for the next start. COLD until a start has compiled
  every zone; then WRITTEN, until a table with other zones or other answers is served
  (ZONES_CHANGED: a zone added, removed, reloaded or edited), which makes it COLD again:
  written again (only the rows that changed) once no zone is pending.

An event a part's table does not list for its state is a bug in the caller: it raises
`IllegalTransition`, as h11 raises `LocalProtocolError`, instead of leaving the table in a
state nobody serves from.
"""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

from dynmx.errors import DynmxError


class IllegalTransition(DynmxError):
    """An event that the table of its part does not allow in the current state (a bug)."""


class Table(enum.Enum):
    NONE = "none"
    STAGED = "staged"
    FILLING = "filling"
    COMPILED = "compiled"


class Edits(enum.Enum):
    IDLE = "idle"
    QUEUED = "queued"
    COMPILING = "compiling"
    BEHIND = "behind"


class Store(enum.Enum):
    COLD = "cold"
    WRITTEN = "written"


class Event(enum.Enum):
    SERVE_STAGED = "serve-staged"  # a table with zones still to compile is answered from
    SERVE_COMPILED = "serve-compiled"  # a table with every zone compiled is answered from
    FILL_START = "fill-start"  # compiling the staged zones behind begins
    FILL_DONE = "fill-done"  # ... and ended with every zone compiled
    FILL_STOPPED = "fill-stopped"  # ... or ended early (the server stops; a step failed)
    PUBLISH = "publish"  # an edit committed: to be served
    TAKE = "take"  # the waiting edits taken as one batch, under the reload lock
    ROUND_END = "round-end"  # that batch served (or its compile failed)
    WRITE = "write"  # the compiled answers handed to the store
    ZONES_CHANGED = "zones-changed"  # a table of other zones or answers served: the store is behind it


# state -> {event: next state}; what is missing is illegal.
TABLE_TRANSITIONS: dict[Table, dict[Event, Table]] = {
    Table.NONE: {Event.SERVE_STAGED: Table.STAGED, Event.SERVE_COMPILED: Table.COMPILED},
    Table.STAGED: {
        Event.SERVE_STAGED: Table.STAGED,
        Event.SERVE_COMPILED: Table.COMPILED,
        Event.FILL_START: Table.FILLING,
    },
    Table.FILLING: {  # a swap during the fill (a slice, an edit, a reload) leaves the fill to finish
        Event.SERVE_STAGED: Table.FILLING,
        Event.SERVE_COMPILED: Table.FILLING,
        Event.FILL_DONE: Table.COMPILED,
        Event.FILL_STOPPED: Table.STAGED,
    },
    Table.COMPILED: {Event.SERVE_STAGED: Table.STAGED, Event.SERVE_COMPILED: Table.COMPILED},
}
EDIT_TRANSITIONS: dict[Edits, dict[Event, Edits]] = {
    Edits.IDLE: {Event.PUBLISH: Edits.QUEUED},
    Edits.QUEUED: {Event.PUBLISH: Edits.QUEUED, Event.TAKE: Edits.COMPILING},
    Edits.COMPILING: {Event.PUBLISH: Edits.BEHIND, Event.ROUND_END: Edits.IDLE},
    Edits.BEHIND: {Event.PUBLISH: Edits.BEHIND, Event.ROUND_END: Edits.QUEUED},
}
STORE_TRANSITIONS: dict[Store, dict[Event, Store]] = {
    Store.COLD: {Event.WRITE: Store.WRITTEN, Event.ZONES_CHANGED: Store.COLD},
    Store.WRITTEN: {Event.ZONES_CHANGED: Store.COLD},
}

S = TypeVar("S", Table, Edits, Store)
K = TypeVar("K")  # what an edit is keyed by (a zone's origin)
V = TypeVar("V")  # what it publishes (a zone version, or None: removed)
W = TypeVar("W")  # who waits for it to be served


def step(transitions: dict[S, dict[Event, S]], state: S, event: Event) -> S:
    """The state `event` leads to from `state`; IllegalTransition if the table has none."""
    try:
        return transitions[state][event]
    except KeyError:
        raise IllegalTransition(
            f"{event.value} is not allowed when {type(state).__name__} is {state.value}"
        ) from None


class TableLifecycle(Generic[K, V, W]):
    """The three parts' states, and the edits waiting to be served with their waiters."""

    def __init__(self) -> None:
        self.table = Table.NONE
        self.edits = Edits.IDLE
        self.store = Store.COLD
        self._batch: dict[K, V] = {}
        self._waiters: list[W] = []

    # -- the table ---------------------------------------------------------------------

    def served(self, pending: bool) -> None:
        """A table was swapped in; `pending`: it has zones still to compile."""
        self.table = step(
            TABLE_TRANSITIONS, self.table, Event.SERVE_STAGED if pending else Event.SERVE_COMPILED
        )

    @property
    def fill_due(self) -> bool:
        """Whether compiling the staged zones behind should start now (none is under way)."""
        return self.table is Table.STAGED

    def fill_started(self) -> None:
        self.table = step(TABLE_TRANSITIONS, self.table, Event.FILL_START)

    def fill_ended(self, pending: bool) -> None:
        """The fill ended; `pending`: the served table still has zones to compile."""
        self.table = step(TABLE_TRANSITIONS, self.table, Event.FILL_STOPPED if pending else Event.FILL_DONE)

    # -- edits -------------------------------------------------------------------------

    def publish(self, key: K, value: V, waiter: W) -> bool:
        """An edit to serve; a later one of the same key replaces it in the waiting batch.
        True: no round is running, the caller starts one."""
        start = self.edits is Edits.IDLE
        self.edits = step(EDIT_TRANSITIONS, self.edits, Event.PUBLISH)
        self._batch[key] = value
        self._waiters.append(waiter)
        return start

    @property
    def waiting(self) -> bool:
        """Whether a batch waits to be taken."""
        return self.edits is Edits.QUEUED

    def take(self) -> tuple[dict[K, V], list[W]]:
        """The waiting edits as one batch, with their waiters; later ones wait for the next."""
        self.edits = step(EDIT_TRANSITIONS, self.edits, Event.TAKE)
        batch, waiters = self._batch, self._waiters
        self._batch, self._waiters = {}, []
        return batch, waiters

    def round_ended(self) -> bool:
        """The batch taken last is served (or failed); True: another batch waits."""
        self.edits = step(EDIT_TRANSITIONS, self.edits, Event.ROUND_END)
        return self.edits is Edits.QUEUED

    # -- the store ---------------------------------------------------------------------

    def store_due(self, pending: bool) -> bool:
        """Whether the compiled answers should be written now: when none is pending, once
        per start and again after other zones or answers were served."""
        return self.store is Store.COLD and not pending

    def stored(self) -> None:
        self.store = step(STORE_TRANSITIONS, self.store, Event.WRITE)

    def zones_changed(self) -> None:
        """A table of other zones or answers was served: the store is behind it."""
        self.store = step(STORE_TRANSITIONS, self.store, Event.ZONES_CHANGED)

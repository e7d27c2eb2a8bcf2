"""What a self-check round concludes for one (name, family), as a table; sans-IO, time passed in.

Facts in: did the probe arrive, what do resolvers publish, what did discovery agree on.
Rules, first match wins:

    arrived                                   OK        all suspicion forgotten
    discovery failed (discovered is None)     BACKOFF   wait interval * 2**failures, capped
    discovered in published                   HAIRPIN   the address is right, the path drops probes
    discovered == address we just updated to  PENDING   resolvers still cache the old one; wait
    discovered == last round's mismatch       UPDATE    two consecutive rounds agree: repair
    otherwise                                 PENDING   remember it; confirm next round

A lost probe alone never changes anything (hairpin NAT loses it too), and one mismatch never
does either. `log` is False when a decision repeats the situation already reported, so a
lasting hairpin or outage is warned about once, not every round.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

DEFAULT_INTERVAL = 300.0
DEFAULT_BACKOFF_CAP = 3600.0
PUBLISHED_SETTLE = 3600.0  # after an update, resolvers may cache the old address this long (a TTL)


class Action(enum.Enum):
    OK = "ok"  # the probe came back: the published address is ours
    HAIRPIN = "hairpin"  # probe lost, but discovery agrees with what is published
    PENDING = "pending"  # a mismatch seen once, or an update not yet visible; nothing done
    UPDATE = "update"  # the same mismatch twice in a row: repair the published address
    BACKOFF = "backoff"  # no decision possible (discovery failed, name unresolvable): wait longer


@dataclass(frozen=True, slots=True)
class Decision:
    """One round's verdict; `address` is what to publish for UPDATE, else None."""

    action: Action
    message: str
    log: bool
    next_round_in: float
    address: str | None = None
    at: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action.value,
            "message": self.message,
            "next_round_in": self.next_round_in,
            "address": self.address,
            "at": self.at,
        }


class Decider:
    """The state of one (name, family) across rounds; `observe` once per round, `updated` after a repair."""

    def __init__(
        self,
        *,
        interval: float = DEFAULT_INTERVAL,
        backoff_cap: float = DEFAULT_BACKOFF_CAP,
        confirm_window: float | None = None,
        settle: float = PUBLISHED_SETTLE,
    ) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval: expected a positive number of seconds, got {interval!r}")
        if not (math.isfinite(backoff_cap) and backoff_cap >= interval):
            raise ValueError(
                f"backoff_cap: expected at least the interval ({interval:g}), got {backoff_cap!r}"
            )
        self.interval = interval
        self.backoff_cap = backoff_cap
        # Rounds further apart than this are not "consecutive": a suspended host must look twice again.
        self.confirm_window = 2 * interval if confirm_window is None else confirm_window
        self.settle = settle
        self.failures = 0  # discovery failures in a row
        self.pending: str | None = None  # the mismatching address seen last round
        self.pending_at = 0.0
        self.updated_to: str | None = None  # repaired to this; resolvers may not show it yet
        self.updated_at = 0.0
        self._update_at = 0.0  # when the last UPDATE was decided (for `updated`)
        self._reported: tuple[object, ...] | None = None  # the situation last logged

    def observe(
        self,
        arrived: bool,
        published: frozenset[str],
        discovered: str | None,
        now: float,
        why: str = "",
    ) -> Decision:
        """This round's decision; `why` says why `discovered` is None (the discovery's reason)."""
        if arrived:
            self.failures, self.pending, self.updated_to = 0, None, None
            return self._decide(Action.OK, "probe arrived: published address is ours", ("ok",), now)
        shown = ", ".join(sorted(published)) or "nothing"
        if discovered is None:
            self.failures += 1
            self.pending = None
            wait = min(self.interval * 2**self.failures, self.backoff_cap)
            message = f"probe lost and no address to compare: {why or 'discovery failed'}; waiting {wait:g}s"
            return self._decide(Action.BACKOFF, message, ("backoff", why), now, wait)
        self.failures = 0
        if discovered in published:
            self.pending = None
            message = f"hairpin/firewall: probe lost but address correct ({discovered} is published)"
            return self._decide(Action.HAIRPIN, message, ("hairpin", published, discovered), now)
        if self.updated_to == discovered and now - self.updated_at <= self.settle:
            self.pending = None
            message = f"updated to {discovered}; resolvers still answer {shown}, waiting for them"
            return self._decide(Action.PENDING, message, ("propagating", discovered), now)
        if self.pending == discovered and now - self.pending_at <= self.confirm_window:
            self._update_at = self.pending_at = now  # a failed repair is retried on the next round
            message = f"published {shown} but discovered {discovered} on two consecutive rounds: updating"
            return self._decide(Action.UPDATE, message, ("update", discovered, now), now, address=discovered)
        self.pending, self.pending_at = discovered, now
        message = f"published {shown} but discovered {discovered}: confirming next round"
        return self._decide(Action.PENDING, message, ("pending", published, discovered), now)

    def updated(self, address: str) -> None:
        """The repair to `address` succeeded: do not repair again while resolvers catch up."""
        self.updated_to, self.updated_at = address, self._update_at
        self.pending = None

    def _decide(
        self,
        action: Action,
        message: str,
        situation: tuple[object, ...],
        now: float,
        wait: float | None = None,
        address: str | None = None,
    ) -> Decision:
        log = situation != self._reported
        self._reported = situation
        return Decision(action, message, log, self.interval if wait is None else wait, address, now)

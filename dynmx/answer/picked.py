"""The UDP replies to one cached pool question: the selector still picks per query, and
the reply for each pick is joined once.

A pool's packet-cache entry (`engine.Engine`) is a `PoolReplies`. Called per query, it
asks the selector for the entry and returns the reply after its ID. While the selector's
generation picks by its counter alone (round-robin or a single ordering, no client
action and no relay prefix) and every variant fits the size limit, the replies of that
generation are joined once, in variant order, and a query costs the counter's step: the
order, the counter and the hit counts are exactly those `Selector.pick` keeps. A new
generation (a health change, a drain) is seen on the next query, which joins its replies
again. Anything else (a weighted draw, a client action, a relay's view) asks
`Selector.pick` and keeps the reply per entry picked.
"""

from __future__ import annotations

from dynmx.answer.dynamic import FIXED, ROTATE, Selector, SelectorState
from dynmx.wire.query import HEADER_LEN, parse_query
from dynmx.wire.response import Entry, assemble

PICKED_TAILS = 64  # replies kept per question for picks outside a rotation (hints, weights, views)
_NO_ID = b"\x00\x00"  # a reply's first two octets are the query's ID; the tails leave them out


class PoolReplies:
    """Replies (after the ID) to one UDP question whose answer a selector picks."""

    __slots__ = (
        "limit",
        "opt",
        "query",
        "question",
        "rd",
        "rotating",
        "rotation",
        "seen",
        "selector",
        "tails",
    )

    def __init__(self, selector: Selector, query: bytes, rd: int, opt: bytes, question: bytes, limit: int):
        self.selector = selector
        self.query = query  # the query after its ID (the cache key)
        self.rd = rd
        self.opt = opt
        self.question = question  # as asked, letter case kept
        self.limit = limit
        self.seen: SelectorState | None = None  # the generation last looked at
        self.rotation: tuple[bytes, ...] = ()  # one reply per variant of `seen`; empty: ask `pick`
        self.rotating: SelectorState | None = None  # `seen` where its counter picks from `rotation`
        self.tails: dict[int, tuple[Entry, bytes]] = {}  # id(entry) -> entry, reply (the entry held)

    def reply(self, addr: object) -> bytes | None:
        """The reply after its ID to one query from `addr`; None to stay silent."""
        selector = self.selector
        state = selector.state
        if state is self.rotating:  # Selector.pick's own steps for a rotation without source rules
            rotation = self.rotation
            index = selector.counter % len(rotation)
            selector.counter = index + 1
            state.hits[index] += 1
            return rotation[index]
        return self._other(state, addr)

    def _other(self, state: SelectorState, addr: object) -> bytes | None:
        """`reply` for a new generation, a single ordering, or a pick that depends on more
        than the counter."""
        if state is not self.seen:
            self._learn(state)
            if state is self.rotating:
                return self.reply(addr)
        if self.rotation:  # FIXED: always the first, the counter left alone (as `pick`)
            state.hits[0] += 1
            return self.rotation[0]
        selector = self.selector
        entry = selector.pick(addr)
        if entry is None:
            return None
        found = self.tails.get(id(entry))
        return found[1] if found is not None else self._joined(entry)

    def _learn(self, state: SelectorState) -> None:
        """A new generation: join its replies if a query's pick depends on the counter alone."""
        self.seen = state
        self.rotation = ()
        self.rotating = None
        self.tails.clear()
        plain = state.mode in (ROTATE, FIXED) and state.relay_rules is None
        if not plain or self.selector.rules is not None:
            return
        replies = [self._join(entry) for entry in state.variants]
        joined = tuple(reply for reply in replies if reply is not None)
        if len(joined) == len(replies):
            self.rotation = joined
            self.rotating = state if state.mode == ROTATE else None

    def _join(self, entry: Entry) -> bytes | None:
        """The reply to this question with `entry`, or None when it does not fit whole."""
        body = entry.body
        if HEADER_LEN + len(self.question) + len(body) + len(self.opt) > self.limit:
            return None
        head = entry.head_opt[self.rd] if self.opt else entry.head[self.rd]
        return b"".join((head, self.question, body, self.opt))

    def _joined(self, entry: Entry) -> bytes:
        """The reply with `entry`, kept for the next time it is picked (the dict holds the entry,
        so its id stays its own); one too big for the client is truncated as `assemble` does."""
        tail = self._join(entry)
        if tail is None:
            data = _NO_ID + self.query
            return assemble(data, parse_query(data), entry, self.limit)[2:]
        tails = self.tails
        if len(tails) >= PICKED_TAILS:
            tails.clear()
        tails[id(entry)] = (entry, tail)
        return tail

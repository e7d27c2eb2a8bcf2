"""A bounded history of the routing table, so that `dynmx routes --since CURSOR` can say what changed.

Pure: tables of routes in, versions, cursors and changes out; the running app holds one
`RouteLog` and replaces it on each call. Every call of `record` with a table that differs
from the newest makes a new version; the log keeps the last `keep` versions as the
changes between them (each step holds the routes its domains had before it), so
memory grows with what changed, not with the size of the table. A cursor names a
version of one boot of the server: `<boot>-<version>`. `since(cursor)` answers with the
domains whose route now differs from their route at that version (added, changed or
removed: a removed domain has no route); a cursor of another boot, an expired or a
malformed one answers with the whole table and says so (`full`).

The comparison is by `Route`, hop states included, so a drain, a health verdict or a
promotion is a change as much as a zone edit is. A change undone before the next call is
no change: what counts is the route served at the cursor against the one served now.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dynmx.policy.routes import Route, bare, to_postfix

KEEP = 64  # versions a cursor stays valid for


@dataclass(frozen=True, slots=True)
class Change:
    """A domain's route now; `route` is None when the domain is no longer routed (removed)."""

    domain: str
    route: Route | None


@dataclass(frozen=True, slots=True)
class Delta:
    """What `since` answers: the cursor to pass next time and the changes after the one passed."""

    cursor: str
    full: bool  # the cursor was not usable: `changes` is every route now, nothing removed
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class _Step:
    version: int  # the version this step leads to
    before: Mapping[str, Route | None]  # its domains' routes in the version before (None: absent)


def as_table(routes: Iterable[Route]) -> dict[str, Route]:
    """The comparable form of a routing table: domain -> route."""
    return {route.domain: route for route in routes}


def diff(old: Mapping[str, Route], new: Mapping[str, Route]) -> tuple[Change, ...]:
    """Each domain whose route differs between the tables, sorted by domain."""
    domains = sorted(d for d in old.keys() | new.keys() if old.get(d) != new.get(d))
    return tuple(Change(domain, new.get(domain)) for domain in domains)


def apply(old: Mapping[str, Route], changes: Iterable[Change]) -> dict[str, Route]:
    """`old` with `changes` applied: what a consumer of the deltas holds afterwards."""
    table = dict(old)
    for change in changes:
        if change.route is None:
            table.pop(change.domain, None)
        else:
            table[change.domain] = change.route
    return table


@dataclass(frozen=True, slots=True)
class RouteLog:
    """The newest routing table, its version, and the steps that lead to it (oldest first)."""

    boot: str  # differs for each start of the server: a cursor of another boot is unknown
    keep: int = KEEP
    version: int = 0  # 0: nothing recorded yet
    table: Mapping[str, Route] = field(default_factory=dict)
    steps: tuple[_Step, ...] = ()

    @property
    def cursor(self) -> str:
        return f"{self.boot}-{self.version}"

    @property
    def oldest(self) -> int:
        """The oldest version a cursor may name."""
        return self.version - len(self.steps)

    def record(self, routes: Iterable[Route]) -> RouteLog:
        """This log with `routes` as the newest version (the same log when nothing changed)."""
        table = as_table(routes)
        if self.version == 0:
            return RouteLog(self.boot, self.keep, 1, table)
        changes = diff(self.table, table)
        if not changes:
            return self
        step = _Step(self.version + 1, {c.domain: self.table.get(c.domain) for c in changes})
        steps = (*self.steps, step)[-(self.keep - 1) :] if self.keep > 1 else ()
        return RouteLog(self.boot, self.keep, self.version + 1, table, steps)

    def _version_of(self, cursor: str) -> int | None:
        boot, _, number = cursor.rpartition("-")
        if boot != self.boot or not (number.isascii() and number.isdigit()):
            return None
        version = int(number)
        return version if self.version and self.oldest <= version <= self.version else None

    def since(self, cursor: str) -> Delta:
        """The domains whose route changed after `cursor`; every route when it is not usable."""
        version = self._version_of(cursor)
        if version is None:
            every = tuple(Change(domain, self.table[domain]) for domain in sorted(self.table))
            return Delta(self.cursor, True, every)
        then: dict[str, Route | None] = {}
        for step in self.steps:
            if step.version > version:
                for domain, route in step.before.items():
                    then.setdefault(domain, route)  # the earliest step after the cursor knows it
        domains = sorted(d for d, route in then.items() if route != self.table.get(d))
        return Delta(self.cursor, False, tuple(Change(d, self.table.get(d)) for d in domains))


def delta_json(delta: Delta) -> str:
    """{cursor, full, routes: [{domain, pool, hops, removed}]}; a removed domain has no hops."""
    routes = []
    for change in delta.changes:
        route = change.route
        hops = route.hops if route is not None else ()
        routes.append(
            {
                "domain": change.domain,
                "pool": route.pool if route is not None else None,
                "hops": [{"host": h.host, "preference": h.preference, "state": h.state} for h in hops],
                "removed": route is None,
            }
        )
    return json.dumps({"cursor": delta.cursor, "full": delta.full, "routes": routes}, indent=2)


def postfix_header(cursor: str, full: bool) -> str:
    """Comment lines (postmap skips lines starting with '#') carrying the cursor and whether all is listed."""
    return f"# cursor: {cursor}\n# full: {'true' if full else 'false'}\n"


def delta_postfix(delta: Delta) -> str:
    """The header, transport(5) lines of the routed domains, then `# removed: DOMAIN` per removed one.

    The lines can be fed to `postmap -i`; the removed domains are comments, for `postmap -d`.
    """
    present = [c.route for c in delta.changes if c.route is not None]
    removed = [c.domain for c in delta.changes if c.route is None]
    gone = "".join(f"# removed: {bare(d)}\n" for d in removed)
    return postfix_header(delta.cursor, delta.full) + to_postfix(present) + gone

"""The nodes of a zone version made by an edit, without copying the nodes of the version
it was made from.

A version of a large zone holds the nodes its edits changed (`own`, a removed name as
None) over the node dict of an earlier version (`base`), shared and never changed: a
commit costs what it touches, not a copy of a million entries. Once the changes held
are a sixty-fourth of the base, the next version is one plain dict again (amortised, as
`answer.zoneset.Grown`). Reads cost a second dict lookup; iteration yields the base's
names first, then the changed ones (callers that need an order sort, as zone files do).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import dns.name
import dns.node

# Zones with fewer nodes than this are copied: a plain dict, a few milliseconds at most.
SHARE_FROM = 4096
# A version holding more changes than its base's size over this is one plain dict again.
MERGE_AT = 64

Nodes = MutableMapping[dns.name.Name, dns.node.Node]
_ABSENT: Any = object()


class VersionNodes(MutableMapping[dns.name.Name, dns.node.Node]):
    """`base` (never changed) with `own` laid over it; `own[name] is None`: removed here."""

    __slots__ = ("_base", "_len", "_own")

    def __init__(
        self,
        base: dict[dns.name.Name, dns.node.Node],
        own: dict[dns.name.Name, dns.node.Node | None],
        length: int,
    ) -> None:
        self._base = base
        self._own = own
        self._len = length

    def __getitem__(self, name: dns.name.Name) -> dns.node.Node:
        node = self._own.get(name, _ABSENT)
        if node is _ABSENT:
            return self._base[name]
        if node is None:
            raise KeyError(name)
        return node  # type: ignore[no-any-return]

    def get(self, name: dns.name.Name, default: Any = None) -> Any:
        node = self._own.get(name, _ABSENT)
        if node is _ABSENT:
            return self._base.get(name, default)
        return default if node is None else node

    def __contains__(self, name: object) -> bool:
        node = self._own.get(name, _ABSENT)  # type: ignore[call-overload]
        return name in self._base if node is _ABSENT else node is not None

    def __setitem__(self, name: dns.name.Name, node: dns.node.Node) -> None:
        if name not in self:
            self._len += 1
        self._own[name] = node

    def __delitem__(self, name: dns.name.Name) -> None:
        if name not in self:
            raise KeyError(name)
        self._len -= 1
        if name in self._base:
            self._own[name] = None
        else:
            del self._own[name]

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[dns.name.Name]:
        own = self._own
        kept = itertools.filterfalse(own.__contains__, self._base)  # in C: no Python per name
        return itertools.chain(kept, (name for name, node in own.items() if node is not None))

    def changed(self) -> dict[dns.name.Name, dns.node.Node | None]:
        """The names this version holds over its base (None: removed)."""
        return self._own

    def shares_base_with(self, other: Mapping[dns.name.Name, dns.node.Node]) -> bool:
        """Whether `other` is this version's base, or a version over the same base."""
        return other is self._base or (isinstance(other, VersionNodes) and other._base is self._base)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (to a worker) as a plain dict."""
        return (dict, (self.merged(),))

    def merged(self) -> dict[dns.name.Name, dns.node.Node]:
        """One plain dict of this version's nodes (the base copied in C, the changes laid on)."""
        merged = dict(self._base)
        for name, node in self._own.items():
            if node is None:
                del merged[name]
            else:
                merged[name] = node
        return merged


def next_version(nodes: Mapping[dns.name.Name, dns.node.Node]) -> Nodes:
    """The nodes of a new version, to be changed by an edit, sharing `nodes` where it is large."""
    if isinstance(nodes, VersionNodes):
        own = nodes.changed()
        if len(own) * MERGE_AT <= len(nodes._base):
            return VersionNodes(nodes._base, dict(own), len(nodes))
        return nodes.merged()  # the changes have grown: one plain dict again
    if isinstance(nodes, dict) and len(nodes) >= SHARE_FROM:
        return VersionNodes(nodes, {}, len(nodes))
    return dict(nodes)

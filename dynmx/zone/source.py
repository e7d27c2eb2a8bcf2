"""A small zone that keeps its file's bytes and lets its parsed nodes go once compiled.

A server of many small zones answers them from compiled bytes; the dnspython nodes of
each (some ten kilobytes for a ten-record zone, against a few hundred bytes of text) are
needed again only by what works on zone data: an edit, a transfer out, the slow path, a
zone whose answers use this one compiled again. `SourceZone` is a `dns.zone.Zone` whose
nodes are parsed from the bytes it was read from on first access and dropped by
`release` (the zone version never changes: an edit makes a new version). It travels
between processes as its bytes, not as its nodes (a parse worker sends it back so, and
is so sent to an answer worker).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Iterator, Set
from pathlib import Path
from typing import Any, TypeVar

import dns.name
import dns.node
import dns.rdataclass
import dns.zone

_NODES = dns.zone.Zone.__dict__["nodes"]  # the slot under the `nodes` property below
_PARSE = threading.Lock()  # one zone parsed once, whichever thread asks first

Nodes = dict[dns.name.Name, dns.node.Node]
T = TypeVar("T", bound=Hashable)
_NO_UNICODE: Any = frozenset()


class Few(Set[T]):
    """An immutable set of a few members, held in a tuple: a small zone's name keys take a
    tenth of a frozenset's memory, and finding one of five byte strings costs what a hash
    lookup costs."""

    __slots__ = ("members",)

    def __init__(self, members: Iterable[T]) -> None:
        self.members = tuple(dict.fromkeys(members))

    def __contains__(self, item: object) -> bool:
        return item in self.members

    def __iter__(self) -> Iterator[T]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"Few({self.members!r})"

    @classmethod
    def _from_iterable(cls, members: Iterable[Any]) -> frozenset[Any]:
        """What `|`, `&` and `-` give: a plain frozenset (members may repeat in the iterable)."""
        return frozenset(members)


class SourceZone(dns.zone.Zone):
    """A zone version read from `source` (the bytes of `path`); its nodes are parsed on first
    access and let go by `release`. `serial` is its SOA serial, known without parsing."""

    __slots__ = ("_path", "_source", "node_count", "serial")

    def __init__(
        self, origin: dns.name.Name, path: Path, source: bytes, serial: int, node_count: int
    ) -> None:
        self._source = b""  # read by the setter `Zone.__init__` calls: nothing to parse yet
        super().__init__(origin, dns.rdataclass.IN, relativize=False)
        self._path = path
        self._source = source
        self.serial = serial
        self.node_count = node_count
        _NODES.__set__(self, None)

    @classmethod
    def of(cls, zone: dns.zone.Zone, path: Path, source: bytes, serial: int) -> SourceZone:
        """`zone` (read from `source`, the bytes of `path`) as a released `SourceZone`."""
        assert zone.origin is not None
        return cls(zone.origin, path, source, serial, len(zone.nodes))

    @property
    def parsed(self) -> bool:
        """Whether the nodes are held now."""
        return _NODES.__get__(self) is not None

    def _get_nodes(self) -> Nodes:
        nodes: Nodes | None = _NODES.__get__(self)
        if nodes is None:
            with _PARSE:
                nodes = _NODES.__get__(self)
                if nodes is None:
                    nodes = self._read()
                    _NODES.__set__(self, nodes)
        return nodes

    def _set_nodes(self, nodes: Nodes) -> None:
        if not self._source:  # `Zone.__init__`'s empty dict, or a zone given its nodes
            _NODES.__set__(self, nodes)
            return
        raise TypeError("a SourceZone's nodes are those of its bytes: make a new version instead")

    nodes = property(_get_nodes, _set_nodes)

    def _no_unicode(self, value: set[str]) -> None:
        """`Zone.__init__` gives each zone an empty set of `$UNICODE` styles, read only when it
        is written out as text; these zones share one empty set."""

    unicode = property(lambda self: _NO_UNICODE, _no_unicode)

    def same_file(self, path: Path) -> None:
        """Hold `path` (equal to the one it has, as its reader holds it): one object per file."""
        if path != self._path:
            raise ValueError(f"{path} is not {self._path}")
        self._path = path

    def release(self) -> None:
        """Let the parsed nodes go: the next access parses the bytes again."""
        with _PARSE:
            _NODES.__set__(self, None)

    def _read(self) -> Nodes:
        from dynmx.zone.loader import parse_zone  # the loader builds these: imported at use

        loaded = parse_zone(self._path, self._source)  # as it was read first: the same zone
        if loaded.origin != self.origin:
            raise ValueError(f"{self._path}: its bytes no longer give zone {self.origin}")
        return dict(loaded.zone.nodes)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its bytes: a process that gets it parses them when it needs the nodes."""
        return (SourceZone, (self.origin, self._path, self._source, self.serial, self.node_count))


def node_count(zone: dns.zone.Zone) -> int:
    """How many nodes the zone has, without parsing a released `SourceZone`."""
    if isinstance(zone, SourceZone):
        return zone.node_count
    return len(zone.nodes)

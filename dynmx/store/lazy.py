"""Zones served from the answer store, read from their files only when first needed.

A warm start answers from stored bytes; the dnspython zone behind them is needed only by
what works on zone data: an edit (UPDATE, CLI, dyndns2), a transfer out, the slow path
(wildcards, below a cut, DO=1 of a pre-signed zone), a reload judging a hand-edited file
against the served version, a zone whose answers use this one being compiled again.
`LazyZone` is a `dns.zone.Zone` whose nodes are parsed on first access from the zone
file's bytes the store kept with the answers (read from the store then, not at start), or
from the file when it still has those very bytes (the same digest): never from a file that
changed since, as the served version is the one the answers were made from; `LazyZoneData` is a
`ZoneData` that knows its origin and key at once and indexes that zone on first use of
anything else; `LazyIndex` is the `CompiledZone` of a zone whose answers are still in the
store (pending in the table): its names and NXDOMAIN are read from its row on first use.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.name
import dns.node
import dns.rdataclass
import dns.zone

from dynmx.answer.compiler import CompiledZone
from dynmx.answer.zoneset import ZoneData, name_key
from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.loader import LoadedZone, parse_zone, read_zone_bytes

_NODES = dns.zone.Zone.__dict__["nodes"]  # the slot under the `nodes` property below
_PARSE = threading.Lock()  # one zone parsed once, whichever thread asks first

# The zone file's bytes, or where to get them: a function of its path and digest that gives
# them when they still have it, else None.
Source = bytes | Callable[[Path, bytes], bytes | None]


class LazyZone(dns.zone.Zone):
    """A zone whose nodes are parsed from `source` (the bytes of `path` the stored answers were
    made from, or a function giving them, checked against `digest`) on first access."""

    __slots__ = ("_digest", "_parsed", "_path", "_source", "stored_serial")

    def __init__(self, origin: dns.name.Name, path: Path, digest: bytes, serial: int, source: Source) -> None:
        super().__init__(origin, dns.rdataclass.IN, relativize=False)
        self._path = path
        self._digest = digest
        self._source = source
        self._parsed = False
        self.stored_serial = serial  # the SOA serial of those bytes: known without reading them

    @property
    def parsed(self) -> bool:
        return self._parsed

    def _get_nodes(self) -> dict[dns.name.Name, dns.node.Node]:
        if not self._parsed:
            with _PARSE:
                if not self._parsed:
                    _NODES.__set__(self, self._read())
                    self._parsed = True
                    self._source = b""  # held no longer than needed
        nodes: dict[dns.name.Name, dns.node.Node] = _NODES.__get__(self)
        return nodes

    def _set_nodes(self, nodes: dict[dns.name.Name, dns.node.Node]) -> None:
        _NODES.__set__(self, nodes)
        self._parsed = getattr(self, "_path", None) is not None  # set by __init__ before _path: not yet

    nodes = property(_get_nodes, _set_nodes)

    def _bytes(self) -> bytes:
        """The bytes the answers were made from: kept by the store (which gives them only while
        they have the digest), else the file's, which `_read` checks against the digest."""
        source = self._source
        kept = source(self._path, self._digest) if callable(source) else source
        if kept is not None:
            return kept
        try:
            return read_zone_bytes(self._path)  # checked against the digest by `_read`
        except ZoneLoadError:
            return b""

    def _read(self) -> dict[dns.name.Name, dns.node.Node]:
        loaded = parse_zone(self._path, self._bytes(), self.origin)
        if loaded.digest != self._digest:  # neither the store nor the file has those bytes
            reason = "answer store: the kept bytes of this zone file do not match their digest"
            raise ZoneLoadError([Problem(str(self._path), 0, reason)])
        return dict(loaded.zone.nodes)

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        """Sent to a worker as a plain zone (its nodes read here, once)."""
        return (_plain_zone, (self.origin, self.rdclass, dict(self.nodes)))


def _plain_zone(
    origin: dns.name.Name, rdclass: dns.rdataclass.RdataClass, nodes: dict[dns.name.Name, dns.node.Node]
) -> dns.zone.Zone:
    zone = dns.zone.Zone(origin, rdclass, relativize=False)
    zone.nodes = nodes
    return zone


def lazy_loaded(
    origin: dns.name.Name,
    path: Path,
    digest: bytes,
    stamp: tuple[int, int, int, int] | None,
    serial: int,
    source: Source,
) -> LoadedZone:
    """The `LoadedZone` of a file whose answers come from the store."""
    return LoadedZone(origin, LazyZone(origin, path, digest, serial, source), path, digest, stamp)


def zone_serial(zone: dns.zone.Zone) -> int | None:
    """The serial of a lazy zone not read yet (None for any other: read its SOA)."""
    if isinstance(zone, LazyZone) and not zone.parsed:
        return zone.stored_serial
    return None


_FIELDS = tuple(
    name for cls in ZoneData.__mro__ for name in getattr(cls, "__slots__", ()) if name != "__weakref__"
)


class LazyZoneData(ZoneData):
    """`ZoneData` of a `LazyZone`: origin, key and zone set at once, the rest indexed on first use.

    Slots not set raise AttributeError, which sends Python to `__getattr__`: the index is
    built then, into this very object, so identity checks (`find_key(key) is zone`) hold."""

    __slots__ = ()

    def __init__(self, origin: dns.name.Name, zone: LazyZone, key: bytes | None = None) -> None:
        # no __post_init__: nothing read; `key`, when known (the store's row has it), is not made again
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "key", name_key(origin) if key is None else key)

    def __getattr__(self, name: str) -> Any:
        if name not in _FIELDS or name in ("origin", "zone", "key"):
            raise AttributeError(name)
        with _PARSE_INDEX:
            try:
                object.__getattribute__(self, "soa")
            except AttributeError:
                full = ZoneData(self.origin, self.zone)
                for field in _FIELDS:
                    with contextlib.suppress(AttributeError):  # a slot the full index left unset
                        object.__setattr__(self, field, object.__getattribute__(full, field))
        return object.__getattribute__(self, name)


_PARSE_INDEX = threading.RLock()


_INDEX_FIELDS = tuple(name for name in CompiledZone.__slots__ if name not in ("origin", "complete", "signed"))


class LazyIndex(CompiledZone):
    """The index of a pending zone served from the store: origin, `complete` (False) and
    `signed` at once; the rest (names, cuts, NXDOMAIN) from `read` on first use. The table
    holds it until the zone's answers are laid in (`warm.fill_stored`), which puts a
    `CompiledZone` in its place and keeps it here as `filled`.

    As `LazyZoneData`: unset slots send Python to `__getattr__`, which fills them in this
    very object; once read it costs what a `CompiledZone` costs."""

    __slots__ = ("filled", "pending", "read")

    def __new__(cls, *args: Any, **fields: Any) -> Any:
        """`dataclasses.replace` (a compile step over a pending zone) makes a plain index."""
        if fields:
            return CompiledZone(**fields)
        return object.__new__(cls)

    def __init__(
        self, origin: bytes, signed: bool, pending: Any, read: Callable[[], CompiledZone] | None
    ) -> None:
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "complete", False)
        object.__setattr__(self, "signed", signed)
        object.__setattr__(self, "pending", pending)  # what `read` reads from (warm.Pending)
        # None: `pending.read_index` (no bound method made per stored zone)
        object.__setattr__(self, "read", read)
        object.__setattr__(self, "filled", None)

    def __getattr__(self, name: str) -> Any:
        if name not in _INDEX_FIELDS:
            raise AttributeError(name)
        with _PARSE_INDEX:
            try:
                object.__getattribute__(self, "names")
            except AttributeError:
                read = object.__getattribute__(self, "read")
                full = read() if read is not None else self.pending.read_index()
                for field in _INDEX_FIELDS:
                    object.__setattr__(self, field, object.__getattribute__(full, field))
        return object.__getattribute__(self, name)

    def __reduce__(self) -> tuple[Any, ...]:
        """Sent elsewhere as the plain index it stands for."""
        fields = {name: getattr(self, name) for name in (*_INDEX_FIELDS, "origin", "complete", "signed")}
        return (_plain_index, (fields,))


def _plain_index(fields: dict[str, Any]) -> CompiledZone:
    return CompiledZone(**fields)

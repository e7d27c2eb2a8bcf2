"""One compiled zone as bytes and back: its table entries and its byte-level index.

Pure: no I/O. `marshal` (tuples of bytes, ints and bools only) is the fastest way Python
has to read such data back; nothing else is stored, so a row cannot name code to run.
A zone is storable only when its entries are plain bytes: no pool carrier (a selector
is runtime state), no per-name tracking (zones of `TRACK_FROM` names or more keep indexes
the store does not hold), not signed by dynmx (its signatures expire; a pre-signed zone's
come from its file), no overlay (pool hint names and null-MX names laid over it come from
pools a catalog may bring later).
"""

from __future__ import annotations

import marshal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dns.exception
import dns.name

from dynmx.answer.compiler import TRACK_FROM, AnswerTable, CompiledZone
from dynmx.answer.table import shared_entry
from dynmx.errors import DynmxError
from dynmx.wire.response import Entry, RRsetSpan

CODEC_VERSION = 3
_MARSHAL_VERSION = 4

SpanTuple = tuple[int, int, int, bool]
EntryTuple = tuple[int, bool, bytes, tuple[SpanTuple, ...], bool]


class StoreCorrupt(DynmxError):
    """A stored row does not decode to a compiled zone: rebuilt, never served."""


@dataclass(frozen=True, slots=True)
class StoredZone:
    """What the store gives back for one zone: ready to lay into a table."""

    origin: bytes  # the table key: lower-case wire
    name: dns.name.Name  # as the zone file spells it (the journal and the logs name zones so)
    index: CompiledZone
    keys: tuple[bytes, ...]
    entries: tuple[Entry, ...]  # in the order of `keys`
    uses: frozenset[bytes]
    serial: int


def storable(table: AnswerTable, origin: bytes) -> bool:
    """Whether this compiled zone can be kept (see the module docstring)."""
    index = table.zones.get(origin)
    if index is None or not index.complete or origin in table.pending or origin in table.negatives:
        return False
    data = table.zoneset.by_key.get(origin)
    if data is None or data.signer is not None or data.overlay:
        return False  # signed by dynmx, or laid over by pools (hint names, null MX) that may change
    get = table.entries.get
    for key in table.keys.get(origin, ()):  # a loop, not all(...): some 15 keys per zone, 100,000 zones
        entry = get(key)
        if entry is None or entry.selector is not None:
            return False
    return True


def _entry_tuple(entry: Entry) -> EntryTuple:
    spans = tuple((s.end, s.section, s.count, s.required) for s in entry.spans)
    return (entry.rcode, entry.authoritative, entry.body, spans, entry.partial_tc)


# An entry's spans as plain tuples, by the spans object's identity (the object is kept with
# them, so the identity stays its own): the compiler shares one spans tuple between many
# entries, so a write of many zones converts each once (`encode_zone`'s `memo`).
SpansMemo = dict[int, tuple[object, tuple[SpanTuple, ...]]]


def encode_zone(table: AnswerTable, origin: bytes, serial: int, memo: SpansMemo | None = None) -> bytes:
    """The bytes of one storable zone of `table` (check `storable` first). `memo`: one dict
    for every zone of one write, to convert shared spans once."""
    index = table.zones[origin]
    keys = tuple(table.keys.get(origin, ()))
    nx_compressed = _entry_tuple(index.nx_compressed) if index.nx_compressed is not None else None
    spelled = table.zoneset.by_key[origin].origin.to_wire()
    record = (
        CODEC_VERSION,
        origin,
        spelled,
        serial,
        tuple(index.names),
        tuple(index.cuts),
        tuple(index.wildcard_parents),
        _entry_tuple(index.nxdomain),
        nx_compressed,
        index.nx_pointers,
        index.signed,
        keys,
        *_by_shape([table.entries[k] for k in keys], {} if memo is None else memo),
        tuple(sorted(table.uses.get(origin, ()))),
    )
    return marshal.dumps(record, _MARSHAL_VERSION)


Shape = tuple[int, bool, tuple[SpanTuple, ...], bool]


def _by_shape(
    entries: list[Entry], memo: SpansMemo
) -> tuple[tuple[Shape, ...], tuple[int, ...], tuple[bytes, ...]]:
    """The zone's entries as its distinct shapes (rcode, flags, spans: a handful), the shape
    of each entry, and each entry's body: one shape looked up per row, not per entry."""
    shapes: dict[Shape, int] = {}
    which = []
    for entry in entries:
        made = memo.get(id(entry.spans))
        if made is None or made[0] is not entry.spans:
            made = memo[id(entry.spans)] = (
                entry.spans,
                tuple((s.end, s.section, s.count, s.required) for s in entry.spans),
            )
        shape = (entry.rcode, entry.authoritative, made[1], entry.partial_tc)
        which.append(shapes.setdefault(shape, len(shapes)))
    return tuple(shapes), tuple(which), tuple(entry.body for entry in entries)


# An entry's derived fields depend only on its rcode, flags and spans: entries that share
# those are made from one made by `Entry` itself, their slots set directly (half the time of
# `Entry(...)`, a million times at a warm start). Only while Entry has exactly these slots.
_SLOTS = ("rcode", "authoritative", "body", "spans", "selector", "partial_tc", "counts", "head", "head_opt")
_SET = [Entry.__dict__[name].__set__ for name in _SLOTS] if Entry.__slots__ == _SLOTS else None
_new = object.__new__


def _itself(entry: Entry) -> Entry:
    return entry


class Decoder:
    """Decodes rows, sharing span tuples between entries as the compiler does (zones made
    from one template have equal spans: one tuple for all of them)."""

    def __init__(self) -> None:
        self._shapes: dict[Shape, Entry] = {}
        self._empty: frozenset[bytes] = frozenset()

    def _model(self, shape: Shape) -> Entry:
        model = self._shapes.get(shape)
        if model is None:
            rcode, authoritative, spans, partial_tc = shape
            shared = tuple(RRsetSpan(*span) for span in spans)
            model = self._shapes[shape] = Entry(rcode, authoritative, b"", shared, partial_tc=partial_tc)
        return model

    def _entry(self, raw: EntryTuple) -> Entry:
        rcode, authoritative, body, spans, partial_tc = raw
        return self._made(self._model((rcode, authoritative, spans, partial_tc)), body)

    def _made(self, model: Entry, body: bytes) -> Entry:
        """An entry like `model` with this body."""
        if _SET is None:
            return Entry(model.rcode, model.authoritative, body, model.spans, partial_tc=model.partial_tc)
        entry: Entry = _new(Entry)
        s_rcode, s_aa, s_body, s_spans, s_selector, s_tc, s_counts, s_head, s_head_opt = _SET
        s_rcode(entry, model.rcode)
        s_aa(entry, model.authoritative)
        s_body(entry, body)
        s_spans(entry, model.spans)
        s_selector(entry, None)
        s_tc(entry, model.partial_tc)
        s_counts(entry, model.counts)
        s_head(entry, model.head)
        s_head_opt(entry, model.head_opt)
        return entry

    def _set(self, items: Sequence[bytes]) -> frozenset[bytes]:
        return frozenset(items) if items else self._empty

    def decode_index(self, blob: bytes) -> CompiledZone:
        """Only the byte-level index of the zone in `blob` (its missing names' answers), for a
        zone still pending; StoreCorrupt as `decode`."""
        try:
            record = marshal.loads(blob)
            version, origin, spelled, _, names, cuts, wildcards, nx, nx_c, pointers, signed = record[:11]
            if version != CODEC_VERSION or spelled.lower() != origin:
                raise ValueError("codec version or shape")
            return CompiledZone(
                origin=origin,
                names=frozenset(names),
                cuts=self._set(cuts),
                wildcard_parents=self._set(wildcards),
                nxdomain=self._entry(nx),
                nx_compressed=self._entry(nx_c) if nx_c is not None else None,
                nx_pointers=tuple(pointers),
                complete=False,
                signed=bool(signed),
            )
        except (ValueError, TypeError, EOFError, IndexError) as error:
            raise StoreCorrupt(f"answer store row does not decode: {error}") from error

    def decode(self, blob: bytes) -> StoredZone:
        """The zone in `blob`; StoreCorrupt when it is not one this codec wrote."""
        try:
            record = marshal.loads(blob)
            version, origin, spelled, serial, names, cuts, wildcards = record[:7]
            nx, nx_c, pointers, signed, keys, shapes, which, bodies, uses = record[7:]
            if (
                version != CODEC_VERSION
                or not len(keys) == len(which) == len(bodies)
                or spelled.lower() != origin
            ):
                raise ValueError("codec version or shape")
            index = CompiledZone(
                origin=origin,
                names=frozenset(names),
                cuts=self._set(cuts),
                wildcard_parents=self._set(wildcards),
                nxdomain=self._entry(nx),
                nx_compressed=self._entry(nx_c) if nx_c is not None else None,
                nx_pointers=tuple(pointers),
                signed=bool(signed),
            )
            models = [self._model(shape) for shape in shapes]
            made = self._made
            share = shared_entry if len(names) < TRACK_FROM else _itself  # zones alike: one entry
            entries = tuple([share(made(models[at], body)) for at, body in zip(which, bodies, strict=True)])
            name = _name(spelled)
            return StoredZone(origin, name, index, tuple(keys), entries, frozenset(uses), int(serial))
        except (ValueError, TypeError, EOFError, IndexError, dns.exception.DNSException) as error:
            raise StoreCorrupt(f"answer store row does not decode: {error}") from error


def zone_meta(table: AnswerTable, origin: bytes) -> tuple[bytes, tuple[bytes, ...], bool]:
    """What `row_meta` reads back from `encode_zone(table, origin, ...)`, without encoding."""
    spelled = table.zoneset.by_key[origin].origin.to_wire()
    assert spelled is not None  # without a file to write to, to_wire gives the bytes
    return spelled, tuple(sorted(table.uses.get(origin, ()))), bool(table.zones[origin].signed)


def row_meta(blob: bytes) -> tuple[bytes, tuple[bytes, ...], bool]:
    """What the store's index keeps of a zone beside its answers, so a start reads no answer:
    its origin as spelled (wire), the zones its answers use, whether it is pre-signed."""
    try:
        record = marshal.loads(blob)
        return bytes(record[2]), tuple(record[-1]), bool(record[10])
    except (ValueError, TypeError, EOFError, IndexError) as error:
        raise StoreCorrupt(f"answer store row does not decode: {error}") from error


def name_of(wire: bytes) -> dns.name.Name:
    """The origin a row names (StoreCorrupt when it is no wire name)."""
    try:
        return _name(wire)
    except (ValueError, IndexError, dns.exception.DNSException) as error:
        raise StoreCorrupt(f"answer store origin does not decode: {error}") from error


# The `labels` slot of dnspython's Name (on the class its immutable decorator wraps).
_NAME_SLOT = next((cls.__dict__["labels"] for cls in dns.name.Name.__mro__ if "labels" in cls.__dict__), None)


def _name(wire: bytes) -> dns.name.Name:
    """An uncompressed wire name, as `dns.name.from_wire` reads it (a sixth of its time: the
    labels are checked here as dnspython checks them, then set on a bare Name)."""
    if len(wire) > 255:
        raise ValueError("a name longer than 255 octets")
    labels = []
    pos = 0
    while True:
        length = wire[pos]
        if length > 63:
            raise ValueError("a label longer than 63 octets")
        labels.append(wire[pos + 1 : pos + 1 + length])
        pos += length + 1
        if length == 0:
            break
    if pos != len(wire):
        raise ValueError("trailing bytes after the origin")
    if _NAME_SLOT is None:
        return dns.name.Name(labels)
    name: dns.name.Name = object.__new__(dns.name.Name)
    _NAME_SLOT.__set__(name, tuple(labels))
    return name


def lay_in(
    zones: Mapping[bytes, StoredZone],
    entries: dict[bytes, Entry],
    compiled: dict[bytes, CompiledZone],
    keys: dict[bytes, Sequence[bytes]],
    uses: dict[bytes, frozenset[bytes]],
) -> None:
    """Put stored zones into the parts a table is made of (as `compile_table` fills them)."""
    for origin, stored in zones.items():
        entries.update(zip(stored.keys, stored.entries, strict=True))
        compiled[origin] = stored.index
        keys[origin] = stored.keys
        uses[origin] = stored.uses

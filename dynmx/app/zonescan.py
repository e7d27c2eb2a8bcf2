"""The zone directory as files to serve: load each, keep the previous version of one that fails."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

from dynmx.answer.table import index_zone
from dynmx.answer.zoneset import ZoneData, name_key
from dynmx.errors import Problem, ZoneLoadError
from dynmx.store.lazy import zone_serial
from dynmx.zone.batch import APART_FROM, Parsed, check_apart, parse_many
from dynmx.zone.limits import DEFAULT_MAX_FILE_SIZE
from dynmx.zone.loader import (
    LoadedZone,
    check_size,
    file_digest,
    parse_zone,
    read_digest,
    read_zone_bytes,
)
from dynmx.zone.soa import serial_of
from dynmx.zone.source import Few, SourceZone

if TYPE_CHECKING:
    from dynmx.answer.table import AnswerTable

RACY_SECONDS = 2.0  # a file changed this recently is read again at the next reload
# A scan that parses this many files at once (a start-up of many zones) keeps each small
# zone as its bytes (`SourceZone`) and its index: the parsed nodes of all of them at once
# would be most of the server's memory; each is parsed again when it is compiled, then let go.
COMPACT_FROM = 1000
COMPACT_MAX_BYTES = 16 * 1024  # larger files keep their nodes (parsing them again costs more)
COMPACT_MAX_NODES = 256

Stamp = tuple[int, int, int, int]  # (mtime_ns, ctime_ns, size, inode)

# Stamps seen on a file whose bytes, read again, were those its version was read from (or
# written as): that version keeps its identity (nothing recompiled), so its own `stamp`
# cannot change; the next scan keeps it by this one, unread. Only the last scan's are kept.
_confirmed: dict[str, tuple[LoadedZone, Stamp]] = {}
# The table key of each file's origin at the last scan (the very name object): a kept
# version's is not computed again.
_keys: dict[str, tuple[dns.name.Name, bytes]] = {}


def scan_zones(
    directory: Path,
    previous: dict[Path, LoadedZone],
    processes: int = 1,
    keep: frozenset[Path] = frozenset(),
    written: dict[Path, bytes] | None = None,
    max_size: int = DEFAULT_MAX_FILE_SIZE,
    serving: bool = False,
) -> tuple[dict[Path, LoadedZone], list[Problem]]:
    """Load every `*.zone`; a file that fails keeps its previous version (if any).

    A file that still has the stamp (mtime, ctime, size, inode) its previous version was
    read with, or whose bytes are those it was read from, keeps that version (the same
    object): a reload of many zones reads and parses only the files that changed. So does
    a file in `keep` (behind its zone in memory, not written back yet), and one whose
    bytes are those `written` says its version in memory was written as (an edit's). Many
    files to parse are spread over up to `processes` processes (`parse_many`). A file over
    `max_size` is refused unread (`file:0:`). For a `serving` process (a reload), a file of
    `APART_FROM` bytes or more is checked in a process of its own first (`check_apart`) and
    read here only when it loads: a bad one costs this process neither memory nor time
    holding the GIL. At start-up nothing is answered yet, and a good file would be parsed
    twice, so it is parsed here at once.
    """
    problems: list[Problem] = []
    try:
        with os.scandir(directory) as listing:
            found = [entry for entry in listing if _is_zone_file(entry)]
    except OSError as error:
        reason = f"cannot read zone directory: {error.strerror or error}"
        return dict(previous), [Problem(str(directory), 0, reason)]
    found.sort(key=lambda entry: entry.name)
    # By the file's name as a string (hashed in C), and the very Path objects already loaded:
    # every dict keyed by them then finds them by identity.
    known = {os.fspath(path): (path, zone) for path, zone in previous.items()}
    names = [entry.path for entry in found]
    files: list[Path] = []
    results: list[Parsed | None] = []  # of each file in `files`; None while it is read
    reading: dict[Path, int] = {}  # a file to parse: its place in `files`
    to_parse: list[tuple[Path, bytes]] = []
    apart: list[Path] = []  # large files checked in a child process before they are read here
    stamps: dict[Path, Stamp] = {}
    confirmed: dict[str, tuple[LoadedZone, Stamp]] = {}
    now = time.time()
    infos = [_stat(entry) for entry in found]
    for index, (name, info) in enumerate(zip(names, infos, strict=True)):
        hit = known.get(name)
        kept: LoadedZone | None
        if hit is None:  # a new file, or a directory named as Path would not write it ("./zones")
            path = Path(name)
            kept = previous.get(path)
        else:
            path, kept = hit
        files.append(path)
        if kept is not None:
            if keep and path in keep:  # its file is behind its version: the stamp says nothing of it
                results.append(kept)
                continue
            seen = None if info is None else (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
            if seen is not None and unchanged(kept, seen, _confirmed.get(name)):
                results.append(kept)
                if kept.stamp != seen:
                    confirmed[name] = (kept, seen)
                continue
        stamp = _stamp(info, now)
        results.append(None)
        large = serving and info is not None and info.st_size >= APART_FROM
        try:
            if large:  # not held yet: hashed a piece at a time when there is a version to keep
                assert info is not None
                check_size(path, info.st_size, max_size, stat=True)
                data, digest = b"", read_digest(path, max_size) if kept is not None else b""
            else:
                data = read_zone_bytes(path, max_size)
                digest = file_digest(data)
        except ZoneLoadError as error:
            results[index] = error.problems
            continue
        # An edit's version has no digest of its own: `written` may know its file's.
        if kept is not None and digest in (kept.digest, (written or {}).get(path)):
            results[index] = kept
            if stamp is not None:  # the same bytes under a new stamp: stat only next time
                confirmed[name] = (kept, stamp)
            continue
        reading[path] = index
        if large:
            apart.append(path)
        else:
            to_parse.append((path, data))
        if stamp is not None:
            stamps[path] = stamp
    for path, found_problems in check_apart(apart, processes, max_size).items():
        if found_problems:
            results[reading[path]] = found_problems
            continue
        try:
            to_parse.append((path, read_zone_bytes(path, max_size)))
        except ZoneLoadError as error:
            results[reading[path]] = error.problems
    compact = parse_compact if len(to_parse) >= COMPACT_FROM else None
    made_here: list[ZoneData] = []  # indexes of the zones kept as their bytes
    for path, parsed in parse_many(to_parse, processes, chunk=compact).items():
        place = reading[path]
        if isinstance(parsed, tuple):  # a small zone as its bytes, with its index
            parsed, made = parsed
            made_here.append(made)
            parsed.zone.same_file(files[place])
        stamp = stamps.get(path)
        if isinstance(parsed, LoadedZone) and (stamp is not None or parsed.path is not files[place]):
            # The scan's own path object: one per file, not a second one from the parse process.
            parsed = dataclasses.replace(parsed, stamp=stamp, path=files[place])
        results[place] = parsed
    remember_indexes(made_here)
    versions: list[LoadedZone | None] = []  # of each file in `files`; None: not served
    claims: dict[bytes, int] = {}  # by wire key: dnspython's name hash collides (see ZoneSet)
    shared: dict[bytes, list[int]] = {}  # the keys claimed by more than one file
    keys: dict[str, tuple[dns.name.Name, bytes]] = {}
    for index, (name, result) in enumerate(zip(names, results, strict=True)):
        assert result is not None
        zone = result
        if isinstance(zone, list):
            problems.extend(zone)
            earlier = previous.get(files[index])
            if earlier is None:
                versions.append(None)
                continue
            zone = earlier
        versions.append(zone)
        known_key = _keys.get(name)
        if known_key is None or known_key[0] is not zone.origin:
            known_key = (zone.origin, name_key(zone.origin))
        keys[name] = known_key
        first = claims.setdefault(known_key[1], index)
        if first != index:
            shared.setdefault(known_key[1], [first]).append(index)
    chosen = [True] * len(files)
    for key, indexes in sorted(shared.items(), key=lambda item: item[1][0]):
        winner = _rightful(key, [files[index] for index in indexes], previous)
        won = next(index for index in indexes if files[index] == winner)
        origin = versions[won].origin  # type: ignore[union-attr]  # claimed: a version
        for index in indexes:
            if index != won:
                chosen[index] = False
                reason = f"zone {origin} is served from {winner}; this file is not loaded (one file per zone)"
                problems.append(Problem(str(files[index]), 1, reason))
    served = zip(files, versions, chosen, strict=True)
    loaded = {path: zone for path, zone, winner in served if winner and zone is not None}
    _confirmed.clear()
    _confirmed.update(confirmed)
    _keys.clear()
    _keys.update(keys)
    return loaded, problems


def parse_compact(files: Sequence[tuple[Path, bytes]]) -> list[tuple[Path, object]]:
    """`parse_many`'s chunk for a scan of many files (in a parse process, mostly): each small
    zone as a released `SourceZone` (its bytes) and its index (`ZoneData`, made from the
    parsed nodes, which are then let go); a larger zone as parsed; a bad file's problems."""
    found: list[tuple[Path, object]] = []
    for path, data in files:
        try:
            loaded = parse_zone(path, data)
        except ZoneLoadError as error:
            found.append((path, error.problems))
            continue
        zone = loaded.zone
        if len(data) > COMPACT_MAX_BYTES or len(zone.nodes) > COMPACT_MAX_NODES:
            found.append((path, loaded))
            continue
        source = SourceZone.of(zone, path, data, serial_of(zone))
        index = CompactZoneData.of(ZoneData(loaded.origin, zone), source)
        found.append((path, (dataclasses.replace(loaded, zone=source), index)))
    return found


_INDEX = threading.RLock()  # a compact index made again, or let go, by one thread at a time
_KEPT = frozenset({"origin", "zone", "key", "signer", "edit", "overlay"})  # what a released index holds
_MADE = tuple(name for cls in ZoneData.__mro__ for name in getattr(cls, "__slots__", ()) if name not in _KEPT)


class CompactZoneData(ZoneData):
    """The index of a small zone kept as its bytes (`SourceZone`): until the zone is compiled
    only its origin, key, zone and the staged table's index of it (`staged`), and only the
    first three once compiled (`release`); the rest is made again from the zone's bytes on
    first use, into this very object, so that identity checks (`find_key(key) is zone`)
    hold. Its name keys are a `Few`."""

    __slots__ = ("staged",)

    @classmethod
    def of(cls, full: ZoneData, zone: SourceZone) -> CompactZoneData:
        """`full` (the index of `zone`'s nodes, parsed) as a released index over `zone`, holding
        only what a staged table needs of it: its byte-level index (`staged`, `index_zone`)."""
        full.name_keys = Few(full.name_keys)  # the staged index's `names`, kept beyond the compile
        made: CompactZoneData = object.__new__(cls)
        for name in _KEPT:
            with contextlib.suppress(AttributeError):  # a slot the full index left unset
                object.__setattr__(made, name, object.__getattribute__(full, name))
        object.__setattr__(made, "zone", zone)
        object.__setattr__(made, "staged", index_zone(full, complete=False))
        return made

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        """The fields held now, read without making the others again (pickled as it is)."""
        held = {}
        for name in (*_KEPT, *_MADE, "staged"):
            with contextlib.suppress(AttributeError):
                held[name] = object.__getattribute__(self, name)
        return None, held

    def _compact(self) -> None:
        # Names stay a set: dnspython compares names in Python, a tuple of them costs the compile.
        object.__setattr__(self, "name_keys", Few(object.__getattribute__(self, "name_keys")))

    def __getattr__(self, name: str) -> Any:
        """A field let go by `release`: the whole index made again from the zone's bytes."""
        if name not in _MADE:
            raise AttributeError(name)
        with _INDEX:
            full = ZoneData(self.origin, self.zone)
            for field in _MADE:
                with contextlib.suppress(AttributeError):
                    object.__setattr__(self, field, object.__getattribute__(full, field))
            self._compact()
            return object.__getattribute__(self, name) if name == "name_keys" else getattr(full, name)

    def release(self) -> None:
        """Let go of everything but origin, key and zone (and the zone's parsed nodes)."""
        with _INDEX:
            object.__setattr__(self, "staged", None)  # the table holds its own (complete) index
            for field in _MADE:
                with contextlib.suppress(AttributeError):
                    object.__delattr__(self, field)
            zone = self.zone
            if isinstance(zone, SourceZone):
                zone.release()


def release_compiled(before: AnswerTable, after: AnswerTable) -> int:
    """Let go of the parsed nodes of the small zones `after` compiled that `before` had
    pending (they are answered from the table now); returns how many."""
    released = 0
    by_key = after.zoneset.by_key
    for origin in before.pending - after.pending:
        data = by_key.get(origin)
        if isinstance(data, CompactZoneData):
            data.release()
            released += 1
    return released


def unchanged(kept: LoadedZone, stamp: Stamp, confirmed: tuple[LoadedZone, Stamp] | None) -> bool:
    """Whether a file's version can be kept unread: its stat stamp now is the one the version
    was read with, or one a later scan found the same bytes under (`confirmed`, for this very
    version). Either was old enough to trust when taken (`_stamp`), so it still is."""
    if kept.stamp == stamp:
        return True
    return confirmed is not None and confirmed[0] is kept and confirmed[1] == stamp


def _rightful(key: bytes, paths: list[Path], previous: dict[Path, LoadedZone]) -> Path:
    """Of several files with one origin, the one that keeps it (NSD refuses a second zone of a
    name and serves what it had): the file serving it now, else the one named after it, else
    the first by name."""
    serving = [path for path in paths if path in previous and name_key(previous[path].origin) == key]
    if serving:
        return serving[0]
    named = [path for path in paths if _key_of_file(path) == key]
    return (named or paths)[0]


def _key_of_file(path: Path) -> bytes | None:
    try:
        return name_key(dns.name.from_text(path.name.removesuffix(".zone")))
    except (dns.exception.DNSException, ValueError):
        return None


def _is_zone_file(entry: os.DirEntry[str]) -> bool:
    """`*.zone` (as `Path.glob`, which takes hidden names too); what can't be examined is tried,
    so its error is reported."""
    if not entry.name.endswith(".zone"):
        return False
    try:
        return entry.is_file()
    except OSError:
        return True


def _stat(entry: os.DirEntry[str]) -> os.stat_result | None:
    try:
        return entry.stat()
    except OSError:
        return None


def _stamp(info: os.stat_result | None, now: float) -> Stamp | None:
    """What a file's stat says of its version; None when it changed so recently that another
    write within the clock's resolution could leave it unchanged (racy-git's rule)."""
    if info is None:
        return None
    if now - max(info.st_mtime, info.st_ctime) < RACY_SECONDS:
        return None
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)


def remember_keys(keys: dict[str, tuple[dns.name.Name, bytes]]) -> None:
    """Table keys known elsewhere (the answer store's rows) of the origins the next scan will
    find, by file name: a version kept by it does not compute its key again."""
    _keys.update(keys)


def changed_origins(before: dict[Path, LoadedZone], after: dict[Path, LoadedZone]) -> list[dns.name.Name]:
    """Origins of the zones in `after` that are not the very version `before` had."""
    return [zone.origin for path, zone in after.items() if before.get(path) is not zone]


# The lookup indexes of the zone versions served now, built once per version: an edit
# rebuilds only its own zone's. Only the versions of the last call are kept (a dnspython
# Zone is not hashable: keyed by identity, and holding the zone keeps the identity unique).
_indexed: dict[int, tuple[dns.zone.Zone, ZoneData]] = {}


def zone_data(zones: dict[Path, LoadedZone]) -> list[ZoneData]:
    """The index of each zone version; a version an edit made from one indexed last time
    is indexed from that one (`ZoneData.edited`)."""
    global _indexed
    current: dict[int, tuple[dns.zone.Zone, ZoneData]] = {}
    previous = _indexed
    by_origin: dict[bytes, ZoneData] | None = None
    for loaded in zones.values():
        cached = previous.get(id(loaded.zone))
        if cached is None or cached[0] is not loaded.zone or not _same_name(cached[1].origin, loaded.origin):
            if by_origin is None:
                by_origin = {data.key: data for _, data in previous.values()}
            before = by_origin.get(name_key(loaded.origin))
            data = before.edited(loaded.zone) if before is not None else ZoneData(loaded.origin, loaded.zone)
            cached = (loaded.zone, data)
        current[id(loaded.zone)] = cached
    _indexed = current
    return [data for _, data in current.values()]


def _same_name(a: dns.name.Name, b: dns.name.Name) -> bool:
    return a is b or a == b  # mostly the very object: no comparison of 100,000 names per edit


def soa_serial(zone: LoadedZone) -> int:
    stored = zone_serial(zone.zone)  # a zone served from the answer store, not read yet
    return serial_of(zone.zone) if stored is None else stored


def remember_indexes(data: list[ZoneData]) -> None:
    """Indexes made elsewhere (a warm start's, of zones not read yet) for `zone_data` to
    reuse: an edit then indexes its own zone only, not every zone it has not seen."""
    _indexed.update({id(item.zone): (item.zone, item) for item in data})

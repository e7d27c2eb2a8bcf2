"""Read zone files into dnspython zones, reporting every problem as `file:line: reason`.

dnspython's zone reader stops at the first error, checks nothing it can't name a line for,
and silently drops out-of-zone names. So the reader here is driven with a stand-in
transaction that records each record with its line; `validate` then checks the whole list
(all problems at once, like `nsd-checkzone`), and only a clean list becomes a `dns.zone.Zone`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tokenizer
import dns.transaction
import dns.zone
import dns.zonefile

from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone import fastread
from dynmx.zone.limits import DEFAULT_MAX_FILE_SIZE
from dynmx.zone.validate import MAX_TTL, Record, validate

log = logging.getLogger("dynmx.zone")

ZONE_SUFFIX = ".zone"
MAX_PROBLEMS = 100  # problems reported per file; a file with more ends with a line counting them

_DIRECTIVES = frozenset({"$ORIGIN", "$TTL"})
_UNSUPPORTED = {
    "$INCLUDE": "$INCLUDE is not supported: put the records in this file",
    "$GENERATE": "$GENERATE is not supported (NSD has none either): write the records out",
    "$UNICODE": "$UNICODE is not supported: write names in IDNA (xn--) form",
}
_NOT_ALLOWED = re.compile(r"zone file directive '(\$\S*)' is not allowed")
_CAUGHT = re.compile(r"caught exception <class '[\w.]+'>: (.*)", re.DOTALL)
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class LoadedZone:
    """A zone that passed every check: what the answer layer serves, and where it came from."""

    origin: dns.name.Name
    zone: dns.zone.Zone
    path: Path
    # Of the file's bytes as read; empty for a version made in memory (an edit, a transfer).
    # A reload keeps the zone of a file whose bytes are unchanged instead of parsing it again.
    digest: bytes = b""
    # The file's (mtime_ns, ctime_ns, size, inode) taken before it was read, when old enough
    # to trust: a reload keeps the zone of a file that still has it without reading it.
    stamp: tuple[int, int, int, int] | None = None


class _LineTokenizer(dns.tokenizer.Tokenizer):
    """A tokenizer that knows the line of each token.

    `where()` runs one line ahead once a line's last token is read (the newline after it
    has already been consumed), so dnspython's own messages often name the next line.
    `entry_line` is the first line of the current record, `token_line` that of the token
    read last (where a syntax error was found).
    """

    def __init__(self, text: str, filename: str) -> None:
        super().__init__(text, filename)
        self.entry_line = 1
        self.token_line = 1
        self.last_token: dns.tokenizer.Token | None = None
        self._ungotten_line = 1
        self._line_start = True
        self._text = text

    def _line_here(self) -> int:
        """The line of the last character consumed (a newline belongs to the line it ends)."""
        pending = self.ungotten_char
        if pending is None:
            # The last character read, from the text itself: overriding `_get_char` to
            # remember it would cost a Python call per character.
            at = self.file.tell()
            pending = "" if self.eof or at == 0 else self._text[at - 1]
            if pending == "\r":
                pending = "\n"
        return self.line_number - 1 if pending == "\n" else self.line_number

    def get(self, want_leading: bool = False, want_comment: bool = False) -> dns.tokenizer.Token:
        replay = self.ungotten_token
        try:
            token = super().get(want_leading, want_comment)
        except dns.exception.DNSException:
            self.token_line = self._line_here()
            self.last_token = None  # the error is in the token that was being read
            raise
        self.token_line = self._ungotten_line if token is replay else self._line_here()
        self.last_token = token
        if self._line_start and not (token.is_eol_or_eof() or token.is_comment()):
            self.entry_line = self.token_line
            self._line_start = False
        elif token.is_eol():
            self._line_start = True
        return token

    def unget(self, token: dns.tokenizer.Token) -> None:
        super().unget(token)
        self._ungotten_line = self.token_line


class _Recorder:
    """Stands in for the transaction `dns.zonefile.Reader` writes to: it keeps every record.

    It is its own manager. Reporting the root as the zone origin keeps the reader from
    dropping out-of-zone names, so `validate` can report them.
    """

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.reader: dns.zonefile.Reader | None = None

    @property
    def manager(self) -> _Recorder:
        # A property, not an attribute: holding itself (and the reader holding it) put every
        # parse's records, names and text in a cycle, freed only by a full collection.
        return self

    def origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name | None]:
        return dns.name.root, False, None

    def check_put_rdataset(self, check: object) -> None:
        """dnspython's CNAME check raises without a line; `validate` does it with one."""

    def _set_origin(self, origin: dns.name.Name) -> None:
        """$ORIGIN only changes how names are read; the zone's origin is fixed beforehand."""

    def add_unicode(self, value: str) -> None:
        """$UNICODE is refused as a directive, so this is never reached."""

    def add(self, name: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata) -> None:
        assert self.reader is not None
        tok = self.reader.tok  # read at call time: the reader swaps tokenizers on $INCLUDE
        line = tok.entry_line if isinstance(tok, _LineTokenizer) else tok.where()[1]
        self.records.append(Record(name, ttl, rdata, tok.where()[0], line))


def load_zone_file(path: Path, origin: dns.name.Name | None = None) -> LoadedZone:
    """Read, check and build one zone; raise ZoneLoadError listing every problem found.

    The origin, unless given, is that of a `$ORIGIN` line before the first record (only
    blank, comment and `$TTL` lines may precede it; a relative one is relative to the file
    name), else the file name without ".zone": `zones/example.test.zone` is `example.test.`.
    A syntax error stops the reading, so it is reported alone. `$INCLUDE` and `$GENERATE`
    are refused.
    """
    return parse_zone(path, read_zone_bytes(path), origin)


def parse_zone(path: Path, data: bytes, origin: dns.name.Name | None = None) -> LoadedZone:
    """`load_zone_file` for bytes already read from `path`."""
    filename = str(path)
    text = _decode(path, data)
    if origin is not None:
        zone_origin = start = origin.derelativize(dns.name.root)
    else:
        zone_origin, start = _decide_origin(path, text)
    records = _read_records(text, filename, zone_origin, start)
    problems = validate(zone_origin, records, file=filename)
    if problems:
        raise ZoneLoadError(_at_most(problems, MAX_PROBLEMS))
    return LoadedZone(zone_origin, build_zone(zone_origin, records), path, file_digest(data))


def _at_most(problems: list[Problem], limit: int) -> list[Problem]:
    """The first `limit` problems, and one counting the rest (on the line of the first left
    out): a file of a million bad records costs a reload a hundred log lines, not a million."""
    if len(problems) <= limit:
        return problems
    rest = problems[limit]
    return [*problems[:limit], Problem(rest.file, rest.line, f"and {len(problems) - limit} more problems")]


def file_digest(data: bytes) -> bytes:
    """Names a file's bytes: a reload parses a zone again only when they changed."""
    return new_digest(data).digest()


def new_digest(data: bytes = b"") -> hashlib.blake2b:
    """The hash behind `file_digest`, for bytes that come in pieces."""
    return hashlib.blake2b(data, digest_size=16)


def load_zones_dir(directory: Path) -> tuple[dict[dns.name.Name, LoadedZone], list[Problem]]:
    """Load every `*.zone` file (sorted by name): the good zones by origin, and the problems.

    A zone whose origin an earlier file already has is refused, so one file wins every time.
    """
    try:
        paths = sorted(p for p in directory.iterdir() if p.name.endswith(ZONE_SUFFIX) and _is_file(p))
    except OSError as error:
        return {}, [Problem(str(directory), 0, f"cannot read zone directory: {error.strerror or error}")]
    zones: dict[dns.name.Name, LoadedZone] = {}
    problems: list[Problem] = []
    for path in paths:
        try:
            loaded = load_zone_file(path)
        except ZoneLoadError as error:
            problems.extend(error.problems)
            continue
        first = zones.get(loaded.origin)
        if first is not None:
            problems.append(Problem(str(path), 1, f"zone {loaded.origin} is also loaded from {first.path}"))
            continue
        zones[loaded.origin] = loaded
    return zones, problems


def _is_file(path: Path) -> bool:
    """Directories are skipped; anything that can't be examined is tried, so its error is reported."""
    try:
        return not path.is_dir()
    except OSError:
        return True


def read_zone_bytes(path: Path, limit: int = DEFAULT_MAX_FILE_SIZE) -> bytes:
    """The file's bytes; ZoneLoadError when it cannot be read or holds more than `limit`
    (checked before reading, and while reading a file that grows)."""
    try:
        with path.open("rb") as source:  # buffered: a read of n bytes returns n unless at the end
            size = os.fstat(source.fileno()).st_size
            check_size(path, size, limit, stat=True)
            data = source.read(size + 1)  # as stat saw it, and a byte more to see it grew
            if len(data) > size:
                data += source.read(limit + 1 - len(data))
    except OSError as error:
        raise ZoneLoadError(
            [Problem(str(path), 0, f"cannot read zone file: {error.strerror or error}")]
        ) from None
    check_size(path, len(data), limit)
    return data


def read_digest(path: Path, limit: int = DEFAULT_MAX_FILE_SIZE) -> bytes:
    """`file_digest` of the file, read a piece at a time (a large file need not be held to
    learn it is unchanged); ZoneLoadError as `read_zone_bytes`."""
    digest = new_digest()
    read = 0
    try:
        with path.open("rb") as source:
            check_size(path, os.fstat(source.fileno()).st_size, limit, stat=True)
            while piece := source.read(min(1 << 20, limit + 1 - read)):
                digest.update(piece)
                read += len(piece)
                check_size(path, read, limit)
    except OSError as error:
        raise ZoneLoadError(
            [Problem(str(path), 0, f"cannot read zone file: {error.strerror or error}")]
        ) from None
    return digest.digest()


def check_size(path: Path, size: int, limit: int, stat: bool = False) -> None:
    """ZoneLoadError for a file over `limit`: its `size` as stat gives it, or as much as was read."""
    if size > limit:
        held = f"{size:,} bytes" if stat else f"over {limit:,} bytes when read"
        reason = f"zone file of {held}, larger than max_zone_file_size ({limit:,} bytes): not loaded"
        raise ZoneLoadError([Problem(str(path), 0, reason)])


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        reason = f"not UTF-8 text: byte 0x{data[error.start]:02x} cannot be decoded"
        raise ZoneLoadError([Problem(str(path), line, reason)]) from None


def _decide_origin(path: Path, text: str) -> tuple[dns.name.Name, dns.name.Name]:
    """The zone origin, and the origin the reader starts with (to read a relative $ORIGIN)."""
    from_file = _name_of_file(path)
    leading = _leading_origin(text)
    if leading is not None:
        try:
            name = dns.name.from_text(leading, origin=from_file)
        except (dns.exception.DNSException, ValueError):
            name = None  # the reader reports the bad $ORIGIN line itself
        if name is not None and name.is_absolute():
            return name, from_file if from_file is not None else name
    if from_file is None:
        reason = f"no leading $ORIGIN, and the file name {path.name!r} is not a domain name"
        raise ZoneLoadError([Problem(str(path), 1, reason)])
    return from_file, from_file


def _name_of_file(path: Path) -> dns.name.Name | None:
    stem = path.name.removesuffix(ZONE_SUFFIX)
    if not stem:
        return None
    try:
        return dns.name.from_text(stem, origin=dns.name.root)
    except (dns.exception.DNSException, ValueError):
        return None


def _leading_origin(text: str) -> str | None:
    """The value of a $ORIGIN line preceded only by blank, comment and $TTL lines, if any."""
    tok = dns.tokenizer.Tokenizer(text)
    try:
        while True:
            token = tok.get(want_leading=True)
            if token.is_eol():
                continue
            if not token.is_identifier():
                return None
            directive = token.value.upper()
            if directive == "$TTL":
                while not tok.get().is_eol_or_eof():
                    pass
                continue
            if directive != "$ORIGIN":
                return None
            value = tok.get()
            return value.value if value.is_identifier() else None
    except dns.exception.DNSException:
        return None


def _read_records(text: str, filename: str, origin: dns.name.Name, start: dns.name.Name) -> list[Record]:
    """Every record in the file, or ZoneLoadError with the one syntax error that stopped reading.

    `fastread` reads the files most people write; whatever it leaves (anything unusual, and
    every error) dnspython reads, from the start, so its messages are the ones reported.
    """
    try:
        return fastread.read_records(text, filename, origin, start)
    except fastread.Unsupported as why:
        log.debug("event=zone-read-by-dnspython file=%s reason=%r", filename, str(why))
    return read_records_with_dnspython(text, filename, origin, start)


def read_records_with_dnspython(
    text: str, filename: str, origin: dns.name.Name, start: dns.name.Name
) -> list[Record]:
    """`_read_records` by dnspython's reader alone."""
    tok = _LineTokenizer(text, filename)
    recorder = _Recorder()
    reader = dns.zonefile.Reader(
        tok,
        dns.rdataclass.IN,
        cast(dns.transaction.Transaction, recorder),
        allow_include=False,
        allow_directives=_DIRECTIVES,
    )
    reader.current_origin = start
    reader.last_name = origin
    recorder.reader = reader
    problem = None
    try:
        reader.read()
    except Exception as error:
        # dnspython turns most bad input into SyntaxError, but not all (NameTooLong is a
        # FormError, IDNA trouble a UnicodeError): whatever the file holds, report it.
        problem = _syntax_problem(error, reader.tok, filename, text)
        _clear_frames(error)
    finally:
        recorder.reader = None  # the reader holds the recorder: no cycle left behind
    if problem is not None:
        raise ZoneLoadError([problem])  # not from the error: that would keep its frames
    return recorder.records


def _clear_frames(error: BaseException | None) -> None:
    """Drop the locals of the frames an error (and those it came from) went through.

    dnspython's reader keeps the traceback of the error it rewords in a local of its own
    frame, a cycle through the frames that hold the reader, its tokenizer, the file's text
    and every record read: a refused 40 MB file kept its 800 MiB until the next full
    collection, which may be a long way off.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


def _syntax_problem(error: Exception, tok: dns.tokenizer.Tokenizer, filename: str, text: str) -> Problem:
    """Turn dnspython's `file:line: detail` (or a bare exception) into a Problem on the right line."""
    reason = str(error)
    prefix = re.match(re.escape(filename) + r":(\d+): ", reason)
    line = int(prefix.group(1)) if prefix else tok.where()[1]
    if prefix:
        reason = reason[prefix.end() :]
    last: dns.tokenizer.Token | None = None
    if isinstance(tok, _LineTokenizer):
        line, last = tok.token_line, tok.last_token
    line = max(1, min(line, _line_count(text)))
    return Problem(filename, line, _plain_reason(error, reason, last))


def _plain_reason(error: Exception, reason: str, last: dns.tokenizer.Token | None) -> str:
    """Reword dnspython's messages where they say little or name dnspython's own terms."""
    if match := _NOT_ALLOWED.fullmatch(reason):
        directive = match.group(1)
        return _UNSUPPORTED.get(directive, f"unknown directive {directive}")
    value = last.value if last is not None and (last.is_identifier() or last.is_quoted_string()) else None
    if reason == "RR class is not zone's class":
        return f"class {value} is not supported; only IN" if value else "only class IN is supported"
    if reason.startswith("unknown rdatatype") and value is not None and value.isdigit():
        return f"{reason} (a TTL may be at most {MAX_TTL}, RFC 2181 section 8)"
    if match := _CAUGHT.fullmatch(reason):
        return f"bad rdata: {match.group(1)}"
    if reason in ("", "None", dns.exception.SyntaxError.__doc__):
        return f"syntax error at {value!r}" if value else "syntax error"
    if not isinstance(error, dns.exception.DNSException):
        return f"cannot read this: {type(error).__name__}: {reason}"
    return reason


def _line_count(text: str) -> int:
    """Lines as the tokenizer counts them (CR, LF and CRLF each end one)."""
    ends = len(_LINE_END.findall(text))
    return ends if text.endswith(("\n", "\r")) else ends + 1


def build_zone(origin: dns.name.Name, records: list[Record]) -> dns.zone.Zone:
    """A zone of absolute names; records of one RRset with different TTLs get the smallest.

    Built on the zone's node dict and each rdataset's item dict, not through `find_node` and
    `Rdataset.add`: their checks (in zone, matching type) are `validate`'s and this loop's,
    and `add` hashes each rdata's wire form twice, a large share of reading a small zone.
    """
    zone = dns.zone.Zone(origin, rdclass=dns.rdataclass.IN, relativize=False)
    nodes = zone.nodes
    for record in records:
        rdata = record.rdata
        node = nodes.get(record.name)
        if node is None:
            node = nodes[record.name] = zone.node_factory()
        rdataset = node.find_rdataset(dns.rdataclass.IN, rdata.rdtype, rdata.covers(), create=True)
        rdataset.update_ttl(record.ttl)
        if rdataset.items and dns.rdatatype.is_singleton(rdata.rdtype):
            rdataset.items.clear()  # as `add`: a second DNAME replaces the first (SOA, CNAME are refused)
        rdataset.items.setdefault(rdata)
    return zone

"""Read the zone files most people write a line at a time; leave everything else to dnspython.

dnspython's zone reader tokenizes one character at a time in Python, which makes it most of
what a start-up with many small zones costs. This reader splits lines with `str.split` and a
regular expression instead and builds each rdata with dnspython's own rdata class, so it
returns exactly the records `dns.zonefile.Reader` gives the loader (names, TTLs, rdata,
comments, lines), only sooner.

It takes `$ORIGIN`, `$TTL`, `@`, relative and absolute names, a blank owner (the previous
one), an optional TTL (BIND units too) and class IN before or after it, comments,
parentheses across lines, quoted strings with escapes (in TXT and CAA), and the types SOA,
NS, A, AAAA, MX, TXT, CNAME, PTR, SRV, CAA, TLSA and DS. Anything else (another directive or
class, another type, `TYPE###` or `\\#` syntax, escapes or IDNA in names, a stray CR) and
anything in doubt raise `Unsupported` before a record is returned: the caller then reads the
whole file with dnspython, whose messages (file and line) are the ones a user sees.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.tokenizer
import dns.ttl

from dynmx.zone.validate import Record

_IN = dns.rdataclass.IN
_T = dns.rdatatype
_SOA = _T.SOA
_MAX_TTL = dns.ttl.MAX_TTL
_DIGITS = frozenset("0123456789")

# A line `str.split` splits as dnspython's tokenizer does: nothing quoted, no comment, no
# parenthesis, no escape, and no character `str.split` takes for a space but dnspython not.
_SPECIAL = re.compile(r'[";()\\\x0b\x0c\x1c-\x1f\x80-\U0010ffff]')
# Every other line, token by token, with dnspython's delimiters: space and tab separate,
# `;` starts a comment, `(` `)` continue a record over lines, `"` quotes (with `\` escapes).
_TOKEN = re.compile(r'[ \t]+|([^ \t;"()]+)|"((?:[^"\\]|\\.)*)"|(\()|(\))|;(.*)|(")', re.S)
_WORD, _QUOTED, _OPEN, _CLOSE, _COMMENT = 1, 2, 3, 4, 5
# Names as most files write them; others (escapes, IDNA, odd characters) go to dnspython.
_NAME = re.compile(r"(?:[A-Za-z0-9_*-]+\.)*[A-Za-z0-9_*-]+\.?")


class Unsupported(Exception):
    """The file holds something this reader leaves to dnspython; the message says what."""


class _Quoted(str):
    """A token that was written in double quotes (its text without them, escapes kept)."""


class _Reader:
    """The state dnspython's `Reader` keeps across lines, and the records read so far."""

    def __init__(self, filename: str, origin: dns.name.Name, start: dns.name.Name) -> None:
        self.filename = filename
        self.origin = start  # names are relative to this ($ORIGIN changes it)
        self.names: dict[str, dns.name.Name] = {}  # name text -> name, under `self.origin`
        self.last_name = origin
        self.last_ttl: int | None = None
        self.default_ttl: int | None = None
        self.default_from_soa = False
        self.records: list[Record] = []

    def read(self, text: str) -> list[Record]:
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if "\r" in text:
                raise Unsupported("a CR that does not end a line")
        group: list[str] = []  # tokens of a record whose parentheses are still open
        leading = quoted = False
        first = 0  # line of the record's first token (or its leading blank)
        depth = 0
        for number, line in enumerate(text.split("\n"), 1):
            if not depth:
                if not line or line[0] == ";":
                    continue
                leading = line[0] in " \t"
                if _SPECIAL.search(line) is None:
                    tokens = line.split()
                    if tokens:
                        self.entry(tokens, leading, number, None, False)
                    continue
                first = number if leading else 0
                quoted = False
            before = len(group)
            comment, depth = _split(line, depth, group)
            quoted = quoted or any(type(each) is _Quoted for each in group[before:])
            if not first and len(group) > before:
                first = number  # dnspython's line for a record is where its first token is
            if depth or not group:
                continue
            self.entry(group, leading, first, comment, quoted)
            group = []
        if depth:
            raise Unsupported("unbalanced parentheses")
        return self.records

    def entry(self, tokens: list[str], leading: bool, line: int, comment: str | None, quoted: bool) -> None:
        """One record (or directive) from its tokens, as `dns.zonefile.Reader._rr_line` reads it.

        `quoted`: some tokens may be quoted strings, which only TXT and CAA rdata take.
        """
        index = 0
        if not leading:
            owner = tokens[0]
            if type(owner) is not str:
                raise Unsupported("a quoted owner name")
            if owner[0] == "$":
                self.directive(tokens)
                return
            self.last_name = self.name(owner)
            index = 1
        count = len(tokens)
        if index >= count:
            raise Unsupported("a record without a type")
        word = tokens[index]
        ttl = None
        if word[0] in _DIGITS:
            ttl = self.last_ttl = _ttl(word)
            index += 1
            word = _next(tokens, index)
        if word.upper() == "IN":
            index += 1
            word = _next(tokens, index)
            if ttl is None and word[0] in _DIGITS:
                ttl = self.last_ttl = _ttl(word)
                index += 1
                word = _next(tokens, index)
        if ttl is None:
            ttl = self.implicit_ttl()
        kind = _TYPES.get(word) or _TYPES.get(word.upper())
        if kind is None:
            raise Unsupported(f"type {word!r}")
        rdtype, parse = kind
        if quoted and (
            rdtype not in _TAKE_QUOTES or any(type(each) is not str for each in tokens[: index + 1])
        ):
            raise Unsupported("a quoted string where dnspython takes none")
        given = tokens[index + 1 :]
        if comment is not None:
            rdata = parse(self, given)
            object.__setattr__(rdata, "rdcomment", comment)  # as dnspython: the comment after it
        elif rdtype in _NAMELESS:
            key = (
                (rdtype, *given)
                if not quoted
                else (rdtype, *[(each, type(each) is _Quoted) for each in given])
            )
            shared = _SHARED.get(key)
            if shared is None:
                if len(_SHARED) >= _SHARED_MAX:
                    _SHARED.clear()
                shared = _SHARED[key] = parse(self, given)
            rdata = shared
        else:
            rdata = parse(self, given)
        if self.default_ttl is None and rdtype == _SOA:
            # Before any $TTL the SOA's MINIMUM is the default (dnspython, as BIND 8 did).
            self.default_ttl = rdata.minimum  # type: ignore[attr-defined]
            self.default_from_soa = True
            if ttl is None:
                ttl = self.implicit_ttl()
        if ttl is None:
            raise Unsupported("no TTL, and no default TTL")
        self.records.append(Record(self.last_name, ttl, rdata, self.filename, line))

    def implicit_ttl(self) -> int | None:
        """dnspython's `_implicit_ttl` with `rfc2308_ttl`: $TTL, else the last TTL, else the SOA's."""
        if self.last_ttl is not None and (self.default_ttl is None or self.default_from_soa):
            return self.last_ttl
        return self.default_ttl

    def directive(self, tokens: list[str]) -> None:
        word = tokens[0].upper()
        if len(tokens) != 2 or type(tokens[1]) is not str or word not in ("$TTL", "$ORIGIN"):
            raise Unsupported(f"directive {tokens[0]!r}")
        if word == "$TTL":
            self.default_ttl = dns.ttl.from_text(tokens[1])
            self.default_from_soa = False
        else:
            self.origin = self.name(tokens[1])
            self.names = {}

    def name(self, text: str) -> dns.name.Name:
        """`dns.name.from_text(text, origin)` for the names `_NAME` allows."""
        if type(text) is not str:
            raise Unsupported("a quoted name")
        found = self.names.get(text)
        if found is not None:
            return found
        if text == "@":
            found = self.origin
        elif text == ".":
            found = dns.name.root
        elif _NAME.fullmatch(text):
            labels = text.encode().split(b".")
            found = dns.name.Name((*labels, *self.origin.labels) if labels[-1] else labels)
        else:
            raise Unsupported(f"name {text!r}")
        self.names[text] = found
        return found


def read_records(text: str, filename: str, origin: dns.name.Name, start: dns.name.Name) -> list[Record]:
    """The records of a zone file's text, as the loader's dnspython reader would give them.

    `origin` is the zone's (the owner of records before any named one), `start` the origin
    names are first relative to. Raises `Unsupported` for anything it leaves to dnspython.
    """
    try:
        return _Reader(filename, origin, start).read(text)
    except Unsupported:
        raise
    except Exception as error:  # a value dnspython refuses: its reader says why, with the line
        raise Unsupported(f"{type(error).__name__}: {error}") from None


def _split(line: str, depth: int, tokens: list[str]) -> tuple[str | None, int]:
    """Add a line's tokens; return its comment and the parentheses still open after it."""
    for match in _TOKEN.finditer(line):
        kind = match.lastindex
        if kind is None:
            continue
        if kind == _WORD:
            word = match[_WORD]
            if "\\" in word:
                raise Unsupported("an escape outside quotes")
            tokens.append(word)
        elif kind == _QUOTED:
            tokens.append(_Quoted(match[_QUOTED]))
        elif kind == _OPEN:
            depth += 1
        elif kind == _CLOSE:
            depth -= 1
            if depth < 0:
                raise Unsupported("unbalanced parentheses")
        elif kind == _COMMENT:
            return match[_COMMENT], depth  # inside parentheses dnspython drops it: so does the caller
        else:
            raise Unsupported("a quoted string that does not end on its line")
    return None, depth


def _next(tokens: list[str], index: int) -> str:
    if index >= len(tokens):
        raise Unsupported("a record without a type")
    return tokens[index]


def _ttl(word: str) -> int:
    """`dns.ttl.from_text`, without its loop for the plain numbers most TTLs are."""
    if type(word) is str and word.isdigit() and word.isascii():
        value = int(word)
        if value <= _MAX_TTL:
            return value
    return dns.ttl.from_text(word)  # units (1h30m), or BadTTL


def _uint(word: str, limit: int) -> int:
    """An unsigned integer as dnspython's tokenizer reads one (ASCII digits only)."""
    if type(word) is str and word.isdigit() and word.isascii():
        value = int(word)
        if value <= limit:
            return value
    raise Unsupported(f"{word!r} is not an integer up to {limit}")


def _bytes(word: str, limit: int | None = None) -> bytes:
    """A string field: its UTF-8, with escapes applied as dnspython's tokenizer applies them."""
    if "\\" in word:
        value = dns.tokenizer.Token(dns.tokenizer.QUOTED_STRING, word).unescape_to_bytes().value
        assert isinstance(value, bytes)
    else:
        value = word.encode()
    if limit is not None and len(value) > limit:
        raise Unsupported("a string longer than 255 bytes")
    return value


def _plain(tokens: list[str], count: int) -> list[str]:
    """The rdata tokens, when there are `count` of them (`entry` lets no quoted one through)."""
    if len(tokens) != count:
        raise Unsupported("rdata of an unexpected shape")
    return tokens


def _hex(tokens: list[str]) -> bytes:
    """`concatenate_remaining_identifiers`, then hex: TLSA and DS data."""
    if not tokens or any(type(each) is not str for each in tokens):
        raise Unsupported("rdata of an unexpected shape")
    return binascii.unhexlify("".join(tokens).encode())


def _class(rdtype: dns.rdatatype.RdataType) -> Callable[..., dns.rdata.Rdata]:
    """The class dnspython builds this type's rdata with."""
    made: Callable[..., dns.rdata.Rdata] = dns.rdata.get_rdata_class(_IN, rdtype)  # type: ignore[no-untyped-call]
    return made


def _address(rdtype: dns.rdatatype.RdataType) -> Callable[[_Reader, list[str]], dns.rdata.Rdata]:
    make = _class(rdtype)
    return lambda reader, tokens: make(_IN, rdtype, _plain(tokens, 1)[0])


def _target(rdtype: dns.rdatatype.RdataType) -> Callable[[_Reader, list[str]], dns.rdata.Rdata]:
    make = _class(rdtype)
    return lambda reader, tokens: make(_IN, rdtype, reader.name(_plain(tokens, 1)[0]))


def _soa(reader: _Reader, tokens: list[str]) -> dns.rdata.Rdata:
    mname, rname, serial, *times = _plain(tokens, 7)
    timers = [_ttl(each) for each in times]
    return _SOA_CLASS(_IN, _SOA, reader.name(mname), reader.name(rname), _uint(serial, 2**32 - 1), *timers)


def _mx(reader: _Reader, tokens: list[str]) -> dns.rdata.Rdata:
    preference, exchange = _plain(tokens, 2)
    return _MX_CLASS(_IN, _T.MX, _uint(preference, 65535), reader.name(exchange))


def _srv(reader: _Reader, tokens: list[str]) -> dns.rdata.Rdata:
    priority, weight, port, target = _plain(tokens, 4)
    numbers = [_uint(each, 65535) for each in (priority, weight, port)]
    return _SRV_CLASS(_IN, _T.SRV, *numbers, reader.name(target))


def _txt(reader: _Reader, tokens: list[str]) -> dns.rdata.Rdata:
    if not tokens:
        raise Unsupported("TXT without a string")
    return _TXT_CLASS(_IN, _T.TXT, [_bytes(each, 255) for each in tokens])


def _caa(reader: _Reader, tokens: list[str]) -> dns.rdata.Rdata:
    if len(tokens) != 3:
        raise Unsupported("rdata of an unexpected shape")
    flags, tag, value = tokens
    return _CAA_CLASS(_IN, _T.CAA, _uint(flags, 255), _bytes(tag, 255), _bytes(value))


def _tlsa(reader: _Reader, tokens: list[str]) -> dns.rdata.Rdata:
    numbers = [_uint(each, 255) for each in tokens[:3]]
    return _TLSA_CLASS(_IN, _T.TLSA, *numbers, _hex(tokens[3:]))


def _ds(reader: _Reader, tokens: list[str]) -> dns.rdata.Rdata:
    if len(tokens) < 4 or type(tokens[1]) is not str:
        raise Unsupported("rdata of an unexpected shape")
    return _DS_CLASS(_IN, _T.DS, _uint(tokens[0], 65535), tokens[1], _uint(tokens[2], 255), _hex(tokens[3:]))


_SOA_CLASS = _class(_SOA)
_MX_CLASS = _class(_T.MX)
_SRV_CLASS = _class(_T.SRV)
_TXT_CLASS = _class(_T.TXT)
_CAA_CLASS = _class(_T.CAA)
_TLSA_CLASS = _class(_T.TLSA)
_DS_CLASS = _class(_T.DS)

_TAKE_QUOTES = frozenset({_T.TXT, _T.CAA})
# Rdata of these types depends on its text alone, not on the origin. Being immutable, one
# object serves every record written the same way (a hoster's addresses, SPF and CAA records
# in zone after zone): built once, and held once in memory. One with a comment is its own.
_NAMELESS = frozenset({_T.A, _T.AAAA, _T.TXT, _T.CAA, _T.TLSA, _T.DS})
_SHARED: dict[tuple[object, ...], dns.rdata.Rdata] = {}
_SHARED_MAX = 8192

_TYPES: dict[str, tuple[dns.rdatatype.RdataType, Callable[[_Reader, list[str]], dns.rdata.Rdata]]] = {
    "SOA": (_SOA, _soa),
    "NS": (_T.NS, _target(_T.NS)),
    "A": (_T.A, _address(_T.A)),
    "AAAA": (_T.AAAA, _address(_T.AAAA)),
    "MX": (_T.MX, _mx),
    "TXT": (_T.TXT, _txt),
    "CNAME": (_T.CNAME, _target(_T.CNAME)),
    "PTR": (_T.PTR, _target(_T.PTR)),
    "SRV": (_T.SRV, _srv),
    "CAA": (_T.CAA, _caa),
    "TLSA": (_T.TLSA, _tlsa),
    "DS": (_T.DS, _ds),
}

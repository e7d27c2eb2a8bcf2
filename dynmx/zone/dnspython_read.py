"""Records read by dnspython's zone reader, each with its line, and its errors reworded.

dnspython's reader stops at the first error, names lines one too far, and silently drops
out-of-zone names; driven here with a tokenizer that knows each token's line and a stand-in
transaction that keeps every record, it reads any file `fastread` leaves, and its one
syntax error becomes a `file:line: reason` a user can act on.
"""

from __future__ import annotations

import re
import traceback
from typing import cast

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.tokenizer
import dns.transaction
import dns.zonefile

from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.validate import MAX_TTL, Record

_DIRECTIVES = frozenset({"$ORIGIN", "$TTL"})
_UNSUPPORTED = {
    "$INCLUDE": "$INCLUDE is not supported: put the records in this file",
    "$GENERATE": "$GENERATE is not supported (NSD has none either): write the records out",
    "$UNICODE": "$UNICODE is not supported: write names in IDNA (xn--) form",
}
_NOT_ALLOWED = re.compile(r"zone file directive '(\$\S*)' is not allowed")
_CAUGHT = re.compile(r"caught exception <class '[\w.]+'>: (.*)", re.DOTALL)
_LINE_END = re.compile(r"\r\n|\r|\n")


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


def read_records_with_dnspython(
    text: str, filename: str, origin: dns.name.Name, start: dns.name.Name
) -> list[Record]:
    """`loader.read_records` by dnspython's reader alone."""
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

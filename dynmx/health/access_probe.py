"""IMAP and POP3 greeting checks: greeting, one harmless command, goodbye.

As in smtp_probe, parsing is sans-IO and strict about how lines may start, so a peer that
is not the server we expect is called `garbage` on its first bytes rather than at the
deadline, and no line, reply or literal can make us hold more than one bounded line.
IMAP (RFC 9051 / 3501): untagged `* OK` or `* PREAUTH`, then `a1 CAPABILITY` must end in
`a1 OK`. POP3 (RFC 1939, 2449): `+OK`, then CAPA; a `-ERR` to CAPA is fine, since CAPA is
optional.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import TypeVar

from dynmx.health.smtp_probe import MAX_LINES, QUIT_WAIT, READ_SIZE, SmtpFault
from dynmx.health.verdict import Verdict, printable

IMAP_MAX_LINE = 8192  # octets, LF included; IMAP sets no limit, capability lines run to ~1000
POP3_MAX_LINE = 1000  # RFC 2449 allows 512 for status lines; capability lines are short
MAX_LITERAL = 65536  # octets of an IMAP literal in an untagged response, skipped unread
_LITERAL = re.compile(rb"~?\{(\d{1,10})\}\Z")
T = TypeVar("T")


class AccessFault(SmtpFault):
    """The IMAP or POP3 dialogue cannot go on; carries the reason and what was seen."""


class LineParser:
    """Bytes in, lines out (CRLF or bare LF removed); refuses lines too long or badly begun.

    `starts` lists what a line may begin with (empty: anything); a partial line is checked
    as soon as it arrives, so garbage is refused on its first bytes.
    """

    def __init__(self, max_line: int, starts: tuple[bytes, ...] = ()) -> None:
        self._buffer = bytearray()
        self._max = max_line
        self._skip = 0
        self.starts = starts

    def feed(self, data: bytes) -> None:
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            data = data[taken:]
        self._buffer += data

    def skip(self, count: int) -> None:
        """Drop the next `count` bytes unread (an IMAP literal)."""
        taken = min(count, len(self._buffer))
        del self._buffer[:taken]
        self._skip = count - taken

    @property
    def pending(self) -> bytes:
        """What is buffered of an unfinished line (for evidence when the peer goes away)."""
        return bytes(self._buffer[: self._max])

    def next_line(self) -> bytes | None:
        """The next whole line, or None when more bytes are needed."""
        end = self._buffer.find(b"\n", 0, self._max)
        if end < 0:
            if not self._may_start(bytes(self._buffer[:16])):
                raise AccessFault("garbage", printable(bytes(self._buffer[:64])))
            if len(self._buffer) >= self._max:
                seen = f"line over {self._max} octets: ".encode() + self.pending
                raise AccessFault("garbage", printable(seen))
            return None
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        content = line[:-1].removesuffix(b"\r")
        if self.starts and not content.startswith(self.starts):
            raise AccessFault("garbage", printable(line))
        return content

    def _may_start(self, head: bytes) -> bool:
        """Whether `head`, an unfinished line, can still begin as `starts` allow."""
        if not self.starts:
            return True
        head = head.removesuffix(b"\r")
        return any(head[: len(s)] == s[: len(head)] for s in self.starts)


class Framed:
    """What a LineSession needs of a protocol parser: bytes in, and the unfinished line for evidence."""

    _lines: LineParser

    def feed(self, data: bytes) -> None:
        self._lines.feed(data)

    @property
    def pending(self) -> bytes:
        return self._lines.pending


# -- IMAP --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImapResponse:
    """The first line of one response: its tag (b"*" when untagged) and first word after it, upper case."""

    tag: bytes
    word: str
    line: bytes


class ImapParser(Framed):
    """Bytes in, IMAP responses out; `expect(tag)` before reading the answer to a command."""

    def __init__(self) -> None:
        self._lines = LineParser(IMAP_MAX_LINE)
        self._tag: bytes | None = None
        self._in_literal = False  # the lines after a literal continue the last response
        self._untagged = 0
        self.expect(None)

    def expect(self, tag: bytes | None) -> None:
        """From now on, lines are untagged or tagged `tag` (None: untagged only, as in the greeting)."""
        self._tag = tag
        self._untagged = 0
        if not self._in_literal:
            self._lines.starts = self._starts()

    def next_response(self) -> ImapResponse | None:
        """The next response, or None when more bytes are needed; literals are skipped unread."""
        while (line := self._lines.next_line()) is not None:
            continuing = self._in_literal
            literal = _LITERAL.search(line) if continuing or line.startswith(b"* ") else None
            self._in_literal = literal is not None
            if literal is not None:
                size = int(literal.group(1))
                if size > MAX_LITERAL:
                    raise AccessFault("garbage", printable(f"literal of {size} octets: ".encode() + line))
                self._lines.skip(size)
            self._lines.starts = () if self._in_literal else self._starts()
            if continuing:
                continue  # the rest of a response whose first line was handed out already
            tag, _, rest = line.partition(b" ")
            word = rest.split(b" ", 1)[0].decode("latin-1").upper()
            if not word or (tag != b"*" and word not in ("OK", "NO", "BAD")):
                raise AccessFault("garbage", printable(line))
            if tag == b"*":
                self._untagged += 1
                if self._untagged > MAX_LINES:
                    raise AccessFault("garbage", f"more than {MAX_LINES} untagged responses")
            return ImapResponse(tag, word, line)
        return None

    def _starts(self) -> tuple[bytes, ...]:
        return (b"* ",) if self._tag is None else (b"* ", self._tag + b" ")


# -- POP3 --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pop3Reply:
    """One reply: +OK or not, its status line, and for a multi-line reply its lines (unstuffed)."""

    ok: bool
    line: bytes
    lines: tuple[bytes, ...] = ()


class Pop3Parser(Framed):
    """Bytes in, POP3 replies out; the caller says whether a +OK reply is multi-line."""

    STATUS = (b"+OK", b"-ERR")

    def __init__(self) -> None:
        self._lines = LineParser(POP3_MAX_LINE, self.STATUS)
        self._status = b""  # the +OK line of a multi-line reply being read
        self._body: list[bytes] = []

    def next_reply(self, multiline: bool) -> Pop3Reply | None:
        """The next reply, or None when more bytes are needed."""
        while (line := self._lines.next_line()) is not None:
            if not self._status:
                ok = line.startswith(b"+OK")
                if line[3 if ok else 4 :][:1] not in (b"", b" "):
                    raise AccessFault("garbage", printable(line))
                if not (ok and multiline):
                    return Pop3Reply(ok, line)
                self._status, self._lines.starts = line, ()
            elif line == b".":
                reply = Pop3Reply(True, self._status, tuple(self._body))
                self._status, self._body, self._lines.starts = b"", [], self.STATUS
                return reply
            elif len(self._body) >= MAX_LINES:
                raise AccessFault("garbage", f"reply longer than {MAX_LINES} lines")
            else:
                self._body.append(line.removeprefix(b"."))
        return None


# -- dialogues ---------------------------------------------------------------------------


class LineSession:
    """One probe's talk over an open connection, all of it before `deadline`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        deadline: float,
        parser: Framed,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._deadline = deadline
        self._parser = parser

    async def send(self, line: bytes, phase: str) -> None:
        try:
            async with asyncio.timeout_at(self._deadline):
                self._writer.write(line)
                await self._writer.drain()
        except TimeoutError:
            raise AccessFault("timeout-command", f"{phase}: could not send before the deadline") from None
        except OSError as exc:
            raise AccessFault("reset", printable(f"{phase}: {exc.strerror or type(exc).__name__}")) from None

    async def receive(self, parse: Callable[[], T | None], phase: str, timeout_reason: str) -> T:
        """What `parse` makes of the next bytes; a timeout is `timeout_reason`, a hang-up `reset`."""
        try:
            async with asyncio.timeout_at(self._deadline):
                return await self._next(parse, phase)
        except TimeoutError:
            pending = self._parser.pending
            seen = printable(pending) if pending else f"{phase}: no reply before the deadline"
            raise AccessFault(timeout_reason, seen) from None
        except OSError as exc:
            raise AccessFault("reset", printable(f"{phase}: {exc.strerror or type(exc).__name__}")) from None

    async def goodbye(self, line: bytes, parse: Callable[[], bool | None]) -> None:
        """Say goodbye and wait briefly until `parse` says the answer came; failures don't matter."""
        left = max(0.0, min(QUIT_WAIT, self._deadline - asyncio.get_running_loop().time()))
        with suppress(OSError, TimeoutError, AccessFault):
            self._writer.write(line)
            async with asyncio.timeout(left):
                await self._writer.drain()
                await self._next(parse, "goodbye")

    async def _next(self, parse: Callable[[], T | None], phase: str) -> T:
        while (item := parse()) is None:
            data = await self._reader.read(READ_SIZE)
            if not data:
                pending = self._parser.pending
                seen = f"{phase}: closed" + (" after: " if pending else "")
                raise AccessFault("reset", printable(seen.encode() + pending))
            self._parser.feed(data)
        return item


async def check_imap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: float) -> Verdict:
    """Greeting, CAPABILITY, LOGOUT."""
    parser = ImapParser()
    session = LineSession(reader, writer, deadline, parser)
    try:
        greeting = await session.receive(parser.next_response, "greeting", "timeout-banner")
    except AccessFault as fault:
        return Verdict(fault.reason, fault.evidence)
    seen = printable(greeting.line)
    if greeting.word == "BYE":
        return Verdict("greeting-bye", seen)
    if greeting.word not in ("OK", "PREAUTH"):
        return Verdict("garbage", seen)
    verdict = Verdict("ok", seen)
    try:
        parser.expect(b"a1")
        await session.send(b"a1 CAPABILITY\r\n", "capability")
        answer = await session.receive(parser.next_response, "capability", "timeout-command")
        while answer.tag == b"*":
            answer = await session.receive(parser.next_response, "capability", "timeout-command")
        if answer.word != "OK":
            verdict = Verdict("command-rejected", printable(answer.line))
    except AccessFault as fault:
        if fault.reason == "reset":
            return Verdict(fault.reason, fault.evidence)
        verdict = Verdict(fault.reason, fault.evidence or seen)
    parser.expect(b"a2")
    await session.goodbye(b"a2 LOGOUT\r\n", lambda: _tagged(parser))
    return verdict


def _tagged(parser: ImapParser) -> bool | None:
    """True once a tagged response came (the end of LOGOUT), None while more is needed."""
    while (response := parser.next_response()) is not None:
        if response.tag != b"*":
            return True
    return None


async def check_pop3(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: float) -> Verdict:
    """Greeting, CAPA, QUIT."""
    parser = Pop3Parser()
    session = LineSession(reader, writer, deadline, parser)
    try:
        greeting = await session.receive(lambda: parser.next_reply(False), "greeting", "timeout-banner")
    except AccessFault as fault:
        return Verdict(fault.reason, fault.evidence)
    seen = printable(greeting.line)
    if not greeting.ok:
        return Verdict("greeting-err", seen)
    verdict = Verdict("ok", seen)
    try:
        await session.send(b"CAPA\r\n", "capa")
        await session.receive(lambda: parser.next_reply(True), "capa", "timeout-command")
    except AccessFault as fault:
        if fault.reason == "reset":
            return Verdict(fault.reason, fault.evidence)
        verdict = Verdict(fault.reason, fault.evidence or seen)
    await session.goodbye(b"QUIT\r\n", lambda: True if parser.next_reply(False) else None)
    return verdict

"""SMTP greeting check: banner, EHLO, QUIT, judged on the reply grammar of RFC 5321 4.2;
with TLSA records, also STARTTLS and the DANE match of the certificate (`check_dane`).

`ReplyParser` is sans-IO: it is fed bytes and hands back whole replies, and it gives up as
soon as the bytes cannot be a reply, so a peer that is not an SMTP server is called
`garbage` on its first bytes, not after the deadline. Its buffer never holds more than one
line (1000 octets, RFC 5321 4.5.3.1.5) plus one read, and a reply has at most MAX_LINES
lines: a peer flooding us cannot make us buffer the flood.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from dataclasses import dataclass

from dynmx.health.dane import judge
from dynmx.health.spec import ProbeSpec
from dynmx.health.tls import handshake
from dynmx.health.verdict import Verdict, printable

MAX_LINE = 1000  # octets, CRLF included (RFC 5321 4.5.3.1.5)
MAX_LINES = 100  # lines in one multi-line reply
READ_SIZE = 4096  # bytes asked of the socket per read; also the StreamReader limit
QUIT_WAIT = 1.0  # seconds granted to the 221 after QUIT, within what is left of the budget


class SmtpFault(Exception):
    """The dialogue cannot go on; carries the reason and what was seen."""

    def __init__(self, reason: str, evidence: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.evidence = evidence


@dataclass(frozen=True, slots=True)
class Reply:
    """One whole SMTP reply: its code and the text of each line (CRLF and separator removed)."""

    code: int
    lines: tuple[bytes, ...]

    def summary(self) -> str:
        """The first line as it came, for evidence."""
        return printable(f"{self.code} ".encode() + self.lines[0]).rstrip()

    def keywords(self) -> frozenset[str]:
        """EHLO extension keywords: the first word of every line after the greeting line."""
        words = (line.split(None, 1) for line in self.lines[1:])
        # "AUTH=LOGIN" is how some old servers spell AUTH (RFC 4954 predecessors); it counts as AUTH
        return frozenset(w[0].decode("latin-1").upper().partition("=")[0] for w in words if w)


_CODE_DIGITS = (b"2345", b"012345", b"0123456789")


def _is_code(head: bytes) -> bool:
    """Whether `head` (up to 3 bytes) can start a reply code: %x32-35 %x30-35 %x30-39 (RFC 5321 4.2)."""
    return len(head) <= 3 and all(byte in digits for byte, digits in zip(head, _CODE_DIGITS, strict=False))


class ReplyParser:
    """Bytes in, SMTP replies out; raises SmtpFault("garbage") once bytes cannot be a reply."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._code = b""
        self._lines: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def pending(self) -> bytes:
        """What is buffered of an unfinished line (for evidence when the peer goes away)."""
        return bytes(self._buffer[:MAX_LINE])

    def next_reply(self) -> Reply | None:
        """The next whole reply, or None when more bytes are needed."""
        while True:
            end = self._buffer.find(b"\n", 0, MAX_LINE)
            if end < 0:
                self._check_partial()
                return None
            line = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            content = line[:-1].removesuffix(b"\r")
            code, separator, text = content[:3], content[3:4], content[4:]
            if len(code) < 3 or not _is_code(code) or separator not in (b"", b" ", b"-"):
                raise SmtpFault("garbage", printable(line))
            if self._code and code != self._code:
                raise SmtpFault("garbage", printable(b"code changed mid-reply: " + line))
            self._code = code
            self._lines.append(text)
            if separator == b"-":
                if len(self._lines) >= MAX_LINES:
                    raise SmtpFault("garbage", f"reply longer than {MAX_LINES} lines")
                continue
            reply = Reply(int(code), tuple(self._lines))
            self._code, self._lines = b"", []
            return reply

    def _check_partial(self) -> None:
        """Refuse an unfinished line that is already too long or cannot start a reply."""
        head = bytes(self._buffer[:4])
        if not _is_code(head[:3]) or head[3:4] not in (b"", b" ", b"-", b"\r"):
            raise SmtpFault("garbage", printable(bytes(self._buffer[:64])))
        if len(self._buffer) >= MAX_LINE:
            raise SmtpFault("garbage", printable(b"line over 1000 octets: " + head))


async def check_dane(
    spec: ProbeSpec, session: SmtpSession, writer: asyncio.StreamWriter, deadline: float
) -> Verdict:
    """The DANE sender's view (RFC 7672) after a good EHLO: STARTTLS is offered and taken, and
    the certificate matches a DANE-EE record of `spec.tlsa`. Then QUIT, over TLS."""
    verdict = await session.starttls()
    if not verdict.ok:
        await session.quit()
        return verdict
    peer = await handshake(writer, spec.server_name, deadline)
    if isinstance(peer, Verdict):
        session.owes_quit = False
        return peer
    verdict = judge(peer.der, spec.tlsa)
    await session.quit()
    return verdict


class SmtpSession:
    """One probe's talk with a server over an open connection, all of it before `deadline`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: float) -> None:
        self._reader = reader
        self._writer = writer
        self._deadline = deadline
        self._parser = ReplyParser()
        self.owes_quit = False  # a server that greeted us is sent QUIT before we hang up

    async def greet(
        self, helo_name: str, require_starttls: bool, offers: frozenset[str] = frozenset()
    ) -> Verdict:
        """Read the banner, say EHLO, and judge both; a submission port must offer one of `offers`."""
        try:
            banner = await self._reply("banner")
        except SmtpFault as fault:
            return Verdict(fault.reason, fault.evidence)
        seen = banner.summary()
        self.owes_quit = True
        if banner.code >= 500:
            return Verdict("banner-5xx", seen)
        if banner.code >= 400:
            return Verdict("banner-4xx", seen)
        if banner.code != 220:
            return Verdict("garbage", seen)
        try:
            await self._send(f"EHLO {helo_name}\r\n".encode("ascii"), "ehlo")
            ehlo = await self._reply("ehlo")
        except SmtpFault as fault:
            self.owes_quit = fault.reason != "reset"
            return Verdict(fault.reason, fault.evidence or seen)
        if ehlo.code != 250:
            return Verdict("ehlo-rejected", ehlo.summary())
        if require_starttls and "STARTTLS" not in ehlo.keywords():
            offered = " ".join(sorted(ehlo.keywords())) or "no extensions"
            return Verdict("no-starttls", printable(f"EHLO offers: {offered}"))
        if offers and not offers & ehlo.keywords():
            offered = " ".join(sorted(ehlo.keywords())) or "no extensions"
            return Verdict("no-auth", printable(f"EHLO offers: {offered}"))
        return Verdict("ok", seen)

    async def starttls(self) -> Verdict:
        """Ask for STARTTLS (RFC 3207): ok on 220 with nothing sent after it, before the handshake.

        Bytes already buffered after the 220 would be read as if they came over TLS (the
        plaintext injection of RFC 3207 6, CVE-2011-0411), so they fail the probe.
        """
        try:
            await self._send(b"STARTTLS\r\n", "starttls")
            reply = await self._reply("starttls")
        except SmtpFault as fault:
            self.owes_quit = fault.reason != "reset"
            return Verdict(fault.reason, fault.evidence)
        if reply.code != 220:
            return Verdict("starttls-rejected", reply.summary())
        if self._parser.pending:
            self.owes_quit = False
            return Verdict("garbage", "bytes sent after the 220 to STARTTLS")
        return Verdict("ok", reply.summary())

    async def quit(self) -> None:
        """Say QUIT and wait briefly for the 221, so the server logs a clean end; failures don't matter."""
        if not self.owes_quit:
            return
        left = max(0.0, min(QUIT_WAIT, self._deadline - asyncio.get_running_loop().time()))
        with suppress(OSError, TimeoutError, SmtpFault):
            self._writer.write(b"QUIT\r\n")
            async with asyncio.timeout(left):
                await self._writer.drain()
                await self._next_reply("quit")

    async def _send(self, line: bytes, phase: str) -> None:
        try:
            async with asyncio.timeout_at(self._deadline):
                self._writer.write(line)
                await self._writer.drain()
        except TimeoutError:
            raise SmtpFault(f"timeout-{phase}", "") from None
        except OSError as exc:
            raise SmtpFault("reset", printable(f"{phase}: {exc.strerror or type(exc).__name__}")) from None

    async def _reply(self, phase: str) -> Reply:
        """The next reply, with faults named after the phase (timeout-banner, timeout-ehlo)."""
        try:
            async with asyncio.timeout_at(self._deadline):
                return await self._next_reply(phase)
        except TimeoutError:
            pending = self._parser.pending
            raise SmtpFault(f"timeout-{phase}", printable(pending) if pending else "") from None
        except OSError as exc:
            raise SmtpFault("reset", printable(f"{phase}: {exc.strerror or type(exc).__name__}")) from None

    async def _next_reply(self, phase: str) -> Reply:
        while (reply := self._parser.next_reply()) is None:
            data = await self._reader.read(READ_SIZE)
            if not data:
                pending = self._parser.pending
                seen = (
                    f"{phase}: closed after: ".encode() + pending if pending else f"{phase}: closed".encode()
                )
                raise SmtpFault("reset", printable(seen))
            self._parser.feed(data)
        return reply

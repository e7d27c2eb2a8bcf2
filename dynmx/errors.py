"""The one exception tree of dynmx.

    DynmxError                  anything dynmx raises on purpose
    +-- ConfigError             a config file is wrong (message names file and key)
    +-- ZoneLoadError           a zone file is wrong (carries file:line: reason problems)
    +-- WireError               a DNS message from a peer is malformed
    |   +-- FormError           answer FORMERR (RFC 1035 4.1.1)
    |   +-- DropPacket          send nothing (QR=1, shorter than a header)
    +-- ControlError            talking to a running server failed (reload, status)

Foreign exceptions (OSError, dnspython's) are mapped to these at the boundary: a
peer's fault becomes FORMERR/REFUSED, our own becomes SERVFAIL plus a log line.
"""

from __future__ import annotations

from dataclasses import dataclass


class DynmxError(Exception):
    """Base of every error dynmx raises on purpose."""


class ConfigError(DynmxError):
    """The configuration cannot be used; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input file, in the `file:line: reason` form of compilers."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class ZoneLoadError(DynmxError):
    """A zone file was refused; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class WireError(DynmxError):
    """A DNS message from a peer cannot be used."""


class FormError(WireError):
    """Malformed query: answer FORMERR with this message ID (RFC 1035 4.1.1)."""

    def __init__(self, reason: str, msg_id: int, rd: bool = False) -> None:
        super().__init__(reason)
        self.msg_id = msg_id
        self.rd = rd


class DropPacket(WireError):
    """Not worth an answer: a response (QR=1) or a packet shorter than a header."""


class ControlError(DynmxError):
    """A command could not reach or instruct the running server."""

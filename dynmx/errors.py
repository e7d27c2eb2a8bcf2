"""The one exception tree of dynmx.

    DynmxError                  anything dynmx raises on purpose
    +-- ConfigError             a config file is wrong (message names file and key)
    +-- ZoneLoadError           a zone file is wrong (carries file:line: reason problems)
    +-- WireError               a DNS message from a peer is malformed
    |   +-- FormError           answer FORMERR (RFC 1035 4.1.1)
    |   +-- DropPacket          send nothing (QR=1, shorter than a header)
    +-- CommandError            an operator's command cannot be done: bad arguments, no server to
    |                           reach, or the server refused it (cli, the control routes)
    +-- StaleBase               a zone edit was planned on a version that is no longer the newest
    +-- JournalFork             a second change from a serial the journal already has one from
    +-- JournalUnavailable      the journal cannot be written: no change can be made durable
    +-- UpdateRefused           an RFC 2136 UPDATE is refused with `rcode` (control.update)
    |   +-- KeyRefused          the TSIG key may not change this record (REFUSED)
    +-- SelfCheckError          a self-check step could not be done (selfcheck.probe)
    |   +-- ResolveError        no resolver gave a usable answer
    |   +-- ProbeError          the self-connect probe could not leave this host
    +-- RegistrarDiscoveryError a domain's registrar cannot be found or matched
    |   +-- RegistrarNotInDirectory  found, but no adapter for it (selfcheck.rdap)
    +-- StateDirBusy            another process owns the state directory (control.lock)
    +-- WriteBlocked            a zone's file cannot be written now (control.owner)
    +-- JournalMismatch         the journal does not apply to the zone file (control.diffs)
    +-- ZoneEditRefused         a zone cannot be added or removed as asked (control.zones)
    +-- RolloverRefused         a key rollover step cannot run now or in this phase (zone.rollover)
    +-- StoreCorrupt            an answer-store row fails its checks: rebuilt, never served (store.codec)
    +-- IllegalTransition       an event a state table does not allow now: a bug (app.tablestate)

A class with a module in brackets is defined beside the code that raises it (its subclasses
with it), rooted here all the same; the others are defined here.
Foreign exceptions (OSError, dnspython's) are mapped to these at the boundary: a peer's
fault becomes FORMERR/REFUSED, our own becomes SERVFAIL plus a log line.
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


class CommandError(DynmxError):
    """An operator's command cannot be done: its arguments are wrong, the running server
    cannot be reached, or the server refused it; the message says which and why."""


class StaleBase(DynmxError):
    """A commit planned on a zone version that is not the newest: refused, nothing written."""


class JournalFork(DynmxError):
    """A second change from a serial the journal already has a change from."""


class JournalUnavailable(DynmxError):
    """The journal cannot be written: no change can be made durable."""


class RegistrarDiscoveryError(DynmxError):
    """The registrar of a domain could not be found or matched; the message says why and what next."""

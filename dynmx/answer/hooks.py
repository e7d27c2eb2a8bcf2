"""What the engine's owners plug into it: the control layer's handlers, TSIG, CHAOS answers.

Apart from the engine so that its fast path, slow path and entry finder can all name
these types without importing each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dynmx.wire.query import Query

# A reply decided in another process (an answer worker forwards to the control process).
Deferred = Awaitable[Any]
# Handler for opcodes NOTIFY and UPDATE, set by the control layer: (data, query, tcp, peer) -> reply.
ControlHandler = Callable[[bytes, Query, bool, object], bytes | Deferred | None]
# Handler for AXFR/IXFR over TCP, set by the control layer: (data, query, peer) -> messages.
TransferHandler = Callable[[bytes, Query, object], list[bytes] | Deferred]


class SignedRequest(Protocol):
    """A request whose TSIG verified (RFC 8945 5.2): what signs the replies to it (5.3)."""

    @property
    def reserve(self) -> int: ...  # octets the TSIG record adds to a reply

    def sign(self, reply: bytes) -> bytes: ...


# TSIG for signed requests the engine answers itself, set by the control layer:
# (data, query, peer) -> what signs the reply, or the reply to send instead (the TSIG error).
TsigHook = Callable[[bytes, Query, object], SignedRequest | bytes]


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """Answers to `version.bind`/`id.server` CH TXT; empty strings keep them REFUSED."""

    version: str = ""
    identity: str = ""

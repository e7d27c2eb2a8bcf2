"""The probe vocabulary: which kinds of health probe exist and the ports they use.

A leaf (it imports nothing from dynmx) so that config can name the probe kinds without
loading the probes themselves, and with them httpx and asyncio.
"""

from __future__ import annotations

PROBE_KINDS = ("smtp", "tcp", "http", "load", "imap", "imaps", "pop3", "pop3s", "submission", "submissions")
SOCKET_KINDS = frozenset(PROBE_KINDS) - {"http", "load"}  # probed at `address`:`port`
TLS_KINDS = frozenset({"imaps", "pop3s", "submissions"})  # TLS from the first byte
DEFAULT_PORTS = {
    "smtp": 25,
    "tcp": 25,
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
    "submission": 587,
    "submissions": 465,
}

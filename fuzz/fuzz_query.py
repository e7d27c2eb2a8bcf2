"""Fuzz target: any datagram into the engine as `serve` wires it (queries, EDNS, every opcode).

Invariants: silence (only for packets shorter than a header or with QR set), or a reply
dnspython and dnslib both decode with the query's ID; no internal error (SERVFAIL); a UDP
reply within the client's limit (RFC 1035 4.2.1, RFC 6891 6.2.5).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import instrumented, run

with instrumented():
    from dynmx.errors import DropPacket, FormError
    from dynmx.wire.query import parse_query
    from tests.helpers_engine import query, raw_opt, raw_query, udp_limit_for
    from tests.helpers_fuzz import PEER, check_message_reply, controlled_engine, edns_seeds, mutate

WIRED = controlled_engine(Path(tempfile.mkdtemp(prefix="dynmx-fuzz-query-")))
NAMES = [
    "example.test.",
    "www.example.test.",
    "foo.wc.example.test.",
    "host.sub.example.test.",
    "nope.example.test.",
    "www.lost.test.",
]
SEEDS = [
    query(name, rdtype, edns=edns, want_dnssec=edns, payload=600).to_wire()
    for name in NAMES
    for rdtype in ("A", "MX", "ANY", "DS", "SOA")
    for edns in (False, True)
] + [
    *edns_seeds(),
    raw_query(additional=(raw_opt(options=((10, b"c" * 8), (65001, b"zz"))),)),
    raw_query(additional=(raw_opt(version=1, flags=0x8000),)),
    raw_query("version.bind.", 16)[:-2] + b"\x00\x03",
]


def one_input(data: bytes) -> None:
    engine = WIRED.engine
    try:
        parsed = parse_query(data)
    except (FormError, DropPacket):
        parsed = None
    for tcp in (False, True):
        servfail = engine.stats["servfail"]
        reply = engine.handle_tcp(data, PEER) if tcp else engine.handle(data, PEER, False)
        assert engine.stats["servfail"] == servfail, "internal error (SERVFAIL)"
        check_message_reply(data, reply)  # type: ignore[arg-type]
        if not tcp and isinstance(reply, bytes):
            assert len(reply) <= udp_limit_for(parsed), "UDP reply over the client's limit"


if __name__ == "__main__":
    run("query", one_input, SEEDS, lambda data, rng: mutate(data, rng, max_size=1500))

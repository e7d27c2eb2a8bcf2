"""Fuzz target: UPDATE (signed and not), NOTIFY and AXFR/IXFR messages into the wired engine.

Invariants: as fuzz_query, for UDP and TCP and from an allowed and a foreign address;
and whenever an update was committed, the zone file loads again as the zone being served.
Each input is sent as it is and once more re-signed (`sign_raw`: a TSIG over the mutated
bytes, by the full key or the one limited by names and types), so mutations reach the
UPDATE parser, the key's rules and the planner rather than ending as BADSIG. Seeds hold
every prerequisite form of RFC 2136 §2.4 and updates large enough to be planned on a
thread (answered by awaiting them) or to pass `max_update_records`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import instrumented, run

with instrumented():
    from dynmx.control.writer import serial_of
    from dynmx.zone.loader import load_zone_file
    from tests.helpers_fuzz import (
        EXAMPLE,
        OUTSIDER,
        PEER,
        check_message_reply,
        controlled_engine,
        edns_seeds,
        mutate,
        notify_seeds,
        settle,
        sign_raw,
        transfer_seeds,
        update_seeds,
    )

WIRED = controlled_engine(Path(tempfile.mkdtemp(prefix="dynmx-fuzz-update-")))
SEEDS = update_seeds() + notify_seeds() + transfer_seeds() + edns_seeds()


def one_input(data: bytes) -> None:
    engine = WIRED.engine
    published = WIRED.published
    peer = OUTSIDER if len(data) % 3 == 0 else PEER
    signed = sign_raw(data, "dyn-key." if len(data) % 2 else "ops-key.")
    for message in (data, signed):
        for tcp in (False, True):
            servfail = engine.stats["servfail"]
            reply = settle(engine.handle_tcp(message, peer) if tcp else engine.handle(message, peer, False))
            assert engine.stats["servfail"] == servfail, "internal error (SERVFAIL)"
            check_message_reply(message, reply)  # type: ignore[arg-type]
    if WIRED.published != published:
        loaded = load_zone_file(WIRED.zone_file())
        assert serial_of(loaded.zone) == serial_of(WIRED.zones[EXAMPLE].zone)


if __name__ == "__main__":
    # large enough for the seeds planned on a thread and the one over max_update_records
    run("update", one_input, SEEDS, lambda data, rng: mutate(data, rng, max_size=24_000))

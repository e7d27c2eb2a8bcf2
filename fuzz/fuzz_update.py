"""Fuzz target: UPDATE (signed and not), NOTIFY and AXFR/IXFR messages into the wired engine.

Invariants: as fuzz_query, for UDP and TCP and from an allowed and a foreign address;
and whenever an update was committed, the zone file loads again as the zone being served.
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
        transfer_seeds,
        update_seeds,
    )

WIRED = controlled_engine(Path(tempfile.mkdtemp(prefix="dynmx-fuzz-update-")))
SEEDS = update_seeds() + notify_seeds() + transfer_seeds() + edns_seeds()


def one_input(data: bytes) -> None:
    engine = WIRED.engine
    published = WIRED.published
    peer = OUTSIDER if len(data) % 3 == 0 else PEER
    for tcp in (False, True):
        servfail = engine.stats["servfail"]
        reply = engine.handle_tcp(data, peer) if tcp else engine.handle(data, peer, False)
        assert engine.stats["servfail"] == servfail, "internal error (SERVFAIL)"
        check_message_reply(data, reply)  # type: ignore[arg-type]
    if WIRED.published != published:
        loaded = load_zone_file(WIRED.zone_file())
        assert serial_of(loaded.zone) == serial_of(WIRED.zones[EXAMPLE].zone)


if __name__ == "__main__":
    run("update", one_input, SEEDS, lambda data, rng: mutate(data, rng, max_size=4096))

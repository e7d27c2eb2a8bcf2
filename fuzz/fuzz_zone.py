"""Fuzz target: zone files. Each input is written to `example.test.zone` and loaded.

Invariants: the file loads, or ZoneLoadError lists problems that each read
`<file>:<line>: <reason>` on one line; a zone that loads compiles and answers its names
without internal errors, in replies dnspython and dnslib decode.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from common import instrumented, run

with instrumented():
    from tests.helpers_engine import EXAMPLE_ZONE, MIXED_ZONE, OTHER_ZONE
    from tests.helpers_fuzz import ZONE_TOKENS, check_zone_file, mutate, mutate_text, query_every_name

PATH = Path(tempfile.mkdtemp(prefix="dynmx-fuzz-zone-")) / "example.test.zone"
SEEDS = [text.encode() for text in (EXAMPLE_ZONE, OTHER_ZONE, MIXED_ZONE)]


def one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    if check_zone_file(PATH):
        query_every_name(PATH)


def mutate_zone(data: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return mutate(data, rng, max_size=20000)
    return mutate_text(data.decode(), rng, ZONE_TOKENS).encode("utf-8", "surrogatepass")


if __name__ == "__main__":
    run("zone", one_input, SEEDS, mutate_zone)

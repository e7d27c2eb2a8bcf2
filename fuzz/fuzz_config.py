"""Fuzz target: TOML configs. Each input is written to `dynmx.toml` and loaded.

Invariants: the file loads, or ConfigError reads `<file>:<line>: <reason>` on one line;
a config that loads is accepted by what `serve` builds from it at start-up (TSIG keys,
transfer ACLs, policy checks, the pool table), which must not raise either.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from common import instrumented, run

with instrumented():
    from dynmx.config import load_config
    from dynmx.control.store import StateStore
    from dynmx.metrics import Metrics
    from tests.helpers_fuzz import (
        CONFIG_SEED,
        TOML_TOKENS,
        check_config_file,
        mutate,
        mutate_text,
        start_up_parts,
    )

DIRECTORY = Path(tempfile.mkdtemp(prefix="dynmx-fuzz-config-"))
PATH = DIRECTORY / "dynmx.toml"
STORE = StateStore(DIRECTORY / "state" / "dynmx.sqlite")
METRICS = Metrics()
SEEDS = [
    CONFIG_SEED.encode(),
    (Path(__file__).resolve().parent.parent / "examples" / "dynmx.toml").read_bytes(),
]


def one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    if check_config_file(PATH, load_config):
        start_up_parts(load_config(PATH), STORE, METRICS)


def mutate_config(data: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return mutate(data, rng, max_size=20000)
    return mutate_text(data.decode("utf-8", "surrogatepass"), rng, TOML_TOKENS).encode(
        "utf-8", "surrogatepass"
    )


if __name__ == "__main__":
    run("config", one_input, SEEDS, mutate_config)

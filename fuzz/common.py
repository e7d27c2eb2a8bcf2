"""Run one fuzz target under atheris (coverage-guided, libFuzzer) or as a plain mutation loop.

    python fuzz/fuzz_update.py CORPUS_DIR [libFuzzer options]   # atheris
    python fuzz/fuzz_update.py --plain 100000 [--seed 1]        # no atheris needed

A target is `one_input(data: bytes) -> None` that raises (an AssertionError or whatever
escaped) when an invariant breaks: libFuzzer then writes the input to `crash-<sha1>`; the
plain loop writes it to `fuzz/crashes/<target>-<n>.bin` and stops. Seeds go into an empty
corpus directory, so a fresh run starts from valid messages and files.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

Target = Callable[[bytes], None]
Mutator = Callable[[bytes, random.Random], bytes]


def plain_mode(argv: Sequence[str] | None = None) -> bool:
    """True when this run is the plain loop (asked for, or atheris is not installed)."""
    if "--plain" in (sys.argv if argv is None else argv):
        return True
    try:
        import atheris  # noqa: F401
    except ImportError:
        return True
    return False


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Wrap the imports of the code under test: atheris instruments them for coverage."""
    if plain_mode():
        yield
        return
    import atheris

    with atheris.instrument_imports(include=["dynmx", "dns"]):
        yield


def run(name: str, one_input: Target, seeds: Sequence[bytes], mutate: Mutator) -> None:
    parser = argparse.ArgumentParser(prog=f"fuzz_{name}.py", description=f"fuzz target: {name}")
    parser.add_argument("--plain", type=int, metavar="N", help="run N mutated inputs without atheris")
    parser.add_argument("--seconds", type=float, default=0.0, help="plain loop: stop after this long too")
    parser.add_argument("--seed", type=int, default=1, help="plain loop: random seed")
    args, rest = parser.parse_known_args()
    logging.getLogger("dynmx").setLevel(logging.CRITICAL)  # refusals log; failures are asserted
    if args.plain is not None or plain_mode():
        sys.exit(_plain(name, one_input, seeds, mutate, args.plain or 10000, args.seconds, args.seed))
    import atheris

    corpus = next((Path(arg) for arg in rest if not arg.startswith("-")), None)
    if corpus is not None and not corpus.is_file():  # a file is an input to replay
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            for index, seed in enumerate(seeds):
                (corpus / f"seed-{index:03d}").write_bytes(seed)
    atheris.Setup([sys.argv[0], *rest], one_input)
    atheris.Fuzz()


def _plain(
    name: str,
    one_input: Target,
    seeds: Sequence[bytes],
    mutate: Mutator,
    count: int,
    seconds: float,
    seed: int,
) -> int:
    rng = random.Random(seed)
    started = time.monotonic()
    done = 0
    for seed_input in seeds:  # the seeds themselves first
        one_input(seed_input)
    while done < count and (not seconds or time.monotonic() - started < seconds):
        data = mutate(rng.choice(seeds), rng)
        try:
            one_input(data)
        except Exception:
            crashes = ROOT / "fuzz" / "crashes"
            crashes.mkdir(exist_ok=True)
            path = crashes / f"{name}-{done}.bin"
            path.write_bytes(data)
            traceback.print_exc()
            print(f"{name}: FAILED on input {done} (seed {seed}); input saved to {path}", file=sys.stderr)
            return 1
        done += 1
    elapsed = time.monotonic() - started
    print(f"{name}: {done} inputs (+{len(seeds)} seeds) in {elapsed:.1f} s, seed {seed}, no failure")
    return 0

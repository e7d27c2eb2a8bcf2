"""Fuzzing zone-file and config loading: a file loads, or is refused with `file:line: reason`.

Mutated zone files and TOML configs are written to a temporary directory and loaded as
`serve` and `check` load them. Anything but a clean load or a ZoneLoadError/ConfigError
whose every message reads `<file>:<line>: <reason>` (one line) fails, tracebacks above all.
A zone that loads is compiled and queried; a config that loads is handed to the parts
that read it at start-up (keys, transfer ACLs, pools), which must not fail on it either.
Each crash the fuzzers found is a regression test at the end.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynmx.config import load_config
from dynmx.config_lines import key_line
from dynmx.control.store import StateStore
from dynmx.errors import ConfigError
from dynmx.metrics import Metrics
from tests.helpers_engine import EXAMPLE_ZONE, MIXED_ZONE, OTHER_ZONE
from tests.helpers_fuzz import (
    CONFIG_SEED,
    TOML_TOKENS,
    ZONE_TOKENS,
    check_config_file,
    check_zone_file,
    fuzz_settings,
    mutate_text,
    problem_pattern,
    query_every_name,
    start_up_parts,
)

ZONE_SEEDS = (EXAMPLE_ZONE, OTHER_ZONE, MIXED_ZONE)
ZONE_FILES = ("example.test.zone", "other.test.zone", "bad..zone", ".zone")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """One directory for every example (hypothesis runs many examples per test function)."""
    with tempfile.TemporaryDirectory(prefix="dynmx-fuzz-") as name:
        yield Path(name)


@fuzz_settings(300)
@given(
    seed=st.sampled_from(ZONE_SEEDS), file=st.sampled_from(ZONE_FILES), rng=st.randoms(use_true_random=False)
)
def test_mutated_zone_files_load_or_are_refused_with_file_and_line(
    workdir: Path, seed: str, file: str, rng: random.Random
) -> None:
    path = workdir / file
    path.write_text(mutate_text(seed, rng, ZONE_TOKENS), encoding="utf-8", errors="surrogatepass")
    if check_zone_file(path):
        query_every_name(path)


@fuzz_settings(150)
@given(
    data=st.binary(max_size=400), prefix=st.sampled_from([b"", b"$ORIGIN example.test.\n", b"\xef\xbb\xbf"])
)
def test_zone_files_of_random_bytes_are_refused_with_file_and_line(
    workdir: Path, data: bytes, prefix: bytes
) -> None:
    path = workdir / "example.test.zone"
    path.write_bytes(prefix + data)
    check_zone_file(path)


@pytest.fixture(scope="module")
def start_up(workdir: Path) -> Iterator[tuple[StateStore, Metrics]]:
    store = StateStore(workdir / "state" / "dynmx.sqlite")
    yield store, Metrics()
    store.close()


@fuzz_settings(300)
@given(rng=st.randoms(use_true_random=False), corrupt=st.one_of(st.none(), st.integers(0, 4000)))
def test_mutated_configs_load_or_are_refused_with_file_and_line(
    workdir: Path, start_up: tuple[StateStore, Metrics], rng: random.Random, corrupt: int | None
) -> None:
    path = workdir / "dynmx.toml"
    data = mutate_text(CONFIG_SEED, rng, TOML_TOKENS).encode("utf-8", "surrogatepass")
    if corrupt is not None:  # a byte that is not UTF-8
        data = data[: corrupt % (len(data) + 1)] + b"\xff" + data[corrupt % (len(data) + 1) :]
    path.write_bytes(data)
    if check_config_file(path, load_config):
        start_up_parts(load_config(path), *start_up)


def test_the_config_seed_loads_and_starts(workdir: Path, start_up: tuple[StateStore, Metrics]) -> None:
    """The seed itself is a good config, so the mutations start from every section in use."""
    path = workdir / "seed.toml"
    path.write_text(CONFIG_SEED)
    config = load_config(path)
    assert config.pool and config.key and config.zone and config.dyndns2.host and config.client
    start_up_parts(config, *start_up)


# -- where config errors point -----------------------------------------------------------


def refusal(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "dynmx.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert problem_pattern(path).fullmatch(message), message
    return message.removeprefix(f"{path}:")


def test_toml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    assert refusal(tmp_path, '[server]\nzones_dir = "z"\nlisten = = 5\n') == "3: Invalid value (column 10)"


def test_toml_error_at_the_end_names_the_last_line(tmp_path: Path) -> None:
    assert refusal(tmp_path, '[server]\nlisten = ["127.0.0.1:53",\n').startswith("2: ")


def test_missing_key_is_reported_at_the_table_that_lacks_it(tmp_path: Path) -> None:
    text = '[log]\nlevel = "info"\n\n[[pool]]\nname = "a.test."\n  [[pool.member]]\n  preference = 10\n'
    assert refusal(tmp_path, text) == "6: pool[0].member[0].host: required"


def test_bad_value_in_the_second_array_table_names_its_line(tmp_path: Path) -> None:
    text = (
        '[[pool]]\nname = "a.test."\n[[pool.member]]\nhost = "mx1.a.test."\nprobe = "none"\n'
        '[[pool]]\nname = "b.test."\n[[pool.member]]\nhost = "mx1.b.test."\nport = 70000\n'
    )
    assert refusal(tmp_path, text) == "10: pool[1].member[0].port: expected 0-65535, got 70000"


def test_bad_value_in_an_inline_table_names_its_line(tmp_path: Path) -> None:
    text = (
        '[[pool]]\nname = "a.test."\nmember = [\n  { host = "mx1.a.test." },\n'
        '  { host = "mx2.a.test.", weight = -1 },\n]\n'
    )
    assert refusal(tmp_path, text) == "5: pool[0].member[1].weight: expected 0-1e+06, got -1.0"


def test_bad_list_element_names_its_line(tmp_path: Path) -> None:
    text = '[server]\nlisten = [\n  "127.0.0.1:53",\n  "nowhere:53",\n]\n'
    assert refusal(tmp_path, text).startswith("4: server.listen[1]: expected an IP address")


def test_unknown_quoted_key_names_its_line(tmp_path: Path) -> None:
    assert refusal(tmp_path, '[server]\nzones_dir = "z"\n"two words" = 1\n').startswith(
        "3: server.two words: unknown"
    )


def test_unknown_key_with_a_control_character_is_shown_quoted_on_its_line(tmp_path: Path) -> None:
    """Found by fuzzing (`#\\n["\\t["]#`): the key's tab began the reason, and its line was 1."""
    text = '#\n["\\t["]#\n'
    assert refusal(tmp_path, text).startswith('2: "\\t[": unknown key (allowed: ')


def test_key_inside_a_multi_line_string_is_not_mistaken_for_one(tmp_path: Path) -> None:
    text = '[server]\nversion = """\nlisten = 1\n"""\nlisten = 5\n'
    assert refusal(tmp_path, text) == "5: server.listen: expected a list, got 5"


@fuzz_settings(300)
@given(
    text=st.text(alphabet=st.sampled_from("[]{}=,.\"'#\\\n\r \tab1"), max_size=200),
    path=st.lists(st.sampled_from(["a", "b", 0, 1]), max_size=4),
)
def test_key_locator_never_fails_on_any_text(text: str, path: list[str | int]) -> None:
    """The locator runs after tomllib accepted the text, but it must not fail on any text."""
    assert 1 <= key_line(text, tuple(path)) <= text.count("\n") + text.count("\r") + 1


def test_config_that_is_not_utf8_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    """Found by fuzzing: a UnicodeDecodeError traceback instead of a refusal."""
    assert refusal(tmp_path, b'[server]\nversion = "caf\xe9"\n') == "2: not UTF-8 text: byte 0xe9"


def test_unreadable_config_is_line_0(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=r":0: cannot read"):
        load_config(path)


# -- regressions: configs that loaded and then crashed the parts that use them ----------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # UnknownRdatatype from UpdateService at start-up.
        (
            '[[key]]\nname = "k."\nsecret = "c2VjcmV0"\ntypes = ["A", "BOGUS"]\n',
            "4: key[0].types[1]: expected a record",
        ),
        # ConfigError without file or line from load_keyring at start-up.
        ('[[key]]\nname = "k."\nsecret = "not base64!"\n', "3: key[0].secret: not base64"),
        # ValueError out of load_config (Config.problems read allow_update unchecked).
        (
            '[[zone]]\nname = "a.test."\nallow_update = ["bad name"]\n',
            "3: zone[0].allow_update[0]: expected a domain",
        ),
        # ValueError from TransferService at start-up: "127.0.0/8" was taken for a key name.
        (
            '[[zone]]\nname = "a.test."\nallow_transfer = ["127.0.0/8"]\n',
            "3: zone[0].allow_transfer[0]: expected an",
        ),
        # IDNAException from check_policy and the table build.
        (
            '[[name]]\nname = "exa\\u0095mple.test."\naction = "nxdomain"\n',
            "2: name[0].name: expected a domain",
        ),
        # UnexpectedEnd, IndexError (dnspython's tokenizer) when the pool's MX records were built from text.
        (
            '[[pool]]\nname = "example.test."\n[[pool.member]]\nhost = "mx\\"1.example.test."\n',
            "4: pool[0].member[0].host: expected",
        ),
        (
            '[[pool]]\nname = "example.test."\n[[pool.member]]\nhost = "mx;1.example.test."\n',
            "4: pool[0].member[0].host: expected",
        ),
        # NameTooLong (five labels of 63 octets) from dnspython at start-up.
        (
            '[[name]]\nname = "' + ("a" * 63 + ".") * 5 + '"\naction = "nxdomain"\n',
            "2: name[0].name: expected a domain",
        ),
    ],
)
def test_config_that_would_fail_at_start_up_is_refused_when_loaded(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert refusal(tmp_path, text).startswith(expected)

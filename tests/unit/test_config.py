"""The TOML config: a full example loads, and every refusal names the exact path of the key.

`from_mapping` takes parsed TOML (what these tests build by hand); `load_config` reads a
file and puts `file:line:` in front of every message, TOML syntax errors included.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from dynmx.config import Config, from_mapping, load_config
from dynmx.config_pools import ClientConfig, HintConfig, MemberConfig, NameConfig, PoolConfig
from dynmx.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

FULL: dict[str, Any] = {
    "server": {
        "listen": ["127.0.0.1:5353", "[::1]:5353"],
        "zones_dir": "zones",
        "state_dir": "state",
        "tcp_idle_timeout": 5,
        "tcp_max_connections": 100,
        "tcp_max_per_source": 10,
        "cache_size": 500,
        "version": "dynmx",
        "identity": "ns1",
        "pid_file": "dynmx.pid",
        "client_subnet": True,
        "client_subnet_sources": ["192.0.2.53/32"],
    },
    "http": {"listen": "127.0.0.1:9153"},
    "log": {"level": "debug"},
    "pool": [
        {
            "name": "Example.TEST",
            "strategy": "weighted",
            "ttl": 60,
            "tie_band": 0.1,
            "member": [
                {"host": "MX1.example.test", "preference": 10, "weight": 3},
                {"host": "mx2.Example.Test.", "preference": 20, "weight": 1.5},
                {"host": "relay.other.test", "preference": 90, "role": "relay"},
                {"host": "spare.example.test", "role": "standby", "probe": "none"},
            ],
            "hint": [{"label": "Urgent", "order": ["MX2.example.test", "relay.other.test."]}],
        },
        {"name": "other.test.", "member": [{"host": "mx.other.test."}]},
    ],
    "client": [
        {"prefix": "192.0.2.7/24", "action": "hint", "hint": "urgent"},
        {"prefix": "2001:db8::/32", "action": "refuse"},
        {"prefix": "198.51.100.0/24", "action": "drop"},
        {"prefix": "203.0.113.0/24"},
    ],
    "name": [
        {"name": "NoMail.example.test", "action": "null-mx"},
        {"name": "gone.example.test.", "action": "nxdomain"},
        {"name": "secret.example.test", "action": "refuse"},
    ],
}


def full() -> dict[str, Any]:
    """A deep copy of FULL, for a test to break one key of."""
    return copy.deepcopy(FULL)


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        from_mapping(raw)
    return str(caught.value)


def one_pool(**changes: Any) -> dict[str, Any]:
    """A minimal valid config with one pool; `changes` replace pool keys."""
    pool: dict[str, Any] = {
        "name": "example.test",
        "member": [{"host": "mx1.example.test"}, {"host": "mx2.example.test", "preference": 20}],
        "hint": [{"label": "urgent", "order": ["mx1.example.test"]}],
    }
    pool.update(changes)
    return {"pool": [pool]}


# -- the happy path -----------------------------------------------------------------------


def test_full_example_loads_with_every_section() -> None:
    config = from_mapping(full(), base_dir=Path("/etc/dynmx"))
    assert config.server.listen == ("127.0.0.1:5353", "[::1]:5353")
    assert config.listen_addresses() == [("127.0.0.1", 5353), ("::1", 5353)]
    assert config.server.tcp_idle_timeout == 5.0
    assert isinstance(config.server.tcp_idle_timeout, float)
    assert config.server.client_subnet is True
    assert config.http.listen == "127.0.0.1:9153"
    assert config.log.level == "debug"
    assert config.base_dir == Path("/etc/dynmx")
    assert config.path("zones") == Path("/etc/dynmx/zones")
    assert config.path("/var/zones") == Path("/var/zones")
    assert len(config.pool) == 2
    assert [c.action for c in config.client] == ["hint", "refuse", "drop", "answer"]
    assert [n.action for n in config.name] == ["null-mx", "nxdomain", "refuse"]


def test_full_example_builds_frozen_dataclasses() -> None:
    config = from_mapping(full())
    assert isinstance(config, Config)
    pool = config.pool[0]
    assert isinstance(pool, PoolConfig)
    assert all(isinstance(m, MemberConfig) for m in pool.member)
    assert isinstance(pool.hint[0], HintConfig)
    assert isinstance(config.client[0], ClientConfig)
    assert isinstance(config.name[0], NameConfig)
    with pytest.raises(AttributeError):
        pool.ttl = 1  # type: ignore[misc]


def test_names_are_normalised_absolute_and_lower_case() -> None:
    config = from_mapping(full())
    pool = config.pool[0]
    assert pool.name == "example.test."
    assert [m.host for m in pool.member] == [
        "mx1.example.test.",
        "mx2.example.test.",
        "relay.other.test.",
        "spare.example.test.",
    ]
    assert pool.hint[0].label == "urgent"
    assert pool.hint[0].order == ("mx2.example.test.", "relay.other.test.")
    assert [n.name for n in config.name] == [
        "nomail.example.test.",
        "gone.example.test.",
        "secret.example.test.",
    ]


def test_member_values_and_defaults() -> None:
    config = from_mapping(full())
    mx1, mx2, relay, spare = config.pool[0].member
    assert (mx1.preference, mx1.weight, mx1.role) == (10, 3.0, "primary")
    assert isinstance(mx1.weight, float)
    assert mx2.weight == 1.5
    assert relay.role == "relay"
    assert (spare.role, spare.preference, spare.weight, spare.probe) == ("standby", 10, 1.0, "none")
    other = config.pool[1]
    assert (other.strategy, other.ttl, other.tie_band, other.hint) == ("static", 30, 0.05, ())


def test_client_prefix_is_normalised_to_its_network() -> None:
    config = from_mapping(full())
    assert config.client[0].prefix == "192.0.2.0/24"
    assert config.client[1].prefix == "2001:db8::/32"


def test_empty_mapping_gives_defaults() -> None:
    config = from_mapping({})
    assert config.server.listen == ("127.0.0.1:5353",)
    assert config.http.listen == ""
    assert config.log.level == "info"
    assert (config.pool, config.client, config.name) == ((), (), ())


def test_example_file_loads() -> None:
    path = ROOT / "examples" / "dynmx.toml"
    config = load_config(path)
    assert config.base_dir == path.parent
    assert config.listen_addresses() == [("127.0.0.1", 5353)]
    (pool,) = config.pool
    assert pool.name == "example.test."
    assert pool.strategy == "round-robin"
    assert [m.role for m in pool.member] == ["primary", "primary", "primary", "relay"]
    assert pool.hint[0].label == "urgent"
    assert pool.hint[0].order == ("mx1.example.test.",)


def test_load_config_reads_a_file_relative_to_itself(tmp_path: Path) -> None:
    path = tmp_path / "dynmx.toml"
    path.write_text(
        '[server]\nzones_dir = "z"\n[[pool]]\nname = "a.test"\n[[pool.member]]\nhost = "mx.a.test"\n'
    )
    config = load_config(path)
    assert config.path(config.server.zones_dir) == tmp_path / "z"
    assert config.pool[0].member[0].host == "mx.a.test."


# -- every refusal names its path ------------------------------------------------------


def _set(raw: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    target: Any = raw
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        # unknown keys, at every depth
        (("server", "listen_port"), 53, "server.listen_port: unknown key (allowed: "),
        (("pool", 0, "member", 1, "smtp_port"), 25, "pool[0].member[1].smtp_port: unknown key (allowed: "),
        (("pool", 0, "hint", 0, "hosts"), [], "pool[0].hint[0].hosts: unknown key (allowed: "),
        (("client", 2, "acton"), "drop", "client[2].acton: unknown key (allowed: "),
        # unknown section
        (
            ("zones",),
            {},
            "zones: unknown key (allowed: catalog, client, defaults, dyndns2, http, key, log, name, pool, "
            "registrar, rrl, selfcheck, server, zone)",
        ),
        # wrong types
        (("server", "tcp_max_connections"), "many", "server.tcp_max_connections: expected int, got 'many'"),
        (("server", "tcp_max_connections"), True, "server.tcp_max_connections: expected int, got True"),
        (("server", "tcp_max_connections"), 1.5, "server.tcp_max_connections: expected int, got 1.5"),
        (("server", "tcp_idle_timeout"), "10s", "server.tcp_idle_timeout: expected a number, got '10s'"),
        (("server", "tcp_idle_timeout"), False, "server.tcp_idle_timeout: expected a number, got False"),
        (("server", "client_subnet"), "yes", "server.client_subnet: expected bool, got 'yes'"),
        (("server", "listen"), "127.0.0.1:53", "server.listen: expected a list, got '127.0.0.1:53'"),
        (("server",), [], "server: expected a table, got []"),
        (("pool",), {"name": "x"}, "pool: expected a list, got {'name': 'x'}"),
        (("pool", 0, "member", 0), "mx1", "pool[0].member[0]: expected a table, got 'mx1'"),
        (
            ("pool", 0, "member", 1, "preference"),
            "20",
            "pool[0].member[1].preference: expected int, got '20'",
        ),
        (("pool", 0, "member", 1, "weight"), "1", "pool[0].member[1].weight: expected a number, got '1'"),
        (("pool", 0, "hint", 0, "order"), "mx1", "pool[0].hint[0].order: expected a list, got 'mx1'"),
        (("pool", 0, "hint", 0, "order", 1), 7, "pool[0].hint[0].order[1]: expected str, got 7"),
        # out of range
        (
            ("pool", 0, "member", 1, "preference"),
            70000,
            "pool[0].member[1].preference: expected 0-65535, got 70000",
        ),
        (
            ("pool", 0, "member", 0, "preference"),
            -1,
            "pool[0].member[0].preference: expected 0-65535, got -1",
        ),
        (("pool", 0, "member", 0, "weight"), -0.5, "pool[0].member[0].weight: expected 0-1e+06, got -0.5"),
        (("pool", 0, "ttl"), -1, "pool[0].ttl: expected 0-2.14748e+09, got -1"),
        (("server", "tcp_max_connections"), 0, "server.tcp_max_connections: expected 1-100000, got 0"),
        (("server", "tcp_idle_timeout"), 0.01, "server.tcp_idle_timeout: expected 0.1-3600, got 0.01"),
        # bad choices
        (("log", "level"), "loud", "log.level: expected one of debug, info, warning, error, got 'loud'"),
        (
            ("pool", 0, "strategy"),
            "random",
            "pool[0].strategy: expected one of static, round-robin, weighted, least-load, got 'random'",
        ),
        (
            ("pool", 0, "member", 2, "role"),
            "backup",
            "pool[0].member[2].role: expected one of primary, relay, standby, got 'backup'",
        ),
        (
            ("pool", 0, "member", 0, "probe"),
            "ftp",
            "pool[0].member[0].probe: expected one of smtp, tcp, http, load, imap, imaps, "
            "pop3, pop3s, submission, submissions, none, got 'ftp'",
        ),
        (
            ("client", 1, "action"),
            "allow",
            "client[1].action: expected one of answer, refuse, drop, hint, got 'allow'",
        ),
        (
            ("name", 0, "action"),
            "null",
            "name[0].action: expected one of null-mx, nxdomain, refuse, got 'null'",
        ),
        # bad listen addresses
        (
            ("server", "listen", 1),
            "localhost:53",
            "server.listen[1]: expected an IP address, got 'localhost' in 'localhost:53'",
        ),
        (
            ("server", "listen", 0),
            "127.0.0.1:99999",
            "server.listen[0]: expected a port 0-65535, got '99999' in '127.0.0.1:99999'",
        ),
        (("server", "listen", 0), "[::1", "server.listen[0]: expected [IPv6]:PORT, got '[::1'"),
        (
            ("http", "listen"),
            "nowhere:80",
            "http.listen: expected an IP address, got 'nowhere' in 'nowhere:80'",
        ),
        # bad prefixes
        (
            ("client", 0, "prefix"),
            "192.0.2.0/33",
            "client[0].prefix: expected an address prefix like 192.0.2.0/24, got '192.0.2.0/33'",
        ),
        (
            ("client", 3, "prefix"),
            "not-a-net",
            "client[3].prefix: expected an address prefix like 192.0.2.0/24, got 'not-a-net'",
        ),
        # bad names and labels
        (("pool", 0, "name"), "a..test", "pool[0].name: expected a domain name, got 'a..test'"),
        (
            ("pool", 0, "member", 0, "host"),
            "mx 1.test",
            "pool[0].member[0].host: expected a domain name, got",
        ),
        (("name", 1, "name"), "", "name[1].name: expected a domain name, got ''"),
        (
            ("pool", 0, "hint", 0, "label"),
            "ur.gent",
            "pool[0].hint[0].label: expected one label of letters, digits, '-' or '_', got 'ur.gent'",
        ),
        (
            ("pool", 0, "hint", 0, "label"),
            "x" * 64,
            "pool[0].hint[0].label: expected one label of letters, digits, '-' or '_', got",
        ),
    ],
)
def test_refusal_names_its_path(path: tuple[Any, ...], value: Any, message: str) -> None:
    text = error_of(_set(full(), path, value))
    assert text.startswith(message), text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pool": [{"member": [{"host": "mx.a.test"}]}]}, "pool[0].name: required"),
        ({"pool": [{"name": "a.test", "member": [{"preference": 10}]}]}, "pool[0].member[0].host: required"),
        (
            {
                "pool": [
                    {"name": "a.test", "member": [{"host": "mx.a.test"}], "hint": [{"order": ["mx.a.test"]}]}
                ]
            },
            "pool[0].hint[0].label: required",
        ),
        ({"client": [{"action": "drop"}]}, "client[0].prefix: required"),
        ({"name": [{"action": "nxdomain"}]}, "name[0].name: required"),
        ({"name": [{"name": "a.test"}]}, "name[0].action: required"),
    ],
)
def test_missing_required_key_names_its_path(raw: dict[str, Any], message: str) -> None:
    assert error_of(raw) == message


def test_pool_without_members_is_refused() -> None:
    assert error_of(one_pool(member=[], hint=[])) == "pool[0].member: a pool needs at least one member"


def test_duplicate_pool_names_the_second() -> None:
    raw = full()
    raw["pool"].append({"name": "EXAMPLE.test.", "member": [{"host": "mx9.example.test"}]})
    assert error_of(raw) == "pool[2].name: example.test. is a pool twice"


def test_duplicate_member_host_names_the_second_after_normalising() -> None:
    raw = one_pool(
        member=[{"host": "mx1.example.test."}, {"host": "mx2.example.test"}, {"host": "MX1.Example.Test"}]
    )
    assert error_of(raw) == "pool[0].member[2].host: mx1.example.test. is listed twice"


def test_duplicate_hint_label() -> None:
    raw = one_pool(
        hint=[
            {"label": "urgent", "order": ["mx1.example.test"]},
            {"label": "URGENT", "order": ["mx2.example.test"]},
        ]
    )
    assert error_of(raw) == "pool[0].hint[1].label: 'urgent' is defined twice"


def test_hint_order_naming_a_non_member() -> None:
    raw = one_pool(hint=[{"label": "urgent", "order": ["mx1.example.test", "mx9.example.test"]}])
    assert error_of(raw) == "pool[0].hint[0].order[1]: mx9.example.test. is not a member of this pool"


def test_hint_with_an_empty_order() -> None:
    raw = one_pool(hint=[{"label": "urgent", "order": []}])
    assert error_of(raw) == "pool[0].hint[0].order: a hint needs at least one host"


def test_weighted_pool_needs_a_primary_with_weight() -> None:
    raw = one_pool(
        strategy="weighted",
        member=[
            {"host": "mx1.example.test", "weight": 0},
            {"host": "r.example.test", "role": "relay", "weight": 5},
        ],
        hint=[],
    )
    assert error_of(raw) == "pool[0].member: weighted needs a primary with weight > 0"


def test_client_action_hint_without_hint() -> None:
    raw = one_pool()
    raw["client"] = [{"prefix": "10.0.0.0/8", "action": "hint"}]
    assert error_of(raw) == "client[0].hint: action 'hint' needs the hint label to answer with"


def test_client_hint_with_another_action() -> None:
    raw = one_pool()
    raw["client"] = [{"prefix": "10.0.0.0/8", "action": "refuse", "hint": "urgent"}]
    assert error_of(raw) == "client[0].hint: only used with action 'hint', not 'refuse'"


def test_client_hint_naming_no_pools_hint() -> None:
    raw = one_pool()
    raw["client"] = [
        {"prefix": "10.0.0.0/8", "action": "hint", "hint": "urgent"},
        {"prefix": "10.1.0.0/16", "action": "hint", "hint": "bulk"},
    ]
    assert error_of(raw) == "client[1].hint: no pool defines hint 'bulk'"


def test_client_hint_spelled_like_a_mixed_case_label_loads() -> None:
    raw = one_pool(hint=[{"label": "Urgent", "order": ["mx1.example.test"]}])
    raw["client"] = [{"prefix": "10.0.0.0/8", "action": "hint", "hint": "Urgent"}]
    assert from_mapping(raw).client[0].hint == "urgent"


def test_duplicate_client_prefix_after_normalising() -> None:
    raw = one_pool()
    raw["client"] = [
        {"prefix": "10.0.0.0/8", "action": "drop"},
        {"prefix": "192.0.2.0/24", "action": "refuse"},
        {"prefix": "10.1.2.3/8", "action": "refuse"},
    ]
    assert error_of(raw) == "client[2].prefix: 10.0.0.0/8 is listed twice"


def test_zone_primary_key_without_a_primary_is_refused() -> None:
    key = {"name": "xfr-key.", "secret": "c2VjcmV0"}
    raw = {"key": [key], "zone": [{"name": "a.test.", "primary_key": "xfr-key."}]}
    assert error_of(raw) == "zone[0].primary_key: needs primary"


def test_zone_primary_key_naming_no_key_is_refused() -> None:
    raw = {"zone": [{"name": "a.test.", "primary": "127.0.0.1:5300", "primary_key": "xfr-key"}]}
    assert error_of(raw) == "zone[0].primary_key: no [[key]] named xfr-key."


@pytest.mark.parametrize("name", ["example.test..", ".example.test"])
def test_name_with_an_empty_label_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("pool[0].name: expected a domain name")):
        from_mapping(one_pool(name=name))


# -- load_config: `file:line:` leads every message ---------------------------------------


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[server]\nzones_dir = "zones"\nlisten = = 5\n[log]\nlevel = "info"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:3: Invalid value (column 10)"


def test_value_error_in_a_file_names_file_and_path(tmp_path: Path) -> None:
    path = tmp_path / "dynmx.toml"
    path.write_text(
        '[[pool]]\nname = "a.test"\n[[pool.member]]\nhost = "mx1.a.test"\n'
        '[[pool.member]]\nhost = "mx2.a.test"\npreference = 70000\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:7: pool[0].member[1].preference: expected 0-65535, got 70000"


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}:0: cannot read")

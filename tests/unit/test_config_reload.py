"""Which keys a reload applies, as data in the schema: each key of every section carries
its decision (`restart` in the field's metadata), and two sans-IO functions act on it for
`App._reconfigure`: `restart_keys` names the changed keys that need a restart, and
`keep_running` gives the config a reload goes on with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dynmx.config import Config, from_mapping
from dynmx.config_keys import setting
from dynmx.config_reload import keep_running, reload_decisions, restart_keys

# Read once at start: the sockets and their TCP limits, the answer engine (CH TXT, NSID,
# the slow-path cache, Client Subnet, the draw's seed), rate limiting, the state files and
# the journal, the pid file, the log level (set in every worker process at its start).
RESTART_ONLY = [
    "server.listen",
    "server.state_dir",
    "server.tcp_idle_timeout",
    "server.tcp_max_connections",
    "server.tcp_max_per_source",
    "server.tcp_message_timeout",
    "server.tcp_max_in_flight",
    "server.workers",
    "server.cache_size",
    "server.journal_keep",
    "server.version",
    "server.identity",
    "server.nsid",
    "server.pid_file",
    "server.client_subnet",
    "server.client_subnet_sources",
    "server.random_seed",
    "log.level",
    "catalog.name",  # the catalog is produced or followed as the server started
    "catalog.allow_transfer",
    "catalog.notify",
    "catalog.primary",
    "catalog.primary_key",
    "catalog.allow_notify",
    "rrl.enabled",
    "rrl.rate",
    "rrl.slip",
    "rrl.ipv4_prefix",
    "rrl.ipv6_prefix",
    "rrl.exempt",
]


def config(**sections: dict[str, Any]) -> Config:
    return from_mapping(sections)


def test_every_key_of_the_schema_has_a_reload_decision() -> None:
    """A key added without `setting(..., restart=...)` fails here: decide whether a reload applies it."""
    undecided = [path for path, restart in reload_decisions().items() if restart is None]
    assert undecided == []


def test_a_field_declared_without_a_decision_is_undecided() -> None:
    @dataclasses.dataclass(frozen=True)
    class Section:
        decided: int = setting(default=0, restart=False)
        forgotten: int = 0

    assert reload_decisions(Section) == {"decided": False, "forgotten": None}


def test_the_keys_only_a_restart_applies_are_these() -> None:
    assert [path for path, restart in reload_decisions().items() if restart] == RESTART_ONLY


def test_the_control_listener_and_the_dyndns2_switch_are_applied_by_reload() -> None:
    decisions = reload_decisions()
    assert decisions["http.listen"] is False
    assert decisions["dyndns2.enabled"] is False


def test_arrays_of_tables_hold_no_restart_key() -> None:
    """Their items have no identity a running value could be kept by (`pool[2]` may be
    another pool after a reload), so every key in them is applied by reload."""
    assert [path for path, restart in reload_decisions().items() if "[]" in path and restart] == []


def test_keys_are_named_by_dotted_path_through_arrays_of_tables() -> None:
    decisions = reload_decisions()
    assert "pool[].member[].host" in decisions
    assert "selfcheck.source[].kind" in decisions
    assert "base_dir" not in decisions  # where the file is, not a key in it


def test_restart_keys_names_each_changed_key_by_dotted_path() -> None:
    running = config(server={"tcp_max_connections": 200}, rrl={"rate": 200})
    new = config(server={"tcp_max_connections": 50}, rrl={"rate": 50})
    assert restart_keys(running, new) == ["server.tcp_max_connections", "rrl.rate"]


def test_restart_keys_ignores_keys_a_reload_applies() -> None:
    running = config()
    new = config(
        http={"listen": "127.0.0.1:9153"},
        dyndns2={"enabled": True},
        server={"zones_dir": "other", "chaos_status": True},
        pool=[{"name": "mx.example.test", "member": [{"host": "mx1.example.test"}]}],
    )
    assert restart_keys(running, new) == []


def test_restart_keys_of_the_same_config_is_empty() -> None:
    assert restart_keys(config(rrl={"rate": 5}), config(rrl={"rate": 5})) == []


def test_keep_running_keeps_restart_keys_and_takes_every_other() -> None:
    running = config(server={"listen": ["127.0.0.1:5353"]}, rrl={"rate": 200}, log={"level": "info"})
    new = config(
        server={"listen": ["127.0.0.1:5354"], "zones_dir": "other"},
        rrl={"rate": 50, "enabled": False},
        log={"level": "debug"},
        dyndns2={"enabled": True},
    )
    kept = keep_running(running, new)
    assert kept.server.listen == ("127.0.0.1:5353",)
    assert (kept.rrl.rate, kept.rrl.enabled, kept.log.level) == (200.0, True, "info")
    assert kept.server.zones_dir == "other"
    assert kept.dyndns2.enabled is True


def test_keep_running_leaves_nothing_that_needs_a_restart() -> None:
    running = config()
    new = config(server={"workers": 2, "version": "v2"}, rrl={"slip": 0}, http={"listen": "127.0.0.1:9153"})
    kept = keep_running(running, new)
    assert restart_keys(running, kept) == []
    assert kept.http.listen == "127.0.0.1:9153"

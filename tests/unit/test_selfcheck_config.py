"""`[selfcheck]` and `[[registrar]]` in the config: what is refused, and what adapters are built."""

from __future__ import annotations

import dns.name
import dns.zone
import pytest

from dynmx.answer.zoneset import ZoneData
from dynmx.app.selfcheck_service import build_adapter, build_sources
from dynmx.app.update_service import key_secrets
from dynmx.config import from_mapping
from dynmx.errors import ConfigError
from dynmx.policy.checks import check_policy
from dynmx.selfcheck.discovery import DnsWhoamiSource, HttpEchoSource, InterfaceSource
from dynmx.selfcheck.dyndns2_client import Dyndns2Adapter
from dynmx.selfcheck.rfc2136_client import Rfc2136Adapter
from dynmx.selfcheck.webhook import WebhookAdapter
from tests.conftest import TEST_SECRET

KEY = {"name": "parent-key.", "secret": TEST_SECRET}


def test_each_adapter_kind_is_built_from_its_block() -> None:
    config = from_mapping(
        {
            "key": [KEY],
            "registrar": [
                {
                    "name": "dyn",
                    "adapter": "dyndns2",
                    "url": "https://127.0.0.1/nic/update",
                    "username": "u",
                    "password": "p",
                },
                {
                    "name": "parent",
                    "adapter": "rfc2136",
                    "server": "127.0.0.1:5300",
                    "zone": "example.test.",
                    "key": "parent-key.",
                },
                {"name": "hook", "adapter": "webhook", "url": "https://127.0.0.1/hook", "token": "t0k"},
            ],
        }
    )
    secrets = key_secrets(config)
    built = [build_adapter(registrar, secrets) for registrar in config.registrar]
    assert [type(a) for a in built] == [Dyndns2Adapter, Rfc2136Adapter, WebhookAdapter]


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"name": "dyn", "adapter": "dyndns2", "url": "https://127.0.0.1/"}, "username: required"),
        ({"name": "hook", "adapter": "webhook", "url": "https://127.0.0.1/"}, "token: required"),
        (
            {
                "name": "p",
                "adapter": "rfc2136",
                "server": "127.0.0.1",
                "zone": "example.test.",
                "key": "nokey.",
            },
            "registrar[0].key: no [[key]] named nokey.",
        ),
        ({"name": "x", "adapter": "carrier-pigeon"}, "registrar[0].adapter"),
    ],
)
def test_a_registrar_block_missing_what_its_adapter_needs_is_refused(
    block: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_mapping({"registrar": [block]})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"resolvers": ["127.0.0.1"]}, "selfcheck.names: at least one name"),
        ({"names": ["ns1.example.test."]}, "selfcheck.resolvers: at least one resolver"),
        ({"names": ["ns1.example.test."], "resolvers": ["127.0.0.1"], "source": []}, "2 sources needed"),
    ],
)
def test_an_enabled_selfcheck_needs_names_resolvers_and_a_quorum_of_sources(
    settings: dict[str, object], message: str
) -> None:
    sources = [{"kind": "interface", "family": 4}, {"kind": "interface", "family": 6}]
    with pytest.raises(ConfigError, match=message):
        from_mapping({"selfcheck": {"enabled": True, "source": sources, **settings}})


def test_sources_of_each_kind_are_built() -> None:
    config = from_mapping(
        {
            "selfcheck": {
                "source": [
                    {"kind": "http", "url": "http://127.0.0.1:8080/ip", "format": "json", "field": "ip"},
                    {"kind": "dns", "resolver": "127.0.0.1:5300", "name": "whoami.example.test."},
                    {"kind": "interface", "family": 6, "route_target": "::1"},
                ]
            }
        }
    )
    kinds = [type(source) for source in build_sources(config.selfcheck.source)]
    assert kinds == [HttpEchoSource, DnsWhoamiSource, InterfaceSource]


def test_check_refuses_a_selfcheck_name_outside_the_served_zones() -> None:
    text = "@ 300 IN SOA ns1 hostmaster 1 2 3 4 5\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n"
    zone = ZoneData(
        dns.name.from_text("example.test."), dns.zone.from_text(text, "example.test.", relativize=False)
    )
    sources = [{"kind": "interface", "family": 4}, {"kind": "interface", "family": 6}]
    selfcheck = {"enabled": True, "resolvers": ["127.0.0.1"], "source": sources}
    config = from_mapping({"selfcheck": {**selfcheck, "names": ["ns1.example.test.", "mail.other.test."]}})
    problems, _ = check_policy(config, [zone])
    assert problems == ["selfcheck.names[1]: mail.other.test. is in no served zone"]

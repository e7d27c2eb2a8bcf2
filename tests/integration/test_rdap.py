"""Registrar discovery over RDAP, against a real RDAP server on loopback, and its CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dynmx.cli import registrar as registrar_cli
from dynmx.config import load_config
from dynmx.errors import ConfigError
from dynmx.selfcheck.rdap import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_DIRECTORY,
    Bootstrap,
    Discovery,
    Registrar,
    RegistrarDiscoveryError,
    RegistrarNotInDirectory,
    discover,
    find_service,
    load_bootstrap,
    load_directory,
    parse_bootstrap,
)
from tests.fake_servers import QuietHandler, http_server

DIRECTORY = """\
[registrar."9999"]
name = "Example Registrar, Inc."
adapter = "dyndns2"
url = "https://dyn.example.test/nic/update"
notes = "Create a dynamic DNS login in the panel."

[registrar."8888"]
name = "Api Registrar"
adapter = "webhook"
url = "https://api.registrar.test/v1/"
template = true
"""


def entity(name: str, iana_id: str, roles: tuple[str, ...] = ("registrar",)) -> dict[str, object]:
    return {
        "objectClassName": "entity",
        "handle": iana_id,
        "roles": list(roles),
        "publicIds": [{"type": "IANA Registrar ID", "identifier": iana_id}],
        "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", name]]],
    }


def domain(name: str, *entities: dict[str, object]) -> dict[str, object]:
    return {"objectClassName": "domain", "ldhName": name, "entities": list(entities)}


@dataclass
class FakeRdap:
    """Serves `documents` by path as application/rdap+json; anything else is 404."""

    documents: Mapping[str, object]
    base: str = ""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@contextmanager
def fake_rdap(documents: Mapping[str, object]) -> Iterator[FakeRdap]:
    fake = FakeRdap(documents)

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            found = self.path in fake.documents
            data = json.dumps(
                fake.documents.get(self.path, {"errorCode": 404, "title": "Not Found"})
            ).encode()
            self.reply(200 if found else 404, data, {"Content-Type": "application/rdap+json"})

    with http_server(Handler) as port:
        fake.base = f"http://127.0.0.1:{port}"
        yield fake


def bootstrap_file(tmp_path: Path, base: str) -> Path:
    """`test` served under /tld/, the longer `example.test` under /sld/ of the same server."""
    document = {
        "description": "test bootstrap",
        "publication": "2024-06-01T00:00:00Z",
        "services": [[["test", "invalid"], [f"{base}/tld/"]], [["example.test"], [f"{base}/sld"]]],
        "version": "1.0",
    }
    path = tmp_path / "dns.json"
    path.write_text(json.dumps(document))
    return path


def directory_file(tmp_path: Path, text: str = DIRECTORY) -> Path:
    path = tmp_path / "registrars.toml"
    path.write_text(text)
    return path


def run_discover(tmp_path: Path, fake: FakeRdap, name: str) -> Discovery:
    bootstrap, directory = bootstrap_file(tmp_path, fake.base), directory_file(tmp_path)
    return asyncio.run(discover(name, bootstrap, directory, timeout=5.0))


def test_the_longest_label_match_wins() -> None:
    services = {"test": ("https://tld.test/",), "example.test": ("http://sld.test", "https://sld.test/rdap")}
    table = Bootstrap("inline", "", services)
    assert find_service(table, "Foo.Example.TEST.") == ("example.test", "https://sld.test/rdap/")
    assert find_service(table, "foo.other.test") == ("test", "https://tld.test/")


def test_a_suffix_missing_from_the_bootstrap_is_an_error() -> None:
    with pytest.raises(RegistrarDiscoveryError, match=r"no RDAP service for \.zz.*data\.iana\.org"):
        find_service(Bootstrap("inline", "", {"test": ("https://tld.test/",)}), "example.zz")


def test_the_domain_is_asked_of_the_server_of_its_longest_match(tmp_path: Path) -> None:
    documents = {
        "/sld/domain/foo.example.test": domain("foo.example.test", entity("Example Registrar, Inc.", "9999")),
        "/tld/domain/other.test": domain("other.test", entity("Api Registrar", "8888")),
    }
    with fake_rdap(documents) as fake:
        first = run_discover(tmp_path, fake, "foo.example.test")
        second = run_discover(tmp_path, fake, "other.test")
    assert first.registrar == Registrar(
        "Example Registrar, Inc.", "9999", f"{fake.base}/sld/domain/foo.example.test"
    )
    assert second.registrar.iana_id == "8888"


def test_the_rdap_request_asks_for_rdap_json(tmp_path: Path) -> None:
    with fake_rdap({"/tld/domain/other.test": domain("other.test", entity("Api Registrar", "8888"))}) as fake:
        run_discover(tmp_path, fake, "other.test")
    ((_, headers),) = fake.requests
    assert headers["accept"] == "application/rdap+json" and headers["user-agent"].startswith("dynmx/")


def test_a_404_means_the_domain_is_not_registered_there(tmp_path: Path) -> None:
    with (
        fake_rdap({}) as fake,
        pytest.raises(RegistrarDiscoveryError, match=r"404, www\.other\.test is not registered"),
    ):
        run_discover(tmp_path, fake, "www.other.test")


def test_an_answer_without_a_registrar_entity_is_an_error(tmp_path: Path) -> None:
    documents = {
        "/tld/domain/other.test": domain("other.test", entity("Someone", "1", roles=("registrant",)))
    }
    with (
        fake_rdap(documents) as fake,
        pytest.raises(RegistrarDiscoveryError, match="names no registrar entity"),
    ):
        run_discover(tmp_path, fake, "other.test")


def test_an_answer_with_two_registrars_is_an_error(tmp_path: Path) -> None:
    documents = {"/tld/domain/other.test": domain("other.test", entity("One", "1"), entity("Two", "2"))}
    with (
        fake_rdap(documents) as fake,
        pytest.raises(RegistrarDiscoveryError, match=r"2 registrars: One .*Two"),
    ):
        run_discover(tmp_path, fake, "other.test")


def test_a_directory_hit_gives_a_block_that_loads(tmp_path: Path) -> None:
    with fake_rdap(
        {"/tld/domain/other.test": domain("other.test", entity("Example Registrar, Inc.", "9999"))}
    ) as fake:
        found = run_discover(tmp_path, fake, "other.test")
    block = found.block
    assert "IANA Registrar ID 9999" in block and "Create a dynamic DNS login" in block
    (table,) = tomllib.loads(block)["registrar"]
    assert table == {
        "name": "other-test", "adapter": "dyndns2", "url": "https://dyn.example.test/nic/update",
        "username": "", "password": "", "hostnames": [],
    }  # fmt: skip


def test_the_block_loads_as_dynmx_config_once_its_secrets_are_filled_in(tmp_path: Path) -> None:
    with fake_rdap(
        {"/tld/domain/other.test": domain("other.test", entity("Example Registrar, Inc.", "9999"))}
    ) as fake:
        block = run_discover(tmp_path, fake, "other.test").block
    config = tmp_path / "dynmx.toml"
    config.write_text(block)
    with pytest.raises(ConfigError, match=r"registrar\[0\]\.username: required"):
        load_config(config)
    config.write_text(
        block.replace('username = ""', 'username = "u"').replace('password = ""', 'password = "p"')
    )
    (loaded,) = load_config(config).registrar
    assert (loaded.name, loaded.adapter, loaded.url) == (
        "other-test",
        "dyndns2",
        "https://dyn.example.test/nic/update",
    )


def test_a_template_entry_points_the_webhook_at_a_relay(tmp_path: Path) -> None:
    with fake_rdap({"/tld/domain/other.test": domain("other.test", entity("Api Registrar", "8888"))}) as fake:
        found = run_discover(tmp_path, fake, "other.test")
    (table,) = tomllib.loads(found.block)["registrar"]
    assert table["adapter"] == "webhook" and table["url"] == "https://relay.invalid/dynmx"
    assert "it calls https://api.registrar.test/v1/" in found.block


def test_a_directory_miss_names_the_registrar_and_gives_a_webhook_template(tmp_path: Path) -> None:
    documents = {"/tld/domain/other.test": domain("other.test", entity("Unknown Reg", "4242"))}
    expected = r"Unknown Reg \(IANA ID 4242\) is not in"
    with fake_rdap(documents) as fake, pytest.raises(RegistrarNotInDirectory, match=expected) as miss:
        run_discover(tmp_path, fake, "other.test")
    assert miss.value.registrar.iana_id == "4242"
    (table,) = tomllib.loads(miss.value.block)["registrar"]
    assert table == {
        "name": "other-test",
        "adapter": "webhook",
        "url": "https://relay.invalid/dynmx",
        "token": "",
    }


def test_a_hostile_registrar_name_cannot_add_toml(tmp_path: Path) -> None:
    hostile = 'Evil\n[[registrar]]\nname = "x"\nadapter = "webhook"\u2028\x7f'
    with fake_rdap({"/tld/domain/other.test": domain("other.test", entity(hostile, "9999"))}) as fake:
        found = run_discover(tmp_path, fake, "other.test")
    document = tomllib.loads(found.block)
    assert len(document["registrar"]) == 1 and set(document) == {"registrar"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not JSON"),
        ('{"version": "1.0"}', "no 'services' list"),
        ('{"services": [[["test"]]]}', r"services\[0\] is not"),
        ('{"services": [[["test"], ["ftp://rdap.test/"]]]}', r"services\[0\] needs http\(s\) URLs"),
    ],
)
def test_a_bad_bootstrap_file_is_an_error(text: str, problem: str) -> None:
    with pytest.raises(RegistrarDiscoveryError, match=rf"^boot\.json: bad bootstrap file: .*{problem}"):
        parse_bootstrap(text, "boot.json")


def test_a_missing_bootstrap_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RegistrarDiscoveryError, match="cannot read the bootstrap file"):
        asyncio.run(load_bootstrap(tmp_path / "missing.json"))


def test_the_bootstrap_may_come_from_an_http_url(tmp_path: Path) -> None:
    document = json.loads(DEFAULT_BOOTSTRAP.read_text())
    with fake_rdap({"/rdap/dns.json": document}) as fake:
        loaded = asyncio.run(load_bootstrap(f"{fake.base}/rdap/dns.json", timeout=5.0))
    assert loaded.services["com"] == ("https://rdap.verisign.com/com/v1/",)


def test_a_directory_with_an_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = directory_file(
        tmp_path, '[registrar."1"]\nname = "R"\nadapter = "dyndns2"\nurl = ""\npasword = "x"\n'
    )
    with pytest.raises(RegistrarDiscoveryError, match=r"registrar\.1: unknown keys pasword"):
        load_directory(path)


def test_the_shipped_examples_load() -> None:
    bootstrap = parse_bootstrap(DEFAULT_BOOTSTRAP.read_bytes(), "examples/rdap-dns.json")
    assert find_service(bootstrap, "example.com") == ("com", "https://rdap.verisign.com/com/v1/")
    assert "excerpt" in json.loads(DEFAULT_BOOTSTRAP.read_text())["description"].lower()
    directory = load_directory(DEFAULT_DIRECTORY)
    assert directory["433"].adapter == "dyndns2"
    assert all(entry.template for entry in directory.values() if entry.adapter == "webhook")


def cli(tmp_path: Path, fake: FakeRdap, *argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dynmx")
    registrar_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    options = [
        "--bootstrap",
        str(bootstrap_file(tmp_path, fake.base)),
        "--directory",
        str(directory_file(tmp_path)),
    ]
    args = parser.parse_args(["registrar", "discover", *argv, *options, "--timeout", "5"])
    return int(args.func(args))


RDAP_HIT = {"/tld/domain/other.test": domain("other.test", entity("Example Registrar, Inc.", "9999"))}


def test_cli_prints_the_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_rdap(RDAP_HIT) as fake:
        assert cli(tmp_path, fake, "other.test") == 0
    assert tomllib.loads(capsys.readouterr().out)["registrar"][0]["adapter"] == "dyndns2"


def test_cli_write_appends_once_and_refuses_a_second_block_of_that_name(tmp_path: Path) -> None:
    config = tmp_path / "dynmx.toml"
    config.write_text('[server]\nlisten = ["127.0.0.1:5353"]  # keep me\n')
    with fake_rdap(RDAP_HIT) as fake:
        assert cli(tmp_path, fake, "other.test", "--write", str(config)) == 0
        once = config.read_text()
        assert cli(tmp_path, fake, "other.test", "--write", str(config)) == 2
    assert once.startswith('[server]\nlisten = ["127.0.0.1:5353"]  # keep me\n\n# other.test: registrar')
    assert config.read_text() == once
    assert [t["name"] for t in tomllib.loads(once)["registrar"]] == ["other-test"]


def test_cli_miss_exits_1_with_the_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_rdap({"/tld/domain/other.test": domain("other.test", entity("Unknown Reg", "4242"))}) as fake:
        assert cli(tmp_path, fake, "other.test") == 1
    out, err = capsys.readouterr()
    assert 'adapter = "webhook"' in out and "Unknown Reg (IANA ID 4242)" in err


def test_cli_error_exits_2_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_rdap({}) as fake:
        assert cli(tmp_path, fake, "missing.test") == 2
    assert "404" in capsys.readouterr().err

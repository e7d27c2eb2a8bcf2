"""`dynmx dnssec push-ds ZONE`: the DS of a zone dynmx signs, pushed to its parent.

The parent is real: a second dynmx server serving `test.` with the delegation of
`example.test.` and a TSIG key allowed to UPDATE it (RFC 2136); after the push it answers
the new DS. The webhook gets a real HTTP receiver on loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.dnssec
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import pytest

from dynmx.zone.keys import ensure_key, load_keys
from tests.conftest import TEST_SECRET, RunningServer, wait_until
from tests.fake_servers import QuietHandler, http_server

ROOT = Path(__file__).resolve().parents[2]
CHILD = dns.name.from_text("example.test.")
TOKEN = "tok-ds-7f1e-secret"
PARENT_ZONE = """$ORIGIN test.
$TTL 3600
@ IN SOA ns1.test. hostmaster.test. 1 7200 3600 1209600 300
@ IN NS ns1.test.
ns1 IN A 127.0.0.1
example IN NS ns1.example.test.
ns1.example IN A 127.0.0.2
"""


def _dynmx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynmx", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def _parent(tmp_path: Path, serve: Callable[..., RunningServer], zone: str = PARENT_ZONE) -> RunningServer:
    """A dynmx server for `test.` that takes UPDATEs signed with parent-key."""
    root = tmp_path / "parent"
    (root / "zones").mkdir(parents=True)
    (root / "zones" / "test.zone").write_text(zone)
    config = root / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{root / "zones"}"\n'
        f'state_dir = "{root / "state"}"\n'
        f'[[key]]\nname = "parent-key."\nsecret = "{TEST_SECRET}"\n'
        '[[zone]]\nname = "test."\nserial = "increment"\nallow_update = ["parent-key."]\n'
    )
    return serve("--config", str(config))


def _child_config(tmp_path: Path, registrar: str) -> Path:
    root = tmp_path / "child"
    (root / "zones").mkdir(parents=True, exist_ok=True)
    config = root / "dynmx.toml"
    config.write_text(
        f'[server]\nzones_dir = "{root / "zones"}"\nstate_dir = "{root / "state"}"\n'
        f'[[key]]\nname = "parent-key."\nsecret = "{TEST_SECRET}"\n'
        '[[zone]]\nname = "example.test."\ndnssec = true\n' + registrar
    )
    return config


def _rfc2136(port: int, ds_zones: str = '["example.test."]') -> str:
    return (
        '[[registrar]]\nname = "parent"\nadapter = "rfc2136"\n'
        f'server = "127.0.0.1:{port}"\nzone = "test."\nkey = "parent-key."\nds_zones = {ds_zones}\n'
    )


def _ds_at(server: RunningServer) -> list[str]:
    query = dns.message.make_query(CHILD, dns.rdatatype.DS)
    answer = dns.query.udp(query, "127.0.0.1", port=server.dns_port, timeout=3)
    return sorted(rd.to_text() for rrset in answer.answer if rrset.rdtype == dns.rdatatype.DS for rd in rrset)


def test_rfc2136_push_makes_the_parent_answer_the_new_ds(
    tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    """RFC 2136 UPDATE to the parent zone, TSIG-signed; the parent serves the DS after it."""
    parent = _parent(tmp_path, serve)
    config = _child_config(tmp_path, _rfc2136(parent.dns_port))
    key = ensure_key(tmp_path / "child" / "state", CHILD, "ecdsap256sha256")
    expected = dns.dnssec.make_ds(CHILD, key.dnskey, "SHA256").to_text()
    assert _ds_at(parent) == []
    result = _dynmx("dnssec", "push-ds", "example.test", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registrar parent (rfc2136): success: NOERROR" in result.stdout
    assert _ds_at(parent) == [expected]


def test_rfc2136_push_replaces_the_whole_ds_rrset(
    tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    """A DS left from an old key is gone after the push: the parent holds exactly the pushed set."""
    stale = "example IN DS 11111 13 2 " + "ab" * 32 + "\n"
    parent = _parent(tmp_path, serve, PARENT_ZONE + stale)
    assert len(_ds_at(parent)) == 1
    config = _child_config(tmp_path, _rfc2136(parent.dns_port))
    key = ensure_key(tmp_path / "child" / "state", CHILD, "ed25519")
    assert _dynmx("dnssec", "push-ds", "example.test", "-c", str(config)).returncode == 0
    assert _ds_at(parent) == [dns.dnssec.make_ds(CHILD, key.dnskey, "SHA256").to_text()]


def test_rfc2136_push_without_a_delegation_writes_nothing_rfc2136_2_4_1(
    tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    """The child's NS RRset is a prerequisite: a parent without the delegation answers NXRRSET."""
    parent = _parent(tmp_path, serve, PARENT_ZONE.replace("example IN NS ns1.example.test.\n", ""))
    config = _child_config(tmp_path, _rfc2136(parent.dns_port))
    ensure_key(tmp_path / "child" / "state", CHILD, "ecdsap256sha256")
    result = _dynmx("dnssec", "push-ds", "example.test", "-c", str(config), "--json")
    assert result.returncode == 1
    [push] = json.loads(result.stdout)["pushes"]
    assert push["outcome"] == "stop"
    assert "has no NS records for example.test." in push["message"]
    assert _ds_at(parent) == []


def test_rfc2136_push_with_a_wrong_secret_is_refused_and_named(
    tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    parent = _parent(tmp_path, serve)
    config = _child_config(tmp_path, _rfc2136(parent.dns_port))
    config.write_text(config.read_text().replace(TEST_SECRET, "b3RoZXJzZWNyZXRvdGhlcnNlY3JldA=="))
    ensure_key(tmp_path / "child" / "state", CHILD, "ecdsap256sha256")
    result = _dynmx("dnssec", "push-ds", "example.test", "-c", str(config))
    assert result.returncode == 1
    assert "stop: NOTAUTH" in result.stdout
    assert _ds_at(parent) == []


@contextmanager
def _receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], object]]]]:
    posts: list[tuple[dict[str, str], object]] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            posts.append(
                ({k.lower(): v for k, v in self.headers.items()}, json.loads(self.rfile.read(length)))
            )
            self.reply(200, b"ok")

    with http_server(Handler) as port:
        yield f"http://127.0.0.1:{port}/hooks/ds", posts


def test_webhook_push_posts_the_ds_set_as_json_with_the_token(tmp_path: Path) -> None:
    key = ensure_key(tmp_path / "child" / "state", CHILD, "ecdsap256sha256")
    ds = dns.dnssec.make_ds(CHILD, key.dnskey, "SHA256")
    with _receiver() as (url, posts):
        block = (
            f'[[registrar]]\nname = "relay"\nadapter = "webhook"\nurl = "{url}"\ntoken = "{TOKEN}"\n'
            'ds_zones = ["example.test."]\n'
        )
        result = _dynmx("dnssec", "push-ds", "example.test.", "-c", str(_child_config(tmp_path, block)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registrar relay (webhook): success: HTTP 200: ok" in result.stdout
    [(headers, payload)] = posts
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert payload == {
        "zone": "example.test",
        "ds": [{"key_tag": ds.key_tag, "algorithm": 13, "digest_type": 2, "digest": ds.digest.hex()}],
        "records": [f"example.test. IN DS {ds.to_text()}"],
    }
    assert TOKEN not in result.stdout + result.stderr


def test_registrar_option_picks_one_adapter_not_listing_the_zone(tmp_path: Path) -> None:
    ensure_key(tmp_path / "child" / "state", CHILD, "ecdsap256sha256")
    with _receiver() as (url, posts):
        block = f'[[registrar]]\nname = "relay"\nadapter = "webhook"\nurl = "{url}"\ntoken = "{TOKEN}"\n'
        config = _child_config(tmp_path, block)
        missing = _dynmx("dnssec", "push-ds", "example.test.", "-c", str(config))
        named = _dynmx("dnssec", "push-ds", "example.test.", "-c", str(config), "--registrar", "relay")
    assert missing.returncode == 2
    assert "lists example.test. in ds_zones" in missing.stderr
    assert named.returncode == 0, named.stderr
    assert len(posts) == 1


def test_dyndns2_with_ds_zones_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    block = (
        '[[registrar]]\nname = "dyn"\nadapter = "dyndns2"\nurl = "https://dyn.example/nic/update"\n'
        'username = "u"\npassword = "p"\nds_zones = ["example.test."]\n'
    )
    config = _child_config(tmp_path, block)
    result = _dynmx("check", "-c", str(config))
    assert result.returncode == 1
    line = config.read_text().splitlines().index('ds_zones = ["example.test."]') + 1
    assert f"{config}:{line}: registrar[0].ds_zones: dyndns2 carries only a hostname and an address" in (
        result.stdout
    )


def test_rfc2136_ds_zone_outside_the_updated_zone_is_a_config_error(tmp_path: Path) -> None:
    config = _child_config(tmp_path, _rfc2136(53, '["example.org."]'))
    result = _dynmx("check", "-c", str(config))
    assert result.returncode == 1
    assert "registrar[0].ds_zones[0]: example.org. is not a child zone of zone = test." in result.stdout


def test_ds_zones_naming_a_zone_dynmx_does_not_sign_is_a_config_error(tmp_path: Path) -> None:
    """A pre-signed zone's keys are not dynmx's: neither is its DS."""
    config = _child_config(tmp_path, _rfc2136(53, '["other.test."]'))
    result = _dynmx("check", "-c", str(config))
    assert result.returncode == 1
    assert "registrar[0].ds_zones[0]: other.test. is not a zone dynmx signs" in result.stdout


def test_no_key_yet_says_to_start_the_server(tmp_path: Path) -> None:
    config = _child_config(tmp_path, _rfc2136(53))
    result = _dynmx("dnssec", "push-ds", "example.test", "-c", str(config))
    assert result.returncode == 1
    assert "has no DNSSEC key" in result.stderr


@pytest.mark.parametrize("kind", ["dyndns2"])
def test_dyndns2_adapter_cannot_carry_ds(kind: str) -> None:
    import asyncio

    from dynmx.selfcheck.ds_push import push_ds
    from dynmx.selfcheck.dyndns2_client import Dyndns2Adapter, Dyndns2Settings
    from dynmx.selfcheck.registrar import Outcome

    adapter = Dyndns2Adapter(Dyndns2Settings("dyn", "https://dyn.example/nic/update", "u", "p", (), 5.0, ""))
    result = asyncio.run(push_ds(adapter, CHILD, []))
    assert result.outcome is Outcome.STOP
    assert kind in result.message and "never DS records" in result.message


CHILD_ZONE = """$ORIGIN example.test.
$TTL 3600
@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@ IN NS ns1
ns1 IN A 127.0.0.2
"""


def _signing_child(
    tmp_path: Path, serve: Callable[..., RunningServer], parent: RunningServer
) -> RunningServer:
    """A dynmx server signing example.test. whose rfc2136 adapter lists it in ds_zones."""
    root = tmp_path / "child"
    config = _child_config(
        tmp_path,
        '[http]\nlisten = "127.0.0.1:0"\n[selfcheck]\nmin_interval = 0\n' + _rfc2136(parent.dns_port),
    )
    (root / "zones" / "example.test.zone").write_text(CHILD_ZONE)
    config.write_text(config.read_text().replace("[server]\n", '[server]\nlisten = ["127.0.0.1:0"]\n'))
    return serve("--config", str(config))


def test_a_signing_server_pushes_its_first_ds_by_itself(
    tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    """Knot's ds-push: the key made at the first start reaches the parent without a command."""
    parent = _parent(tmp_path, serve)
    child = _signing_child(tmp_path, serve, parent)
    child.wait_for_log("event=registrar-push", timeout=15)
    [key] = load_keys(tmp_path / "child" / "state", CHILD)
    wait_until(lambda: _ds_at(parent) == [dns.dnssec.make_ds(CHILD, key.dnskey, "SHA256").to_text()], 10)
    with urllib.request.urlopen(f"http://127.0.0.1:{child.http_port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'dynmx_dnssec_ds_pushes_total{adapter="parent",outcome="success"} 1.0' in metrics


def test_a_rollover_start_pushes_both_keys_ds_double_ds(
    tmp_path: Path, serve: Callable[..., RunningServer]
) -> None:
    """While the new key is pre-published both keys' CDS are served, and the parent gets both DS."""
    parent = _parent(tmp_path, serve)
    child = _signing_child(tmp_path, serve, parent)
    wait_until(lambda: len(_ds_at(parent)) == 1, 15)
    config = tmp_path / "child" / "dynmx.toml"
    run = _dynmx("dnssec", "rollover", "example.test", "start", "-c", str(config))
    assert run.returncode == 0, run.stdout + run.stderr
    keys = load_keys(tmp_path / "child" / "state", CHILD)
    expected = sorted(dns.dnssec.make_ds(CHILD, key.dnskey, "SHA256").to_text() for key in keys)
    assert len(expected) == 2
    wait_until(lambda: _ds_at(parent) == expected, 15)
    assert child.process.poll() is None


def test_webhook_ds_push_refused_token_stops_and_is_not_shown(tmp_path: Path) -> None:
    """401 from the relay: stop until the config changes, as for an address push."""
    import asyncio

    from dynmx.selfcheck.ds_push import push_ds
    from dynmx.selfcheck.registrar import Outcome
    from dynmx.selfcheck.webhook import WebhookAdapter, WebhookSettings

    class Refusing(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.reply(401, f"bad token {TOKEN}".encode())

    key = ensure_key(tmp_path / "state", CHILD, "ed25519")
    ds = [dns.dnssec.make_ds(CHILD, key.dnskey, "SHA256")]
    with http_server(Refusing) as port:
        hook = WebhookAdapter(WebhookSettings("relay", f"http://127.0.0.1:{port}/ds", TOKEN, timeout=2.0))
        result = asyncio.run(push_ds(hook, CHILD, ds))
    assert result.outcome is Outcome.STOP
    assert "HTTP 401" in result.message and TOKEN not in result.message

"""The webhook adapter against a real HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from dynmx import __version__
from dynmx.errors import ConfigError
from dynmx.selfcheck.registrar import Outcome, PushResult
from dynmx.selfcheck.webhook import WebhookAdapter, WebhookSettings
from tests.fake_servers import QuietHandler, http_server

TOKEN = "tok-3f9a-secret"


@dataclass
class Receiver:
    """Answers every POST with `status` and `body`; records headers and JSON bodies."""

    status: int = 200
    body: str = ""
    url: str = ""
    posts: list[tuple[dict[str, str], object]] = field(default_factory=list)


@contextmanager
def receiver(status: int = 200, body: str = "") -> Iterator[Receiver]:
    fake = Receiver(status, body)

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            payload = json.loads(self.rfile.read(length))
            fake.posts.append(({k.lower(): v for k, v in self.headers.items()}, payload))
            moved = {"Location": "http://127.0.0.1:9/elsewhere"} if 300 <= fake.status < 400 else {}
            self.reply(fake.status, fake.body.encode(), moved)

    with http_server(Handler) as port:
        fake.url = f"http://127.0.0.1:{port}/hooks/dynmx"
        yield fake


def push(
    url: str, previous: str | None = "192.0.2.1", family: int = 4, address: str = "192.0.2.7"
) -> PushResult:
    hook = WebhookAdapter(WebhookSettings("hook", url, TOKEN, timeout=2.0))
    return asyncio.run(hook.push("ns1.example.test.", family, address, previous))


def test_posts_json_with_the_bearer_token() -> None:
    with receiver(200, "ok") as fake:
        result = push(fake.url)
    assert result == PushResult(Outcome.SUCCESS, "HTTP 200: ok")
    ((headers, payload),) = fake.posts
    assert payload == {
        "hostname": "ns1.example.test",
        "family": 4,
        "address": "192.0.2.7",
        "previous": "192.0.2.1",
    }
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"dynmx/{__version__}"


def test_an_unknown_previous_is_null_and_ipv6_has_family_6() -> None:
    with receiver(204) as fake:
        result = push(fake.url, previous=None, family=6, address="2001:db8::7")
    assert result.outcome is Outcome.SUCCESS
    assert fake.posts[0][1] == {
        "hostname": "ns1.example.test",
        "family": 6,
        "address": "2001:db8::7",
        "previous": None,
    }


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_stops(status: int) -> None:
    with receiver(status) as fake:
        result = push(fake.url)
    assert result.outcome is Outcome.STOP and "token" in result.message


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_receiver_trouble_backs_off(status: int) -> None:
    with receiver(status) as fake:
        assert push(fake.url).outcome is Outcome.BACKOFF


def test_another_client_error_stops() -> None:
    with receiver(404, "no such hook") as fake:
        result = push(fake.url)
    assert result == PushResult(
        Outcome.STOP, "HTTP 404: the receiver rejected the request: no such hook; check url"
    )


def test_a_redirect_is_not_followed() -> None:
    with receiver(307) as fake:
        result = push(fake.url)
    assert result.outcome is Outcome.STOP and "redirect" in result.message and len(fake.posts) == 1


def test_a_silent_receiver_backs_off_after_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        hook = WebhookAdapter(
            WebhookSettings("hook", f"http://127.0.0.1:{silent.getsockname()[1]}/", TOKEN, 0.5)
        )
        result = asyncio.run(hook.push("ns1.example.test.", 4, "192.0.2.7", None))
    assert result.outcome is Outcome.BACKOFF and "no answer within 0.5 s" in result.message


def test_connection_refused_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert push(f"http://127.0.0.1:{port}/").outcome is Outcome.RETRY


def test_a_connection_reset_mid_answer_retries() -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=request)

    hook = WebhookAdapter(
        WebhookSettings("hook", "https://hook.example.test/", TOKEN), httpx.MockTransport(reset)
    )
    result = asyncio.run(hook.push("ns1.example.test.", 4, "192.0.2.7", None))
    assert result.outcome is Outcome.RETRY and "ReadError" in result.message


def test_the_token_never_shows() -> None:
    with receiver(400, f"bad token {TOKEN}") as fake:
        result = push(fake.url)
        hook = WebhookAdapter(WebhookSettings("hook", fake.url, TOKEN))
    for text in (result.message, repr(hook.settings), repr(hook), hook.fingerprint()):
        assert TOKEN not in text


def test_settings_refuse_an_empty_token() -> None:
    with pytest.raises(ConfigError, match=r"^registrar\.hook\.token: "):
        WebhookSettings("hook", "https://hook.example.test/", "")

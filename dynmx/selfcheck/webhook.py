"""The webhook adapter: a JSON POST to an operator's script or relay, with a bearer token.

    POST url   Authorization: Bearer TOKEN   Content-Type: application/json
    {"hostname": "ns1.example.com", "family": 4, "address": "192.0.2.7", "previous": "192.0.2.1"}

This is the adapter for registrars whose API is not dyndns2 (glue/host objects, Cloudflare,
Gandi, ...): the relay translates the call. 2xx is success; 401/403 and other 4xx stop until
the config changes (the token or URL is wrong); 408, 429, 5xx and timeouts back off;
connection errors retry after min_interval. Redirects are not followed (they would carry
the token), and the token never enters a message or repr.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from dynmx.errors import ConfigError
from dynmx.selfcheck.registrar import (
    Outcome,
    PushResult,
    check_settings,
    excerpt,
    fingerprint_of,
    http_client,
    read_bounded,
    redact,
    user_agent,
)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Where to POST, and the bearer token the receiver checks."""

    name: str
    url: str
    token: str = field(repr=False)
    timeout: float = 30.0
    contact: str = ""  # appended to the User-Agent

    def __post_init__(self) -> None:
        check_settings(self.name, self.url, self.timeout)
        if not self.token or not self.token.isascii() or any(c.isspace() for c in self.token):
            raise ConfigError(f"registrar.{self.name}.token: expected a non-empty ASCII token without spaces")


class WebhookAdapter:
    """Pushes addresses as JSON to one URL."""

    kind = "webhook"

    def __init__(self, settings: WebhookSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.transport = transport  # for faults a real server cannot make, in tests
        public = (settings.name, settings.url, settings.timeout, settings.contact)
        self._fingerprint = fingerprint_of(self.kind, public, settings.token)

    @property
    def name(self) -> str:
        return self.settings.name

    def fingerprint(self) -> str:
        return self._fingerprint

    def __repr__(self) -> str:
        return f"WebhookAdapter(name={self.name!r}, url={self.settings.url!r})"

    async def push(self, hostname: str, family: int, address: str, previous: str | None) -> PushResult:
        """One POST; the body names the host, the family, the new and the old address."""
        s = self.settings
        payload = {
            "hostname": hostname.rstrip("."),
            "family": family,
            "address": address,
            "previous": previous,
        }
        headers = {"Authorization": f"Bearer {s.token}", "User-Agent": user_agent(s.contact)}
        try:
            async with (
                asyncio.timeout(s.timeout),
                http_client(s.timeout, self.transport) as client,
                client.stream("POST", s.url, json=payload, headers=headers) as response,
            ):
                body = await read_bounded(response)
        except (httpx.TimeoutException, TimeoutError) as error:
            return PushResult(Outcome.BACKOFF, f"no answer within {s.timeout} s ({type(error).__name__})")
        except httpx.HTTPError as error:
            return PushResult(
                Outcome.RETRY, f"cannot reach {s.url}: {type(error).__name__}: {redact(str(error), s.token)}"
            )
        return _verdict(response.status_code, excerpt(redact(body, s.token)))


def _verdict(status: int, body: str) -> PushResult:
    said = f": {body}" if body else ""
    if 200 <= status < 300:
        return PushResult(Outcome.SUCCESS, f"HTTP {status}{said}")
    if status in (401, 403):
        return PushResult(
            Outcome.STOP, f"HTTP {status}: the receiver refused the token; fix token in the config"
        )
    if 300 <= status < 400:
        return PushResult(Outcome.STOP, f"HTTP {status} redirect: set url to the final address")
    if status in (408, 429) or status >= 500:
        return PushResult(Outcome.BACKOFF, f"HTTP {status} from the receiver{said}")
    return PushResult(Outcome.STOP, f"HTTP {status}: the receiver rejected the request{said}; check url")

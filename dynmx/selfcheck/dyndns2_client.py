"""The dyndns2 client adapter: `GET /nic/update?hostname=...&myip=...` with basic auth.

Return codes as ddclient and inadyn read them (the dyndns2 spec, one line per hostname in
the order sent; an account-level code such as `badauth` or `911` comes once for all):

    good IP, nochg IP                         success (a repeated nochg: see registrar.py)
    badauth nohost notfqdn badagent abuse     stop until the config changes: retrying
    !yours numhost badsys !donator !active    would only get the account blocked
    911 dnserr, HTTP 5xx and 429, timeouts    back off 30 min, growing
    connection errors                         retry after min_interval

`good 127.0.0.1` for any other address is the provider saying it ignored a client that
broke the protocol: a stop. Redirects are not followed (they would carry the password).
"""

from __future__ import annotations

import asyncio
import ipaddress
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

SUCCESS_CODES = {"good", "nochg"}
STOP_CODES = {
    "badauth": "the provider refused the username or password; fix them in the config",
    "nohost": "{host} is not a host of this account; check hostnames in the config",
    "notfqdn": "{host} is not a fully qualified name the provider accepts",
    "badagent": "the provider blocked this client or request form; report it to dynmx",
    "abuse": "the provider blocked {host} for abuse; unblock it in its web panel, then change the config",
    "!yours": "{host} belongs to another account; check username and hostnames",
    "numhost": "too many hosts in one request, or {host} is a round robin at the provider",
    "badsys": "the provider does not take this system parameter",
    "!donator": "the provider wants a paid account for this feature",
    "!active": "{host} is not active at the provider; activate it in its web panel",
}
BACKOFF_CODES = {
    "911": "trouble at the provider (911); it asks for at least 30 minutes of quiet",
    "dnserr": "a DNS error at the provider (dnserr)",
}
KNOWN_CODES = SUCCESS_CODES | set(STOP_CODES) | set(BACKOFF_CODES)
SEVERITY = {Outcome.SUCCESS: 0, Outcome.RETRY: 1, Outcome.BACKOFF: 2, Outcome.STOP: 3}


@dataclass(frozen=True, slots=True)
class Dyndns2Settings:
    """A dyndns2 account: `url` is the full update URL (e.g. https://www.ovh.com/nic/update)."""

    name: str
    url: str
    username: str
    password: str = field(repr=False)
    hostnames: tuple[str, ...] = ()  # sent together (comma-separated) instead of the pushed hostname
    timeout: float = 30.0
    contact: str = ""  # appended to the User-Agent, e.g. an e-mail address the provider can write to

    def __post_init__(self) -> None:
        check_settings(self.name, self.url, self.timeout)
        if not self.username:
            raise ConfigError(f"registrar.{self.name}.username: must not be empty")
        for index, host in enumerate(self.hostnames):
            if "." not in host.strip(".") or "," in host or " " in host:
                raise ConfigError(
                    f"registrar.{self.name}.hostnames[{index}]: expected a fully qualified name"
                )


class Dyndns2Adapter:
    """Pushes addresses to one dyndns2 account."""

    kind = "dyndns2"

    def __init__(self, settings: Dyndns2Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.transport = transport  # for faults a real server cannot make, in tests
        public = (
            settings.name,
            settings.url,
            settings.username,
            settings.hostnames,
            settings.timeout,
            settings.contact,
        )
        self._fingerprint = fingerprint_of(self.kind, public, settings.password)

    @property
    def name(self) -> str:
        return self.settings.name

    def fingerprint(self) -> str:
        return self._fingerprint

    def __repr__(self) -> str:
        return f"Dyndns2Adapter(name={self.name!r}, url={self.settings.url!r})"

    async def push(self, hostname: str, family: int, address: str, previous: str | None) -> PushResult:
        """One update request for every configured hostname (or `hostname`); `previous` is unused."""
        hosts = [h.rstrip(".") for h in self.settings.hostnames] or [hostname.rstrip(".")]
        url = httpx.URL(self.settings.url).copy_merge_params({"hostname": ",".join(hosts), "myip": address})
        headers = {"User-Agent": user_agent(self.settings.contact)}
        auth = httpx.BasicAuth(self.settings.username, self.settings.password)
        timeout = self.settings.timeout
        try:
            async with (
                asyncio.timeout(timeout),
                http_client(timeout, self.transport) as client,
                client.stream("GET", url, headers=headers, auth=auth) as response,
            ):
                body = await read_bounded(response)
        except (httpx.TimeoutException, TimeoutError) as error:
            return PushResult(Outcome.BACKOFF, f"no answer within {timeout} s ({type(error).__name__})")
        except httpx.HTTPError as error:
            return PushResult(Outcome.RETRY, f"cannot reach {url.host}: {type(error).__name__}: {error}")
        return self._verdict(response.status_code, redact(body, self.settings.password), hosts, address)

    def _verdict(self, status: int, body: str, hosts: list[str], address: str) -> PushResult:
        lines = [line.strip() for line in body.strip().splitlines() if line.strip()]
        known = bool(lines) and lines[0].split()[0] in KNOWN_CODES
        if 300 <= status < 400:
            return PushResult(Outcome.STOP, f"HTTP {status} redirect: set url to the final address")
        if status == 429 or status >= 500:
            return PushResult(
                Outcome.BACKOFF, f"HTTP {status} from the provider: {excerpt(body) or 'no body'}"
            )
        if status == 401 and not known:
            lines = ["badauth"]
        elif 400 <= status < 500 and not known:
            return PushResult(Outcome.STOP, f"HTTP {status}: {excerpt(body) or 'no body'}; check url")
        if not lines:
            return PushResult(Outcome.BACKOFF, f"HTTP {status} with an empty body")
        if len(lines) == 1 and len(hosts) > 1:
            lines = lines * len(hosts)  # one account-level answer for all
        results = [
            _line(host, lines[i] if i < len(lines) else "", address, status) for i, host in enumerate(hosts)
        ]
        worst = max(results, key=lambda r: SEVERITY[r.outcome])
        message = "; ".join(r.message for r in results)
        nochg = worst.outcome is Outcome.SUCCESS and all(r.nochg for r in results)
        return PushResult(worst.outcome, message, nochg)


def _line(host: str, line: str, address: str, status: int) -> PushResult:
    """One host's answer line (`good 192.0.2.1`, `nohost`, ...) as a result."""
    code, _, rest = line.partition(" ")
    answered = rest.strip()
    if code in SUCCESS_CODES and 200 <= status < 300:
        if code == "good" and answered == "127.0.0.1" and address != "127.0.0.1":
            return PushResult(
                Outcome.STOP,
                f"{host}: good 127.0.0.1: the provider ignored the request as not following its spec",
            )
        if answered and _same(answered, address) is False:  # it may take the source address, not myip
            return PushResult(
                Outcome.BACKOFF, f"{host}: {code} but the provider holds {answered}, not {address}"
            )
        return PushResult(Outcome.SUCCESS, f"{host}: {code} {address}", code == "nochg")
    if code in STOP_CODES:
        return PushResult(Outcome.STOP, f"{host}: {code}: " + STOP_CODES[code].format(host=host))
    if code in BACKOFF_CODES:
        return PushResult(Outcome.BACKOFF, f"{host}: {BACKOFF_CODES[code]}")
    shown = excerpt(line) or "no answer line"
    return PushResult(Outcome.BACKOFF, f"{host}: HTTP {status}, unexpected answer {shown!r}")


def _same(answered: str, address: str) -> bool | None:
    """Whether the provider's echoed address is ours; None when it echoed no address."""
    try:
        return ipaddress.ip_address(answered) == ipaddress.ip_address(address)
    except ValueError:
        return None

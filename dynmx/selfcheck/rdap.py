"""Registrar discovery: which registrar holds a domain (RDAP), and which adapter fits it.

    bootstrap (IANA dns.json, RFC 9224)  ->  the TLD's RDAP server (longest label match)
    GET <base>domain/<name>              ->  the entity with role "registrar": name, IANA ID
    directory TOML keyed by IANA ID      ->  a `[[registrar]]` config block to paste

Everything read from an RDAP server is untrusted text that ends up in a config file:
control characters are removed and strings are written as TOML basic strings, so a
registrar's name cannot add keys or tables. Errors are `RegistrarDiscoveryError`s that say
what to do next.
"""

from __future__ import annotations

import json
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.name
import httpx

from dynmx.errors import RegistrarDiscoveryError as RegistrarDiscoveryError
from dynmx.selfcheck.rdap_files import DEFAULT_BOOTSTRAP as DEFAULT_BOOTSTRAP
from dynmx.selfcheck.rdap_files import DEFAULT_DIRECTORY as DEFAULT_DIRECTORY
from dynmx.selfcheck.rdap_files import IANA_BOOTSTRAP
from dynmx.selfcheck.registrar import excerpt, user_agent

ADAPTERS = ("dyndns2", "rfc2136", "webhook")
ENTRY_KEYS = {"name", "adapter", "url", "notes", "template"}
MAX_BYTES = 4 * 1024 * 1024  # a bootstrap file or RDAP answer larger than this is not one


class RegistrarNotInDirectory(RegistrarDiscoveryError):
    """Found the registrar but the directory has no adapter for it; `block` is a webhook template."""

    def __init__(self, message: str, registrar: Registrar, block: str) -> None:
        super().__init__(message)
        self.registrar = registrar
        self.block = block


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """An RDAP bootstrap registry: label suffix (e.g. "com") -> RDAP base URLs."""

    source: str
    publication: str
    services: dict[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Registrar:
    name: str
    iana_id: str | None
    rdap_url: str  # where it was read


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    iana_id: str
    name: str
    adapter: str
    url: str
    notes: str = ""
    template: bool = False  # a starting point to edit, not a working adapter


@dataclass(frozen=True, slots=True)
class Discovery:
    domain: str
    registrar: Registrar
    entry: DirectoryEntry
    block: str


def clean(text: str, limit: int = 200) -> str:
    """Untrusted text without control characters, on one line, at most `limit` characters."""
    kept = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in text)
    return " ".join(kept.split())[:limit]


def normalise(domain: str) -> str:
    """`Example.COM.` -> `example.com` (A-labels); at least two labels."""
    try:
        name = dns.name.from_text(domain.strip())
    except (dns.exception.DNSException, UnicodeError) as error:
        raise RegistrarDiscoveryError(f"{domain!r} is not a domain name ({error})") from None
    text = name.to_text(omit_final_dot=True).lower()
    if len(name.labels) < 3:
        raise RegistrarDiscoveryError(f"{domain!r}: give the registered domain, e.g. example.com")
    return text


def parse_bootstrap(data: str | bytes, source: str) -> Bootstrap:
    """A bootstrap file in IANA's dns.json format (RFC 9224 section 3)."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeError) as error:
        raise RegistrarDiscoveryError(f"{source}: bad bootstrap file: not JSON ({error})") from None
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, list):
        raise RegistrarDiscoveryError(f"{source}: bad bootstrap file: no 'services' list (RFC 9224 format?)")
    table: dict[str, tuple[str, ...]] = {}
    for index, service in enumerate(services):
        ok = (
            isinstance(service, list)
            and len(service) == 2
            and all(isinstance(part, list) for part in service)
        )
        if not ok or not all(isinstance(item, str) for part in service for item in part):
            raise RegistrarDiscoveryError(
                f"{source}: bad bootstrap file: services[{index}] is not [[labels...], [urls...]]"
            )
        labels, urls = service
        if not urls or not all(url.startswith(("https://", "http://")) for url in urls):
            raise RegistrarDiscoveryError(
                f"{source}: bad bootstrap file: services[{index}] needs http(s) URLs"
            )
        for label in labels:
            table[label.lower().strip(".")] = tuple(urls)
    return Bootstrap(source, str(document.get("publication", "")), table)


async def load_bootstrap(
    source: str | Path, timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None
) -> Bootstrap:
    """Read a bootstrap file from a path or an http(s) URL (e.g. IANA_BOOTSTRAP)."""
    text = str(source)
    if text.startswith(("https://", "http://")):
        async with _client(timeout, transport) as client:
            response = await _get(client, text, "application/json")
        if response.status_code != 200:
            raise RegistrarDiscoveryError(f"{text}: HTTP {response.status_code} fetching the bootstrap file")
        return parse_bootstrap(response.content, text)
    try:
        return parse_bootstrap(Path(text).read_bytes()[:MAX_BYTES], text)
    except OSError as error:
        raise RegistrarDiscoveryError(f"{text}: cannot read the bootstrap file ({error.strerror})") from None


def find_service(bootstrap: Bootstrap, domain: str) -> tuple[str, str]:
    """(matched suffix, RDAP base URL) by the longest label match; https preferred."""
    labels = normalise(domain).split(".")
    for start in range(len(labels)):
        suffix = ".".join(labels[start:])
        urls = bootstrap.services.get(suffix)
        if urls:
            base = next((url for url in urls if url.startswith("https://")), urls[0])
            return suffix, base if base.endswith("/") else base + "/"
    raise RegistrarDiscoveryError(
        f"{bootstrap.source} has no RDAP service for .{labels[-1]} (ccTLDs often have none); "
        f"try the full IANA file (--bootstrap {IANA_BOOTSTRAP}) or the registry's web site"
    )


def registrar_of(document: object, url: str) -> Registrar:
    """The one entity with role "registrar" in an RDAP domain answer: its name and IANA ID."""
    entities = document.get("entities") if isinstance(document, dict) else None
    found = [
        e
        for e in (entities if isinstance(entities, list) else [])
        if isinstance(e, dict) and isinstance(e.get("roles"), list) and "registrar" in e["roles"]
    ]
    if not found:
        raise RegistrarDiscoveryError(f"{url}: the answer names no registrar entity; ask the registry")
    registrars = [_registrar(entity, url) for entity in found]
    if len(registrars) > 1:
        names = ", ".join(f"{r.name} (IANA ID {r.iana_id or '?'})" for r in registrars)
        raise RegistrarDiscoveryError(
            f"{url}: the answer names {len(registrars)} registrars: {names}; pick by hand"
        )
    return registrars[0]


def _registrar(entity: dict[str, object], url: str) -> Registrar:
    name = ""
    vcard = entity.get("vcardArray")
    if isinstance(vcard, list) and len(vcard) == 2 and isinstance(vcard[1], list):
        for prop in vcard[1]:
            if isinstance(prop, list) and len(prop) >= 4 and prop[0] == "fn" and isinstance(prop[3], str):
                name = prop[3]
    handle = entity.get("handle")
    name = clean(name or (handle if isinstance(handle, str) else "") or "unnamed registrar")
    iana_id = None
    public_ids = entity.get("publicIds")
    for item in public_ids if isinstance(public_ids, list) else []:
        if isinstance(item, dict) and str(item.get("type", "")).lower() == "iana registrar id":
            iana_id = clean(str(item.get("identifier", "")), 20) or None
    return Registrar(name, iana_id, url)


async def lookup_registrar(
    domain: str,
    bootstrap: Bootstrap,
    timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Registrar:
    """Ask the domain's RDAP server who its registrar is."""
    name = normalise(domain)
    _, base = find_service(bootstrap, name)
    url = f"{base}domain/{name}"
    async with _client(timeout, transport) as client:
        response = await _get(client, url, "application/rdap+json")
    if response.status_code == 404:
        raise RegistrarDiscoveryError(
            f"{url}: 404, {name} is not registered there; give the registered domain (example.com, not www.)"
        )
    if response.status_code != 200:
        raise RegistrarDiscoveryError(f"{url}: HTTP {response.status_code}: {excerpt(clean(response.text))}")
    try:
        document = json.loads(response.content)
    except (ValueError, UnicodeError):
        raise RegistrarDiscoveryError(f"{url}: the answer is not JSON") from None
    return registrar_of(document, str(response.url))


def _client(timeout: float, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(timeout), follow_redirects=True, max_redirects=5
    )


async def _get(client: httpx.AsyncClient, url: str, accept: str) -> httpx.Response:
    try:
        async with client.stream(
            "GET", url, headers={"Accept": accept, "User-Agent": user_agent()}
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise RegistrarDiscoveryError(f"{url}: answer larger than {MAX_BYTES} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as error:
        raise RegistrarDiscoveryError(f"cannot fetch {url}: {type(error).__name__}: {error}") from None
    return httpx.Response(response.status_code, content=b"".join(chunks), request=response.request)


def load_directory(path: str | Path) -> dict[str, DirectoryEntry]:
    """The directory of known registrars: `[registrar."IANA ID"]` tables."""
    try:
        document = tomllib.loads(Path(path).read_text())
    except OSError as error:
        raise RegistrarDiscoveryError(f"{path}: cannot read the directory ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise RegistrarDiscoveryError(f"{path}: bad directory file: {error}") from None
    entries: dict[str, DirectoryEntry] = {}
    tables = document.get("registrar", {})
    if not isinstance(tables, dict):
        raise RegistrarDiscoveryError(f"{path}: registrar: expected tables keyed by IANA Registrar ID")
    for iana_id, table in tables.items():
        where = f"{path}: registrar.{iana_id}"
        if not isinstance(table, dict) or not iana_id.isdigit():
            raise RegistrarDiscoveryError(f"{where}: expected a table keyed by a numeric IANA Registrar ID")
        unknown = set(table) - ENTRY_KEYS
        if unknown:
            raise RegistrarDiscoveryError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        if table.get("adapter") not in ADAPTERS:
            raise RegistrarDiscoveryError(f"{where}.adapter: expected one of {', '.join(ADAPTERS)}")
        fields = {key: table.get(key, "") for key in ("name", "url", "notes")}
        if not all(isinstance(value, str) for value in fields.values()) or not fields["name"]:
            raise RegistrarDiscoveryError(f"{where}: name (required), url and notes must be strings")
        template = table.get("template", False)
        if not isinstance(template, bool):
            raise RegistrarDiscoveryError(f"{where}.template: expected true or false")
        entries[iana_id] = DirectoryEntry(iana_id, adapter=table["adapter"], template=template, **fields)
    return entries


def _toml(text: str) -> str:
    return json.dumps(clean(text, 500), ensure_ascii=False)


def block_name(domain: str) -> str:
    """The `[[registrar]]` name for a domain: one label, as the config wants (example.com -> example-com)."""
    return domain.replace(".", "-")[:63]


def config_block(domain: str, registrar: Registrar, entry: DirectoryEntry | None) -> str:
    """The `[[registrar]]` block for `domain`; secrets left empty so the config fails until filled in."""
    ident = f"IANA Registrar ID {registrar.iana_id}" if registrar.iana_id else "no IANA Registrar ID"
    lines = [f"# {domain}: registrar {clean(registrar.name)} ({ident}), from {clean(registrar.rdap_url)}"]
    if entry is None:
        lines.append(
            "# Not in the directory. Template: a relay that takes dynmx's JSON POST and calls the registrar."
        )
    elif entry.template:
        lines.append(
            "# Template: the registrar's API is not dyndns2; a relay at url must translate the POST."
        )
    lines += [f"# {clean(entry.notes, 300)}"] if entry is not None and entry.notes else []
    adapter = entry.adapter if entry is not None else "webhook"
    lines += ["[[registrar]]", f"name = {_toml(block_name(domain))}", f"adapter = {_toml(adapter)}"]
    if adapter == "dyndns2":
        lines += [
            f"url = {_toml(entry.url if entry else '')}",
            'username = ""  # fill in',
            'password = ""  # fill in',
        ]
        lines.append("hostnames = []  # empty: the name dynmx pushes")
    elif adapter == "rfc2136":
        lines += ['server = ""  # fill in: IP:PORT of the primary', f"zone = {_toml(domain + '.')}"]
        lines.append('key = ""  # fill in: the name of a [[key]] the primary accepts')
    elif entry is not None and not entry.template:
        lines += [f"url = {_toml(entry.url)}", 'token = ""  # fill in']
    else:
        api = f" (it calls {clean(entry.url)})" if entry is not None and entry.url else ""
        lines += [f'url = "https://relay.invalid/dynmx"  # fill in: your relay{api}', 'token = ""  # fill in']
    return "\n".join(lines) + "\n"


async def discover(
    domain: str,
    bootstrap_source: str | Path = DEFAULT_BOOTSTRAP,
    directory_path: str | Path = DEFAULT_DIRECTORY,
    timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Discovery:
    """The registrar of `domain` and the config block for it; RegistrarNotInDirectory on a miss."""
    name = normalise(domain)
    directory = load_directory(directory_path)
    bootstrap = await load_bootstrap(bootstrap_source, timeout, transport)
    registrar = await lookup_registrar(name, bootstrap, timeout, transport)
    entry = directory.get(registrar.iana_id or "")
    if entry is None:
        raise RegistrarNotInDirectory(
            f"registrar {registrar.name} (IANA ID {registrar.iana_id or 'unknown'}) is not in "
            f"{directory_path}; the block below is a webhook template",
            registrar,
            config_block(name, registrar, None),
        )
    return Discovery(name, registrar, entry, config_block(name, registrar, entry))

"""Pushing a signed zone's DS RRset to its parent through the registrar adapters.

The parent holds the DS records that tie a zone dynmx signs into the chain of trust. Where
the parent takes them over the wire, the adapters that push our addresses push them too:

    rfc2136   a TSIG-signed UPDATE to the parent zone: the child's DS RRset is replaced as a
              whole, on the condition that the child is delegated there (its NS RRset exists)
    webhook   POST {"zone", "ds": [{key_tag, algorithm, digest_type, digest}], "records"}
              with the bearer token; the relay calls the registrar's DNSSEC API
    dyndns2   cannot: the protocol carries a hostname and an address, nothing else

`push_ds` takes the DS rdata to publish (all of them: the set replaces what the parent
has), so a key rollover can hand it the DS of both keys, then of the new one alone.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from pathlib import Path

import dns.name
import dns.rdata
import dns.rdtypes.ANY.DS
import httpx

from dynmx.selfcheck.registrar import (
    Adapter,
    Outcome,
    PushResult,
    excerpt,
    http_client,
    read_bounded,
    redact,
    user_agent,
)
from dynmx.selfcheck.rfc2136_client import Rfc2136Adapter
from dynmx.selfcheck.webhook import WebhookAdapter, WebhookSettings
from dynmx.selfcheck.webhook import _verdict as webhook_verdict

with warnings.catch_warnings():  # dnspython loads DSA support, which cryptography deprecates
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    import dns.dnssec

DS = dns.rdtypes.ANY.DS.DS
DYNDNS2_CANNOT = (
    "dyndns2 carries only a hostname and an address, never DS records: give the DS to the "
    "registrar another way (dynmx dnssec ds ZONE prints it) or push it with an rfc2136 or webhook adapter"
)


def current_ds(state_dir: Path, origin: dns.name.Name) -> list[DS]:
    """The DS (SHA-256, RFC 4509) the parent should hold now: one per stored key whose CDS the
    zone serves (both keys while a rollover pre-publishes, as Knot's double-DS); empty when
    the zone has no key yet."""
    from dynmx.zone.keys import load_keys

    keys = load_keys(state_dir, origin)
    return [dns.dnssec.make_ds(origin, key.dnskey, "SHA256") for key in keys if key.role.in_cds]


def ds_payload(origin: dns.name.Name, ds: Sequence[DS]) -> dict[str, object]:
    """The webhook's JSON body: the zone, each DS as fields (what registrar APIs ask for) and
    as presentation text (what `dynmx dnssec ds` prints)."""
    return {
        "zone": origin.to_text(omit_final_dot=True),
        "ds": [
            {
                "key_tag": rdata.key_tag,
                "algorithm": int(rdata.algorithm),
                "digest_type": int(rdata.digest_type),
                "digest": rdata.digest.hex(),
            }
            for rdata in ds
        ],
        "records": [f"{origin.to_text()} IN DS {rdata.to_text()}" for rdata in ds],
    }


async def webhook_push_ds(
    settings: WebhookSettings,
    origin: dns.name.Name,
    ds: Sequence[DS],
    transport: httpx.AsyncBaseTransport | None = None,
) -> PushResult:
    """One POST of the DS set to the webhook's URL; answers read as for an address push."""
    s = settings
    headers = {"Authorization": f"Bearer {s.token}", "User-Agent": user_agent(s.contact)}
    try:
        async with (
            asyncio.timeout(s.timeout),
            http_client(s.timeout, transport) as client,
            client.stream("POST", s.url, json=ds_payload(origin, ds), headers=headers) as response,
        ):
            body = await read_bounded(response)
    except (httpx.TimeoutException, TimeoutError) as error:
        return PushResult(Outcome.BACKOFF, f"no answer within {s.timeout} s ({type(error).__name__})")
    except httpx.HTTPError as error:
        return PushResult(
            Outcome.RETRY, f"cannot reach {s.url}: {type(error).__name__}: {redact(str(error), s.token)}"
        )
    return webhook_verdict(response.status_code, excerpt(redact(body, s.token)))


async def push_ds(adapter: Adapter, origin: dns.name.Name, ds: Sequence[DS]) -> PushResult:
    """Make the parent's DS RRset of `origin` exactly `ds` through `adapter`; a peer's fault is
    a result, never an exception."""
    if isinstance(adapter, Rfc2136Adapter):
        return await adapter.push_ds(origin, ds)
    if isinstance(adapter, WebhookAdapter):
        return await webhook_push_ds(adapter.settings, origin, ds, adapter.transport)
    return PushResult(Outcome.STOP, DYNDNS2_CANNOT if adapter.kind == "dyndns2" else f"{adapter.kind}: no DS")


def ds_text(ds: Sequence[DS]) -> str:
    """One string for a DS set, the same for the same set in any order: what the adapter state
    keeps as its `last_address`, so a push is due when the set changes."""
    return "; ".join(sorted(rdata.to_text() for rdata in ds))


class DsAdapter:
    """An adapter seen as one that pushes the DS set `ds` of `origin`, so that `push_all` applies
    the registrar rules to it (only on a change, rate limit, back-off, stop until the config
    changes); the address it is offered is `ds_text(ds)`."""

    def __init__(self, adapter: Adapter, origin: dns.name.Name, ds: Sequence[DS]) -> None:
        self.adapter = adapter
        self.origin = origin
        self.ds = list(ds)

    @property
    def name(self) -> str:
        return self.adapter.name

    @property
    def kind(self) -> str:
        return self.adapter.kind

    def fingerprint(self) -> str:
        return self.adapter.fingerprint()

    async def push(self, hostname: str, family: int, address: str, previous: str | None) -> PushResult:
        return await push_ds(self.adapter, self.origin, self.ds)

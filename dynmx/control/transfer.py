"""Outbound zone transfers: AXFR (RFC 5936) and IXFR from the journal (RFC 1995), and NOTIFY (RFC 1996).

Transfers are built with dnspython messages: SOA first and last, RRsets packed into
messages of at most ~16 KB. IXFR answers the differences the journal holds since the
client's serial (old SOA, deletions, new SOA, additions, per change); when that history
is gone it falls back to a full transfer in AXFR form, as RFC 1995 §4 allows; a client
that is current gets the SOA alone.
"""

from __future__ import annotations

import asyncio
import logging

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

from dynmx.control.journal import Journal

log = logging.getLogger("dynmx.transfer")

IN = dns.rdataclass.IN
SOA = dns.rdatatype.SOA
MESSAGE_BUDGET = 16000  # bytes of records per message, well under 65535
NOTIFY_RETRIES = 10  # with the backoff below: about 8 minutes before giving up and logging it
NOTIFY_INTERVAL = 2.0
NOTIFY_BACKOFF_MAX = 60.0


def _soa(zone: dns.zone.Zone) -> dns.rrset.RRset:
    assert zone.origin is not None
    soa = zone.nodes[zone.origin].get_rdataset(IN, SOA)
    assert soa is not None
    return _as_rrset(zone.origin, soa)


def _as_rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))


def _zone_rrsets(zone: dns.zone.Zone) -> list[dns.rrset.RRset]:
    found = []
    for name in sorted(zone.nodes):
        for rdataset in zone.nodes[name].rdatasets:
            if name == zone.origin and rdataset.rdtype == SOA:
                continue
            found.append(_as_rrset(name, rdataset))
    return found


def _pack(query: dns.message.Message, rrsets: list[dns.rrset.RRset]) -> list[bytes]:
    """RRsets into as few messages as fit the budget; each answers `query` with AA set.

    A signed query gets every message signed, chained as RFC 8945 §5.3.1 requires.
    """
    batches: list[list[dns.rrset.RRset]] = []
    batch: list[dns.rrset.RRset] = []
    size = 0
    for rrset in rrsets:
        owner = len(rrset.name.to_wire() or b"")
        # Uncompressed size: an upper bound of what the record takes in the message.
        length = sum(owner + 10 + len(rdata.to_wire() or b"") for rdata in rrset)
        if batch and size + length > MESSAGE_BUDGET:
            batches.append(batch)
            batch, size = [], 0
        batch.append(rrset)
        size += length
    batches.append(batch)
    messages: list[bytes] = []
    context = None
    for rrsets_of_message in batches:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.answer = list(rrsets_of_message)
        if query.had_tsig:
            messages.append(response.to_wire(max_size=65535, multi=True, tsig_ctx=context))
            context = response.tsig_ctx
        else:
            messages.append(response.to_wire(max_size=65535))
    return messages


def axfr(query: dns.message.Message, zone: dns.zone.Zone) -> list[bytes]:
    soa = _soa(zone)
    return _pack(query, [soa, *_zone_rrsets(zone), soa])


def _record(line: str) -> dns.rrset.RRset:
    name, ttl, _, rdtype, text = line.split(" ", 4)
    rrset = dns.rrset.RRset(dns.name.from_text(name), IN, dns.rdatatype.from_text(rdtype))
    rrset.add(dns.rdata.from_text(IN, dns.rdatatype.from_text(rdtype), text), int(ttl))
    return rrset


def ixfr(query: dns.message.Message, zone: dns.zone.Zone, journal: Journal) -> list[bytes]:
    """Differences since the client's serial (in the query's authority SOA)."""
    soa = _soa(zone)
    current = soa[0].serial
    client = next((rrset for rrset in query.authority if rrset.rdtype == SOA), None)
    if client is None or not len(client):
        return axfr(query, zone)
    serial = client[0].serial
    if serial == current:
        return _pack(query, [soa])
    assert zone.origin is not None
    entries = journal.since(zone.origin.to_text(), serial)
    if not entries or entries[-1].new_serial != current:
        return axfr(query, zone)  # history gone or ahead of us: a full transfer (RFC 1995 §4)
    rrsets = [soa]
    for entry in entries:
        removed = [_record(line) for line in entry.removed]
        added = [_record(line) for line in entry.added]
        rrsets += [r for r in removed if r.rdtype == SOA] + [r for r in removed if r.rdtype != SOA]
        rrsets += [r for r in added if r.rdtype == SOA] + [r for r in added if r.rdtype != SOA]
    rrsets.append(soa)
    return _pack(query, rrsets)


async def notify(zone: dns.zone.Zone, target: tuple[str, int]) -> bool:
    """Send NOTIFY for `zone` to one secondary until it answers (bounded retries)."""
    assert zone.origin is not None
    message = dns.message.make_query(zone.origin, SOA)
    message.flags = dns.flags.AA  # the opcode lives in the flags too: set it after
    message.set_opcode(dns.opcode.NOTIFY)
    message.answer.append(_soa(zone))
    host, port = target
    wait = NOTIFY_INTERVAL
    for attempt in range(1, NOTIFY_RETRIES + 1):
        try:
            reply = await dns.asyncquery.udp(message, host, port=port, timeout=wait)
        except (dns.exception.Timeout, OSError) as error:
            log.info(
                "event=notify-retry zone=%s target=%s:%d attempt=%d error=%s",
                zone.origin,
                host,
                port,
                attempt,
                type(error).__name__,
            )
            if not isinstance(error, dns.exception.Timeout):
                await asyncio.sleep(wait)  # refused at once: wait as long as a timeout would have
            wait = min(wait * 2, NOTIFY_BACKOFF_MAX)  # a silent secondary: back off, keep trying
            continue
        log.info(
            "event=notify-acked zone=%s target=%s:%d rcode=%s",
            zone.origin,
            host,
            port,
            dns.rcode.to_text(reply.rcode()),
        )
        return reply.rcode() == dns.rcode.NOERROR
    log.warning(
        "event=notify-failed zone=%s target=%s:%d attempts=%d", zone.origin, host, port, NOTIFY_RETRIES
    )
    return False

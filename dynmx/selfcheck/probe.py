"""The network half of a self-connect round: where do resolvers say our name is, and a probe sent there.

Our own name is resolved through the configured (recursive) resolvers, never looked up in our
own zone: the point is what the rest of the world sees. dnspython's and the socket's
exceptions stop here; what leaves is a SelfCheckError with a message naming the resolver.

    DynmxError (dynmx.errors)
    +-- SelfCheckError          a self-check step could not be done
        +-- ResolveError        no resolver gave a usable answer for our name
        +-- ProbeError          the probe datagram could not be sent
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdata
import dns.rdatatype

from dynmx.errors import DynmxError

FAMILY_TYPES = {4: "A", 6: "AAAA"}
_FAULTS = (dns.exception.DNSException, OSError, EOFError, ValueError)


class SelfCheckError(DynmxError):
    """A self-check step could not be done; the round reports it and decides nothing from it."""


class ResolveError(SelfCheckError):
    """No configured resolver gave a usable answer (timeout, SERVFAIL, REFUSED, garbage)."""


class ProbeError(SelfCheckError):
    """The probe could not even leave this host (no route, bad address)."""


def where(host: str, port: int) -> str:
    """`host:port`, with brackets around IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve_published(
    name: str, resolvers: list[tuple[str, int]], timeout: float
) -> dict[int, list[str]]:
    """Addresses of `name` per family (4, 6) as the resolvers see them; NXDOMAIN or no data is empty.

    Each resolver is tried in turn, `timeout` seconds each; A and AAAA are asked concurrently.
    Raises ResolveError when every resolver failed for either type.
    """
    if not resolvers:
        raise ResolveError(f"cannot resolve {name}: no resolvers configured")
    found = await asyncio.gather(
        *(_resolve_type(name, rdtype, resolvers, timeout) for rdtype in ("A", "AAAA"))
    )
    return {4: found[0], 6: found[1]}


async def ask(name: str, rdtype: str, host: str, port: int, timeout: float) -> dns.message.Message:
    """One recursive question to one resolver (UDP, TCP when truncated); raises dnspython's errors."""
    query = dns.message.make_query(name, rdtype)
    response, _ = await dns.asyncquery.udp_with_fallback(query, host, timeout=timeout, port=port)
    return response


def answer_records(response: dns.message.Message, rdtype: str) -> list[dns.rdata.Rdata]:
    """The answer's records of `rdtype` at the end of any CNAME chain."""
    if not isinstance(response, dns.message.QueryMessage):
        return []
    chain = response.resolve_chaining()
    if chain.answer is None or chain.answer.rdtype != dns.rdatatype.from_text(rdtype):
        return []
    return list(chain.answer)


async def _resolve_type(
    name: str, rdtype: str, resolvers: list[tuple[str, int]], timeout: float
) -> list[str]:
    failures: list[str] = []
    for host, port in resolvers:
        try:
            response = await ask(name, rdtype, host, port, timeout)
            rcode = response.rcode()
            if rcode == dns.rcode.NXDOMAIN:
                return []
            if rcode != dns.rcode.NOERROR:
                failures.append(f"{where(host, port)} {dns.rcode.to_text(rcode)}")
                continue
            return sorted({rdata.to_text() for rdata in answer_records(response, rdtype)})
        except dns.exception.Timeout:
            failures.append(f"{where(host, port)} timeout after {timeout:g}s")
        except _FAULTS as exc:
            failures.append(f"{where(host, port)} {type(exc).__name__}")
    raise ResolveError(f"cannot resolve {name} {rdtype}: {'; '.join(failures)}")


async def send_probe(address: str, port: int, qname: str) -> None:
    """Send one UDP query for `qname` to `address`:`port` and forget it: replies and ICMP are ignored.

    The socket is unconnected and closed at once, so no ICMP error can come back to us; the only
    failures are local ones (no route, no IPv6), raised as ProbeError.
    """
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        wire = dns.message.make_query(qname, "A", flags=0).to_wire()  # RD=0: asked of an authority
    except (ValueError, dns.exception.DNSException) as exc:
        raise ProbeError(f"cannot probe {where(address, port)} for {qname}: {exc}") from None
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        # A datagram send does not wait for the peer; uvloop has no sock_sendto, so send directly.
        sock.setblocking(False)
        try:
            sock.sendto(wire, (address, port))
        except BlockingIOError:
            raise ProbeError(f"probe to {where(address, port)} not sent: send buffer full") from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ProbeError(f"probe to {where(address, port)} not sent: {reason}") from None

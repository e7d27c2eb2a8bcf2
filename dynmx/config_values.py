"""Checks of single config values: each takes the value as TOML gave it and returns it
(normalised where a name or prefix has one spelling) or raises ValueError with a reason that
names what was expected; `config_build` puts the key's path in front."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype

Check = Callable[[Any], object]


def parse_hostport(text: str, default_port: int = 53) -> tuple[str, int]:
    """`127.0.0.1:5353`, `[::1]:5353`, `::1` or `127.0.0.1` -> (host, port)."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"expected [IPv6]:PORT, got {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"expected [IPv6]:PORT, got {text!r}")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"expected an IP address, got {host!r} in {text!r}") from None
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"expected a port 0-65535, got {port_text!r} in {text!r}")
        port = int(port_text)
    return host, port


def absolute_name(text: str) -> str:
    """A domain name as configured, made absolute and lower-case (names compare so)."""
    relative = text[:-1] if text.endswith(".") else text
    labels = relative.split(".")
    if not relative or " " in text or any(not label or len(label) > 63 for label in labels):
        raise ValueError(f"expected a domain name, got {text!r}")
    try:  # dnspython reads it later, alone and inside record text: its text must need no escapes
        if not text.isascii() or dns.name.from_text(relative + ".").to_text() != relative + ".":
            raise ValueError
    except (dns.exception.DNSException, ValueError):  # also: longer than 255 octets
        raise ValueError(f"expected a domain name (IDNA names in xn-- form), got {text!r}") from None
    return relative.lower() + "."


def one_label(value: str) -> str:
    """One DNS label, as used in `<label>._hint.<pool>`."""
    if not value or len(value) > 63 or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError(f"expected one label of letters, digits, '-' or '_', got {value!r}")
    return value.lower()


def fail(message: str) -> str:
    raise ValueError(message)


def one_of(*allowed: str) -> Check:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    return check


def between(low: float, high: float) -> Check:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"expected {low:g}-{high:g}, got {value!r}")
        return value

    return check


def address_prefix(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"expected an address prefix like 192.0.2.0/24, got {value!r}") from None


def prefix_or_key_name(value: str) -> str:
    """An address prefix (`127.0.0.0/8`) or a TSIG key name (`ops-key.`)."""
    try:
        return address_prefix(value)
    except ValueError:
        if "/" in value:  # a mistyped prefix, not a key name
            raise
        return absolute_name(value)


def record_type(value: str) -> str:
    try:
        dns.rdatatype.from_text(value)
    except (dns.exception.DNSException, ValueError):
        raise ValueError(f"expected a record type like A or AAAA, got {value!r}") from None
    return value


MAX_NSID = 128  # octets: the identifier rides in every reply that asks for it


def nsid_octets(value: str) -> bytes:
    """The NSID (RFC 5001) as configured: `0x` and hex digits, or printable ASCII as is (as Knot
    reads its `nsid`)."""
    if value[:2].lower() == "0x":
        try:
            octets = bytes.fromhex(value[2:])
        except ValueError:
            raise ValueError(f"expected 0x and an even number of hex digits, got {value!r}") from None
    elif value.isascii() and value.isprintable():
        octets = value.encode()
    else:
        raise ValueError(f"expected printable ASCII or 0x and hex digits, got {value!r}")
    if len(octets) > MAX_NSID:
        raise ValueError(f"expected at most {MAX_NSID} octets, got {len(octets)}")
    return octets


def listener_address(value: str) -> str:
    """An HTTP listener's address, IP:PORT or [IPv6]:PORT; "" for none."""
    if value:
        parse_hostport(value)
    return value


def host_name(value: str) -> str:
    """A name (or address) the control listener is reached by, as it comes in a Host header."""
    text = value.strip().lower().rstrip(".")
    if not text or any(c in text for c in " /:@[]") or not text.isascii() or not text.isprintable():
        raise ValueError(f"expected a host name or IPv4 address without port, got {value!r}")
    return text


def member_host(value: str) -> str:
    """A member: a domain name (MX exchange, SRV target) or an IP literal (address pools)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return absolute_name(value)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def address_family(value: int) -> int:
    return value if value in (0, 4, 6) else int(fail(f"expected 0 (both), 4 or 6, got {value}"))


def strictly_below(child: str, parent: str) -> bool:
    """Whether the domain name `child` is below `parent` (and not `parent` itself)."""
    c, p = child.lower().rstrip("."), parent.lower().rstrip(".")
    return c != p and (not p or c.endswith("." + p))

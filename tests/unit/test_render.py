"""How answers are written: what render.py writes itself must equal dnspython's encoding."""

from __future__ import annotations

import ipaddress

import dns.name
import dns.rdata
import dns.rdataset
from hypothesis import given, settings
from hypothesis import strategies as st

from dynmx.answer.lookup import Answer, Outcome
from dynmx.answer.render import render

OWNER = dns.name.from_text("www.example.test.")


@given(st.lists(st.ip_addresses(), min_size=1, max_size=4), st.integers(0, 2**31 - 1))
@settings(max_examples=300, deadline=None)
def test_address_records_are_written_as_dnspython_writes_them(
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address], ttl: int
) -> None:
    for version, rdtype in ((4, "A"), (6, "AAAA")):
        texts = sorted({str(address) for address in addresses if address.version == version})
        if not texts:
            continue
        rdataset = dns.rdataset.from_text_list("IN", rdtype, ttl, texts)
        body = render(Answer(Outcome.SUCCESS, answer=[(OWNER, rdataset)]), None).body
        expected = b"".join(
            OWNER.to_wire() + rdata.rdtype.to_bytes(2, "big") + b"\x00\x01" + ttl.to_bytes(4, "big")
            + len(rdata.to_wire()).to_bytes(2, "big") + rdata.to_wire()
            for rdata in rdataset
        )  # fmt: skip
        assert body == expected

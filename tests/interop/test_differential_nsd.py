"""Differential test: for the same zones, dynmx answers like NSD 4.6.1.

NSD and the server under test both serve tests/data/diff/{diff.test,other.test}.zone
on 127.0.0.1. Every name of the zones (and every empty non-terminal) plus missing,
wildcard, delegated, mixed-case and out-of-zone names is asked for many qtypes over
five transports. Both responses must agree in rcode, opcode, question, header flags,
EDNS version and DO bit, and in the answer and authority sections compared as sets
of (owner, TTL, class, type, rdata) with names and rdata lowercased. The additional
section is not compared: what goes there is the server's choice (RFC 1035 section
3.3.9, RFC 2181 section 9 on dropping it). Malformed packets are compared by rcode only,
a dropped packet being equal to a dropped packet. Every response of the server under
test must also decode with dnslib, a parser unrelated to dnspython.

The same corpus is asked again of both zones signed by ldns-signzone, once with NSEC and
once with NSEC3, and signed by Knot with NSEC3 opt-out (no extra iterations, no salt,
RFC 9276), with DO=1 on every EDNS query (RFC 4035 3.1): the signatures and denial
proofs must be NSD's too.

The server under test is chosen with the environment variable DYNMX_DIFF_SUBJECT:
  dynmx (default)  `python -m dynmx serve --zones DIR --listen 127.0.0.1:PORT`
  nsd              a second NSD on the same zones: must give zero differences
  nsd:DIR          NSD on the zone files in DIR (shows the harness catches differences)
  HOST:PORT        a server already running with the same zones
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import dnslib
import pytest

from tests.nsd import Nsd, find_binary, free_port, running_nsd, wait_for_soa
from tests.signing import SignerUnavailable, sign_zones, sign_zones_knot

pytestmark = pytest.mark.interop

SUBJECT_ENV = "DYNMX_DIFF_SUBJECT"
REPO = Path(__file__).resolve().parents[2]
ZONE_DIR = Path(__file__).resolve().parents[1] / "data" / "diff"
ZONES = {"diff.test": "diff.test.zone", "other.test": "other.test.zone"}
APEXES = frozenset(dns.name.from_text(zone) for zone in ZONES)
HOST = "127.0.0.1"
TIMEOUT = 2.0  # per query; a server that answers locally answers in milliseconds
RAW_TIMEOUT = 1.0  # malformed packets are sent in parallel; "dropped" costs this once
MAX_SILENT = 5  # queries the subject leaves unanswered before a family gives up

# Asked for every name. TYPE1000 is unknown to both servers (RFC 3597 handling).
QTYPES = ("A", "AAAA", "MX", "TXT", "NS", "SOA", "SRV", "CNAME", "DS", "ANY", "TYPE1000", "CAA", "HINFO")
# And of the signed zones, the DNSSEC types too.
SIGNED_QTYPES = (*QTYPES, "DNSKEY", "NSEC3PARAM", "RRSIG", "NSEC")

# Differences that are not errors: each names the RFC that allows dynmx to differ.
ALLOWED_DIFFERENCES = {
    "any-one-rrset": (
        "ANY may be answered with any one RRset of the name (RFC 8482 section 4.1), so "
        "dynmx may pick another RRset than NSD; it must be exactly one RRset owned by qname"
    ),
    "referral-tc": (
        "a referral whose in-domain glue does not fit must set TC=1 (RFC 9471 section 3); "
        "NSD 4.6.1 sends partial glue, dynmx may send TC=1 with empty sections (with DO=1, "
        "as NSD truncates, with the part of NSD's full referral that fits)"
    ),
    "any-hinfo": (
        "ANY over UDP whose one RRset would make the reply more than 3x the query may be "
        'answered with a synthesised HINFO "RFC8482" "" (RFC 8482 section 4.2); NSD sends '
        "that RRset, or TC=1 when it does not fit"
    ),
}

# Names that are not owners in the zone files, by what they exercise.
OTHER_NAMES = {
    "missing": [
        "nope.diff.test.",
        "a.b.nope.diff.test.",
        "x.a.ent.diff.test.",
        "x.www.diff.test.",
        "nope.other.test.",
        "x.cname-in.diff.test.",
    ],
    "wildcard": [
        "foo.wc.diff.test.",
        "a.b.wc.diff.test.",
        "x.sub.wc.diff.test.",
        "foo.wcc.diff.test.",
        "x.y.wcc.diff.test.",
    ],
    "below a delegation": [
        "host.sub.diff.test.",
        "a.b.sub.diff.test.",
        "x.ns1.sub.diff.test.",
        "host.ext.diff.test.",
        "host.big-deleg.diff.test.",
    ],
    "mixed case": [
        "WWW.DIFF.TEST.",
        "Mx1.Diff.Test.",
        "CNAME-Other.diff.test.",
        "SuB.diff.test.",
        "Foo.Wc.diff.test.",
        "mixed.case.DIFF.test.",
        "DIFF.TEST.",
        "Www.Other.Test.",
    ],
    "out of zone": [
        ".",
        "test.",
        "example.net.",
        "www.example.com.",
        "xdiff.test.",
        "diff.test.example.",
    ],
}

# The 30 MX targets of bigmx are alike: query the first and the last only.
SKIPPED_NAME = re.compile(r"^mx(0[2-9]|1\d|2\d)\.bigmx\.", re.IGNORECASE)


@dataclass(frozen=True)
class Variant:
    """How a query is sent: transport, EDNS payload (None: no OPT), DO bit, header flags."""

    tcp: bool = False
    payload: int | None = None
    do: bool = False
    flags: int = dns.flags.RD


VARIANTS = {
    "udp": Variant(),
    "udp-edns1232": Variant(payload=1232),
    "udp-edns512": Variant(payload=512),
    "udp-do": Variant(payload=1232, do=True, flags=dns.flags.RD | dns.flags.CD | dns.flags.AD),
    "tcp": Variant(tcp=True, flags=0),
}
# For the signed zones: DO=1 on every query with EDNS; one without EDNS sees no DNSSEC.
SIGNED_VARIANTS = {
    "udp": Variant(),
    "udp-do1232": Variant(payload=1232, do=True),
    "udp-do512": Variant(payload=512, do=True),
    "tcp-do": Variant(tcp=True, payload=1232, do=True, flags=0),
}
ALL_VARIANTS = {**VARIANTS, **SIGNED_VARIANTS}


@dataclass(frozen=True)
class Query:
    qname: str
    qtype: str
    variant: str = "udp-edns1232"
    qclass: str = "IN"
    edns_version: int = 0

    def __str__(self) -> str:
        version = f" EDNS{self.edns_version}" if self.edns_version else ""
        return f"{self.qname} {self.qclass} {self.qtype} [{self.variant}{version}]"

    def to_wire(self, query_id: int) -> bytes:
        variant = ALL_VARIANTS[self.variant]
        message = dns.message.make_query(
            self.qname,
            dns.rdatatype.from_text(self.qtype),
            dns.rdataclass.from_text(self.qclass),
            use_edns=self.edns_version if variant.payload else False,
            payload=variant.payload or 512,
            want_dnssec=variant.do,
            id=query_id,
        )
        message.flags = variant.flags
        return message.to_wire()


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    host: str = HOST


@dataclass(frozen=True)
class Difference:
    """One field of one response in which the server under test differs from NSD."""

    query: str
    field: str
    nsd: str
    subject: str


# --- the names --------------------------------------------------------------------------


@functools.cache
def zone_names() -> tuple[str, ...]:
    """Every owner of both zone files as written (case kept) and every empty non-terminal."""
    names: dict[str, str] = {}
    for origin, filename in ZONES.items():
        zone = dns.zone.from_file(str(ZONE_DIR / filename), origin=origin, relativize=False)
        apex = dns.name.from_text(origin)
        for name in zone.nodes:
            while name != apex and name.is_subdomain(apex):
                text = name.to_text()
                if not SKIPPED_NAME.match(text):
                    names.setdefault(text.lower(), text)
                name = name.parent()
            names.setdefault(apex.to_text(), apex.to_text())
    return tuple(names.values())


def other_names() -> list[str]:
    return [name for group in OTHER_NAMES.values() for name in group]


def nsec3_owner_names() -> list[str]:
    """Owners of the NSEC3 records of the signed zones (no salt, no extra iterations):
    names of the chain, not of the zone (RFC 5155 7.2.9); in an NSEC zone, missing names."""
    return [
        f"{dns.dnssec.nsec3_hash(name, None, 0, 1).lower()}.{zone}."
        for zone in ZONES
        for name in (f"{zone}.", f"www.{zone}.")
    ]


# --- sending ----------------------------------------------------------------------------


def exchange(server: Server, wire: bytes, tcp: bool, timeout: float = TIMEOUT) -> bytes | None:
    """Send one message and return the raw response, or None if none came in time.

    Raw sockets rather than dns.query: the exact bytes are needed for dnslib, and
    malformed packets must go out unchanged.
    """
    deadline = time.monotonic() + timeout
    if tcp:
        try:
            with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
                sock.sendall(struct.pack("!H", len(wire)) + wire)
                head = _recv_exact(sock, 2, deadline)
                if head is None:
                    return None
                (length,) = struct.unpack("!H", head)
                return _recv_exact(sock, length, deadline)
        except (TimeoutError, ConnectionError):
            return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((server.host, server.port))
        sock.send(wire)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except (TimeoutError, ConnectionRefusedError):  # refused: nothing listens any more
                return None
            if len(wire) < 2 or data[:2] == wire[:2]:
                return data
    return None


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes | None:
    data = b""
    while len(data) < size:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# --- comparing --------------------------------------------------------------------------


def section_set(rrsets: list[dns.rrset.RRset]) -> frozenset[str]:
    """A section as a set of "owner TTL class type rdata", names and rdata lowercased."""
    return frozenset(
        f"{rrset.name.to_text().lower()} {rrset.ttl} {dns.rdataclass.to_text(rrset.rdclass)} "
        f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text().lower()}"
        for rrset in rrsets
        for rdata in rrset
    )


def header_fields(message: dns.message.Message) -> dict[str, str]:
    """The fields compared besides the answer and authority sections."""
    flags = dns.flags.to_text(message.flags).split()
    return {
        "rcode": dns.rcode.to_text(message.rcode()),
        "opcode": dns.opcode.to_text(message.opcode()),
        "flags": " ".join(sorted(f for f in flags if f in {"QR", "AA", "TC", "RD", "RA", "AD", "CD"})),
        "question": " ".join(rrset.to_text() for rrset in message.question),
        "edns": "none" if message.edns < 0 else f"version {message.edns}",
        "do": str(bool(message.ednsflags & dns.flags.DO)),
    }


def describe_sets(nsd: frozenset[str], subject: frozenset[str]) -> tuple[str, str]:
    """Only the records one side lacks, so one wrong record in a big section stays readable."""
    return repr(sorted(nsd - subject)), repr(sorted(subject - nsd))


def is_referral(message: dns.message.Message) -> bool:
    """NS records in authority owned by a zone cut (not by a zone apex)."""
    return any(rrset.rdtype == dns.rdatatype.NS and rrset.name not in APEXES for rrset in message.authority)


AskNsd = Callable[[Query], bytes | None]


def referral_tc_allowed(
    query: Query, nsd: dns.message.Message, subject: dns.message.Message, ask_nsd: AskNsd
) -> bool:
    """ALLOWED_DIFFERENCES["referral-tc"]: subject truncated a referral too big for UDP.

    "Too big" is measured: NSD's full referral (over TCP) exceeds the UDP limit.
    """
    variant = ALL_VARIANTS[query.variant]
    if variant.tcp or nsd.flags & dns.flags.TC or not subject.flags & dns.flags.TC:
        return False
    if not is_referral(nsd) or nsd.rcode() != subject.rcode():
        return False
    full = ask_nsd(Query(query.qname, query.qtype, tcp_like(query), query.qclass))
    if full is None or len(full) <= (variant.payload or 512):
        return False
    if not (subject.answer or subject.authority or subject.additional):
        return True
    whole = dns.message.from_wire(full)
    return variant.do and all(
        section_set(part) <= section_set(of_whole)
        for part, of_whole in (
            (subject.answer, whole.answer),
            (subject.authority, whole.authority),
            (subject.additional, whole.additional),
        )
    )


def any_hinfo_allowed(query: Query, subject: dns.message.Message, wire: bytes, ask_nsd: AskNsd) -> bool:
    """ALLOWED_DIFFERENCES["any-hinfo"]: UDP, one HINFO "RFC8482" "" at qname, and NSD's own
    answer (over TCP) more than twice the size of the query."""
    if query.qtype != "ANY" or ALL_VARIANTS[query.variant].tcp or subject.flags & dns.flags.TC:
        return False
    if len(subject.answer) != 1 or subject.answer[0].rdtype != dns.rdatatype.HINFO:
        return False
    hinfo = subject.answer[0]
    if hinfo.name != dns.name.from_text(query.qname) or [r.to_text() for r in hinfo] != ['"RFC8482" ""']:
        return False
    full = ask_nsd(Query(query.qname, "ANY", tcp_like(query), query.qclass))
    return full is not None and len(full) - len(wire) > len(wire)


def tcp_like(query: Query) -> str:
    """The TCP variant for a follow-up question: with DO=1 when the query had it."""
    return "tcp-do" if ALL_VARIANTS[query.variant].do else "tcp"


def any_one_rrset_allowed(query: Query, subject: dns.message.Message, ask_nsd: AskNsd) -> bool:
    """ALLOWED_DIFFERENCES["any-one-rrset"]: one RRset (with DO=1 in a signed zone, and its
    RRSIG), owned by the qname, and the same RRset NSD gives when asked for the qname with
    that RRset's type."""
    data = [r for r in subject.answer if r.rdtype != dns.rdatatype.RRSIG]
    if query.qtype != "ANY" or len(data) != 1:
        return False
    rrset = data[0]
    if rrset.name != dns.name.from_text(query.qname):
        return False
    wire = ask_nsd(Query(query.qname, dns.rdatatype.to_text(rrset.rdtype), tcp_like(query), query.qclass))
    if wire is None:
        return False
    nsd = dns.message.from_wire(wire)
    same = [
        r
        for r in nsd.answer
        if r.name == rrset.name and rrset.rdtype in (r.rdtype, r.covers) and r.rdtype != dns.rdatatype.CNAME
    ]
    if rrset.rdtype == dns.rdatatype.CNAME:
        same = [r for r in nsd.answer if r.name == rrset.name and dns.rdatatype.CNAME in (r.rdtype, r.covers)]
    return section_set(same) == section_set(subject.answer)


def dnslib_error(wire: bytes) -> str:
    """Why dnslib cannot decode `wire` ('' if it can)."""
    try:
        dnslib.DNSRecord.parse(wire)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def dnslib_difference(label: str, nsd: bytes | None, subject: bytes | None) -> Difference | None:
    """The subject's response must decode with dnslib, an independent parser.

    dnslib has gaps of its own (it rejects an RR with empty RDATA, legal per RFC 3597),
    so a response it cannot decode is a difference only when it decodes NSD's response.
    """
    error = dnslib_error(subject) if subject is not None else ""
    if error and (nsd is None or not dnslib_error(nsd)):
        return Difference(label, "dnslib decode", "decodes", error)
    return None


def compare(
    query: Query, nsd_wire: bytes | None, subject_wire: bytes | None, ask_nsd: AskNsd
) -> tuple[list[Difference], str | None]:
    """The differences between two responses, and the allowed difference that applied."""
    label = str(query)
    diffs: list[Difference] = []
    if dnslib_diff := dnslib_difference(label, nsd_wire, subject_wire):
        diffs.append(dnslib_diff)
    if nsd_wire is None or subject_wire is None:
        if nsd_wire is not subject_wire:
            seen = ["no response" if w is None else "response" for w in (nsd_wire, subject_wire)]
            diffs.append(Difference(label, "response", *seen))
        return diffs, None
    messages = []
    for who, wire in (("nsd", nsd_wire), ("subject", subject_wire)):
        try:
            messages.append(dns.message.from_wire(wire))
        except Exception as exc:
            diffs.append(Difference(label, f"dnspython decode ({who})", "decodes", f"{exc!r}"))
    if diffs or len(messages) != 2:
        return diffs, None
    nsd, subject = messages
    if referral_tc_allowed(query, nsd, subject, ask_nsd):
        return [], "referral-tc"
    if any_hinfo_allowed(query, subject, subject_wire, ask_nsd):
        return [], "any-hinfo"
    nsd_header, subject_header = header_fields(nsd), header_fields(subject)
    for field, value in nsd_header.items():
        if subject_header[field] != value:
            diffs.append(Difference(label, field, value, subject_header[field]))
    answer = section_set(nsd.answer), section_set(subject.answer)
    authority = section_set(nsd.authority), section_set(subject.authority)
    if answer[0] != answer[1] and any_one_rrset_allowed(query, subject, ask_nsd):
        return diffs, "any-one-rrset"
    for field, (ours, theirs) in (("answer", answer), ("authority", authority)):
        if ours != theirs:
            diffs.append(
                Difference(label, f"{field} (records only one side has)", *describe_sets(ours, theirs))
            )
    return diffs, None


# --- running a family of queries --------------------------------------------------------


def run_family(family: str, servers: tuple[Server, Server], queries: list[Query]) -> None:
    """Send each query to both servers, compare, print a summary, fail listing differences."""
    nsd, subject = servers

    def ask_nsd(query: Query) -> bytes | None:
        """A follow-up question to NSD, when judging an allowed difference."""
        return exchange(nsd, query.to_wire(0xFFFF), ALL_VARIANTS[query.variant].tcp)

    diffs: list[Difference] = []
    allowed: Counter[str] = Counter()
    silent = 0
    sent = 0
    for query_id, query in enumerate(queries, start=1):
        tcp = ALL_VARIANTS[query.variant].tcp
        wire = query.to_wire(query_id)
        nsd_wire = exchange(nsd, wire, tcp)
        subject_wire = exchange(subject, wire, tcp)
        sent += 1
        found, allowed_key = compare(query, nsd_wire, subject_wire, ask_nsd)
        diffs += found
        if allowed_key:
            allowed[allowed_key] += 1
        if subject_wire is None and nsd_wire is not None:
            silent += 1
            if silent > MAX_SILENT:
                diffs.append(Difference(str(query), "gave up", "-", f"{silent} unanswered"))
                break
    report(family, servers, sent, diffs, allowed)


def report(
    family: str,
    servers: tuple[Server, Server],
    sent: int,
    diffs: list[Difference],
    allowed: Counter[str],
) -> None:
    subject = servers[1].name
    summary = (
        f"{family}: {sent} queries sent to each of nsd and {subject}; "
        f"{len(diffs)} differences; allowed differences: {dict(allowed) or 'none'}"
    )
    print(summary)
    shown = 200
    lines = [f"  {d.query}: {d.field}: nsd={d.nsd} {subject}={d.subject}" for d in diffs[:shown]]
    if len(diffs) > shown:
        lines.append(f"... and {len(diffs) - shown} more")
    if diffs:
        pytest.fail(summary + "\n" + "\n".join(lines), pytrace=False)


# --- servers ----------------------------------------------------------------------------


@contextlib.contextmanager
def running_dynmx(zone_dir: Path) -> Iterator[Server]:
    """dynmx serving a copy of `zone_dir` on a free port, as an operator would start it (its
    state beside the copy: two runs at once own two state directories)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="dynmx-diff-") as workdir:
        served = shutil.copytree(zone_dir, Path(workdir) / "zones")
        cmd = [sys.executable, "-m", "dynmx", "serve", "--zones", str(served), "--listen", f"{HOST}:{port}"]
        log = Path(workdir) / "dynmx.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            failure = ""
            try:
                wait_for_soa(HOST, port, "diff.test.", alive=lambda: proc.poll() is None)
            except (TimeoutError, RuntimeError) as exc:
                failure = f"{' '.join(cmd)}: {exc}\n{log.read_text(errors='replace')}"
            if failure:
                pytest.fail(failure)
            yield Server("dynmx", port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@contextlib.contextmanager
def subject_server(served: Path = ZONE_DIR) -> Iterator[Server]:
    """The server under test, chosen by DYNMX_DIFF_SUBJECT (see the module docstring),
    serving the zones of `served`."""
    choice = os.environ.get(SUBJECT_ENV, "dynmx")
    if choice == "dynmx":
        with running_dynmx(served) as server:
            yield server
    elif choice == "nsd" or choice.startswith("nsd:"):
        zone_dir = Path(choice[4:]) if choice.startswith("nsd:") else served
        with Nsd(zone_dir, ZONES) as nsd:
            yield Server(f"nsd({zone_dir.name})", nsd.port)
    else:
        host, _, port = choice.rpartition(":")
        yield Server(choice, int(port), host)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    """(NSD, server under test), both serving the zones of tests/data/diff."""
    with running_nsd(ZONE_DIR, ZONES) as nsd_port, subject_server() as subject:
        yield Server("nsd", nsd_port), subject


@pytest.fixture(scope="module", params=["nsec", "nsec3", "nsec3-optout"])
def signed_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    """(NSD, server under test), both serving the zones signed by ldns-signzone with NSEC,
    or with NSEC3, or by Knot with NSEC3 opt-out (RFC 9276 parameters: no salt, no extra
    iterations)."""
    kind = request.param
    target = tmp_path_factory.mktemp(kind) / "zones"
    try:
        if kind == "nsec3-optout":
            signed = sign_zones_knot(ZONE_DIR, ZONES, target)
        else:
            signed = sign_zones(ZONE_DIR, ZONES, target, nsec3=kind == "nsec3")
    except SignerUnavailable as exc:
        pytest.skip(str(exc))
    with running_nsd(signed, ZONES) as nsd_port, subject_server(signed) as subject:
        yield Server(f"nsd[{kind}]", nsd_port), Server(f"{subject.name}[{kind}]", subject.port, subject.host)


# --- the tests --------------------------------------------------------------------------


def test_zone_files_are_valid() -> None:
    """NSD's own checker accepts the zone files, so differences are never NSD load errors."""
    checker = find_binary("nsd-checkzone")
    if checker is None:
        pytest.skip("nsd-checkzone is not installed")
    for zone, filename in ZONES.items():
        run = subprocess.run(
            [checker, zone, str(ZONE_DIR / filename)], capture_output=True, text=True, timeout=30
        )
        assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_owner_and_type_answers_like_nsd(servers: tuple[Server, Server], variant: str) -> None:
    """Each owner name and empty non-terminal, each qtype: the same answer as NSD."""
    queries = [Query(name, qtype, variant) for name in zone_names() for qtype in QTYPES]
    run_family(f"zone names [{variant}]", servers, queries)


@pytest.mark.parametrize("variant", VARIANTS)
def test_other_names_answer_like_nsd(servers: tuple[Server, Server], variant: str) -> None:
    """Missing, wildcard-matched, delegated, mixed-case and out-of-zone names, each qtype."""
    queries = [Query(name, qtype, variant) for name in other_names() for qtype in QTYPES]
    run_family(f"other names [{variant}]", servers, queries)


@pytest.mark.parametrize("variant", SIGNED_VARIANTS)
def test_signed_zone_names_answer_like_nsd(signed_servers: tuple[Server, Server], variant: str) -> None:
    """Signed zones, DO=1 on every EDNS query: each owner name and empty non-terminal, each
    qtype, the same RRSIGs and NSEC/NSEC3 records as NSD (RFC 4035 3.1; RFC 5155 7.2)."""
    queries = [Query(name, qtype, variant) for name in zone_names() for qtype in SIGNED_QTYPES]
    run_family(f"signed zone names [{variant}]", signed_servers, queries)


@pytest.mark.parametrize("variant", SIGNED_VARIANTS)
def test_signed_other_names_answer_like_nsd(signed_servers: tuple[Server, Server], variant: str) -> None:
    """Signed zones, DO=1: NXDOMAIN and wildcard proofs, referrals with DS or its absence
    proved, as NSD (RFC 4035 3.1.3, 3.1.4; RFC 5155 7.2.1-7.2.7)."""
    names = other_names() + nsec3_owner_names()
    queries = [Query(name, qtype, variant) for name in names for qtype in SIGNED_QTYPES]
    run_family(f"signed other names [{variant}]", signed_servers, queries)


def test_special_queries_answer_like_nsd(servers: tuple[Server, Server]) -> None:
    """EDNS version 1 gets BADVERS; class CH (version.bind included) is REFUSED."""
    queries = [
        Query("www.diff.test.", "A", edns_version=1),
        Query("nope.diff.test.", "MX", edns_version=1),
        Query("example.net.", "A", edns_version=1),
        Query("version.bind.", "TXT", "udp", qclass="CH"),
        Query("version.bind.", "TXT", qclass="CH"),
        Query("id.server.", "TXT", qclass="CH"),
        Query("hostname.bind.", "TXT", qclass="CH"),
        Query("version.server.", "TXT", qclass="CH"),
        Query("diff.test.", "SOA", qclass="CH"),
        Query("www.diff.test.", "A", "tcp", qclass="CH"),
    ]
    run_family("special queries", servers, queries)


def _header(flags: int = dns.flags.RD, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0x4D58, flags, qd, an, ns, ar)


QUESTION = b"\x03www\x04diff\x04test\x00" + struct.pack("!HH", 1, 1)
A_RECORD = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + bytes([192, 0, 2, 1])
OPT = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)

# Malformed or unusual packets; in brackets what NSD 4.6.1 was measured to do with them.
MALFORMED = {
    "empty datagram (dropped)": b"",
    "short header (dropped)": _header()[:7],
    "QR=1, a response (dropped)": _header(flags=dns.flags.QR | dns.flags.RD) + QUESTION,
    "QDCOUNT=0 (FORMERR)": _header(qd=0),
    "QDCOUNT=2 (FORMERR)": _header(qd=2) + QUESTION + QUESTION,
    "ANCOUNT=1 (FORMERR)": _header(an=1) + QUESTION + A_RECORD,
    "NSCOUNT=1 (FORMERR)": _header(ns=1) + QUESTION + A_RECORD,
    "question cut in qname (FORMERR)": _header() + QUESTION[:7],
    "question cut in qclass (FORMERR)": _header() + QUESTION[:-1],
    # Offset 4 holds QDCOUNT's high byte 0x00, a root label: the pointer is well-formed.
    "compression pointer in question (FORMERR)": _header() + b"\x03www\xc0\x04" + QUESTION[-4:],
    "two OPT records (FORMERR)": _header(ar=2) + QUESTION + OPT + OPT,
    "OPT owned by a non-root name (FORMERR)": _header(ar=1) + QUESTION + b"\x01x" + OPT,
    "opcode IQUERY (NOTIMP)": _header(flags=dns.opcode.to_flags(dns.opcode.IQUERY) | dns.flags.RD) + QUESTION,
    "opcode STATUS (NOTIMP)": _header(flags=dns.opcode.to_flags(dns.opcode.STATUS) | dns.flags.RD) + QUESTION,
    "opcode 15 (NOTIMP)": _header(flags=(15 << 11) | dns.flags.RD) + QUESTION,
    "well-formed control query (NOERROR)": _header() + QUESTION,
}


def raw_rcode(wire: bytes | None) -> str:
    """The header rcode of a raw response, or 'dropped'."""
    if wire is None:
        return "dropped"
    if len(wire) < 4:
        return f"runt response {wire!r}"
    return dns.rcode.to_text(dns.rcode.Rcode(wire[3] & 0x0F))


def test_malformed_packets_get_the_same_rcode_as_nsd(servers: tuple[Server, Server]) -> None:
    """Malformed packets: same rcode as NSD, or dropped by both (sent in parallel)."""
    nsd, subject = servers
    jobs = [(label, server) for label in MALFORMED for server in servers]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {job: pool.submit(exchange, job[1], MALFORMED[job[0]], False, RAW_TIMEOUT) for job in jobs}
        replies = {job: future.result() for job, future in futures.items()}
    diffs = []
    for label in MALFORMED:
        ours, theirs = replies[label, nsd], replies[label, subject]
        if raw_rcode(ours) != raw_rcode(theirs):
            diffs.append(Difference(label, "rcode", raw_rcode(ours), raw_rcode(theirs)))
        if dnslib_diff := dnslib_difference(label, ours, theirs):
            diffs.append(dnslib_diff)
    report("malformed packets", servers, len(MALFORMED), diffs, Counter())

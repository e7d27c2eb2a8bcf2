"""Shared pieces of the fuzz tests (tests/test_fuzz_*.py) and the long-run harnesses (fuzz/).

* `ControlledEngine`: the engine as `serve` wires it (UPDATE and NOTIFY to
  `UpdateService.handle`, AXFR/IXFR to `TransferService.handle`, committed edits swapping
  the table), over zone files in a temporary directory; no sockets, no event loop.
* Seed messages: UPDATE (signed and unsigned), NOTIFY, AXFR/IXFR, and zone/config texts.
* `mutate`: the byte-level mutator of the plain-loop harnesses (seeded, bounded).
* `check_message_reply`: the invariants of every reply: None (silence) or bytes that
  dnspython and dnslib both decode, with the query's ID and QR set.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.update
import dnslib
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dynmx.answer.compiler import compile_table
from dynmx.answer.engine import Engine
from dynmx.answer.zoneset import ZoneData
from dynmx.app.health_monitor import HealthMonitor
from dynmx.app.listeners import zone_gate
from dynmx.app.transfer_service import TransferService
from dynmx.app.update_service import LARGE_UPDATE, UpdateService
from dynmx.config import Config, from_mapping
from dynmx.control.journal import Journal
from dynmx.control.owner import ZoneOwner
from dynmx.control.tsig import tsig_record
from dynmx.errors import ConfigError, DropPacket, FormError, Problem, ZoneLoadError
from dynmx.policy.checks import check_policy
from dynmx.policy.served import build_table
from dynmx.wire.query import parse_query
from dynmx.wire.response import append_record
from dynmx.zone.loader import LoadedZone, load_zone_file
from tests.conftest import TEST_SECRET
from tests.helpers_engine import EXAMPLE_ZONE, ORIGIN, OTHER_ZONE, zone_data
from tests.helpers_engine import OTHER as OTHER_ORIGIN

if TYPE_CHECKING:
    from dynmx.control.store import StateStore
    from dynmx.metrics import Metrics

KEY_NAME = "ops-key."
DYN_KEY = "dyn-key."  # names = ["*.dyn.example.test."], types = ["A", "AAAA"]
STRANGER_KEY = "stranger-key."  # a known key in no zone's allow_update
KEYRING = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", TEST_SECRET)})
DYN_KEYRING = dns.tsigkeyring.from_text({DYN_KEY: ("hmac-sha256", TEST_SECRET)})
STRANGER_KEYRING = dns.tsigkeyring.from_text({STRANGER_KEY: ("hmac-sha256", TEST_SECRET)})
WRONG_KEYRING = dns.tsigkeyring.from_text({KEY_NAME: ("hmac-sha256", "d3Jvbmcgd3Jvbmcgd3Jvbmc=")})
PRIMARY = "127.0.0.1"  # the address other.test.'s primary NOTIFYs from
PEER = (PRIMARY, 5300)
OUTSIDER = ("127.0.0.2", 5300)  # not allowed to transfer, not a primary
NSID = b"fuzz-ns1"  # so fuzzed queries asking for NSID (RFC 5001) get it
EXAMPLE = dns.name.from_text("example.test.")
OTHER = dns.name.from_text("other.test.")
MAX_UPDATE_RECORDS = 1000  # `[server] max_update_records` as the fuzzed engine has it (the default)
LOST = dns.name.from_text("lost.test.")  # a secondary without a copy, asked by PEER only: SERVFAIL


def fuzz_config(zones_dir: Path, state_dir: Path) -> Config:
    """example.test. editable with ops-key. and transferable from loopback; other.test. a secondary;
    lost.test. a secondary without a copy that only PEER may query."""
    raw = {
        "server": {
            "listen": ["127.0.0.1:0"],
            "zones_dir": str(zones_dir),
            "state_dir": str(state_dir),
            "nsid": NSID.decode(),
        },
        "key": [
            {"name": KEY_NAME, "secret": TEST_SECRET},
            # a key limited to A and AAAA below dyn.example.test., and one no zone lets update
            {
                "name": DYN_KEY,
                "secret": TEST_SECRET,
                "names": ["*.dyn.example.test."],
                "types": ["A", "AAAA"],
            },
            {"name": STRANGER_KEY, "secret": TEST_SECRET},
        ],
        "zone": [
            {
                "name": "example.test.",
                "serial": "increment",
                "allow_update": [KEY_NAME, DYN_KEY],
                "allow_transfer": ["127.0.0.1/32", KEY_NAME],
            },
            {"name": "other.test.", "primary": f"{PRIMARY}:9"},
            {"name": LOST.to_text(), "primary": f"{PRIMARY}:9", "allow_query": [f"{PRIMARY}/32"]},
        ],
    }
    return from_mapping(raw, base_dir=zones_dir.parent)


@dataclass
class ControlledEngine:
    """An engine with the app's UPDATE/NOTIFY/transfer handlers, as `App._start_services` wires them."""

    engine: Engine
    zones: dict[dns.name.Name, LoadedZone]
    updates: UpdateService
    transfers: TransferService
    journal: Journal
    directory: Path
    notified: list[tuple[dns.name.Name, str]] = field(default_factory=list)
    published: int = 0

    def zone_file(self, origin: dns.name.Name = EXAMPLE) -> Path:
        return self.zones[origin].path

    def close(self) -> None:
        self.updates.owner.close()


def controlled_engine(directory: Path) -> ControlledEngine:
    """Zone files and state under `directory`; the returned engine answers like `serve`."""
    zones_dir = directory / "zones"
    zones_dir.mkdir(parents=True, exist_ok=True)
    (zones_dir / "example.test.zone").write_text(EXAMPLE_ZONE)
    (zones_dir / "other.test.zone").write_text(OTHER_ZONE)
    config = fuzz_config(zones_dir, directory / "state")
    loaded = [load_zone_file(path) for path in sorted(zones_dir.glob("*.zone"))]
    zones = {zone.origin: zone for zone in loaded}
    owner = ZoneOwner(config, "fuzzed engine")
    journal = owner.journal

    def table() -> object:
        return compile_table([ZoneData(z.origin, z.zone) for z in zones.values()])

    engine = Engine(table(), nsid=NSID)  # type: ignore[arg-type]
    state: list[ControlledEngine] = []

    def publish(zone: LoadedZone) -> None:
        zones[zone.origin] = zone
        engine.swap(table())  # type: ignore[arg-type]
        state[0].published += 1

    updates = UpdateService(config, owner, lambda: zones, publish)
    transfers = TransferService(config, journal, lambda: zones)
    controlled = ControlledEngine(engine, zones, updates, transfers, journal, directory)
    state.append(controlled)

    def secondaries(origin: dns.name.Name, source: str) -> bool:  # SecondaryService.notified
        accepted = origin == OTHER and source == PRIMARY
        if accepted:
            controlled.notified.append((origin, source))
        return accepted

    engine.control = updates.handle
    engine.transfer = transfers.handle
    engine.gate = zone_gate(config, [LOST], zones)
    updates.secondaries = secondaries
    updates.is_secondary = lambda origin: origin == OTHER
    return controlled


# -- seeds -------------------------------------------------------------------------------


def _update(
    zone: str, signed: bool, edns: bool = False, keyring: object = KEYRING, keyname: str = KEY_NAME
) -> dns.update.UpdateMessage:
    kwargs: dict[str, object] = {"keyring": keyring, "keyname": keyname} if signed else {}
    message = dns.update.UpdateMessage(zone, **kwargs)  # type: ignore[arg-type]
    if edns:
        message.use_edns(0, payload=1232, options=[dns.edns.GenericOption(65001, b"xy")])
    return message


def update_seeds() -> list[bytes]:
    """Valid UPDATE messages (RFC 2136), signed and unsigned, touching every section."""
    seeds: list[bytes] = []
    for signed in (True, False):
        add = _update("example.test.", signed)
        add.add("fz1", 300, "A", "192.0.2.1")
        add.add("fz1", 300, "TXT", '"fuzz"')
        deletes = _update("example.test.", signed, edns=True)
        deletes.delete("www", "AAAA")
        deletes.delete("mx2")
        deletes.delete("mx1", "A", "192.0.2.25")
        prereqs = _update("example.test.", signed)
        prereqs.present("www")
        prereqs.present("www", "A", "192.0.2.80")
        prereqs.absent("nope")
        prereqs.absent("nope", "MX")
        prereqs.replace("www", 60, "MX", "10 mx1.example.test.")
        # RFC 2136 §2.4, each form alone: yxrrset (value-independent, value-dependent with two
        # records), nxrrset, yxdomain, nxdomain; one that fails; each with a change
        prereq_forms = []
        for build in (
            lambda m: m.present("www", "AAAA"),
            lambda m: m.present("ns1", dns.rdataset.from_text("IN", "A", 0, "192.0.2.53")),
            lambda m: m.present("www", dns.rdataset.from_text("IN", "A", 0, "192.0.2.80", "192.0.2.81")),
            lambda m: m.absent("www", "TXT"),
            lambda m: m.present("mx1"),
            lambda m: m.absent("fz-new"),
            lambda m: m.absent("www"),  # fails: YXDOMAIN
        ):
            form = _update("example.test.", signed)
            build(form)
            form.add("fz-new", 300, "A", "192.0.2.9")
            prereq_forms.append(form)
        apex = _update("example.test.", signed)
        apex.add("@", 3600, "SOA", "ns1.example.test. hostmaster.example.test. 2024010102 1 1 1 1")
        apex.delete("@", "NS")
        apex.add("cname-in", 300, "A", "192.0.2.2")
        secondary = _update("other.test.", signed)
        secondary.add("h", 300, "AAAA", "2001:db8::1")
        elsewhere = _update("nowhere.test.", signed)
        elsewhere.add("h", 300, "A", "192.0.2.3")
        seeds += [m.to_wire() for m in (add, deletes, prereqs, *prereq_forms, apex, secondary, elsewhere)]
    wrong = dns.update.UpdateMessage("example.test.", keyring=WRONG_KEYRING, keyname=KEY_NAME)
    wrong.add("fz2", 300, "A", "192.0.2.4")
    seeds.append(wrong.to_wire())
    return seeds + key_rule_seeds() + large_update_seeds()


def key_rule_seeds() -> list[bytes]:
    """UPDATEs from the restricted key (its names and types, an SOA, a name outside), and from a
    known key that no zone lets update."""
    seeds: list[bytes] = []
    for build in (
        lambda m: m.replace("home.dyn", 60, "A", "192.0.2.44"),
        lambda m: m.add("@", 3600, "SOA", "evil.attacker.example. h.attacker.example. 2024010199 1 1 1 0"),
        lambda m: m.delete("mx1.dyn"),
        lambda m: m.add("www", 60, "AAAA", "2001:db8::44"),
    ):
        message = _update("example.test.", True, keyring=DYN_KEYRING, keyname=DYN_KEY)
        build(message)
        seeds.append(message.to_wire())
    stranger = _update("example.test.", True, keyring=STRANGER_KEYRING, keyname=STRANGER_KEY)
    stranger.add("fz4", 300, "A", "192.0.2.6")
    return [*seeds, stranger.to_wire()]


def large_update_seeds() -> list[bytes]:
    """UPDATEs large enough to be planned off the event loop (`LARGE_UPDATE` records and more),
    with prerequisites; one over `max_update_records`, signed and not; one out of a key's scope."""
    seeds: list[bytes] = []
    for count, signed, keyname, keyring in (
        (LARGE_UPDATE + 4, True, KEY_NAME, KEYRING),
        (LARGE_UPDATE + 4, True, DYN_KEY, DYN_KEYRING),
        (MAX_UPDATE_RECORDS + 1, True, KEY_NAME, KEYRING),
        (MAX_UPDATE_RECORDS + 1, False, KEY_NAME, KEYRING),
    ):
        message = _update("example.test.", signed, keyring=keyring, keyname=keyname)
        message.present("www", "A")
        message.absent("fz-large")
        for index in range(count - 2):
            message.add(f"fz{index}.large", 300, "A", f"192.0.2.{index % 250 + 1}")
        seeds.append(message.to_wire())
    return seeds


def sign_raw(data: bytes, keyname: str = KEY_NAME) -> bytes:
    """`data`, whatever it holds, with a TSIG record of `keyname` appended whose MAC covers it
    (RFC 8945 §4.3): a mutated message that the server verifies, so its content reaches the
    UPDATE parser and planner instead of a BADSIG. A TSIG the message holds already (a seed's)
    is taken off first, so the new one is the last record (RFC 8945 §5.1)."""
    if len(data) < 12:
        return data
    try:
        offset = parse_query(data).tsig_offset
    except (FormError, DropPacket):
        offset = None
    if offset is not None and data[10:12] != b"\x00\x00":
        arcount = ((data[10] << 8) | data[11]) - 1
        data = data[:10] + arcount.to_bytes(2, "big") + data[12:offset]
    key = {**KEYRING, **DYN_KEYRING}[dns.name.from_text(keyname)]
    template = dns.rdtypes.ANY.TSIG.TSIG(
        dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, 0, 300, b"", (data[0] << 8) | data[1], 0, b""
    )
    rdata, _ = dns.tsig.sign(data, key, template, int(time.time()))  # type: ignore[no-untyped-call]
    return append_record(data, tsig_record(key.name, rdata))


def settle(reply: object) -> object:
    """The reply of a handler, awaited on a new loop when it is to come (a large UPDATE is
    planned on a thread and acknowledged when served)."""
    if not inspect.isawaitable(reply):
        return reply

    async def wait() -> object:
        return await reply

    return asyncio.run(wait())


def notify_seeds() -> list[bytes]:
    """NOTIFY (RFC 1996) for the secondary zone and for a primary zone, with and without SOA."""
    seeds: list[bytes] = []
    for zone in ("other.test.", "example.test.", "unknown.test."):
        for with_soa, signed in ((True, False), (False, False), (True, True)):
            message = dns.message.make_query(zone, "SOA")
            message.flags = dns.flags.AA
            message.set_opcode(dns.opcode.NOTIFY)
            if with_soa:
                soa = "ns1.other.test. hostmaster.other.test. 8 3600 900 604800 600"
                message.answer.append(dns.rrset.from_text(zone, 600, "IN", "SOA", soa))
            if signed:
                message.use_tsig(KEYRING, KEY_NAME)
            seeds.append(message.to_wire())
    return seeds


def transfer_seeds() -> list[bytes]:
    """AXFR and IXFR queries (RFC 5936, RFC 1995), signed and not."""
    seeds: list[bytes] = []
    seeds.append(dns.message.make_query(LOST, "AXFR").to_wire())
    for signed in (False, True):
        axfr = dns.message.make_query("example.test.", "AXFR")
        ixfr = dns.message.make_query("example.test.", "IXFR")
        soa = "ns1.example.test. hostmaster.example.test. 2024010101 7200 900 1209600 300"
        ixfr.authority.append(dns.rrset.from_text("example.test.", 0, "IN", "SOA", soa))
        for message in (axfr, ixfr):
            if signed:
                message.use_tsig(KEYRING, KEY_NAME)
            seeds.append(message.to_wire())
    return seeds


def edns_seeds() -> list[bytes]:
    """Queries carrying EDNS options: NSID, cookie, ECS, padding, unknown, and an UPDATE with them."""
    options = [
        dns.edns.GenericOption(dns.edns.OptionType.NSID, b""),
        dns.edns.GenericOption(10, b"c" * 8),
        dns.edns.ECSOption("192.0.2.0", 24),
        dns.edns.GenericOption(12, b"\x00" * 16),
        dns.edns.GenericOption(65001, b"zz"),
    ]
    query = dns.message.make_query("www.example.test.", "A", use_edns=0, options=options, want_dnssec=True)
    update = _update("example.test.", True)
    update.use_edns(0, options=options[:2])
    update.add("fz3", 300, "A", "192.0.2.5")
    return [query.to_wire(), update.to_wire()]


# -- mutation ----------------------------------------------------------------------------


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings of the fuzz tests: `examples` each, times DYNMX_FUZZ_SCALE (long runs)."""
    scale = float(os.environ.get("DYNMX_FUZZ_SCALE", "1"))
    return settings(
        max_examples=max(1, int(examples * scale)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


_OPS = (0, 0, 0, 1, 2, 3, 4)  # set a byte (most often), insert, delete, truncate, duplicate


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """One of `seeds` with 1 to 5 byte-level edits."""
    data = bytearray(draw(st.sampled_from(seeds)))
    edits = st.tuples(st.sampled_from(_OPS), st.integers(0, 4096), st.binary(min_size=1, max_size=8))
    for op, where, chunk in draw(st.lists(edits, min_size=1, max_size=5)):
        pos = where % (len(data) + 1)
        if op == 0 and data:
            data[pos % len(data)] = chunk[0]
        elif op == 1:
            data[pos:pos] = chunk
        elif op == 2:
            del data[pos : pos + len(chunk)]
        elif op == 3:
            del data[pos:]
        else:
            data[pos:pos] = data[pos : pos + 4 * len(chunk)]
    return bytes(data)


INTERESTING = (0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80, 0xC0, 0xFF)


def mutate(data: bytes, rng: random.Random, max_size: int = 4096) -> bytes:
    """1 to 4 random edits: set, flip, insert, delete, duplicate, truncate; result <= max_size."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randint(0, len(out))
        if op == 0 and out:
            out[pos % len(out)] = rng.randrange(256)
        elif op == 1 and out:
            out[pos % len(out)] ^= 1 << rng.randrange(8)
        elif op == 2 and out:
            out[pos % len(out)] = rng.choice(INTERESTING)
        elif op == 3:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:
            del out[pos : pos + rng.randint(1, 8)]
        elif op == 5 and out:
            start = rng.randrange(len(out))
            out[pos:pos] = out[start : start + rng.randint(1, 16)]
        else:
            del out[pos:]
    return bytes(out[:max_size])


# -- invariants --------------------------------------------------------------------------


def check_message_reply(data: bytes, reply: bytes | list[bytes] | None) -> int:
    """The reply to `data` is silence or messages both decoders read; returns how many messages.

    Signed replies are decoded without checking the MAC (keyring=False): the point is the
    format; signatures are checked by the UPDATE tests.
    """
    if reply is None:
        assert len(data) < 12 or data[2] & 0x80, "only short packets and responses are dropped"
        return 0
    parts = reply if isinstance(reply, list) else [reply]
    assert parts, "an empty list of replies"
    for part in parts:
        assert len(part) <= 65535
        assert part[:2] == data[:2], "reply ID differs from the query's"
        assert part[2] & 0x80, "QR clear in a reply"
        assert decode_both(part).id == int.from_bytes(data[:2], "big")
    return len(parts)


def decode_both(reply: bytes) -> dns.message.Message:
    """`reply` decoded by dnspython (TSIG not verified) and by dnslib, where dnslib can."""
    message = dns.message.from_wire(reply, keyring=False)
    try:
        dnslib.DNSRecord.parse(reply)
    except dnslib.DNSError as error:
        if not _dnslib_limit(str(error), message):
            raise
    return message


_DNSLIB_LABEL = re.compile(r"Invalid label <(b'.*'|b\".*\")>")


def _dnslib_limit(error: str, message: dns.message.Message) -> bool:
    """What dnslib refuses and DNS allows: labels that are not UTF-8 (RFC 2181 11) and records
    with RDLENGTH 0 ("Empty RR"; RFC 3597: NULL, TYPE65280 \\# 0)."""
    if match := _DNSLIB_LABEL.search(error):
        label = ast.literal_eval(match.group(1))
        try:
            label.decode()
        except UnicodeDecodeError:
            return True
        return False
    if "Empty RR" in error:
        sections = (message.answer, message.authority, message.additional)
        return any(not rdata.to_wire() for section in sections for rrset in section for rdata in rrset)
    return False


# -- file loaders ------------------------------------------------------------------------


def problem_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(re.escape(str(path)) + r":\d+: \S.*")  # one line: `.` stops at a newline


def check_zone_file(path: Path) -> bool:
    """Loads (True) or is refused with `file:line: reason` problems only (False); nothing else."""
    try:
        load_zone_file(path)
    except ZoneLoadError as error:
        assert error.problems, "a refusal without a problem"
        for problem in error.problems:
            assert isinstance(problem, Problem)
            assert problem_pattern(path).fullmatch(str(problem)), str(problem)
        return False
    return True


def check_config_file(path: Path, loader: Callable[[Path], object]) -> bool:
    """Loads (True) or raises ConfigError reading `file:line: reason` (False); nothing else."""
    try:
        loader(path)
    except ConfigError as error:
        assert problem_pattern(path).fullmatch(str(error)), str(error)
        return False
    return True


def record(rdtype: int, wire: bytes) -> dns.rdata.Rdata:
    """An IN record from its RDATA wire form (for records dnspython will not write from text)."""
    return dns.rdata.from_wire(1, rdtype, wire, 0, len(wire))


# Every section of the config with most of its keys: the seed the config fuzzers mutate.
CONFIG_SEED = f"""\
# a config touching every section
[server]
listen = ["127.0.0.1:5353", "[::1]:5353"]
zones_dir = "zones"
state_dir = "state"
tcp_idle_timeout = 10
tcp_max_connections = 200
cache_size = 10000
version = "dynmx"
client_subnet = true
client_subnet_sources = ["192.0.2.53/32", "2001:db8::53/128"]
random_seed = 7

[http]
listen = "127.0.0.1:9153"

[log]
level = "info"

[rrl]
enabled = true
rate = 200.0
slip = 2

[[pool]]
name = "example.test."
strategy = "weighted"
ttl = 30
on_promote = ["/bin/true", "x"]
  [[pool.member]]
  host = "mx1.example.test."
  preference = 10
  weight = 2.5
  probe = "none"
  [[pool.member]]
  host = "mx2.example.test."
  role = "relay"
  probe = "http"
  url = "http://127.0.0.1:8080/health"
  expect_status = [200, 204]
  sources = ["192.0.2.0/24"]
  [[pool.hint]]
  label = "urgent"
  order = ["mx1.example.test."]

[[pool]]
name = "www.example.test."
kind = "address"
member = [{{ host = "192.0.2.80", probe = "tcp", port = 80 }}, {{ host = "2001:db8::80", probe = "none" }}]

[[client]]
prefix = "10.0.0.0/8"
action = "hint"
hint = "urgent"

[[name]]
name = "old.example.test."
action = "null-mx"

[[key]]
name = "ops-key."
algorithm = "hmac-sha256"
secret = "{TEST_SECRET}"
names = ["*.dyn.example.test.", "host.example.test."]
types = ["A", "AAAA"]

[[zone]]
name = "example.test."
serial = "increment"
allow_update = ["ops-key."]
allow_transfer = ["127.0.0.0/8", "ops-key."]
notify = ["127.0.0.1:5354"]

[[zone]]
name = "other.test."
primary = "127.0.0.1:5355"
primary_key = "ops-key."

[defaults]
ns = ["ns1.example.test."]
hostmaster = "hostmaster.example.test."

[dyndns2]
enabled = true
ttl = 60
  [[dyndns2.host]]
  hostname = "home.example.test."
  username = "home"
  password = "pw"
"""

_TOML_WORDS = r"""
= [ ] [[ ]] { } , . " ' # \ \u00e9 0 -1 1e400 nan inf true false 70000 1979-05-27 07:32:00 "" [] {}
x é pool member host name key zone server listen secret allow_update types names primary_key "A" "::1"
"BOGUS" "300.1.1.1:5" "*.x." "127.0.0.1:0" "a..b" "hmac-md5" "%%%" "a.b" "a;b." "x\"y." "127.0.0/8"
"""
TOML_TOKENS = (
    *_TOML_WORDS.split(),
    '"' * 3,
    "\n",
    "\r\n",
    "\x00",
    "\t",
    '"bad name."',
    '"' + "a" * 64 + '.test."',
)


def mutate_text(text: str, rng: random.Random, tokens: tuple[str, ...]) -> str:
    """1 to 5 line-level edits: insert a token, delete characters, drop, duplicate or add a line."""
    lines = text.split("\n")
    for _ in range(rng.randint(1, 5)):
        op = rng.randrange(6)
        index = rng.randrange(len(lines))
        line = lines[index]
        cut = rng.randint(0, len(line))
        if op == 0:
            lines[index] = line[:cut] + rng.choice(tokens) + line[cut:]
        elif op == 1:
            lines[index] = line[:cut] + line[cut + rng.randint(1, 6) :]
        elif op == 2 and len(lines) > 1:
            del lines[index]
        elif op == 3:
            lines.insert(index, lines[rng.randrange(len(lines))])
        elif op == 4:
            lines.insert(index, " ".join(rng.choice(tokens) for _ in range(rng.randint(1, 5))))
        else:
            lines[index] = line[:cut] + chr(rng.randrange(0x250)) + line[cut:]
    return "\n".join(lines)


def zone_data_list() -> list[ZoneData]:
    """example.test. and other.test. as the compiler takes them."""
    return [zone_data(ORIGIN, EXAMPLE_ZONE), zone_data(OTHER_ORIGIN, OTHER_ZONE)]


_ZONE_WORDS = r"""
$ORIGIN $TTL $INCLUDE $GENERATE $UNICODE @ ( ) ; " \ \# IN CH SOA NS MX A AAAA TXT CNAME DNAME DS TYPE65535
CLASS3 2147483648 -1 * . .. é \ufeff xn-- 1.2.3.4 ::1 65536 \000 \999 $ other.test. example.net.
"""
ZONE_TOKENS = (*_ZONE_WORDS.split(), "\n", "\r", "\t", " ", "\x00", "a" * 64, "0 .", "10 mx1")


def query_every_name(path: Path) -> None:
    """A zone that loaded compiles, and its names answer without internal errors."""
    zone = load_zone_file(path)
    engine = Engine(compile_table([ZoneData(zone.origin, zone.zone)]))
    for name in [*list(zone.zone.nodes)[:12], zone.origin]:
        for rdtype in ("A", "MX", "NS", "ANY", "DS", "TXT"):
            data = dns.message.make_query(name, rdtype).to_wire()
            for tcp in (False, True):
                servfail = engine.stats["servfail"]
                reply = engine.handle(data, None, tcp)
                assert engine.stats["servfail"] == servfail, f"internal error for {name} {rdtype}"
                check_message_reply(data, reply)  # type: ignore[arg-type]


def start_up_parts(config: Config, store: StateStore, metrics: Metrics) -> None:
    """What `serve` builds from a config before answering: nothing may raise on a loaded config."""
    UpdateService(config, None, dict, lambda zone: None)  # type: ignore[arg-type]
    TransferService(config, None, dict)  # type: ignore[arg-type]
    config.listen_addresses()
    zones = zone_data_list()
    check_policy(config, zones)
    monitor = HealthMonitor(config, store, lambda plans: None, metrics)
    build_table(config, zones, monitor.plans_for, None)

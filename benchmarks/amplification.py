"""UDP amplification of dynmx over the example zones: reply bytes / query bytes, worst per type.

Sends one UDP query for every owner name x every query type present in the zones, plus
ANY, NXDOMAIN names, empty non-terminals, wildcard expansions, pool hint names, class
ANY and CH, and a few meta types (AXFR, IXFR, MAILA, MAILB, RRSIG, DNSKEY, NSEC3PARAM),
each without EDNS, with EDNS payload 1232, 4096, and 4096 with DO. Amplification is the
DNS reply's size over the DNS query's size (the UDP payloads; `factor_ip` also counts
the 28 bytes of IPv4 and UDP headers on each side, which is what a link carries).

The zones are the example (examples/dynmx.toml with zones/, pools and hints included)
and the differential-test zones in tests/data/diff (big TXT, 30 MX, delegations,
wildcards, CNAME chains). NSD 4.6 serves the same files as a reference when installed.
Targets (issue "Hardening and scale"): ANY below 3x (RFC 8482 minimal answers); the worst
of everything is reported as it is, large ordinary answers ("non-ANY") separately.

    .venv/bin/python benchmarks/amplification.py [--no-nsd]

Prints tables and writes benchmarks/out/amplification-<time>.json. Not a test.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, ROOT, Dynmx, loadavg, source, stamp, udp_exchange, udp_socket

from tests.nsd import Nsd, NsdUnavailable

EXAMPLE_CONFIG = ROOT / "examples" / "dynmx.toml"
ZONE_FILES = [
    ROOT / "zones" / "example.test.zone",
    *sorted((ROOT / "tests" / "data" / "diff").glob("*.zone")),
]
META_TYPES = ["ANY", "AXFR", "IXFR", "MAILA", "MAILB", "RRSIG", "DNSKEY", "NSEC3PARAM"]
VARIANTS = {  # name -> make_query keyword arguments
    "plain": {"use_edns": False},
    "edns1232": {"use_edns": 0, "payload": 1232},
    "edns4096": {"use_edns": 0, "payload": 4096},
    "edns4096-do": {"use_edns": 0, "payload": 4096, "want_dnssec": True},
}
IP_UDP_HEADERS = 28
TIMEOUT = 1.0  # per query; loopback answers in well under a millisecond
ANY_TARGET = 3.0


@dataclass
class Probe:
    """One query and what came back."""

    server: str
    zone: str  # the served zone the name is in, "-" outside every zone
    qname: str
    qtype: str
    qclass: str
    variant: str
    query_bytes: int
    reply_bytes: int  # 0: no reply within TIMEOUT
    factor: float
    factor_ip: float
    rcode: int
    aa: bool
    tc: bool
    counts: tuple[int, int, int]  # answer, authority, additional

    @property
    def referral(self) -> bool:
        return self.rcode == 0 and not self.aa and self.counts[0] == 0 and self.counts[1] > 0

    def describe(self) -> str:
        cls = "" if self.qclass == "IN" else f" {self.qclass}"
        return f"{self.qname}{cls} {self.qtype} ({self.variant})"


# --- what to ask --------------------------------------------------------------------------


def load_zones(paths: list[Path]) -> list[dns.zone.Zone]:
    return [dns.zone.from_file(str(path), relativize=False, check_origin=False) for path in paths]


def pool_names(config: Path) -> list[dns.name.Name]:
    """Pool owners, `_hint.<pool>` (an empty non-terminal) and every `<label>._hint.<pool>`."""
    raw = tomllib.loads(config.read_text())
    names = []
    for pool in raw.get("pool", []):
        base = dns.name.from_text(pool["name"])
        names += [base, dns.name.from_text("_hint", base)]
        names += [dns.name.from_text(hint["label"] + "._hint", base) for hint in pool.get("hint", [])]
        names.append(dns.name.from_text("no-such-hint._hint", base))
    return names


def query_names(zones: list[dns.zone.Zone], extra: list[dns.name.Name]) -> list[dns.name.Name]:
    """Owners, wildcard expansions, empty non-terminals, one missing name per zone, out-of-zone names."""
    names: dict[dns.name.Name, None] = {}
    for zone in zones:
        origin = zone.origin
        assert origin is not None
        for name in zone.nodes:
            names[name] = None
            if name.labels[0] == b"*":
                names[dns.name.from_text("amp-wild", name.parent())] = None
            parent = name.parent()
            while parent != origin and parent.is_subdomain(origin):
                names[parent] = None  # an empty non-terminal unless it is an owner too
                parent = parent.parent()
        names[dns.name.from_text("nx-amp", origin)] = None
    for name in extra:
        names[name] = None
    names[dns.name.from_text("example.com.")] = None  # outside every zone: REFUSED
    names[dns.name.root] = None
    return list(names)


def query_types(zones: list[dns.zone.Zone]) -> list[str]:
    present = {rdataset.rdtype for zone in zones for node in zone.nodes.values() for rdataset in node}
    return sorted({dns.rdatatype.to_text(t) for t in present} | set(META_TYPES))


def questions(
    zones: list[dns.zone.Zone], extra: list[dns.name.Name]
) -> Iterator[tuple[dns.name.Name, str, str]]:
    """(name, qtype, qclass): every name x every type in IN, ANY also in class ANY, and CH TXT."""
    types = query_types(zones)
    for name in query_names(zones, extra):
        for qtype in types:
            yield name, qtype, "IN"
        yield name, "ANY", "ANY"
    for chaos in ("version.bind.", "id.server.", "hostname.bind."):
        yield dns.name.from_text(chaos), "TXT", "CH"


# --- asking -------------------------------------------------------------------------------


def header(reply: bytes) -> tuple[int, bool, bool, tuple[int, int, int]]:
    """rcode, AA, TC and the section counts of a reply."""
    _, flags, _, an, ns, ar = struct.unpack("!HHHHHH", reply[:12])
    return flags & 0xF, bool(flags & 0x0400), bool(flags & 0x0200), (an, ns, ar)


def zone_of(name: dns.name.Name, origins: list[dns.name.Name]) -> str:
    inside = [o for o in origins if name.is_subdomain(o)]
    return max(inside, key=len).to_text() if inside else "-"


def probe_all(
    server: str, port: int, zones: list[dns.zone.Zone], extra: list[dns.name.Name], deadline: float
) -> list[Probe]:
    probes = []
    origins = [z.origin for z in zones if z.origin is not None]
    with udp_socket() as sock:
        for name, qtype, qclass in questions(zones, extra):
            for variant, options in VARIANTS.items():
                if time.monotonic() > deadline:
                    print(f"amplification: {server}: time is up after {len(probes)} queries", file=sys.stderr)
                    return probes
                query = dns.message.make_query(name, qtype, qclass, **options)  # type: ignore[arg-type]
                wire = query.to_wire()
                reply, _ = udp_exchange(sock, wire, port, TIMEOUT)
                size = len(reply) if reply else 0
                rcode, aa, tc, counts = (
                    header(reply) if reply and len(reply) >= 12 else (-1, False, False, (0, 0, 0))
                )
                probes.append(
                    Probe(
                        server,
                        zone_of(name, origins),
                        name.to_text(),
                        qtype,
                        qclass,
                        variant,
                        len(wire),
                        size,
                        round(size / len(wire), 3),
                        round((size + IP_UDP_HEADERS) / (len(wire) + IP_UDP_HEADERS), 3) if size else 0.0,
                        rcode,
                        aa,
                        tc,
                        counts,
                    )
                )
    return probes


def serve_dynmx(workdir: Path, zone_dir: Path) -> Dynmx:
    """examples/dynmx.toml (pools, hints) with its zones and state moved into `workdir`."""
    text = EXAMPLE_CONFIG.read_text()
    for key, value in (("zones_dir", zone_dir), ("state_dir", workdir / "state")):
        text, count = re.subn(rf"^{key}\s*=.*$", f'{key} = "{value}"', text, count=1, flags=re.MULTILINE)
        if count != 1:
            raise RuntimeError(f"{EXAMPLE_CONFIG}: no `{key} =` line to redirect")
    config = workdir / "dynmx.toml"
    config.write_text(text)
    return Dynmx(["--config", str(config), "--listen", "127.0.0.1:0", "--http", ""], workdir)


# --- reporting ----------------------------------------------------------------------------


def worst(probes: list[Probe]) -> Probe | None:
    answered = [p for p in probes if p.reply_bytes]
    return max(answered, key=lambda p: (p.factor, p.reply_bytes)) if answered else None


def category(probe: Probe) -> str:
    """The row of the per-type table: referrals (big by design, any qtype) get their own."""
    if probe.referral:
        return "referral"
    if probe.qclass == "CH":
        return "CH TXT"
    if probe.qclass == "ANY":
        return "class ANY"
    return probe.qtype


HEADLINES = ("worst_any", "worst_non_any", "worst_nxdomain", "worst_overall")


def headlines(probes: list[Probe]) -> dict[str, Probe | None]:
    return {
        "worst_any": worst([p for p in probes if p.qtype == "ANY"]),  # class IN and class ANY
        "worst_non_any": worst([p for p in probes if p.qtype != "ANY"]),
        "worst_nxdomain": worst([p for p in probes if p.rcode == 3]),
        "worst_overall": worst(probes),
    }


def summarise(probes: list[Probe]) -> dict[str, object]:
    by_type: dict[str, list[Probe]] = {}
    by_zone: dict[str, list[Probe]] = {}
    for probe in probes:
        by_type.setdefault(category(probe), []).append(probe)
        by_zone.setdefault(probe.zone, []).append(probe)
    any_over = [p for p in probes if p.qtype == "ANY" and p.factor >= ANY_TARGET]
    return {
        "queries": len(probes),
        "unanswered": sum(1 for p in probes if not p.reply_bytes),
        **headlines(probes),
        "per_zone": {zone: headlines(group) for zone, group in sorted(by_zone.items())},
        "per_type": {name: worst(group) for name, group in sorted(by_type.items())},
        "top_non_any": sorted((p for p in probes if p.qtype != "ANY"), key=lambda p: -p.factor)[:10],
        "any_over_target": sorted(any_over, key=lambda p: -p.factor),
    }


def line(probe: Probe) -> str:
    return f"{probe.factor:6.2f}x {probe.reply_bytes:5d} B  {probe.describe()}{' TC' if probe.tc else ''}"


def print_report(results: dict[str, dict[str, object]]) -> None:
    servers = list(results)
    dynmx = results["dynmx"]
    per_type: dict[str, Probe | None] = dynmx["per_type"]  # type: ignore[assignment]
    ref = {s: results[s]["per_type"] for s in servers if s != "dynmx"}
    print(f"\n{'type':11} {'worst':>6} {'reply':>6} {'query':>6}  {'query that produced it':52}", end="")
    print("".join(f" {s + ' worst':>10}" for s in ref))
    for name, probe in per_type.items():
        if probe is None:
            continue
        row = f"{name:11} {probe.factor:6.2f} {probe.reply_bytes:6d} {probe.query_bytes:6d}"
        row += f"  {probe.describe():52}"
        for table in ref.values():
            other = table.get(name)  # type: ignore[attr-defined]
            row += f" {other.factor:10.2f}" if other else f" {'-':>10}"
        print(row)
    print("(factor: DNS reply / DNS query bytes, UDP payloads; worst over all names and EDNS variants;")
    print(" referral: delegations, whatever the qtype; the other rows are answers from the zone itself)")
    zones: dict[str, dict[str, Probe | None]] = dynmx["per_zone"]  # type: ignore[assignment]
    print(f"\nworst factor per zone, {' / '.join(servers)}:")
    print(f"{'zone':14}" + "".join(f" {h[6:]:>16}" for h in HEADLINES))
    for zone in zones:
        cells = []
        for label in HEADLINES:
            found = [results[s]["per_zone"].get(zone, {}).get(label) for s in servers]  # type: ignore[attr-defined]
            cells.append(" / ".join(f"{p.factor:.2f}" if p else "-" for p in found))
        print(f"{zone:14}" + "".join(f" {cell:>16}" for cell in cells))
    for server in servers:
        summary = results[server]
        print(f"\n{server}: {summary['queries']} queries, {summary['unanswered']} unanswered")
        for label in HEADLINES:
            probe = summary[label]
            if isinstance(probe, Probe):
                print(
                    f"  {label:15} {probe.factor:6.2f}x ({probe.factor_ip:.2f}x with IP/UDP headers)  "
                    f"{probe.reply_bytes} B for {probe.query_bytes} B: {probe.describe()}"
                    f"{' TC' if probe.tc else ''}"
                )
        over = summary["any_over_target"]
        assert isinstance(over, list)
        print(f"  ANY queries at or over {ANY_TARGET:g}x: {len(over)}")
        for probe in over[:8]:
            print(f"    {line(probe)}  answer records={probe.counts[0]}")
    print("\ndynmx, top non-ANY factors (ordinary answers that are large by design):")
    for probe in dynmx["top_non_any"]:  # type: ignore[attr-defined]
        print(f"  {line(probe)}")


def as_json(value: object) -> object:
    if isinstance(value, Probe):
        return asdict(value)
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-nsd", action="store_true", help="do not run NSD as the reference")
    parser.add_argument(
        "--max-seconds", type=float, default=300, help="stop asking after this long per server"
    )
    args = parser.parse_args()
    zones = load_zones(ZONE_FILES)
    extra = pool_names(EXAMPLE_CONFIG)
    results: dict[str, dict[str, object]] = {}
    all_probes: list[Probe] = []
    with tempfile.TemporaryDirectory(prefix="dynmx-amp-") as tmp:
        workdir = Path(tmp)
        zone_dir = workdir / "zones"
        zone_dir.mkdir()
        for path in ZONE_FILES:
            shutil.copy(path, zone_dir / path.name)
        with serve_dynmx(workdir, zone_dir) as server:
            probes = probe_all("dynmx", server.port, zones, extra, time.monotonic() + args.max_seconds)
            log = server.log_summary()
        results["dynmx"] = summarise(probes)
        all_probes += probes
        if not args.no_nsd:
            files = {
                z.origin.to_text(omit_final_dot=True): p.name for z, p in zip(zones, ZONE_FILES, strict=True)
            }
            try:
                with Nsd(zone_dir, files) as nsd:
                    probes = probe_all("nsd", nsd.port, zones, extra, time.monotonic() + args.max_seconds)
                results["nsd"] = summarise(probes)
                all_probes += probes
            except NsdUnavailable as error:
                print(f"amplification: {error}; no reference", file=sys.stderr)
    print_report(results)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"amplification-{stamp()}.json"
    document = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": source(),
        "loadavg_at_end": loadavg(),
        "zones": [str(p.relative_to(ROOT)) for p in ZONE_FILES],
        "config": str(EXAMPLE_CONFIG.relative_to(ROOT)),
        "variants": VARIANTS,
        "any_target": ANY_TARGET,
        "summary": as_json(results),
        "dynmx_log": log,
        "probes": [asdict(p) for p in all_probes],
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    print(f"\nwritten: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

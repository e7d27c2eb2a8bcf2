"""Signed pool MX (issue 24): dynmx signing its own zone, next to the same pool unsigned and PowerDNS.

Four parts, each measured in one run with the things it compares interleaved:

* `qps`: pools.py's round-robin pool MX (three members and a relay), served by three servers
  started side by side, each pinned to core 0 while dnsperf runs on core 1 (2 s warm-up, not
  counted): dynmx unsigned, dynmx with `[[zone]] dnssec = true` (ECDSA P-256, NSEC) and
  PowerDNS 4.7 with pools.py's LUA MX (a fresh random rotation per query, as dynmx's
  round-robin rotates) in a zone secured with `pdnsutil secure-zone` (a P-256 CSK, NSEC, signed
  online with its signature cache). Every server gets the same query file with DO=1
  (`dnsperf -D`); the signed ones also with DO=0. Each round runs every case once, in an order
  that turns by one each round; the ratios are taken within a round.
* `startup`: a zone of `--names` names (load.py's shape: A on every name, MX on every 4th,
  AAAA on every 10th) served unsigned, signed with NSEC and with NSEC3: seconds from spawn
  until the last name's A comes back (with its RRSIG when signed, DO=1) and until the table
  is compiled (`event=compiled`: a big zone may first be answered by the slow path), the
  server's CPU seconds and its peak RSS (VmHWM) by then. Interleaved per round; the first
  round also counts the RRSIGs in an AXFR.
* `sigs`: signatures per second on one core, in-process through `dynmx.zone.signer` with a
  cold cache (distinct RRsets), for P-256 and Ed25519 in turn, next to the cryptography
  library's own rate and `dns.dnssec.sign`'s, and the rate of cache hits; then a small zone
  signed twice with a cache larger and one smaller than its signature count (what an edit's
  re-sign takes from the cache).
* `profile`: the signed and unsigned pool MX through `Engine.handle` in process (DO=1 bytes,
  no sockets), per-query time interleaved, and a cProfile of the signed loop. Runs when the
  signed/unsigned qps ratio is below 0.9, or when asked for.

    .venv/bin/python benchmarks/signed_pool.py                      # all parts, ~10 min
    .venv/bin/python benchmarks/signed_pool.py --parts qps,sigs --rounds 3 --seconds 8
    .venv/bin/python benchmarks/signed_pool.py --parts startup --names 100000

Not a test; asserts nothing. Writes benchmarks/out/signed-pool-<time>.json.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import (
    HOST,
    OUT,
    ROOT,
    SRC,
    Dynmx,
    dnsperf_run,
    loadavg,
    source,
    stamp,
    top_functions,
    udp_exchange,
)

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(SRC))  # the in-process parts run the same tree as the servers (DYNMX_SRC)

import dns.dnssec
import dns.message
import dns.name
import dns.rdataset
import dns.rdatatype
from bench import DNSPERF_CORE, SERVER_CORE, pin, tree_cpu_seconds
from load import vm_kib
from load import write_zone as write_big_zone
from pools import LUA_MX, POOL_CONFIG, STATIC_MX, ZONE, ZONE_HEAD, _process

from tests.nsd import free_port

QPS_LIMIT = 400_000  # far above one core's rate, as in bench.py
WARMUP = 2
BIG = "big.test."


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def query(name: str, qtype: str, do: bool, qid: int = 7) -> bytes:
    msg = dns.message.make_query(name, qtype, use_edns=0, want_dnssec=do, payload=1232)
    msg.id = qid
    msg.flags = 0  # no RD, as dnsperf's queries to an authoritative server
    return msg.to_wire()


# --- servers ------------------------------------------------------------------------------


def dynmx_config(workdir: Path, zones: Path, extra: str = "", pool: bool = True) -> Path:
    """A config for `zones` with its state in `workdir`; `pool`: pools.py's round-robin MX pool."""
    state = workdir / "state"
    if pool:
        text = POOL_CONFIG.format(host=HOST, port=0, zones=zones, zone=ZONE)
    else:
        text = f'[server]\nlisten = ["{HOST}:0"]\nzones_dir = "{zones}"\n'
    text = text.replace("[server]\n", f'[server]\nstate_dir = "{state}"\n', 1)
    path = workdir / "dynmx.toml"
    path.write_text(text + extra)
    return path


@contextmanager
def dynmx_pool(workdir: Path, signed: bool) -> Iterator[tuple[int, int]]:
    """pools.py's pool zone and config, signed or not; yields (port, pid)."""
    zones = workdir / "zones"
    zones.mkdir()
    (zones / f"{ZONE}.zone").write_text(
        ZONE_HEAD + STATIC_MX.format(owner="@") + STATIC_MX.format(owner="static")
    )
    extra = f'[[zone]]\nname = "{ZONE}."\ndnssec = true\n' if signed else ""
    config = dynmx_config(workdir, zones, extra)
    with Dynmx(["--config", str(config)], workdir, prefix=pin(SERVER_CORE)) as server:
        yield server.port, server.pid


@contextmanager
def pdns_signed(workdir: Path) -> Iterator[tuple[int, int]]:
    """PowerDNS, bind backend, pools.py's LUA MX, the zone secured with `pdnsutil secure-zone`
    (keys in a bind-dnssec-db); yields (port, pid)."""
    (workdir / f"{ZONE}.zone").write_text(ZONE_HEAD + LUA_MX + STATIC_MX.format(owner="static"))
    (workdir / "named.conf").write_text(f'zone "{ZONE}" {{ file "{workdir}/{ZONE}.zone"; }};\n')
    port = free_port()
    (workdir / "pdns.conf").write_text(
        f"launch=bind\nbind-config={workdir}/named.conf\nbind-dnssec-db={workdir}/dnssec.db\n"
        f"local-address={HOST}\nlocal-port={port}\nenable-lua-records=shared\nsocket-dir={workdir}\n"
        "daemon=no\nguardian=no\nsetuid=\nsetgid=\nwebserver=no\napi=no\nlog-dns-queries=no\n"
    )
    util = ["pdnsutil", f"--config-dir={workdir}"]
    for step in (["create-bind-db", f"{workdir}/dnssec.db"], ["secure-zone", ZONE]):
        done = subprocess.run([*util, *step], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"pdnsutil {' '.join(step)} failed:\n{done.stdout}{done.stderr}")
    with _process([*pin(SERVER_CORE), "pdns_server", f"--config-dir={workdir}"], port) as pid:
        yield port, pid


def look(port: int, do: bool, tries: int = 30) -> dict[str, object]:
    """What the server answers to `ZONE MX` (size, RRSIGs, which target leads) over `tries` queries."""
    first: Counter[str] = Counter()
    size = rrsigs = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(tries):
            reply, _ = udp_exchange(sock, query(f"{ZONE}.", "MX", do, qid=i + 1), port)
            if reply is None:
                continue
            msg = dns.message.from_wire(reply)
            size = len(reply)
            sections = (msg.answer, msg.authority, msg.additional)
            rrsigs = sum(len(r) for s in sections for r in s if r.rdtype == dns.rdatatype.RRSIG)
            mx = [r for r in msg.answer if r.rdtype == dns.rdatatype.MX]
            if mx:
                first[str(min(mx[0], key=lambda rd: rd.preference).exchange)] += 1
    return {"reply_bytes": size, "rrsigs": rrsigs, "lowest_preference_target": dict(first)}


# --- part 1: qps --------------------------------------------------------------------------


def part_qps(args: argparse.Namespace, work: Path) -> dict[str, object]:
    queries = work / "queries-signed-pool.txt"
    queries.write_text(f"{ZONE} MX\n" * 1000)
    starters: dict[str, Callable[[Path], object]] = {
        "dynmx-unsigned": lambda d: dynmx_pool(d, signed=False),
        "dynmx-signed": lambda d: dynmx_pool(d, signed=True),
    }
    if shutil.which("pdns_server") and shutil.which("pdnsutil"):
        starters["pdns-signed"] = pdns_signed
    else:
        print("signed_pool: pdns_server/pdnsutil not installed; skipping PowerDNS", file=sys.stderr)
    cases = [("dynmx-unsigned", True), ("dynmx-signed", True), ("dynmx-signed", False)]
    if "pdns-signed" in starters:
        cases += [("pdns-signed", True), ("pdns-signed", False)]
    rounds: list[dict[str, dict[str, object]]] = []
    answers: dict[str, object] = {}
    with ExitStack() as stack:
        servers: dict[str, tuple[int, int]] = {}
        for name, start in starters.items():
            folder = work / name
            folder.mkdir()
            servers[name] = stack.enter_context(start(folder))  # type: ignore[arg-type]
        for name, (port, _) in servers.items():
            answers[name] = {"DO=1": look(port, True), "DO=0": look(port, False)}
        for number in range(args.rounds):
            turn = number % len(cases)
            measured: dict[str, dict[str, object]] = {}
            for server, do in cases[turn:] + cases[:turn]:
                port, pid = servers[server]
                extra = ["-D"] if do else []
                dnsperf_run("warm-up", port, queries, WARMUP, qps=QPS_LIMIT, extra=extra)
                run, _ = dnsperf_run(
                    server, port, queries, args.seconds, qps=QPS_LIMIT, server_pid=pid, extra=extra
                )
                run.server = server
                label = f"{server} DO={int(do)}"
                measured[label] = asdict(run)
                print(
                    f"signed_pool: round {number + 1} {label:20} {run.qps:9.0f} qps, "
                    f"cpu {run.server_cpu:4.0%}, lost {run.lost}, {run.rcodes}",
                    file=sys.stderr,
                )
            rounds.append(measured)
    qps = [{label: float(run["qps"]) for label, run in r.items()} for r in rounds]  # type: ignore[arg-type]
    # qps per core-second the server used: its capacity where dnsperf (one core) was the limit
    per_core = [
        {label: float(run["qps"]) / max(float(run["server_cpu"]), 0.01) for label, run in r.items()}  # type: ignore[arg-type]
        for r in rounds
    ]
    pairs = {
        "dynmx signed DO=1 / dynmx unsigned DO=1": ("dynmx-signed DO=1", "dynmx-unsigned DO=1"),
        "dynmx signed DO=0 / dynmx unsigned DO=1": ("dynmx-signed DO=0", "dynmx-unsigned DO=1"),
        "dynmx signed DO=1 / pdns signed DO=1": ("dynmx-signed DO=1", "pdns-signed DO=1"),
        "pdns signed DO=1 / pdns signed DO=0": ("pdns-signed DO=1", "pdns-signed DO=0"),
    }
    ratios = {}
    for label, (a, b) in pairs.items():
        if all(a in r and b in r for r in qps):
            ratios[label] = spread([r[a] / r[b] for r in qps])
            ratios[label + " (per server core)"] = spread([r[a] / r[b] for r in per_core])
    per_case = {label: spread([r[label] for r in qps]) for label in qps[0]}
    per_case_core = {label: spread([r[label] for r in per_core]) for label in per_core[0]}
    return {
        "answers": answers,
        "rounds": rounds,
        "qps": per_case,
        "qps_per_server_core": per_case_core,
        "ratios": ratios,
    }


# --- part 2: start-up on a big zone -------------------------------------------------------


def rrsig_answer(sock: socket.socket, port: int, name: str, signed: bool) -> bool:
    reply, _ = udp_exchange(sock, query(name, "A", True), port, timeout=0.5)
    if reply is None:
        return False
    msg = dns.message.from_wire(reply)
    types = {r.rdtype for r in msg.answer}
    return dns.rdatatype.A in types and (not signed or dns.rdatatype.RRSIG in types)


def axfr_rrsigs(port: int) -> dict[str, int]:
    """RRSIG and NSEC/NSEC3 records in an AXFR of the signed zone (dig, on loopback)."""
    done = subprocess.run(
        ["dig", "-p", str(port), f"@{HOST}", BIG, "AXFR", "+noall", "+answer", "+time=60"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    types = Counter(line.split()[3] for line in done.stdout.splitlines() if len(line.split()) > 4)
    return {"records": sum(types.values()), **{t: types[t] for t in ("RRSIG", "NSEC", "NSEC3")}}


def start_once(zones: Path, work: Path, case: str, names: int, axfr: bool) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix=f"{case}-", dir=work))
    extra = f'[[zone]]\nname = "{BIG}"\nallow_transfer = ["127.0.0.1/32"]\n'
    if case != "unsigned":
        extra += f'dnssec = true\ndenial = "{case}"\n'
    config = dynmx_config(folder, zones, extra, pool=False)
    probe = f"h{names - 1}.{BIG}"
    started = time.monotonic()
    with (
        Dynmx(["--config", str(config)], folder, timeout=900) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        serving = round(time.monotonic() - started, 2)
        deadline = started + 900
        while not rrsig_answer(sock, server.port, probe, case != "unsigned"):
            if time.monotonic() > deadline or not server.alive():
                raise RuntimeError(f"{case}: no answer for {probe}")
            time.sleep(0.05)
        answered = round(time.monotonic() - started, 2)
        answered_cpu = round(tree_cpu_seconds(server.pid), 2)
        compiled = server.wait_compiled(max(deadline - time.monotonic(), 1))
        result: dict[str, object] = {
            "case": case,
            "serving_s": serving,
            "answered_s": answered,
            "answered_cpu_s": answered_cpu,
            "compiled_s": compiled,
            "cpu_s": round(tree_cpu_seconds(server.pid), 2),
            "peak_rss_mib": round(vm_kib(server.pid, "VmHWM") / 1024, 1),
            "rss_mib": round(vm_kib(server.pid, "VmRSS") / 1024, 1),
            "entries": server.entries,
        }
        if axfr and case != "unsigned":
            result["axfr"] = axfr_rrsigs(server.port)
        result["log"] = server.log_summary()
    shutil.rmtree(folder, ignore_errors=True)
    return result


def part_startup(args: argparse.Namespace, work: Path) -> dict[str, object]:
    zones = work / "big-zones"
    zones.mkdir()
    write_big_zone(zones, args.names)
    cases = ["unsigned", "nsec", "nsec3"]
    rounds = []
    for number in range(args.startup_rounds):
        turn = number % len(cases)
        measured = {}
        for case in cases[turn:] + cases[:turn]:
            result = start_once(zones, work, case, args.names, axfr=number == 0)
            measured[case] = result
            shown = {k: v for k, v in result.items() if k != "log"}
            print(f"signed_pool: start-up round {number + 1} {shown}", file=sys.stderr)
        rounds.append(measured)
    summary: dict[str, object] = {}
    for case in cases:
        for key in ("answered_s", "compiled_s", "cpu_s", "peak_rss_mib"):
            summary[f"{case} {key}"] = spread([float(r[case][key]) for r in rounds])  # type: ignore[arg-type]
    for case in ("nsec", "nsec3"):
        summary[f"{case}/unsigned compiled_s"] = spread(
            [float(r[case]["compiled_s"]) / float(r["unsigned"]["compiled_s"]) for r in rounds]  # type: ignore[arg-type]
        )
        summary[f"{case}/unsigned peak_rss"] = spread(
            [float(r[case]["peak_rss_mib"]) / float(r["unsigned"]["peak_rss_mib"]) for r in rounds]  # type: ignore[arg-type]
        )
        sigs = rounds[0][case].get("axfr", {}).get("RRSIG")  # type: ignore[union-attr]
        if sigs:
            extra_cpu = [float(r[case]["cpu_s"]) - float(r["unsigned"]["cpu_s"]) for r in rounds]  # type: ignore[arg-type]
            summary[f"{case} signatures"] = sigs
            summary[f"{case} signatures per extra cpu second"] = spread(
                [sigs / s for s in extra_cpu if s > 0]
            )
    return {"names": args.names, "rounds": rounds, "summary": summary}


# --- part 3: signatures per second --------------------------------------------------------


def part_sigs(args: argparse.Namespace, work: Path) -> dict[str, object]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from dynmx.zone.keys import ensure_key
    from dynmx.zone.signer import SignatureCache, window

    if hasattr(os, "sched_setaffinity") and pin(DNSPERF_CORE):
        os.sched_setaffinity(0, {int(DNSPERF_CORE)})
    origin = dns.name.from_text("sig.test.")
    valid = window()
    keys = {alg: ensure_key(work / f"keys-{alg}", origin, alg) for alg in ("ecdsap256sha256", "ed25519")}
    counter = [0]

    def rrset() -> tuple[dns.name.Name, dns.rdataset.Rdataset]:
        counter[0] += 1
        i = counter[0]
        owner = dns.name.from_text(f"h{i}.sig.test.")
        return owner, dns.rdataset.from_text("IN", "A", 3600, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")

    def rate(step: Callable[[], object]) -> float:
        done = 0
        started = time.perf_counter()
        end = started + args.sig_seconds
        while time.perf_counter() < end:
            for _ in range(50):
                step()
            done += 50
        return done / (time.perf_counter() - started)

    rounds = []
    for number in range(args.rounds):
        measured: dict[str, float] = {}
        for alg in ("ecdsap256sha256", "ed25519") if number % 2 == 0 else ("ed25519", "ecdsap256sha256"):
            key = keys[alg]
            data = os.urandom(100)
            private = key.private
            if isinstance(private, ec.EllipticCurvePrivateKey):
                raw: Callable[[], object] = lambda p=private, d=data: p.sign(d, ec.ECDSA(hashes.SHA256()))  # noqa: E731
            else:
                raw = lambda p=private, d=data: p.sign(d)  # noqa: E731
            measured[f"{alg} cryptography sign"] = raw_rate = rate(raw)
            measured[f"{alg} dns.dnssec.sign"] = rate(
                lambda k=key: dns.dnssec.sign(
                    rrset(),
                    k.private,
                    signer=origin,
                    dnskey=k.dnskey,
                    inception=valid.inception,
                    expiration=valid.expiration,
                    origin=origin,
                )
            )
            cold = SignatureCache(size=10_000_000)
            measured[f"{alg} SignatureCache.sign cold"] = rate(
                lambda k=key, c=cold: c.sign(k, *rrset(), valid)
            )
            warm = SignatureCache()
            fixed = [rrset() for _ in range(1000)]
            for owner, rds in fixed:
                warm.sign(key, owner, rds, valid)
            cycle = iter(range(1 << 62))
            measured[f"{alg} SignatureCache.sign hit"] = rate(
                lambda k=key, c=warm, f=fixed, n=cycle: c.sign(k, *f[next(n) % 1000], valid)
            )
            print(
                f"signed_pool: sigs round {number + 1} {alg}: raw {raw_rate:.0f}/s, "
                f"dynmx cold {measured[f'{alg} SignatureCache.sign cold']:.0f}/s, "
                f"hits {measured[f'{alg} SignatureCache.sign hit']:.0f}/s",
                file=sys.stderr,
            )
        rounds.append({k: round(v) for k, v in measured.items()})
    summary = {label: spread([float(r[label]) for r in rounds]) for label in rounds[0]}
    for alg in keys:
        summary[f"{alg} dynmx cold / cryptography"] = spread(
            [r[f"{alg} SignatureCache.sign cold"] / r[f"{alg} cryptography sign"] for r in rounds]
        )
    resign = resign_from_cache(work, keys["ecdsap256sha256"])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {
        "core": DNSPERF_CORE,
        "seconds_each": args.sig_seconds,
        "rounds": rounds,
        "summary": summary,
        "resign_from_cache": resign,
    }


def resign_from_cache(work: Path, key: Any, names: int = 1000) -> list[dict[str, object]]:
    """A zone signed twice through `signed_zone` with a cache larger and one smaller than its
    signature count: what the second signing (an edit, the daily re-sign) takes from the
    cache. The zone is load.py's shape, scaled down, under the key's origin."""
    from dynmx.zone.loader import load_zone_file
    from dynmx.zone.signer import SignatureCache, signed_zone

    folder = work / "resign"
    folder.mkdir(exist_ok=True)
    path = write_big_zone(folder, names)
    text = path.read_text().replace(BIG, key.origin.to_text())
    path.write_text(text)
    zone = load_zone_file(path, key.origin).zone
    found = []
    for size in (names * 10, names * 2):
        cache = SignatureCache(size)
        signed_zone(zone, key, cache=cache)
        signatures = cache.misses
        started = time.perf_counter()
        signed_zone(zone, key, cache=cache)
        found.append(
            {
                "cache_size": size,
                "signatures": signatures,
                "second_signing_from_cache": cache.hits,
                "second_signing_made_again": cache.misses - signatures,
                "second_signing_s": round(time.perf_counter() - started, 2),
            }
        )
    return found


# --- part 4: where a signed answer's time goes, in process --------------------------------


def part_profile(args: argparse.Namespace, work: Path) -> dict[str, object]:
    from dynmx.answer.engine import Engine
    from dynmx.answer.zoneset import ZoneData
    from dynmx.config import load_config
    from dynmx.policy.served import build_table, plan_all
    from dynmx.zone.loader import load_zone_file

    engines = {}
    for signed in (False, True):
        folder = work / f"profile-{'signed' if signed else 'unsigned'}"
        zones = folder / "zones"
        zones.mkdir(parents=True)
        path = zones / f"{ZONE}.zone"
        path.write_text(ZONE_HEAD + STATIC_MX.format(owner="@") + STATIC_MX.format(owner="static"))
        extra = f'[[zone]]\nname = "{ZONE}."\ndnssec = true\n' if signed else ""
        config = load_config(dynmx_config(folder, zones, extra))
        loaded = load_zone_file(path)
        table = build_table(config, [ZoneData(loaded.origin, loaded.zone)], lambda p: plan_all(p, {}))
        engines["signed" if signed else "unsigned"] = Engine(table)
    data = {do: query(f"{ZONE}.", "MX", do) for do in (True, False)}
    addr = (HOST, 40000)
    sizes = {
        f"{name} DO={int(do)}": len(e.handle(data[do], addr) or b"")  # type: ignore[arg-type]
        for name, e in engines.items()
        for do in data
    }
    best: dict[str, float] = {}
    for _ in range(5):
        for name, engine in engines.items():
            for do, wire in data.items():
                started = time.perf_counter()
                for _ in range(args.repeat):
                    engine.handle(wire, addr)
                ns = (time.perf_counter() - started) / args.repeat * 1e9
                label = f"{name} DO={int(do)}"
                best[label] = round(min(best.get(label, ns), ns), 1)
    replies = {
        label: engines[label.split()[0]].handle(data[True], addr)
        for label in ("unsigned DO=1", "signed DO=1")
    }
    kernel = {label: round(loopback_ns(reply), 1) for label, reply in replies.items()}  # type: ignore[arg-type]
    parts = steps(engines, addr)
    dump = OUT / f"signed-pool-profile-{stamp()}.pstats"
    profiler = cProfile.Profile()
    engine = engines["signed"]
    profiler.enable()
    for _ in range(args.repeat):
        engine.handle(data[True], addr)
    profiler.disable()
    profiler.dump_stats(str(dump))
    return {
        "reply_bytes": sizes,
        "ns_per_query_best_of_5": best,
        "loopback_send_receive_ns_best_of_5": kernel,
        "steps_ns_best_of_5": parts,
        "pstats": str(dump),
        "top": top_functions(dump, 20),
    }


def steps(engines: dict[str, Any], addr: tuple[str, int], number: int = 200_000) -> dict[str, float]:
    """The steps of `Engine._fast` that differ between the unsigned pool MX and the signed
    one with DO=1, timed alone (ns): the table lookup (the DO=1 key is one more bytes
    concatenation), the selector's pick (the DO=1 side reads its state through a property)
    and the join of the reply (a bigger body)."""
    import timeit

    from dynmx.answer.compiler import DO_KEY

    name = b"\x04pool\x04test\x00"
    qtype = b"\x00\x0f"
    wire = query(f"{ZONE}.", "MX", True)
    cases = {
        "unsigned DO=1": (engines["unsigned"].table.entries, b""),
        "signed DO=1": (engines["signed"].table.entries, DO_KEY),
    }
    out: dict[str, float] = {}
    for label, (entries, prefix) in cases.items():
        entry = entries[prefix + name + qtype]
        picked = entry.selector.pick(addr)
        env = {
            "entries": entries,
            "prefix": prefix,
            "name": name,
            "data": wire,
            "qend": 12 + len(name),
            "selector": entry.selector,
            "addr": addr,
            "head": picked.head_opt[0],
            "body": picked.body,
            "question": wire[12 : 12 + len(name) + 4],
            "opt": b"\x00" * 11,
        }
        key = "entries.get(name + data[qend : qend + 2]) or entries.get(name)"
        if prefix:
            key = "entries.get(prefix + name + data[qend : qend + 2]) or entries.get(prefix + name)"
        for step, stmt in (
            ("lookup", key),
            ("pick", "selector.pick(addr)"),
            ("join", 'b"".join((data[:2], head, question, body, opt))'),
        ):
            best = min(timeit.repeat(stmt, globals=env, number=number, repeat=5))
            out[f"{label} {step}"] = round(best / number * 1e9, 1)
    return out


def loopback_ns(reply: bytes, batch: int = 32, batches: int = 3000) -> float:
    """Nanoseconds to send one datagram of `reply` over loopback and receive it (both ends'
    kernel work, which the server's CPU share and dnsperf's core pay for a bigger answer)."""
    best = float("inf")
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind((HOST, 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        target = rx.getsockname()
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(batches):
                for _ in range(batch):
                    tx.sendto(reply, target)
                for _ in range(batch):
                    rx.recv(65535)
            best = min(best, (time.perf_counter() - started) / (batch * batches) * 1e9)
    return best


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="qps,startup,sigs", help="any of qps,startup,sigs,profile")
    parser.add_argument("--seconds", type=int, default=8, help="each dnsperf run (after a 2 s warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the qps and sigs parts")
    parser.add_argument("--startup-rounds", type=int, default=3)
    parser.add_argument("--names", type=int, default=100_000, help="names of the start-up zone")
    parser.add_argument("--sig-seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=100_000, help="queries per in-process loop (profile)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    OUT.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": source(),
        "loadavg_before": loadavg(),
        "cpus": os.cpu_count(),
        "args": vars(args),
    }
    with tempfile.TemporaryDirectory(prefix="dynmx-signed-pool-") as tmp:
        work = Path(tmp)
        if "qps" in parts:
            result["qps"] = part_qps(args, work)
            ratio = result["qps"]["ratios"]["dynmx signed DO=1 / dynmx unsigned DO=1"]["median"]  # type: ignore[index]
            if ratio < 0.9:
                parts.add("profile")
        if "sigs" in parts:
            result["sigs"] = part_sigs(args, work)
        if "profile" in parts:
            result["profile"] = part_profile(args, work)
        if "startup" in parts:
            result["startup"] = part_startup(args, work)
    result["loadavg_after"] = loadavg()
    for part in ("qps", "startup", "sigs"):
        if part in result:
            key = "summary" if part != "qps" else "ratios"
            print(f"\n{part}:")
            for label, value in result[part][key].items():  # type: ignore[index]
                print(f"  {label}: {value}")
            if part == "qps":
                for label, value in result[part]["qps"].items():  # type: ignore[index]
                    print(f"  {label} qps: {value}")
    if "profile" in result:
        print(f"\nprofile: {result['profile']['ns_per_query_best_of_5']}")  # type: ignore[index]
        print(f"loopback send+receive ns: {result['profile']['loopback_send_receive_ns_best_of_5']}")  # type: ignore[index]
        print(f"steps ns: {result['profile']['steps_ns_best_of_5']}")  # type: ignore[index]
        for row in result["profile"]["top"][:12]:  # type: ignore[index]
            print(
                f"  {row['own_s']:.3f} s [{row['cum_s']:.3f}] {row['calls']:>8} "
                f"{row['where']} {row['function']}"
            )
    path = OUT / f"signed-pool-{stamp()}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

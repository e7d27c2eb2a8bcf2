"""Soak: dynmx with probed pools under steady load, reloads, UPDATEs and flapping members.

For `--minutes` (default 20) dynmx serves a zone whose apex MX is a round-robin pool of
three primaries and a relay, each probed over SMTP (interval 1 s, fall 2, rise 2) at a
real aiosmtpd sink on 127.0.0.2-5 (examples/mail-lab/sink.py), while at the same time:

* dnsperf sends at half the maximum qps measured just before (5 s, as bench.measure);
* every `--reload-every` s (60) the zones and config are reloaded, SIGHUP and POST
  /reload in turn;
* every second a TSIG-signed UPDATE adds a TXT record (and every third second another
  deletes an earlier one); after each acknowledgement the answer is checked at once
  (and once more 1 s later if it was not there yet);
* every `--flap-every` s (30) one primary's sink is stopped, and started again half a
  period later; the time until the pool answer drops (and regains) it is recorded;
* a latency probe sends `--probe-rate` (20) UDP queries per second, one at a time, and
  keeps each round-trip time: p50/p99/max come from these, not from dnsperf, which
  reports only the average and the maximum;
* the resident memory of dynmx (VmRSS) is sampled every 5 s.

At the end every acknowledged add must be answered and in the zone file, every
acknowledged delete gone, and again after dynmx restarts (journal and file agree).
The report (markdown and JSON) goes to benchmarks/out/soak-<time>.{md,json}.

    .venv/bin/python benchmarks/soak/soak.py                 # 20 minutes
    .venv/bin/python benchmarks/soak/soak.py --minutes 3     # smoke run

Loopback only; every loop is bounded by the run's deadline. Not a test.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import dns.zone

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import SERVER_CORE, cpu_model, ensure_tools, measure, pin, versions
from harness import (
    OUT,
    ROOT,
    Dynmx,
    RssSampler,
    dnsperf_run,
    loadavg,
    mib,
    source,
    stamp,
    tree_rss_kib,
    udp_exchange,
    udp_socket,
)

from tests.fake_servers import free_port

ZONE = "soak.test"
KEY = "soak-key."
SINK = ROOT / "examples" / "mail-lab" / "sink.py"
MEMBERS = {"mx1": "127.0.0.2", "mx2": "127.0.0.3", "mx3": "127.0.0.4", "relay": "127.0.0.5"}
HOSTS = 200  # static names besides the pool (each with A, MX and TXT); --hosts


@dataclass
class Tally:
    """What the side activities saw; lists are bounded by the run's length."""

    updates_acked: int = 0
    deletes_acked: int = 0
    updates_failed: list[str] = field(default_factory=list)
    visible_late: list[str] = field(default_factory=list)  # seen only on the second look
    invisible: list[str] = field(default_factory=list)  # acknowledged, not seen 1 s later
    reloads: list[dict[str, object]] = field(default_factory=list)
    flaps: list[dict[str, object]] = field(default_factory=list)
    latencies: list[tuple[float, float | None]] = field(default_factory=list)  # (t, ms or None)
    update_ms: list[float] = field(default_factory=list)  # round trip of each acknowledged UPDATE
    update_windows: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered) in run seconds
    present: dict[str, str] = field(default_factory=dict)  # acknowledged adds not deleted since: name -> text
    deleted: dict[str, str] = field(default_factory=dict)  # acknowledged deletes


# --- the world: zone, config, sinks -------------------------------------------------------


def write_zone(path: Path, hosts: int = HOSTS) -> None:
    lines = [f"$ORIGIN {ZONE}.", "$TTL 3600", "@ SOA ns1 hostmaster 1 7200 900 1209600 300", "@ NS ns1"]
    lines += ["@ MX 10 mx1", "@ MX 20 mx2", "@ MX 30 mx3", "@ MX 90 relay", "ns1 A 127.0.0.1"]
    lines += [f"{host} A {address}" for host, address in MEMBERS.items()]
    for i in range(hosts):
        lines += [
            f"h{i:03d} A 192.0.2.{i % 250 + 1}",
            f"h{i:03d} MX 10 mx1",
            f'h{i:03d} TXT "v=spf1 mx -all"',
        ]
    path.write_text("\n".join(lines) + "\n")


def write_config(workdir: Path, secret: str, ports: dict[str, int]) -> Path:
    members = ""
    for host, address in MEMBERS.items():
        role = "relay" if host == "relay" else "primary"
        preference = 90 if host == "relay" else 10 * int(host[-1])
        members += (
            f'  [[pool.member]]\n  host = "{host}.{ZONE}."\n  preference = {preference}\n  role = "{role}"\n'
            f'  probe = "smtp"\n  address = "{address}"\n  port = {ports[host]}\n'
            "  interval = 1.0\n  timeout = 1.0\n  fall = 2\n  rise = 2\n"
        )
    config = workdir / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{workdir / "zones"}"\n'
        f'state_dir = "{workdir / "state"}"\n\n[http]\nlisten = "127.0.0.1:0"\n\n'
        f'[[key]]\nname = "{KEY}"\nalgorithm = "hmac-sha256"\nsecret = "{secret}"\n\n'
        f'[[zone]]\nname = "{ZONE}."\nserial = "increment"\nallow_update = ["{KEY}"]\n\n'
        f'[[pool]]\nname = "{ZONE}."\nstrategy = "round-robin"\nttl = 30\n{members}'
    )
    return config


class Sinks:
    """One aiosmtpd sink process per member; `stop`/`start` make a member flap."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = {host: free_port(address) for host, address in MEMBERS.items()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, host: str) -> None:
        address, port = MEMBERS[host], self.ports[host]
        cmd = [sys.executable, str(SINK), "--name", host, "--address", address, "--port", str(port)]
        cmd += ["--log", str(self.workdir / f"sink-{host}.jsonl")]
        self.procs[host] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((address, port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sink {host} did not listen on {address}:{port}")

    def stop(self, host: str) -> None:
        proc = self.procs.pop(host, None)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stop_all(self) -> None:
        for host in list(self.procs):
            self.stop(host)


# --- side activities ----------------------------------------------------------------------


def query(name: str, rdtype: str, port: int, sock: socket.socket) -> dns.message.Message | None:
    wire = dns.message.make_query(name, rdtype).to_wire()
    reply, _ = udp_exchange(sock, wire, port, 2.0)
    return dns.message.from_wire(reply) if reply else None


def txt_present(name: str, text: str, port: int, sock: socket.socket) -> bool | None:
    """True/False whether `name` TXT holds `text`; None when three tries (2 s each) got no reply."""
    for _ in range(3):
        reply = query(name, "TXT", port, sock)
        if reply is not None:
            return any(text in rdata.to_text() for rrset in reply.answer for rdata in rrset)
    return None


def updater(
    port: int, keyring: object, rate: float, stop: threading.Event, started: float, tally: Tally
) -> None:
    """Adds u<n> TXT "soak <n>" at `rate`/s; every third step deletes u<n-2> too. Checks each ack."""
    added = tally.present
    n = 0
    with udp_socket() as sock:
        while not stop.wait(1.0 / rate):
            name, text = f"u{n}.dyn.{ZONE}.", f"soak {n}"
            steps = [("add", name, text)]
            if n % 3 == 2 and f"u{n - 2}.dyn.{ZONE}." in added:
                old = f"u{n - 2}.dyn.{ZONE}."
                steps.append(("delete", old, added[old]))
            for action, owner, value in steps:
                update = dns.update.UpdateMessage(f"{ZONE}.", keyring=keyring, keyname=KEY)
                if action == "add":
                    update.add(owner, 60, "TXT", f'"{value}"')
                else:
                    update.delete(owner, "TXT")
                begun = time.perf_counter()
                try:
                    reply = dns.query.tcp(update, "127.0.0.1", port=port, timeout=5)
                except Exception as error:  # any failure is a failed update, reported
                    tally.updates_failed.append(f"{action} {owner}: {error!r}")
                    continue
                if reply.rcode() != dns.rcode.NOERROR:
                    tally.updates_failed.append(f"{action} {owner}: {dns.rcode.to_text(reply.rcode())}")
                    continue
                took = time.perf_counter() - begun
                tally.update_ms.append(round(took * 1000, 2))
                now = time.monotonic() - started
                tally.update_windows.append((round(now - took, 3), round(now, 3)))
                want = action == "add"
                if action == "add":
                    tally.updates_acked += 1
                    added[owner] = value
                else:
                    tally.deletes_acked += 1
                    tally.deleted[owner] = added.pop(owner)
                if txt_present(owner, value, port, sock) is not want:
                    time.sleep(1.0)
                    late = txt_present(owner, value, port, sock) is want
                    (tally.visible_late if late else tally.invisible).append(f"{action} {owner}")
            n += 1


def reloader(server: Dynmx, every: float, stop: threading.Event, started: float, tally: Tally) -> None:
    """SIGHUP and POST /reload in turn, every `every` seconds."""
    count = 0
    while not stop.wait(every):
        how = "SIGHUP" if count % 2 == 0 else "POST /reload"
        begun = time.monotonic()
        status: object = "sent"
        if how == "SIGHUP":
            server.signal(signal.SIGHUP)
        else:
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.http_port}/reload", method="POST", headers=server.auth()
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as reply:
                    status = reply.status
            except Exception as error:  # reported, not fatal
                status = repr(error)
        tally.reloads.append(
            {
                "at_s": round(begun - started, 1),
                "how": how,
                "status": status,
                "seconds": round(time.monotonic() - begun, 3),
            }
        )
        count += 1


def pool_hosts(port: int, sock: socket.socket) -> set[str] | None:
    reply = query(f"{ZONE}.", "MX", port, sock)
    if reply is None:
        return None
    return {rdata.exchange.labels[0].decode() for rrset in reply.answer for rdata in rrset}


def flapper(
    port: int, sinks: Sinks, every: float, stop: threading.Event, started: float, tally: Tally
) -> None:
    """Stop one primary's sink, wait for the pool to drop it; half a period later restart it."""
    primaries = [h for h in MEMBERS if h != "relay"]
    turn = 0
    with udp_socket() as sock:
        while not stop.wait(every / 2):
            host = primaries[turn % len(primaries)]
            running = host in sinks.procs
            begun = time.monotonic()
            if running:
                sinks.stop(host)
            else:
                sinks.start(host)
            converged = None
            while not stop.is_set() and time.monotonic() - begun < min(15.0, every / 2):
                hosts = pool_hosts(port, sock)
                if hosts is not None and (host in hosts) != running:
                    converged = round(time.monotonic() - begun, 2)
                    break
                time.sleep(0.2)
            tally.flaps.append(
                {
                    "at_s": round(begun - started, 1),
                    "host": host,
                    "action": "stop" if running else "start",
                    "answer_followed_s": converged,
                }
            )
            if not running:
                turn += 1


def latency_probe(
    port: int, rate: float, stop: threading.Event, started: float, tally: Tally, hosts: int = HOSTS
) -> None:
    names = [(f"h{i:03d}.{ZONE}.", "A") for i in range(0, hosts, max(1, hosts // 30))] + [
        (f"{ZONE}.", "MX"),
        (f"nx.{ZONE}.", "A"),
    ]
    with udp_socket() as sock:
        n = 0
        while not stop.wait(1.0 / rate):
            name, rdtype = names[n % len(names)]
            wire = dns.message.make_query(name, rdtype).to_wire()
            reply, seconds = udp_exchange(sock, wire, port, 2.0)
            tally.latencies.append(
                (round(time.monotonic() - started, 2), round(seconds * 1000, 3) if reply else None)
            )
            n += 1


# --- checks and report --------------------------------------------------------------------


def verify(port: int, zone_file: Path, tally: Tally) -> dict[str, object]:
    """Every acknowledged add answered and in the file; every acknowledged delete gone from both."""
    missing_answer, deleted_answered = [], []
    with udp_socket() as sock:
        for name, text in tally.present.items():
            if txt_present(name, text, port, sock) is not True:
                missing_answer.append(name)
        for name, text in tally.deleted.items():
            if txt_present(name, text, port, sock) is not False:
                deleted_answered.append(name)
    zone = dns.zone.from_file(str(zone_file), origin=f"{ZONE}.", relativize=False)

    def in_file(name: str, text: str) -> bool:
        rdataset = zone.get_rdataset(name, "TXT")
        return rdataset is not None and any(text in rdata.to_text() for rdata in rdataset)

    return {
        "checked_adds": len(tally.present),
        "checked_deletes": len(tally.deleted),
        "adds_not_answered": missing_answer,
        "deletes_still_answered": deleted_answered,
        "adds_not_in_file": [n for n, t in tally.present.items() if not in_file(n, t)],
        "deletes_still_in_file": [n for n, t in tally.deleted.items() if in_file(n, t)],
    }


def lost(check: dict[str, object], invisible: Sequence[str] = ()) -> int:
    """Distinct acknowledged changes missing anywhere: at the end (answer or file) or 1 s after their ack."""
    keys = ("adds_not_answered", "deletes_still_answered", "adds_not_in_file", "deletes_still_in_file")
    names = {name for key in keys for name in check[key]}  # type: ignore[attr-defined]
    names |= {entry.split(" ", 1)[1] for entry in invisible}  # "add NAME" / "delete NAME"
    return len(names)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def stats(values: list[float]) -> dict[str, object]:
    return {
        "count": len(values),
        **{f"p{k}_ms": percentile(values, k / 100) for k in (50, 90, 99)},
        "p99.9_ms": percentile(values, 0.999),
        "max_ms": max(values) if values else None,
    }


def latency_summary(
    samples: list[tuple[float, float | None]], reloads: list[float], updates: list[tuple[float, float]]
) -> dict[str, object]:
    """Percentiles overall, and split: probes in flight while an UPDATE was being processed,
    probes within 3 s after a reload began, and the rest."""
    answered = [(t, ms) for t, ms in samples if ms is not None]

    def during_update(t: float, ms: float) -> bool:
        sent = t - ms / 1000
        return any(sent <= end and t >= begin for begin, end in updates)

    groups: dict[str, list[float]] = {"during_update": [], "within_3s_of_reload": [], "other": []}
    for t, ms in answered:
        if during_update(t, ms):
            groups["during_update"].append(ms)
        elif any(0 <= t - r < 3 for r in reloads):
            groups["within_3s_of_reload"].append(ms)
        else:
            groups["other"].append(ms)
    return {
        "sent": len(samples),
        "timeouts": sum(1 for _, ms in samples if ms is None),
        "all": stats([ms for _, ms in answered]),
        **{name: stats(values) for name, values in groups.items()},
    }


def split_p99(latency: dict[str, object]) -> str:
    cells = []
    for group in ("during_update", "within_3s_of_reload", "other"):
        found = latency.get(group)
        cells.append(f"{found['p99_ms']} ms (n={found['count']})" if isinstance(found, dict) else "-")
    return " / ".join(cells)


def markdown(result: dict[str, object]) -> str:
    dnsperf = result["dnsperf"]
    latency = result["latency"]
    rss = result["rss"]
    assert isinstance(dnsperf, dict) and isinstance(latency, dict) and isinstance(rss, dict)
    log = result["log"]
    assert isinstance(log, dict)
    warnings = log["warnings_and_errors"]
    unexpected = [line for line in log["problem_lines"] if "event=member-down" not in line]
    lat = latency["all"]
    upd = result["updates"]
    assert isinstance(lat, dict) and isinstance(upd, dict)
    rows = [
        (
            "duration",
            f"{result['minutes']} min at {result['target_qps']} qps (max measured {result['max_qps']:.0f})",
        ),
        (
            "dnsperf sent / completed / lost",
            f"{dnsperf['sent']} / {dnsperf['completed']} / {dnsperf['lost']}",
        ),
        ("dnsperf response codes", dnsperf["rcodes"]),
        ("dnsperf errors (rcodes other than NOERROR/NXDOMAIN)", result["dnsperf_errors"]),
        ("dnsperf avg latency", f"{dnsperf['avg_latency_ms']} ms"),
        (
            "probe latency p50 / p99 / p99.9 / max",
            f"{lat['p50_ms']} / {lat['p99_ms']} / {lat['p99.9_ms']} / {lat['max_ms']} ms",
        ),
        ("probe queries sent / timeouts", f"{latency['sent']} / {latency['timeouts']}"),
        ("probe p99: during an UPDATE / near a reload / other", split_p99(latency)),
        (
            "UPDATEs acknowledged (adds / deletes) / failed",
            f"{result['updates']['adds']} / {result['updates']['deletes']} / {result['updates']['failed']}",
        ),
        (
            "acknowledged, not visible at once / 1 s later",
            f"{result['updates']['late']} / {result['updates']['invisible']}",
        ),
        (
            "UPDATE round trip p50 / p99 / max",
            "{p50_ms} / {p99_ms} / {max_ms} ms".format(**upd["round_trip"]),
        ),
        ("lost updates (end, running)", result["lost_updates"]),
        ("lost updates (after restart)", result["lost_updates_after_restart"]),
        ("reloads (SIGHUP + POST /reload)", len(result["reloads"])),  # type: ignore[arg-type]
        ("member flaps (stop + start)", len(result["flaps"])),  # type: ignore[arg-type]
        (
            "RSS at serving / soak start / +60 s / end",
            f"{rss['serving_mib']} / {rss['start_mib']} / {rss['after_60s_mib']} / {rss['end_mib']} MiB",
        ),
        ("RSS growth start -> end", f"{rss['growth_pct']}%"),
        (
            "RSS of a fresh dynmx on the final data (restart + the same max-qps run)",
            f"{rss['fresh_restart_mib']} MiB",
        ),
        ("dynmx warnings/errors in log (all / other than member-down)", f"{warnings} / {len(unexpected)}"),
    ]
    lines = [f"# dynmx soak, {result['time']}", "", "| what | measured |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    if unexpected:
        lines += ["", "Log lines other than member-down (first 10):", ""]
        lines += [f"    {line}" for line in unexpected[:10]]
    flaps = result["flaps"]
    assert isinstance(flaps, list)
    followed = [f["answer_followed_s"] for f in flaps if f["answer_followed_s"] is not None]
    slowest = max(followed) if followed else "-"
    lines += ["", f"Pool answer followed a flap in {len(followed)}/{len(flaps)} cases; slowest {slowest} s"]
    lines[-1] += " (probe interval 1 s, fall 2, rise 2)."
    lines += ["", "Source: " + json.dumps(result["source"]), ""]
    return "\n".join(lines)


def write_queries(path: Path, hosts: int = HOSTS) -> Path:
    """dnsperf input: host A/MX/TXT, the pool's MX, and 10% missing names; shuffled, fixed seed."""
    lines = [f"h{i:03d}.{ZONE} {t}" for i in range(hosts) for t in ("A", "MX", "TXT")]
    lines += [f"{ZONE} MX"] * hosts
    lines += [f"missing{i}.{ZONE} A" for i in range(len(lines) // 9)]
    random.Random(2136).shuffle(lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def dnsperf_errors(rcodes: str) -> int:
    """Replies whose rcode is neither NOERROR nor NXDOMAIN, from dnsperf's "Response codes" line."""
    total = 0
    for part in rcodes.split(","):
        words = part.split()
        if len(words) >= 2 and words[0] not in ("NOERROR", "NXDOMAIN"):
            total += int(words[1])
    return total


def rss_summary(samples: list[tuple[float, int]], serving_kib: int) -> dict[str, object]:
    kib = [(t, k) for t, k in samples if k]
    start, end = kib[0][1], kib[-1][1]
    after_60 = next((k for t, k in kib if t >= 60), end)
    return {
        "serving_mib": mib(serving_kib),
        "start_mib": mib(start),
        "after_60s_mib": mib(after_60),
        "end_mib": mib(end),
        "max_mib": mib(max(k for _, k in kib)),
        "growth_pct": round((end - start) / start * 100, 1),
        "growth_from_60s_pct": round((end - after_60) / after_60 * 100, 1),
        "samples": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the soak (0.5-240)")
    parser.add_argument("--reload-every", type=float, default=60.0, help="seconds between reloads")
    parser.add_argument("--update-rate", type=float, default=1.0, help="UPDATE adds per second (0.1-50)")
    parser.add_argument("--flap-every", type=float, default=30.0, help="seconds per member stop+start")
    parser.add_argument("--probe-rate", type=float, default=20.0, help="latency probe queries per second")
    parser.add_argument("--max-seconds", type=int, default=5, help="length of the max-qps measurement")
    parser.add_argument("--hosts", type=int, default=HOSTS, help="static names in the zone (1-1000000)")
    args = parser.parse_args()
    limits = {
        "minutes": (0.5, 240),
        "reload_every": (1, 3600),
        "update_rate": (0.1, 50),
        "flap_every": (2, 3600),
        "probe_rate": (0.1, 200),
        "max_seconds": (1, 60),
        "hosts": (1, 1_000_000),
    }
    for key, (low, high) in limits.items():
        if not low <= getattr(args, key) <= high:
            parser.error(f"--{key.replace('_', '-')} must be between {low} and {high}")
    ensure_tools(need_nsd=False)
    OUT.mkdir(parents=True, exist_ok=True)
    secret = base64.b64encode(os.urandom(32)).decode()
    keyring = dns.tsigkeyring.from_text({KEY: ("hmac-sha256", secret)})
    tally = Tally()
    seconds = int(args.minutes * 60)
    with tempfile.TemporaryDirectory(prefix="dynmx-soak-") as tmp:
        workdir = Path(tmp)
        (workdir / "zones").mkdir()
        zone_file = workdir / "zones" / f"{ZONE}.zone"
        write_zone(zone_file, args.hosts)
        sinks = Sinks(workdir)
        config = write_config(workdir, secret, sinks.ports)
        queries = write_queries(OUT / "queries-soak.txt", args.hosts)
        try:
            for host in MEMBERS:
                sinks.start(host)
            with Dynmx(["--config", str(config)], workdir, prefix=pin(SERVER_CORE)) as server:
                serving_kib = tree_rss_kib(server.pid)
                max_run = measure("dynmx", "max", server.port, server.pid, queries, args.max_seconds)
                target = max(100, int(max_run.qps / 2))
                print(
                    f"soak: max {max_run.qps:.0f} qps; soaking {args.minutes:g} min at {target} qps",
                    file=sys.stderr,
                )
                stop = threading.Event()
                started = time.monotonic()
                threads = [
                    threading.Thread(
                        target=updater, args=(server.port, keyring, args.update_rate, stop, started, tally)
                    ),
                    threading.Thread(target=reloader, args=(server, args.reload_every, stop, started, tally)),
                    threading.Thread(
                        target=flapper, args=(server.port, sinks, args.flap_every, stop, started, tally)
                    ),
                    threading.Thread(
                        target=latency_probe,
                        args=(server.port, args.probe_rate, stop, started, tally, args.hosts),
                    ),
                ]
                with RssSampler(server.pid, 5.0) as sampler:
                    for thread in threads:
                        thread.start()
                    try:
                        run, output = dnsperf_run(
                            "soak",
                            server.port,
                            queries,
                            seconds,
                            qps=target,
                            stats_interval=60,
                            server_pid=server.pid,
                        )
                    finally:
                        stop.set()
                        for thread in threads:
                            thread.join(30)
                check = verify(server.port, zone_file, tally)
                log = server.log_summary()
                alive = server.alive()
            with Dynmx(["--config", str(config)], workdir, prefix=pin(SERVER_CORE)) as again:
                check_restart = verify(again.port, zone_file, tally)
                measure("dynmx", "fresh", again.port, again.pid, queries, args.max_seconds)
                fresh_kib = tree_rss_kib(again.pid)  # the same data, none of the history
                log_restart = again.log_summary()
        finally:
            sinks.stop_all()
    result: dict[str, object] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "minutes": args.minutes,
        "settings": vars(args),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "versions": versions(),
        "source": source(),
        "loadavg_at_end": loadavg(),
        "max_qps": max_run.qps,
        "max_run": asdict(max_run),
        "target_qps": target,
        "dnsperf": asdict(run),
        "dnsperf_errors": dnsperf_errors(run.rcodes),
        "dnsperf_output": output[-6000:],
        "latency": latency_summary(
            tally.latencies,
            [float(r["at_s"]) for r in tally.reloads],  # type: ignore[arg-type]
            tally.update_windows,
        ),
        "updates": {
            "adds": tally.updates_acked,
            "deletes": tally.deletes_acked,
            "round_trip": stats(tally.update_ms),
            "failed": len(tally.updates_failed),
            "failed_examples": tally.updates_failed[:20],
            "late": len(tally.visible_late),
            "late_examples": tally.visible_late[:20],
            "invisible": len(tally.invisible),
            "invisible_examples": tally.invisible[:20],
        },
        "lost_updates": lost(check, tally.invisible),
        "lost_updates_after_restart": lost(check_restart),
        "check": check,
        "check_after_restart": check_restart,
        "reloads": tally.reloads,
        "flaps": tally.flaps,
        "rss": rss_summary(sampler.samples, serving_kib) | {"fresh_restart_mib": mib(fresh_kib)},
        "server_alive_at_end": alive,
        "log": log,
        "log_after_restart": log_restart,
        "latency_samples": tally.latencies,
    }
    name = f"soak-{stamp()}"
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    report = markdown(result)
    (OUT / f"{name}.md").write_text(report)
    print(report)
    print(f"written: benchmarks/out/{name}.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

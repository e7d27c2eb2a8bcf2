"""Issue 26 at hosting scale: cold start, warm start, peak memory and a query mix spread over
every zone, for N small zones (100,000 by default), each against NSD on the same files in the
same run. Driven by `scale.py --start` and `scale.py --spread` (see scale.py and README.md).

One round (`--rounds`, default 3; dynmx and NSD take turns going first, so a busy moment of
the shared machine hits both alike):

* dynmx cold: an empty state_dir, `dynmx serve` spawned (loading on every CPU); timed to its
  `event=serving` line, to the moment the last zone (in name order) answers its SOA with data,
  to `event=compiled` and to `event=answer-store-written`. At the first answer a sample of
  `SAMPLE` zones, spread over all of them, is asked for its SOA: each must come with data.
  Memory: VmHWM of the server process at each point (the parse workers are other processes:
  the largest summed VmRSS of the whole tree, sampled every 0.5 s, is reported beside it).
* dynmx warm (with `--start`): the same server spawned again on the state the cold one left.
* dynmx spread (with `--spread`): on the warm server (or a cold one without `--start`), once
  every zone is compiled and the store written, pinned to core 0: bench.measure with a file
  naming every zone (MX and SOA at the apex, A at www: 3 questions a zone), then a server of
  one of these zones with a file of the same length (the same 3 questions repeated).
* NSD: spawned on the same files (pinned to core 0, as in scale.py), timed until the last
  zone answers its SOA with data, the same sample checked, its largest VmHWM; with
  `--spread` the same two query files against it and a one-zone NSD. NSD keeps no compiled
  state here (`database: ""`), so its cold and warm start are the same.

Loopback only; every wait is bounded by `LOAD_TIMEOUT`. Not a test; asserts nothing.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path

import dns.message
import dns.rcode
from bench import SERVER_CORE, measure, pin, pin_running
from harness import Dynmx, loadavg, mib, tree_rss_kib, udp_exchange, udp_socket
from load import vm_kib
from scale import cpu_seconds, origin, process_tree, small_zone, write_config

from tests.nsd import find_nsd, free_port, nsd_conf

LOAD_TIMEOUT = 1800.0
SAMPLE = 500  # zones asked for their SOA at the first answer
POLL = 0.05  # seconds between SOA polls of the last zone
SECRET = "c2NhbGUtc3RhcnQtYmVuY2htYXJrLXRzaWcta2V5IQ=="  # UPDATE is not used here


def spread_questions(zones: int) -> list[str]:
    """MX and SOA at every apex and A at every www: 3 questions a zone."""
    return [q for i in range(zones) for q in (f"{origin(i)} MX", f"www.{origin(i)} A", f"{origin(i)} SOA")]


def write_query_files(directory: Path, zones: int) -> tuple[Path, Path]:
    """The spread file (every zone) and a one-zone file of the same length, both shuffled."""
    spread = spread_questions(zones)
    one = spread_questions(1) * zones
    files = []
    for name, lines in (("spread", spread), ("one", one)):
        random.Random(2626).shuffle(lines)
        path = directory / f"queries-scale-{name}-{zones}.txt"
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
    return files[0], files[1]


class TreePeak:
    """The largest summed VmRSS of a process tree, sampled every `interval` seconds from spawn
    (`pid_of` returns None until the process exists)."""

    def __init__(self, pid_of: object, interval: float = 0.5) -> None:
        self.pid_of = pid_of
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + LOAD_TIMEOUT
        while not self._stop.wait(self.interval) and time.monotonic() < deadline:
            pid = self.pid_of()  # type: ignore[operator]
            if pid:
                self.peak_kib = max(self.peak_kib, tree_rss_kib(pid))

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def soa_has_data(sock: object, port: int, zone: str, timeout: float = 1.0) -> bool:
    wire = dns.message.make_query(f"{zone}.", "SOA").to_wire()
    reply, _ = udp_exchange(sock, wire, port, timeout)  # type: ignore[arg-type]
    if reply is None:
        return False
    message = dns.message.from_wire(reply)
    return message.rcode() == dns.rcode.NOERROR and bool(message.answer)


def wait_answer(port: int, zone: str, began: float, alive: object) -> float:
    """Seconds from `began` until `zone` answers its SOA with data (polled every POLL s)."""
    with udp_socket() as sock:
        while time.monotonic() - began < LOAD_TIMEOUT:
            if soa_has_data(sock, port, zone, 0.5):
                return round(time.monotonic() - began, 2)
            if not alive():  # type: ignore[operator]
                raise RuntimeError("server exited before answering")
            time.sleep(POLL)
    raise RuntimeError(f"{zone} did not answer within {LOAD_TIMEOUT:.0f} s")


def check_sample(port: int, zones: list[str]) -> dict[str, object]:
    """Ask each of `zones` for its SOA once: how many came with data, and how long it took."""
    began = time.monotonic()
    with udp_socket() as sock:
        good = sum(soa_has_data(sock, port, zone, 2.0) for zone in zones)
    return {"asked": len(zones), "with_data": good, "seconds": round(time.monotonic() - began, 2)}


def wait_event(server: Dynmx, event: str, before: int, began: float) -> float | None:
    """Seconds from `began` until the server logs `event` more than `before` times (bounded)."""
    while time.monotonic() - began < LOAD_TIMEOUT:
        if server.events[event] > before:
            return round(time.monotonic() - began, 2)
        if not server.alive():
            return None
        time.sleep(0.05)
    return None


class EventLines(deque[str]):
    """A server's log tail that also keeps the last line of each event in KEEP and when it
    came: a start of many zones logs a line per zone, which pushes them out of the tail."""

    KEEP = ("answer-store-read", "answer-store-written", "serving", "compiled")

    def __init__(self, maxlen: int = 200) -> None:
        super().__init__((), maxlen)
        self.kept: dict[str, tuple[float, str]] = {}
        self.zone_loaded: list[float] = []  # when the first and the last event=zone-loaded came

    def append(self, line: str) -> None:
        super().append(line)
        if "event=zone-loaded " in line:  # one a zone: how long the server spends logging them
            stamp = logged_at(line)
            if stamp is not None:
                self.zone_loaded[1:] = [stamp]
                if len(self.zone_loaded) == 1:
                    self.zone_loaded.insert(0, stamp)
        elif "event=" in line:
            for event in self.KEEP:
                if f"event={event} " in line:
                    self.kept[event] = (time.monotonic(), line)


def logged_at(line: str) -> float | None:
    """The time a log line says it was written (`2026-12-07 17:04:49,337 ...`), in seconds."""
    try:
        return time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
    except ValueError:
        return None


def logged(server: Dynmx, event: str) -> dict[str, str]:
    """The key=value fields of the server's last `event=...` line."""
    tail = server.tail
    if isinstance(tail, EventLines) and event in tail.kept:
        line = tail.kept[event][1]
        return dict(part.split("=", 1) for part in line.split() if "=" in part)
    return {}


def own_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of `pid` itself, every thread, no children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def hwm_mib(pid: int) -> float:
    return mib(vm_kib(pid, "VmHWM"))


def dynmx_start(
    workdir: Path, args: list[str], last: str, sample: list[str]
) -> tuple[Dynmx, dict[str, object]]:
    """Spawn dynmx and time it to serving, the last zone's answer, every zone compiled, the
    store written; return the running server (the caller stops it) and the figures."""
    server = Dynmx(args, workdir, timeout=LOAD_TIMEOUT)
    server.tail = EventLines()
    with TreePeak(lambda: server.proc.pid if server.proc else None) as tree:
        began = time.monotonic()
        server.start()
        pid = server.pid
        out: dict[str, object] = {"loadavg_before": loadavg(), "serving_s": server.load_seconds}
        out["answer_s"] = wait_answer(server.port, last, began, server.alive)
        out["answer_cpu_s"] = cpu_seconds(pid)
        out["answer_main_cpu_s"] = own_cpu_seconds(pid)  # the server process alone (not its parsers)
        out["answer_hwm_mib"] = hwm_mib(pid)
        out["sample"] = check_sample(server.port, sample)
        out["compiled_s"] = round(server.wait_compiled(LOAD_TIMEOUT), 2)
        out["compiled_cpu_s"] = cpu_seconds(pid)
        out["compiled_hwm_mib"] = hwm_mib(pid)
        out["entries"] = server.entries
        out["store_written_s"] = wait_event(server, "answer-store-written", 0, began)
        out["store_written"] = logged(server, "answer-store-written")
        out["store_read"] = logged(server, "answer-store-read")
        out["log_lines"] = server.lines
        if isinstance(server.tail, EventLines) and server.tail.zone_loaded:
            first, last_line = server.tail.zone_loaded[0], server.tail.zone_loaded[-1]
            out["zone_loaded_lines_s"] = round(last_line - first, 2)  # first to last, as logged
        out["end_cpu_s"] = cpu_seconds(pid)
        out["peak_hwm_mib"] = hwm_mib(pid)
    out["tree_peak_rss_mib"] = mib(tree.peak_kib)
    out["loadavg_after"] = loadavg()
    out["problems"] = server.problems[:10]
    return server, out


def dynmx_one_zone_qps(base: Path, queries: Path, seconds: int) -> dict[str, object]:
    """A dynmx serving only the first zone, pinned to core 0, measured with `queries`."""
    zone_dir = base / "one-zone"
    zone_dir.mkdir(exist_ok=True)
    (zone_dir / f"{origin(0)}.zone").write_text(small_zone(origin(0)))
    workdir = base / "one-dynmx"
    workdir.mkdir(exist_ok=True)
    args = ["--config", str(write_config(workdir, zone_dir, origin(0), SECRET)), "--http", ""]
    with Dynmx(args, workdir, timeout=60) as server:
        server.wait_compiled(60)
        pin_running(server.pid, SERVER_CORE)
        load = loadavg()
        return asdict(measure("dynmx", "one", server.port, server.pid, queries, seconds)) | {"loadavg": load}


def nsd_round(
    zone_dir: Path, last: str, sample: list[str], runs: list[tuple[str, Path]], seconds: int
) -> dict[str, object]:
    """NSD on the files of `zone_dir`, pinned to core 0: spawn until `last` answers its SOA with
    data, the sample, its largest VmHWM, then each (label, query file) through bench.measure."""
    origins = sorted(path.name.removesuffix(".zone") + "." for path in zone_dir.glob("*.zone"))
    binary = find_nsd()
    if binary is None:
        raise RuntimeError("nsd is not installed (apt-get install nsd)")
    with tempfile.TemporaryDirectory(prefix="dynmx-scale-nsd-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        conf = workdir / "nsd.conf"
        conf.write_text(
            nsd_conf(workdir, zone_dir, port, {o: f"{o.removesuffix('.')}.zone" for o in origins})
        )
        out: dict[str, object] = {"loadavg_before": loadavg()}
        began = time.monotonic()
        subprocess.run([*pin(SERVER_CORE), binary, "-c", str(conf)], check=True, timeout=LOAD_TIMEOUT)
        pid_file = workdir / "nsd.pid"
        pid = 0
        try:
            out["answer_s"] = wait_answer(port, last, began, lambda: True)
            pid = int(pid_file.read_text().split()[0])
            out["answer_cpu_s"] = cpu_seconds(pid)
            out["sample"] = check_sample(port, sample) if sample else None
            # NSD reads the zones in its main process and forks its server: the largest of the tree.
            out["peak_hwm_mib"] = max(hwm_mib(each) for each in process_tree(pid))
            out["tree_rss_mib"] = mib(tree_rss_kib(pid))
            for label, queries in runs:
                load = loadavg()
                out[label] = asdict(measure("nsd", label, port, pid, queries, seconds)) | {"loadavg": load}
        finally:
            if not pid and pid_file.exists():
                pid = int(pid_file.read_text().split()[0])
            if pid:
                subprocess.run(["kill", str(pid)], check=False)
                deadline = time.monotonic() + 10
                while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
    out["loadavg_after"] = loadavg()
    return out


def dynmx_round(
    base: Path,
    zone_dir: Path,
    zones: int,
    files: tuple[Path, Path] | None,
    warm: bool,
    seconds: int,
    rnd: int,
) -> dict[str, object]:
    """Cold start (fresh state_dir), then, with `warm`, the restart on its state; with `files`,
    the spread run on the last server and the one-zone run."""
    workdir = base / f"dynmx-{rnd}"
    workdir.mkdir()
    args = ["--config", str(write_config(workdir, zone_dir, origin(0), SECRET)), "--http", ""]
    last = max(origin(i) for i in range(zones))
    sample = sample_zones(zones)
    out: dict[str, object] = {}
    phases = ["cold", "warm"] if warm else ["cold"]
    for phase in phases:
        server, started = dynmx_start(workdir, args, last, sample)
        out[phase] = started
        try:
            print(f"scale: round {rnd}: dynmx {phase}: {brief(started)}", flush=True)
            if phase == phases[-1] and files is not None:
                pin_running(server.pid, SERVER_CORE)
                load = loadavg()
                run = measure("dynmx", "spread", server.port, server.pid, files[0], seconds)
                out["spread"] = asdict(run) | {
                    "loadavg": load,
                    "rss_after_mib": mib(vm_kib(server.pid, "VmRSS")),
                }
        finally:
            out[f"{phase}_exit"] = server.stop()
    if files is not None:
        out["one"] = dynmx_one_zone_qps(base, files[1], seconds)
        print(
            f"scale: round {rnd}: dynmx qps spread {out['spread']['qps']:.0f} "  # type: ignore[index]
            f"(cpu {out['spread']['server_cpu']:.0%}), one zone {out['one']['qps']:.0f} "  # type: ignore[index]
            f"(cpu {out['one']['server_cpu']:.0%})",  # type: ignore[index]
            flush=True,
        )
    return out


def sample_zones(zones: int) -> list[str]:
    """SAMPLE zones spread over all of them (a fixed seed), the first and last included."""
    picked = random.Random(26).sample(range(zones), min(SAMPLE, zones))
    return sorted({origin(0), origin(zones - 1), *(origin(i) for i in picked)})


def brief(start: dict[str, object]) -> str:
    sample = start["sample"]
    return (
        f"serving {start['serving_s']} s, last zone answers {start['answer_s']} s "
        f"(sample {sample['with_data']}/{sample['asked']}), compiled {start['compiled_s']} s, "  # type: ignore[index]
        f"store written {start['store_written_s']} s; VmHWM {start['peak_hwm_mib']} MiB "
        f"(at first answer {start['answer_hwm_mib']}), tree peak {start['tree_peak_rss_mib']} MiB; "
        f"CPU {start['answer_cpu_s']} s at answer, {start['end_cpu_s']} s at end; "
        f"load {start['loadavg_before']}"
    )


def run_rounds(
    zones: int, rounds: int, start: bool, spread: bool, seconds: int, out_dir: Path
) -> dict[str, object]:
    """`rounds` rounds of dynmx and NSD on one set of N zone files, turn by turn."""
    from scale import write_zones

    with tempfile.TemporaryDirectory(prefix="dynmx-scale-start-") as tmp:
        base = Path(tmp)
        zone_dir = base / "zones"
        zone_dir.mkdir()
        write_zones(zone_dir, zones)
        files = write_query_files(out_dir, zones) if spread else None
        last = max(origin(i) for i in range(zones))
        time.sleep(2.1)  # past the window in which a file's stamp is not trusted, as on a real restart
        results: list[dict[str, object]] = []
        for rnd in range(rounds):
            order = ["dynmx", "nsd"] if rnd % 2 == 0 else ["nsd", "dynmx"]
            found: dict[str, object] = {"order": order}
            for who in order:
                if who == "dynmx":
                    found["dynmx"] = dynmx_round(base, zone_dir, zones, files, start, seconds, rnd)
                else:
                    runs = [("spread", files[0])] if files else []
                    found["nsd"] = nsd = nsd_round(zone_dir, last, sample_zones(zones), runs, seconds)
                    if files:
                        one_dir = base / "one-zone"
                        one_dir.mkdir(exist_ok=True)
                        (one_dir / f"{origin(0)}.zone").write_text(small_zone(origin(0)))
                        nsd["one"] = nsd_round(one_dir, f"{origin(0)}", [], [("one", files[1])], seconds)[
                            "one"
                        ]
                    print(f"scale: round {rnd}: nsd: {nsd_brief(nsd)}", flush=True)
            results.append(found)
    return {"zones": zones, "rounds": results, "summary": summarise(results)}


def nsd_brief(nsd: dict[str, object]) -> str:
    text = f"last zone answers {nsd['answer_s']} s, largest VmHWM {nsd['peak_hwm_mib']} MiB"
    if isinstance(nsd.get("spread"), dict):
        text += f", qps spread {nsd['spread']['qps']:.0f}, one zone {nsd['one']['qps']:.0f}"  # type: ignore[index]
    return text


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarise(results: list[dict[str, object]]) -> dict[str, object]:
    """Medians (and every round's value) of the figures the issue names."""

    def pick(*path: str) -> list[float]:
        found = []
        for result in results:
            value: object = result
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if isinstance(value, (int, float)):
                found.append(float(value))
        return found

    rows = {
        "dynmx cold: last zone answers, s": pick("dynmx", "cold", "answer_s"),
        "dynmx cold: serving, s": pick("dynmx", "cold", "serving_s"),
        "dynmx cold: every zone compiled, s": pick("dynmx", "cold", "compiled_s"),
        "dynmx cold: CPU s at first answer": pick("dynmx", "cold", "answer_cpu_s"),
        "dynmx cold: server process CPU s at first answer": pick("dynmx", "cold", "answer_main_cpu_s"),
        "dynmx cold: zone-loaded log lines, s": pick("dynmx", "cold", "zone_loaded_lines_s"),
        "dynmx cold: VmHWM at compiled, MiB": pick("dynmx", "cold", "compiled_hwm_mib"),
        "dynmx warm: CPU s at first answer": pick("dynmx", "warm", "answer_cpu_s"),
        "dynmx warm: zone-loaded log lines, s": pick("dynmx", "warm", "zone_loaded_lines_s"),
        "dynmx cold: peak VmHWM, MiB": pick("dynmx", "cold", "peak_hwm_mib"),
        "dynmx cold: tree peak RSS, MiB": pick("dynmx", "cold", "tree_peak_rss_mib"),
        "dynmx warm: last zone answers, s": pick("dynmx", "warm", "answer_s"),
        "dynmx warm: every zone compiled, s": pick("dynmx", "warm", "compiled_s"),
        "dynmx warm: peak VmHWM, MiB": pick("dynmx", "warm", "peak_hwm_mib"),
        "nsd: last zone answers, s": pick("nsd", "answer_s"),
        "nsd: largest VmHWM, MiB": pick("nsd", "peak_hwm_mib"),
        "dynmx qps spread": pick("dynmx", "spread", "qps"),
        "dynmx qps one zone": pick("dynmx", "one", "qps"),
        "nsd qps spread": pick("nsd", "spread", "qps"),
        "nsd qps one zone": pick("nsd", "one", "qps"),
    }
    for who in ("dynmx", "nsd"):  # qps per second of server CPU: less moved by a busy core 0
        for mix in ("spread", "one"):
            label = f"{who} qps spread" if mix == "spread" else f"{who} qps one zone"
            cpu = pick(who, mix, "server_cpu")
            if len(cpu) == len(rows[label]):
                rows[f"{label} per server core"] = [q / c for q, c in zip(rows[label], cpu, strict=True) if c]
    ratios = {
        "dynmx spread/one": [
            s / o for s, o in zip(rows["dynmx qps spread"], rows["dynmx qps one zone"], strict=False) if o
        ],
        "dynmx spread/one per server core": [
            s / o
            for s, o in zip(
                rows.get("dynmx qps spread per server core", []),
                rows.get("dynmx qps one zone per server core", []),
                strict=False,
            )
            if o
        ],
        "nsd spread/one per server core": [
            s / o
            for s, o in zip(
                rows.get("nsd qps spread per server core", []),
                rows.get("nsd qps one zone per server core", []),
                strict=False,
            )
            if o
        ],
        "nsd spread/one": [
            s / o for s, o in zip(rows["nsd qps spread"], rows["nsd qps one zone"], strict=False) if o
        ],
    }
    return {
        name: {"median": median(values), "rounds": [round(v, 3) for v in values]}
        for name, values in (rows | ratios).items()
        if values
    }


def print_summary(summary: dict[str, object]) -> None:
    print("\nmedian (every round)")
    for name, row in summary.items():
        print(f"  {name:40} {row['median']!s:>10}  {row['rounds']}")  # type: ignore[index]

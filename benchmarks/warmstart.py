"""Warm start: how long a restart with unchanged zone files takes to have every zone's
answers compiled, cold (parse, index, compile) against warm (the answer store in
state_dir), in this process, stage by stage, with the resident memory after each.

The zones are scale.py's: N small mail-domain zones of 10 records, one file each. Each run:

1. cold: the zone scan (`scan_zones`, files parsed over every CPU as `serve` does), the
   indexes and the full compile (`build_table`, not staged: every zone compiled);
2. the store written (`rows_to_save`, `AnswerStore.save`);
3. warm, in a fresh process: the store's index read (`AnswerStore.load`), the scan keeping
   the stored versions (stat only), `warm_table` (every zone answers from here), then the
   stored answers laid in (`fill_slice`); every entry compared with the cold table's.

Also measured, for the choice of format (README): the same rows written to and read back
from one marshal file and one pickle of the entries. Not a test; asserts only that warm
equals cold. Writes benchmarks/out/warmstart-<time>.json.

With `--server`, the same through `python -m dynmx serve` instead, cold (empty state_dir)
once and warm (restarts after it wrote the store) `--rounds` times, each beside an NSD load
of the same files (scale.py's `nsd_case`: spawn until the last zone answers its SOA): for
dynmx, spawn until the last zone answers its SOA (`answered_s`, NSD's measure; a warm start
answers a zone whose stored answers are not laid in yet by the slow path), until every
zone's answers are in the table (`all_compiled_s`: `event=serving ... pending=0`, or
`event=compiled` after the fill), the server's VmHWM then, and whether 240 questions over
40 zones were answered byte for byte as after the cold start, right after the first answer
(`early_equal_to_cold`) and once all was laid in (`late_equal_to_cold`).

With `--base DIR` (a checkout of another commit, e.g. `git worktree add /tmp/base HEAD~1`),
that checkout's server is timed too, on its own copy of the zones (cold once, then warm in
each round before this one's): a before/after in the same rounds, beside the same NSD loads.

    .venv/bin/python benchmarks/warmstart.py [--zones 10000] [--server [--rounds 3] [--base DIR]]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scale import write_zones

OUT = Path(__file__).resolve().parent / "out"


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def config_for(workdir: Path) -> Path:
    path = workdir / "dynmx.toml"
    path.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{workdir / "zones"}"\n'
        f'state_dir = "{workdir / "state"}"\n'
    )
    return path


def run_cold(workdir: Path) -> dict[str, float]:
    from dynmx.answer.zoneset import name_key
    from dynmx.app.zonescan import scan_zones, zone_data
    from dynmx.config import load_config
    from dynmx.policy.served import build_table, plan_all
    from dynmx.store.answers import AnswerStore
    from dynmx.store.rows import Header, fingerprint, origins_digest
    from dynmx.store.warm import rows_to_save

    config = load_config(config_for(workdir))
    out: dict[str, float] = {"rss_start_mib": rss_mib()}
    began = time.perf_counter()
    zones, _ = scan_zones(workdir / "zones", {}, os.cpu_count() or 1)
    out["scan_s"] = time.perf_counter() - began
    mark = time.perf_counter()
    data = zone_data(zones)
    out["index_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    table = build_table(config, data, lambda pool: plan_all(pool, {}))
    out["compile_s"] = time.perf_counter() - mark
    out["all_compiled_s"] = time.perf_counter() - began
    out["rss_mib"] = rss_mib()
    mark = time.perf_counter()
    rows, keep = rows_to_save(zones, table, {})
    header = Header(fingerprint(config), origins_digest(name_key(z.origin) for z in zones.values()))
    (workdir / "state").mkdir(exist_ok=True)
    store = AnswerStore(workdir / "state")
    out["rows"] = store.save(header, rows, keep)
    store.close()
    out["store_write_s"] = time.perf_counter() - mark
    out["store_mib"] = (workdir / "state" / "answers.sqlite").stat().st_size / 2**20
    with (workdir / "cold.pickle").open("wb") as handle:
        pickle.dump(
            {k: (e.rcode, e.authoritative, e.body, e.spans) for k, e in table.entries.items()}, handle
        )
    for variant in ("marshal-file", "pickle-file"):  # the same data in the other formats
        mark = time.perf_counter()
        if variant == "marshal-file":
            import marshal

            payload = marshal.dumps({str(row.path): row.body for row in rows})
            (workdir / "rows.marshal").write_bytes(payload)
        else:
            with (workdir / "entries.pickle").open("wb") as handle:
                pickle.dump((table.entries, table.zones, dict(table.keys)), handle, protocol=5)
        out[f"{variant}_write_s"] = time.perf_counter() - mark
    return out


def run_warm(workdir: Path) -> dict[str, float]:
    from dynmx.answer.zoneset import name_key
    from dynmx.app.zonescan import scan_zones
    from dynmx.config import load_config
    from dynmx.policy.served import plan_all
    from dynmx.store.answers import AnswerStore
    from dynmx.store.lazy import LazyZone
    from dynmx.store.rows import fingerprint, origins_digest
    from dynmx.store.warm import fill_slice, warm_table, warm_zones

    config = load_config(config_for(workdir))
    out: dict[str, float] = {"rss_start_mib": rss_mib()}
    began = time.perf_counter()
    store = AnswerStore(workdir / "state")
    found = store.load(fingerprint(config), None)
    out["store_read_s"] = time.perf_counter() - began
    mark = time.perf_counter()
    warm = warm_zones(found.zones)
    zones, _ = scan_zones(workdir / "zones", warm, os.cpu_count() or 1)
    out["scan_s"] = time.perf_counter() - mark
    origins_ok = found.origins == origins_digest(name_key(z.origin) for z in zones.values())
    mark = time.perf_counter()
    table, _, _ = warm_table(
        config,
        zones,
        found.zones if origins_ok else {},
        lambda p: plan_all(p, {}),
        None,
        None,
        store.answers_of,
    )
    out["table_s"] = time.perf_counter() - mark
    out["serving_s"] = time.perf_counter() - began  # every zone answers (pending: slow path)
    mark = time.perf_counter()
    while table.pending:
        table = fill_slice(table, 1000, 5000)
    out["fill_s"] = time.perf_counter() - mark
    out["all_compiled_s"] = time.perf_counter() - began
    out["rss_mib"] = rss_mib()
    out["parsed_zones"] = sum(1 for z in zones.values() if not isinstance(z.zone, LazyZone) or z.zone.parsed)
    out["stored_zones"] = len(found.zones)
    with (workdir / "cold.pickle").open("rb") as handle:
        cold = pickle.load(handle)
    warm_entries = {k: (e.rcode, e.authoritative, e.body, e.spans) for k, e in table.entries.items()}
    out["equal_to_cold"] = float(warm_entries == cold and not table.pending)
    for variant in ("marshal-file", "pickle-file"):
        mark = time.perf_counter()
        before = rss_mib()
        if variant == "marshal-file":
            import marshal

            from dynmx.store.codec import Decoder

            decoder = Decoder()
            kept = [
                decoder.decode(body)
                for body in marshal.loads((workdir / "rows.marshal").read_bytes()).values()
            ]
        else:
            with (workdir / "entries.pickle").open("rb") as handle:
                kept = pickle.load(handle)
        out[f"{variant}_read_s"] = time.perf_counter() - mark
        out[f"{variant}_rss_added_mib"] = rss_mib() - before
        del kept
    return out


def sample_questions(zones: int, count: int = 40) -> list[tuple[str, str]]:
    """Every question of `count` zones spread over all of them, the last one included."""
    from scale import questions

    picked = sorted({round(i * (zones - 1) / max(1, count - 1)) for i in range(count)})
    return [tuple(q.split()) for index in picked for q in questions(index)]  # type: ignore[misc]


def ask(port: int, asked: list[tuple[str, str]]) -> list[str]:
    """Each reply with its ID zeroed, hex (the same bytes whatever the ID)."""
    import socket

    import dns.message

    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5.0)
        for name, rdtype in asked:
            query = dns.message.make_query(name, rdtype)
            query.id = 0
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
            reply, _ = sock.recvfrom(65535)
            replies.append(reply.hex())
    return replies


def serve_once(
    workdir: Path, last: str, asked: list[tuple[str, str]], timeout: float = 1800.0, repo: Path | None = None
) -> dict[str, object]:
    """One `dynmx serve` from spawn until the last zone answers its SOA (NSD's measure in
    scale.py), until every zone is compiled, and until the store is written; `asked`
    answered right after the first SOA answer and again once all is compiled.

    Python's bytecode is cached as an installed package has it (pip compiles it): a cache
    under workdir, written by the first run, read by the later ones. `repo`: the checkout
    whose dynmx runs (this one by default)."""
    import signal
    import threading

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.nsd import wait_for_soa

    command = [sys.executable, "-m", "dynmx", "serve", "--config", str(config_for(workdir))]
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(workdir / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    started = time.monotonic()
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=repo
    )
    out: dict[str, object] = {}
    done = threading.Event()
    compiled = threading.Event()

    def probe(port: int) -> None:
        wait_for_soa("127.0.0.1", port, last, timeout=timeout, need_data=True)
        out["answered_s"] = time.monotonic() - started
        out["early"] = ask(port, asked)
        compiled.wait(timeout)
        out["late"] = ask(port, asked)
        out["late_s"] = time.monotonic() - started

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            now = time.monotonic() - started
            if "event=listening" in line and "port=" in line and "probe" not in out:
                port = int(line.split("port=")[1].split()[0])
                out["probe"] = threading.Thread(target=probe, args=(port,), daemon=True)
                out["probe"].start()  # type: ignore[attr-defined]
            if "event=serving" in line:
                out["serving_s"] = now
                if "pending=0" in line:
                    out["all_compiled_s"] = now
                    compiled.set()
            elif "event=compiled" in line:
                out["all_compiled_s"] = now
                compiled.set()
            elif "event=answer-store-read" in line:
                out["store_read_line"] = float(line.split("zones=")[1].split()[0])
            elif "event=answer-store-written" in line:
                out["store_written_s"] = now
                out["store_written"] = line.split("event=answer-store-written")[1].strip()
                done.set()
            if "all_compiled_s" in out and "vm_hwm_mib" not in out:
                with open(f"/proc/{process.pid}/status") as status:
                    for row in status:
                        if row.startswith("VmHWM"):
                            out["vm_hwm_mib"] = int(row.split()[1]) / 1024

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    done.wait(timeout)
    probe_thread = out.pop("probe", None)
    if isinstance(probe_thread, threading.Thread):
        probe_thread.join(60)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    return out


def run_servers(workdir: Path, zones: int, rounds: int, base: Path | None = None) -> dict[str, object]:
    """Cold once (it writes the store), then `rounds` warm starts and NSD loads, interleaved;
    with `base`, that checkout's cold start once and a warm start in each round too."""
    import shutil

    from scale import nsd_case, origin

    last = sorted(origin(index) + "." for index in range(zones))[-1]
    asked = sample_questions(zones)
    cold = serve_once(workdir, last, asked)
    reference = cold.pop("late")
    cold.pop("early", None)
    results: dict[str, object] = {"cold": cold, "warm": [], "nsd": [], "base_warm": []}
    print(f"warmstart: server cold: {cold}", flush=True)
    base_dir = workdir / "base"
    if base is not None:
        (base_dir / "state").mkdir(parents=True)
        shutil.copytree(workdir / "zones", base_dir / "zones")
        time.sleep(2.1)  # past the racy window, as for the first copy
        base_cold = serve_once(base_dir, last, asked, repo=base)
        base_cold.pop("early", None), base_cold.pop("late", None)
        results["base_cold"] = base_cold
        print(f"warmstart: base cold: {base_cold}", flush=True)
    for _ in range(rounds):
        if base is not None:
            before = serve_once(base_dir, last, asked, repo=base)
            before["early_equal_to_cold"] = before.pop("early", None) == reference
            before["late_equal_to_cold"] = before.pop("late", None) == reference
            before["loadavg"] = os.getloadavg()
            results["base_warm"].append(before)  # type: ignore[attr-defined]
            print(f"warmstart: base warm: {before}", flush=True)
        warm = serve_once(workdir, last, asked)
        early, late = warm.pop("early", None), warm.pop("late", None)
        warm["early_equal_to_cold"] = early == reference
        warm["late_equal_to_cold"] = late == reference
        warm["loadavg"] = os.getloadavg()
        results["warm"].append(warm)  # type: ignore[attr-defined]
        print(f"warmstart: server warm: {warm}", flush=True)
        try:
            nsd = nsd_case("warm", workdir / "zones", None, 0)
        except Exception as error:  # NSD missing or failing: reported, the rest stands
            nsd = {"error": repr(error)}
        results["nsd"].append(nsd)  # type: ignore[attr-defined]
        print(f"warmstart: nsd: {nsd}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zones", type=int, default=10_000)
    parser.add_argument("--phase", choices=("all", "cold", "warm"), default="all")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--server", action="store_true", help="time `dynmx serve` and NSD instead")
    parser.add_argument("--rounds", type=int, default=3, help="warm starts and NSD loads (--server)")
    parser.add_argument("--base", type=Path, help="another checkout timed in the same rounds (--server)")
    args = parser.parse_args()
    if args.phase != "all":
        result = (run_cold if args.phase == "cold" else run_warm)(args.workdir)
        print(json.dumps(result))
        return 0
    with tempfile.TemporaryDirectory(prefix="dynmx-warm-") as tmp:
        workdir = Path(tmp)
        (workdir / "zones").mkdir()
        write_zones(workdir / "zones", args.zones)
        time.sleep(2.1)  # past the racy window: the stamps are trusted, as on a real restart
        results: dict[str, object] = {"zones": args.zones, "loadavg_before": os.getloadavg()}
        if args.server:
            results["server"] = run_servers(workdir, args.zones, args.rounds, args.base)
        for phase in () if args.server else ("cold", "warm"):
            done = subprocess.run(
                [sys.executable, __file__, "--phase", phase, "--workdir", str(workdir)],
                check=True,
                capture_output=True,
                text=True,
            )
            results[phase] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"warmstart: {args.zones} zones: {phase}: {results[phase]}")
        results["loadavg_after"] = os.getloadavg()
    OUT.mkdir(exist_ok=True)
    path = OUT / f"warmstart-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"warmstart: written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

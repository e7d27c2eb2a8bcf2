"""Warm start: how long a restart with unchanged zone files takes to have every zone's
answers compiled, cold (parse, index, compile) against warm (the answer store in
state_dir), in this process, stage by stage, with the resident memory after each.

The zones are scale.py's: N small mail-domain zones of 10 records, one file each. Each run:

1. cold: the zone scan (`scan_zones`, files parsed over every CPU as `serve` does), the
   indexes and the full compile (`build_table`, not staged: every zone compiled);
2. the store written (`rows_to_save`, `AnswerStore.save`);
3. warm, in a fresh process: the store read (`AnswerStore.load`), the scan keeping the
   stored versions (stat only), `warm_table`; every entry compared with the cold table's.

Also measured, for the choice of format (README): the same rows written to and read back
from one marshal file and one pickle of the entries. Not a test; asserts only that warm
equals cold. Writes benchmarks/out/warmstart-<time>.json.

With `--server`, the same through `python -m dynmx serve` instead: spawn until every zone is
compiled (`event=serving ... pending=0`, or `event=compiled` after a staged start) and the
server's VmHWM then, cold (empty state_dir) and warm (the restart after it wrote the store),
and NSD on the same files (scale.py's `nsd_case`: spawn until the last zone answers).

    .venv/bin/python benchmarks/warmstart.py [--zones 10000] [--server]
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
    from dynmx.store.answers import AnswerStore, Header, fingerprint, origins_digest
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
    from dynmx.store.answers import AnswerStore, fingerprint, origins_digest
    from dynmx.store.lazy import LazyZone
    from dynmx.store.warm import warm_table, warm_zones
    from dynmx.zone.loader import read_digest

    config = load_config(config_for(workdir))
    out: dict[str, float] = {"rss_start_mib": rss_mib()}
    began = time.perf_counter()
    store = AnswerStore(workdir / "state")
    found = store.load(fingerprint(config), read_digest)
    out["store_read_s"] = time.perf_counter() - began
    mark = time.perf_counter()
    warm = warm_zones(found.zones, found.digests, found.stamps, found.sources)
    zones, _ = scan_zones(workdir / "zones", warm, os.cpu_count() or 1)
    out["scan_s"] = time.perf_counter() - mark
    origins_ok = found.origins == origins_digest(name_key(z.origin) for z in zones.values())
    mark = time.perf_counter()
    table, _ = warm_table(
        config, zones, found.zones if origins_ok else {}, lambda p: plan_all(p, {}), None, None
    )
    out["table_s"] = time.perf_counter() - mark
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


def serve_once(workdir: Path, timeout: float = 1800.0) -> dict[str, float]:
    """One `dynmx serve` from spawn until every zone is compiled and the store is written."""
    import signal
    import threading

    command = [sys.executable, "-m", "dynmx", "serve", "--config", str(config_for(workdir))]
    started = time.monotonic()
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    out: dict[str, float] = {}
    done = threading.Event()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            now = time.monotonic() - started
            if "event=serving" in line:
                out["serving_s"] = now
                if "pending=0" in line:
                    out["all_compiled_s"] = now
            elif "event=compiled" in line:
                out["all_compiled_s"] = now
            elif "event=answer-store-read" in line:
                out["store_read_line"] = float(line.split("zones=")[1].split()[0])
            elif "event=answer-store-written" in line:
                out["store_written_s"] = now
                done.set()
            if "all_compiled_s" in out and "vm_hwm_mib" not in out:
                with open(f"/proc/{process.pid}/status") as status:
                    for row in status:
                        if row.startswith("VmHWM"):
                            out["vm_hwm_mib"] = int(row.split()[1]) / 1024

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    done.wait(timeout)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    return out


def run_servers(workdir: Path) -> dict[str, object]:
    from scale import nsd_case

    results: dict[str, object] = {"cold": serve_once(workdir)}
    print(f"warmstart: server cold: {results['cold']}", flush=True)
    results["warm"] = serve_once(workdir)
    print(f"warmstart: server warm: {results['warm']}", flush=True)
    try:
        results["nsd"] = nsd_case("warm", workdir / "zones", None, 0)
        print(f"warmstart: nsd: {results['nsd']}", flush=True)
    except Exception as error:  # NSD missing or failing: reported, the rest stands
        results["nsd"] = repr(error)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zones", type=int, default=10_000)
    parser.add_argument("--phase", choices=("all", "cold", "warm"), default="all")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--server", action="store_true", help="time `dynmx serve` and NSD instead")
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
            results["server"] = run_servers(workdir)
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

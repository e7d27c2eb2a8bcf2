"""A reload with no zone file changed, among many zones: how long it takes, and where the time goes.

Target (issue "Hardening and scale"): a reload with no file changed, among 100,000 zones,
in under 1 s.

Writes `--zones` zones of 10 records (scale.py's `small_zone`, one file per zone), starts
`python -m dynmx serve` on them (127.0.0.1, ephemeral port, control socket in its
state_dir), waits until every zone is compiled, the compiled-answer store is written and
the files are older than the scan's racy window, then times, `--reloads` times each:

* SIGHUP until the `event=reloaded` line is read (`sighup_s`), and that line's own
  `seconds=` (`logged_s`);
* `dynmx reload -c CONFIG` (over the control socket) until the command returns
  (`command_s`, which includes starting the `dynmx` command itself).

Then one file's serial is bumped and one more reload is timed (`one_changed_s`), and the
server is stopped with SIGTERM (`sigterm_to_exit_s`, killed after 10 s).

`--profile` instead runs the reload inside this process (an `App` started on the same
files, answering on 127.0.0.1) under cProfile, and prints the functions with the most own
time (file:line). Profiled times are longer and not comparable.

`--workdir DIR` keeps the zone files and the state in DIR between runs: the first run
writes and compiles them (cold), a later one on the same DIR starts from the answer store
(warm), which takes a fraction of the time at 100,000 zones. The reload is timed the same way.

    .venv/bin/python benchmarks/reload.py [--zones 20000] [--reloads 3] [--profile] [--workdir DIR]

Not a test; asserts nothing. Writes benchmarks/out/reload-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, ROOT, Dynmx, loadavg, print_profile, source, stamp, top_functions
from scale import origin, small_zone, write_zones

from dynmx.app.zonescan import RACY_SECONDS

TIMEOUT = 1800.0


def write_config(workdir: Path, zone_dir: Path) -> Path:
    config = workdir / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zone_dir}"\nstate_dir = "{workdir / "state"}"\n'
    )
    return config


def prepare(workdir: Path, zones: int) -> Path:
    """The zone directory: written, unless a kept `--workdir` already holds these zones (the
    first one's serial is put back, as `bump_first` moved it)."""
    zone_dir = workdir / "zones"
    if zone_dir.is_dir() and sum(1 for _ in zone_dir.iterdir()) == zones:
        first = zone_dir / f"{origin(0)}.zone"
        if first.read_text() != small_zone(origin(0)):
            first.write_text(small_zone(origin(0)))
        return zone_dir
    zone_dir.mkdir(parents=True, exist_ok=True)
    for stale in zone_dir.iterdir():
        stale.unlink()
    write_zones(zone_dir, zones)
    return zone_dir


def settle(zone_dir: Path) -> None:
    """Wait until every file is older than the scan's racy window (else it is read to be sure)."""
    newest = max(path.stat().st_ctime for path in zone_dir.iterdir())
    time.sleep(max(0.0, newest + RACY_SECONDS + 0.2 - time.time()))


def store_written(server: Dynmx, timeout: float = 600.0) -> float:
    """Wait for the compiled-answer store written once every zone is compiled (a thread that
    holds the GIL for seconds with many zones: a reload meanwhile is slowed by it)."""
    started = time.monotonic()
    while not (server.events["answer-store-written"] or server.events["answer-store-unwritable"]):
        if time.monotonic() - started > timeout or not server.alive():
            raise RuntimeError("no event=answer-store-written")
        time.sleep(0.05)
    return round(time.monotonic() - started, 2)


def sighup(server: Dynmx) -> dict[str, float | str]:
    """SIGHUP until the next `event=reloaded` line; its wall time and its own `seconds=`."""
    before = server.events["reloaded"]
    started = time.monotonic()
    server.signal(signal.SIGHUP)
    deadline = started + TIMEOUT
    while server.events["reloaded"] == before:
        if time.monotonic() > deadline or not server.alive():
            raise RuntimeError("no event=reloaded after SIGHUP")
        time.sleep(0.002)
    wall = time.monotonic() - started
    line = next(line for line in reversed(server.tail) if "event=reloaded" in line)
    logged = float(line.rsplit("seconds=", 1)[1].split()[0])
    return {"sighup_s": round(wall, 3), "logged_s": logged, "line": line.split("event=", 1)[1]}


def command(config: Path) -> float:
    """`dynmx reload -c CONFIG` until it returns."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "dynmx", "reload", "-c", str(config)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    return round(time.monotonic() - started, 3)


def bump_first(zone_dir: Path) -> None:
    first = zone_dir / f"{origin(0)}.zone"
    text = re.sub(r"(SOA \S+ \S+ )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 1}", first.read_text(), count=1)
    first.write_text(text)


def measure(zones: int, reloads: int, workdir: Path) -> dict[str, object]:
    zone_dir = prepare(workdir, zones)
    config = write_config(workdir, zone_dir)
    result: dict[str, object] = {"zones": zones}
    with Dynmx(["--config", str(config), "--http", ""], workdir, timeout=TIMEOUT) as server:
        result["compiled_s"] = server.wait_compiled(TIMEOUT)
        result["store_written_after_s"] = store_written(server)
        settle(zone_dir)
        runs = [sighup(server) for _ in range(reloads)]
        commands = [command(config) for _ in range(reloads)]
        bump_first(zone_dir)
        changed = sighup(server)
        result |= {"unchanged": runs, "command_s": commands, "one_changed": changed}
        stopping = time.monotonic()
        status = server.stop()  # SIGTERM; killed after 10 s
        result["sigterm_to_exit_s"] = round(time.monotonic() - stopping, 3)
        result["exit_status"] = status
        result["log"] = server.log_summary()
    best = min(float(run["sighup_s"]) for run in runs)
    print(
        f"reload: {zones} zones: no file changed: SIGHUP to event=reloaded "
        f"{', '.join(str(run['sighup_s']) for run in runs)} s (best {best}), "
        f"logged {', '.join(str(run['logged_s']) for run in runs)} s; "
        f"`dynmx reload` returns in {', '.join(map(str, commands))} s"
    )
    print(f"reload: {zones} zones: one file changed: {changed['sighup_s']} s ({changed['line']})")
    print(f"reload: last line with no file changed: {runs[-1]['line']}")
    print(f"reload: SIGTERM to exit {result['sigterm_to_exit_s']} s (status {result['exit_status']})")
    return result


def profile(zones: int, workdir: Path) -> dict[str, object]:
    """The no-change reload in this process under cProfile."""
    from dynmx.app import loading
    from dynmx.app.root import App
    from dynmx.config import load_config

    zone_dir = prepare(workdir, zones)
    config_path = write_config(workdir, zone_dir)
    dump = OUT / f"reload-profile-{zones}.pstats"

    async def run() -> float:
        app = App(load_config(config_path), lambda: load_config(config_path))
        saved = threading.Event()  # the store write holds the GIL for seconds: not during the reload
        save = app.answers.save

        def save_then_tell(*args: Any) -> None:
            try:
                save(*args)
            finally:
                saved.set()

        app.answers.save = save_then_tell  # type: ignore[method-assign]
        await app.start()
        try:
            for _ in range(int(TIMEOUT * 10)):  # a staged start compiles behind, then writes the store
                if not app.publisher.filling and saved.is_set():
                    break
                await asyncio.sleep(0.1)
            settle(zone_dir)
            await app.reload()  # once unprofiled: the first reload sees the config for the first time
            profiler, inner = cProfile.Profile(), cProfile.Profile()
            load = loading.load

            def profiled_load(*args: Any, **kwargs: Any) -> Any:  # the scan runs off the loop
                return inner.runcall(load, *args, **kwargs)

            loading.load = profiled_load
            started = time.monotonic()
            profiler.enable()
            await app.reload()
            profiler.disable()
            seconds = time.monotonic() - started
            loading.load = load
            stats = pstats.Stats(profiler)
            stats.add(pstats.Stats(inner))
            stats.dump_stats(str(dump))
            return seconds
        finally:
            await app.stop()

    seconds = asyncio.run(run())
    rows = top_functions(dump, 40)
    print_profile(rows, f"no-change reload of {zones} zones under cProfile: {seconds:.2f} s")
    return {"zones": zones, "profiled_s": round(seconds, 3), "profile": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=20_000)
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile the reload in this process")
    parser.add_argument("--workdir", type=Path, help="keep zones and state here between runs (warm)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {"source": source(), "loadavg_before": loadavg()}
    with contextlib.ExitStack() as stack:
        workdir = args.workdir
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dynmx-reload-")))
        workdir.mkdir(parents=True, exist_ok=True)
        if args.profile:
            report["profile"] = profile(args.zones, workdir)
        else:
            report["run"] = measure(args.zones, args.reloads, workdir)
    report["loadavg_after"] = loadavg()
    out = OUT / f"reload-{stamp()}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"reload: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

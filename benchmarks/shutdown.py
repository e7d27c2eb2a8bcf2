"""SIGTERM to exit among many zones: how long a server takes to stop, at the moments that held
it up (issue 26: a 100,000-zone server did not exit within 10 s of SIGTERM).

Writes `--zones` zones of 10 records (scale.py's `small_zone`) into `--workdir` (kept between
runs: written once), then `--runs` times: starts `python -m dynmx serve` on them, waits for
`--at`, sends SIGTERM and times until the process has exited (`exit_s`), and until its
`event=stopped` line (`stopped_s`: the orderly part; the rest is the process ending).

* `--at serving`: at `event=serving` plus `--delay` seconds: a staged start is compiling (or,
  warm, laying in from the answer store) behind, a slice in a thread;
* `--at compiled`: at `event=compiled`: the answer store is being written in a thread;
* `--at stored`: once `event=answer-store-written` (idle, the whole heap built).

`--cold` removes the state (answer store, journal) before each start; otherwise the first
start is cold and the later ones warm. Every wait is bounded; a server that has not exited
`--limit` seconds after SIGTERM is killed and counted as such.

    .venv/bin/python benchmarks/shutdown.py --zones 20000 --runs 5 --at stored [--cold]

Not a test; asserts nothing. Writes benchmarks/out/shutdown-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, Dynmx, loadavg, source, stamp
from reload import prepare, write_config

TIMEOUT = 1800.0


def wait_event(server: Dynmx, event: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not server.events[event]:
        if time.monotonic() > deadline or not server.alive():
            raise RuntimeError(f"no event={event}")
        time.sleep(0.01)


def one_run(workdir: Path, config: Path, at: str, delay: float, limit: float) -> dict[str, object]:
    server = Dynmx(["--config", str(config), "--http", ""], workdir, timeout=TIMEOUT)
    server.start()
    load = loadavg()
    if at == "serving":
        time.sleep(delay)
    elif at == "compiled":
        server.wait_compiled(TIMEOUT)
    else:
        wait_event(server, "answer-store-written")
    assert server.proc is not None
    pending = not server.events["compiled"]
    writing = bool(server.events["compiled"]) and not server.events["answer-store-written"]
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    stopped = None
    killed = False
    while server.alive():
        if stopped is None and server.events["stopped"]:
            stopped = round(time.monotonic() - started, 3)
        if time.monotonic() - started > limit:
            server.proc.kill()
            killed = True
            break
        time.sleep(0.005)
    exit_s = round(time.monotonic() - started, 3)
    server.proc.wait(10)
    if server._reader is not None:
        server._reader.join(5)
    if stopped is None and server.events["stopped"]:
        stopped = exit_s
    return {
        "loadavg": load,
        "fill_pending_at_signal": pending,
        "store_writing_at_signal": writing,
        "exit_s": exit_s,
        "stopped_s": stopped,
        "killed": killed,
        "returncode": server.proc.returncode,
        "store_lines": [line for line in server.tail if "answer-store" in line],
        "tail": list(server.tail)[-4:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--at", choices=("serving", "compiled", "stored"), default="stored")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds after serving (--at serving)")
    parser.add_argument("--cold", action="store_true", help="remove the state before every start")
    parser.add_argument("--limit", type=float, default=30.0, help="seconds before the server is killed")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dynmx-shutdown"))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    workdir = args.workdir / str(args.zones)
    workdir.mkdir(parents=True, exist_ok=True)
    zone_dir = prepare(workdir, args.zones)
    config = write_config(workdir, zone_dir)
    report: dict[str, object] = {"source": source(), "args": vars(args) | {"workdir": str(workdir)}}
    runs = []
    for index in range(args.runs):
        if args.cold:
            shutil.rmtree(workdir / "state", ignore_errors=True)
        try:
            run = one_run(workdir, config, args.at, args.delay, args.limit)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            run = {"error": str(error)}
        runs.append(run)
        print(
            f"shutdown: {args.zones} zones, run {index + 1}, at {args.at}: exit {run.get('exit_s')} s "
            f"(event=stopped {run.get('stopped_s')} s, killed {run.get('killed')}, "
            f"rc {run.get('returncode')}; load {run.get('loadavg')})",
            flush=True,
        )
    exits = [float(run["exit_s"]) for run in runs if "exit_s" in run]  # type: ignore[arg-type]
    if exits:
        print(f"shutdown: exit median {statistics.median(exits):.3f} s, max {max(exits):.3f} s")
    report["runs"] = runs
    out = OUT / f"shutdown-{stamp()}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"shutdown: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shared pieces of the hardening benchmarks: run dynmx, watch its memory, query it, drive dnsperf.

amplification.py, flood.py, scale.py and soak/soak.py build on bench.py and load.py
(imported, not copied) and on these helpers. Not a test: nothing here asserts timings.

* `Dynmx` starts `python -m dynmx serve ARGS`, learns its ports from its own log lines
  (so `--listen 127.0.0.1:0` works and no port is guessed), keeps the log's tail, counts
  its events and keeps every warning, error and traceback line for the report.
* `RssSampler` samples VmRSS of a process tree from /proc at a fixed interval.
* `udp_exchange` sends one query datagram and returns the raw reply bytes and the time.
* `dnsperf_run` runs dnsperf with a rate limit (`-Q`), as bench.dnsperf does without one.

`DYNMX_SRC=DIR` runs the dynmx package found in DIR instead of this checkout's, for example
a snapshot of the last commit while the working tree is mid-edit:

    git archive HEAD dynmx | tar -x -C DIR && git rev-parse HEAD > DIR/COMMIT

`source()` says which tree ran (and DIR/COMMIT when there is one), for the reports.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from bench import DNSPERF_CORE, HOST, OUT, ROOT, Run, parse_dnsperf, pin, tree_cpu_seconds  # noqa: E402
from load import vm_kib  # noqa: E402

__all__ = [
    "HOST",
    "OUT",
    "ROOT",
    "Dynmx",
    "RssSampler",
    "dnsperf_run",
    "loadavg",
    "mib",
    "print_profile",
    "profile_args",
    "source",
    "stamp",
    "top_functions",
    "tree_rss_kib",
    "udp_exchange",
    "udp_socket",
]

SRC = Path(os.environ.get("DYNMX_SRC") or ROOT).resolve()
LOG_TAIL = 200  # log lines kept from the end
PROBLEM_LINES = 200  # warning/error lines kept for the report
PROBLEM = re.compile(r"level=(WARNING|ERROR|CRITICAL)|Traceback|Error:")
EVENT = re.compile(r"\bevent=([\w-]+)")


def source() -> dict[str, str]:
    """Which dynmx ran: the source tree, and this checkout's commit (plus whether it had edits)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""

    if SRC != ROOT:
        commit = SRC / "COMMIT"
        return {"dynmx_src": str(SRC), "commit": commit.read_text().strip() if commit.exists() else "unknown"}
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "dynmx").strip())
    return {"dynmx_src": str(SRC), "commit": git("rev-parse", "HEAD").strip(), "dynmx_tree_dirty": str(dirty)}


def loadavg() -> str:
    """/proc/loadavg: how busy the shared machine was (other work skews every figure)."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""


def stamp() -> str:
    """The time part of output file names, as bench.py writes them."""
    return time.strftime("%Y%m%d-%H%M%S")


# --- memory -------------------------------------------------------------------------------


def tree_pids(root: int) -> list[int]:
    """`root` and every process descending from it (NSD serves from a forked child)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found = []
    for pid in parent:
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parent:
            ancestor = parent[ancestor]
        if ancestor == root:
            found.append(pid)
    return found


def tree_rss_kib(root: int) -> int:
    """Resident memory of a process tree in KiB (VmRSS summed; 0 once it is gone)."""
    total = 0
    for pid in tree_pids(root):
        with contextlib.suppress(OSError):
            total += vm_kib(pid, "VmRSS")
    return total


class RssSampler:
    """Samples `tree_rss_kib(pid)` every `interval` seconds in a daemon thread while entered."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []  # (seconds since start, KiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((round(time.monotonic() - self._started, 2), tree_rss_kib(self.pid)))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.samples.append((round(time.monotonic() - self._started, 2), tree_rss_kib(self.pid)))

    def summary(self) -> dict[str, float]:
        kib = [k for _, k in self.samples if k] or [0]
        return {"first_mib": mib(kib[0]), "last_mib": mib(kib[-1]), "max_mib": mib(max(kib))}


def mib(kib: float) -> float:
    return round(kib / 1024, 1)


# --- dynmx --------------------------------------------------------------------------------


class Dynmx:
    """`python -m dynmx serve ARGS` in `cwd`; a context manager that always stops it.

    `prefix` goes before the interpreter (taskset), `python_args` between the interpreter
    and `-m dynmx` (e.g. `-m cProfile -o FILE`). `start` waits for `event=serving` and
    records how long that took; the UDP/TCP and HTTP ports come from `event=listening`.
    """

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        prefix: Sequence[str] = (),
        python_args: Sequence[str] = (),
        timeout: float = 60.0,
    ) -> None:
        self.cmd = [*prefix, sys.executable, *python_args, "-m", "dynmx", "serve", *args]
        self.cwd = cwd
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.http_port = 0
        self.state_dir: Path | None = None  # from the control socket's line
        self.load_seconds = 0.0
        self.entries = 0
        self.events: Counter[str] = Counter()
        self.tail: deque[str] = deque(maxlen=LOG_TAIL)
        self.problems: list[str] = []
        self.problem_count = 0
        self.lines = 0
        self._serving = threading.Event()
        self._compiled = threading.Event()  # a staged start-up (many zones) compiles after serving
        self._started = 0.0
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def auth(self) -> dict[str, str]:
        """The header a request to the control listener needs (its token, from state_dir)."""
        token = self.state_dir / "control.token" if self.state_dir is not None else None
        return {"Authorization": "Bearer " + token.read_text().strip()} if token and token.exists() else {}

    @property
    def pid(self) -> int:
        assert self.proc is not None, "dynmx is not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            with self._lock:
                self.lines += 1
                self.tail.append(line)
                for event in EVENT.findall(line):
                    self.events[event] += 1
                if PROBLEM.search(line):
                    self.problem_count += 1
                    if len(self.problems) < PROBLEM_LINES:
                        self.problems.append(line)
            if "event=listening proto=control" in line:
                self.state_dir = Path(line.rsplit("path=", 1)[1].split()[0]).parent
            elif "event=listening" in line:
                port = int(line.rsplit("port=", 1)[1].split()[0])
                if "proto=http" in line:
                    self.http_port = port
                elif not self.port:
                    self.port = port
            elif "event=serving" in line:
                self.entries = int(line.rsplit("entries=", 1)[1].split()[0])
                self._serving.set()
                if " pending=" not in line or " pending=0" in line:
                    self._compiled.set()
            elif "event=compiled" in line:
                self.entries = int(line.rsplit("entries=", 1)[1].split()[0])
                self._compiled.set()

    def start(self) -> Dynmx:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(SRC), str(ROOT)])),
        }
        started = self._started = time.monotonic()
        self.proc = subprocess.Popen(
            self.cmd, cwd=self.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = started + self.timeout
        while not self._serving.wait(0.05):
            if not self.alive() or time.monotonic() > deadline:
                reason = "exited" if not self.alive() else f"did not serve within {self.timeout:.0f} s"
                log = "\n".join(self.tail)
                self.stop()
                raise RuntimeError(f"dynmx {reason}: {' '.join(self.cmd)}\n{log}")
        self.load_seconds = round(time.monotonic() - started, 2)
        return self

    def wait_compiled(self, timeout: float) -> float:
        """Seconds from spawn until every zone is compiled (`event=compiled`, or at serving)."""
        if not self._compiled.wait(timeout):
            raise RuntimeError(f"dynmx did not finish compiling within {timeout:.0f} s")
        return round(time.monotonic() - self._started, 2)

    def stop(self) -> int | None:
        """SIGTERM, wait up to 10 s, then SIGKILL; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        return self.proc.returncode

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def log_summary(self) -> dict[str, object]:
        with self._lock:
            return {
                "lines": self.lines,
                "events": dict(self.events),
                "warnings_and_errors": self.problem_count,
                "problem_lines": list(self.problems),
            }

    def __enter__(self) -> Dynmx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- queries ------------------------------------------------------------------------------


def udp_exchange(
    sock: socket.socket, wire: bytes, port: int, timeout: float = 1.0, host: str = HOST
) -> tuple[bytes | None, float]:
    """Send one query on `sock`; the reply whose ID matches (None on timeout) and the seconds taken."""
    sock.settimeout(timeout)
    started = time.perf_counter()
    deadline = started + timeout
    sock.sendto(wire, (host, port))
    while True:
        try:
            reply, _ = sock.recvfrom(65535)
        except TimeoutError:
            return None, time.perf_counter() - started
        if reply[:2] == wire[:2]:
            return reply, time.perf_counter() - started
        left = deadline - time.perf_counter()  # a late reply to an earlier query: skip it
        if left <= 0:
            return None, time.perf_counter() - started
        sock.settimeout(left)


@contextlib.contextmanager
def udp_socket() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        yield sock


# --- dnsperf ------------------------------------------------------------------------------


def dnsperf_run(
    label: str,
    port: int,
    queries: Path,
    seconds: int,
    *,
    qps: int,
    clients: int = 4,
    outstanding: int = 200,
    stats_interval: int = 0,
    server_pid: int | None = None,
    extra: Sequence[str] = (),
) -> tuple[Run, str]:
    """dnsperf for `seconds` at most `qps` queries per second, on the dnsperf core; (Run, output).
    `extra`: more dnsperf options, e.g. `-D` (the DNSSEC OK bit)."""
    cmd = [*pin(DNSPERF_CORE), "dnsperf", "-s", HOST, "-p", str(port), "-d", str(queries)]
    cmd += ["-l", str(seconds), "-c", str(clients), "-q", str(outstanding), "-Q", str(qps), "-t", "2", *extra]
    if stats_interval:
        cmd += ["-S", str(stats_interval)]
    cpu = tree_cpu_seconds(server_pid) if server_pid else 0.0
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stdout}{run.stderr}")
    used = tree_cpu_seconds(server_pid) - cpu if server_pid else 0.0
    return parse_dnsperf("dynmx", label, run.stdout, used), run.stdout + run.stderr


# --- profiles -----------------------------------------------------------------------------


def profile_args(path: Path) -> list[str]:
    """`python_args` for `Dynmx` that run the server under cProfile, writing `path` on exit."""
    return ["-m", "cProfile", "-o", str(path)]


def top_functions(path: Path, limit: int = 25) -> list[dict[str, object]]:
    """The functions with the most own time in a cProfile dump, as file:line, with cumulative time."""
    import pstats

    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = file.replace(str(SRC) + "/", "").replace(str(ROOT) + "/", "")
        rows.append(
            {
                "where": f"{where}:{line}",
                "function": function,
                "calls": calls,
                "own_s": own,
                "cum_s": cumulative,
            }
        )
    rows.sort(key=lambda r: -float(r["own_s"]))  # type: ignore[arg-type]
    return rows[:limit]


def print_profile(rows: list[dict[str, object]], title: str) -> None:
    print(f"\n{title} (own time; cumulative in brackets)")
    for row in rows:
        where = f"{row['where']} {row['function']}"
        print(f"  {row['own_s']:8.2f} s [{row['cum_s']:8.2f}] {row['calls']:>10}  {where}")

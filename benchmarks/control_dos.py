"""The control plane under attack (issue 23, items 8-10): DNS latency while the HTTP listeners
are abused, and how long a dyndns2 password guess takes. Loopback only, bounded; not a test.

    python benchmarks/control_dos.py                     # all three, defaults below
    python benchmarks/control_dos.py --what routes --zones 5000 --clients 4
    DYNMX_SRC=/tmp/old python benchmarks/control_dos.py  # the same against another tree

* idle: N connections to the control listener that begin a request and never finish it
  (`GET /status HTTP/1.1` and nothing more), held for `--seconds`; DNS p50/max meanwhile,
  how many the server closed at once, its threads and RSS, when the rest were cut off.
* routes: `--zones` zones of 10 records (no pool), `--clients` threads looping GET /routes
  (or `--page status`; with the token when the server made one) for `--seconds`; DNS
  p50/max before and meanwhile; pages served. `--churn S` drains and undrains a pool
  member every S seconds, so the table changes and pages are computed again.
* dyndns2: wrong passwords as fast as one client sends them for `--seconds` (at most
  `--attempts`), on the dyndns2 listener when the tree has one (else the control
  listener); how many were checked (401) and refused unchecked (429), and whether the
  right password was then taken at once.

DNS latency is one UDP query for an A record every 10 ms from a separate thread.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import dns.message  # noqa: E402
from harness import HOST, SRC, mib, source, tree_rss_kib, udp_exchange  # noqa: E402

ZONE = "$ORIGIN {name}\n$TTL 300\n@ SOA ns1 h 1 7200 900 1209600 300\n@ NS ns1\nns1 A 127.0.0.1\n"
ZONE += "@ MX 10 mx1\n@ MX 20 mx2\nmx1 A 127.0.0.1\nmx2 A 127.0.0.2\nwww A 127.0.0.3\n"
PROBE_EVERY = 0.01  # seconds between two latency queries
ROOT = BENCH_DIR.parent
POOL = (
    '[[pool]]\nname = "z00000.test."\nstrategy = "round-robin"\n'
    '[[pool.member]]\nhost = "mx1.z00000.test."\nprobe = "none"\n'
    '[[pool.member]]\nhost = "mx2.z00000.test."\nprobe = "none"\n'
)
PAGES = {"routes": "/routes?format=json", "status": "/status", "metrics": "/metrics"}
LISTENING = re.compile(r"event=listening proto=(\S+) address=\S+ port=(\d+)")


def write_zones(zones: Path, count: int) -> str:
    zones.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        name = f"z{index:05d}.test."
        (zones / f"{name}zone").write_text(ZONE.format(name=name))
    return "www.z00001.test."


def config(workdir: Path, zones: int, extra: str = "") -> Path:
    probe = write_zones(workdir / "zones", zones)
    path = workdir / "dynmx.toml"
    path.write_text(
        f'[server]\nlisten = ["{HOST}:0"]\nzones_dir = "zones"\nstate_dir = "state"\n'
        f'[http]\nlisten = "{HOST}:0"\n{extra}'
    )
    (workdir / "probe-name").write_text(probe)
    return path


class Server:
    """`python -m dynmx serve --config PATH` in `workdir` until `stop` (a context manager): its
    ports from its log lines, the lines kept."""

    def __init__(self, path: Path, workdir: Path, timeout: float = 60.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(SRC), str(ROOT)])}
        command = [sys.executable, "-m", "dynmx", "serve", "--config", str(path)]
        self.proc = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        self._serving = threading.Event()
        self._compiled = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._serving.wait(timeout) or "udp+tcp" not in self.ports:
            self.stop()
            raise RuntimeError("dynmx did not serve:\n" + "".join(self.lines[-20:]))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match is not None:
                self.ports.setdefault(match.group(1), int(match.group(2)))
            if "event=serving" in line:
                self._serving.set()
                if "pending=0" in line:
                    self._compiled.set()
            if "event=compiled" in line:
                self._compiled.set()
        self._serving.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return self.ports["udp+tcp"]

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    def wait_compiled(self, timeout: float) -> bool:
        return self._compiled.wait(timeout)

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Latency:
    """A thread querying the server every PROBE_EVERY seconds; `mark` starts a new phase."""

    def __init__(self, port: int, name: str) -> None:
        self.port = port
        self.wire = dns.message.make_query(name, "A").to_wire()
        self.phases: dict[str, list[float]] = {}
        self.lost: dict[str, int] = {}
        self.phase = "before"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def mark(self, phase: str) -> None:
        self.phase = phase

    def _run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not self._stop.wait(PROBE_EVERY):
                reply, seconds = udp_exchange(sock, self.wire, self.port, timeout=2.0)
                phase = self.phase
                if reply is None:
                    self.lost[phase] = self.lost.get(phase, 0) + 1
                else:
                    self.phases.setdefault(phase, []).append(seconds)

    def __enter__(self) -> Latency:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def summary(self) -> dict[str, dict[str, float]]:
        found = {}
        for phase, values in self.phases.items():
            found[phase] = {
                "queries": len(values),
                "lost": self.lost.get(phase, 0),
                "p50_ms": round(statistics.median(values) * 1000, 2),
                "p99_ms": round(sorted(values)[int(len(values) * 0.99) - 1] * 1000, 2),
                "max_ms": round(max(values) * 1000, 2),
            }
        return found


def token_header(workdir: Path) -> dict[str, str]:
    path = workdir / "state" / "control.token"
    return {"Authorization": "Bearer " + path.read_text().strip()} if path.exists() else {}


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def run_idle(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="control-dos-") as tmp:
        workdir = Path(tmp)
        path = config(workdir, 1)
        with (
            Server(path, workdir) as server,
            Latency(server.port, "www.z00000.test.") as lat,
        ):
            time.sleep(1.0)
            before = {"threads": threads_of(server.pid), "rss_mib": mib(tree_rss_kib(server.pid))}
            lat.mark("held")
            held: list[socket.socket] = []
            failed = 0
            for _ in range(args.idle):
                try:
                    sock = socket.create_connection((HOST, server.http_port), timeout=5)
                    sock.sendall(b"GET /status HTTP/1.1\r\n")
                    held.append(sock)
                except OSError:
                    failed += 1
            opened = time.monotonic()
            time.sleep(1.0)
            during = {"threads": threads_of(server.pid), "rss_mib": mib(tree_rss_kib(server.pid))}
            closed_at_once = sum(_closed(sock, 0.001) for sock in held)
            metrics = _get(server.http_port, "/metrics", {}, timeout=15)[0]  # from the same address
            other = _metrics_from(server.http_port, "127.0.0.2")  # a scraper elsewhere
            time.sleep(max(0.0, args.seconds - (time.monotonic() - opened)))
            still_open = sum(not _closed(sock, 0.001) for sock in held)
            for sock in held:
                sock.close()
            lat.mark("after")
            time.sleep(1.0)
            return {
                "connections": args.idle,
                "connect_failed": failed,
                "closed_at_once": closed_at_once,
                f"still_open_after_{args.seconds:.0f}s": still_open,
                "metrics_during_same_source": metrics,
                "metrics_during_other_source": other,
                "server_before": before,
                "server_during": during,
                "dns": lat.summary(),
                "tracebacks": server.count("Traceback"),
                "connections_full_lines": server.count("event=http-connections-full"),
            }


def _closed(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def _metrics_from(port: int, source_address: str) -> int:
    """GET /metrics from another loopback address: its status (0: no answer in 15 s)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=15, source_address=(source_address, 0))
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def _post(port: int, path: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _get(port: int, path: str, headers: dict[str, str], timeout: float = 30) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def run_routes(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="control-dos-") as tmp:
        workdir = Path(tmp)
        path = config(workdir, args.zones, POOL if args.churn else "")
        started = time.monotonic()
        with Server(path, workdir, timeout=600) as server:
            server.wait_compiled(600)
            compiled = round(time.monotonic() - started, 1)
            headers = token_header(workdir)
            begun = time.monotonic()
            status, body = _get(server.http_port, "/routes", headers, timeout=120)
            first = {
                "status": status,
                "domains": body.count(b"smtp:["),
                "seconds": round(time.monotonic() - begun, 3),
            }
            with Latency(server.port, "www.z00001.test.") as lat:
                time.sleep(args.seconds)
                lat.mark("looped")
                stop = threading.Event()
                pages = [0]
                statuses: dict[int, int] = {}

                def loop() -> None:
                    while not stop.is_set():
                        code, _ = _get(server.http_port, PAGES[args.page], headers, timeout=120)
                        statuses[code] = statuses.get(code, 0) + 1
                        pages[0] += 1

                drains = [0]

                def churn() -> None:  # each drain or undrain changes the table: the next page is computed
                    while not stop.wait(args.churn):
                        query = f"pool=z00000.test.&host=mx1.z00000.test.&drained={drains[0] % 2}"
                        _post(server.http_port, f"/members/drain?{query}", headers)
                        drains[0] += 1

                clients = [threading.Thread(target=loop, daemon=True) for _ in range(args.clients)]
                if args.churn:
                    clients.append(threading.Thread(target=churn, daemon=True))
                for client in clients:
                    client.start()
                time.sleep(args.seconds)
                stop.set()
                lat.mark("after")
                for client in clients:
                    client.join(120)
                time.sleep(1.0)
            return {
                "zones": args.zones,
                "page": PAGES[args.page],
                "clients": args.clients,
                "compiled_after_s": compiled,
                "first_page": first,
                "pages": pages[0],
                "pages_per_s": round(pages[0] / args.seconds, 1),
                "statuses": statuses,
                "drains": drains[0],
                "dns": lat.summary(),
            }


def run_dyndns2(args: argparse.Namespace) -> dict[str, object]:
    hosts = '[[dyndns2.host]]\nhostname = "www.z00000.test."\nusername = "home"\npassword = "s3cret"\n'
    with tempfile.TemporaryDirectory(prefix="control-dos-") as tmp:
        workdir = Path(tmp)
        own = f'[dyndns2]\nenabled = true\nmin_interval = 0\nlisten = "{HOST}:0"\n' + hosts
        path = config(workdir, 1, own)
        try:
            server = Server(path, workdir)
        except RuntimeError:  # a tree without `[dyndns2] listen`: the control listener serves it
            path = config(workdir, 1, "[dyndns2]\nenabled = true\nmin_interval = 0\n" + hosts)
            server = Server(path, workdir)
        try:
            port = server.ports.get("dyndns2", server.http_port)
            with Latency(server.port, "www.z00000.test.") as lat:
                time.sleep(1.0)
                lat.mark("guessing")
                answers: dict[int, int] = {}
                started = time.monotonic()
                attempts = 0
                while attempts < args.attempts and time.monotonic() - started < args.seconds:
                    code = _update(port, f"guess{attempts}")[0]
                    answers[code] = answers.get(code, 0) + 1
                    attempts += 1
                elapsed = time.monotonic() - started
                right = _update(port, "s3cret")
                lat.mark("after")
                time.sleep(0.5)
            return {
                "listener": "dyndns2" if port != server.http_port else "control",
                "attempts": attempts,
                "seconds": round(elapsed, 2),
                "answers": answers,
                "checked_per_s": round(answers.get(401, 0) / elapsed, 1),
                "right_password_then": right,
                "badauth_lines": server.count("event=dyndns2-badauth")  # trees before f196e61
                + server.count("event=dyndns2-refused reason=badauth"),
                "dns": lat.summary(),
            }
        finally:
            server.stop()


def _update(port: int, password: str) -> tuple[int, str]:
    token = base64.b64encode(f"home:{password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    code, body = _get(port, "/nic/update?hostname=www.z00000.test&myip=192.0.2.77", headers, timeout=10)
    return code, body.decode(errors="replace").strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", choices=("idle", "routes", "dyndns2", "all"), default="all")
    parser.add_argument("--idle", type=int, default=3000, help="idle connections to hold")
    parser.add_argument("--zones", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--page", choices=sorted(PAGES), default="routes", help="routes: the page looped on")
    parser.add_argument(
        "--churn", type=float, default=0.0, help="routes: drain/undrain a pool member every N s (0: never)"
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="per phase")
    parser.add_argument("--attempts", type=int, default=3000, help="dyndns2 guesses at most")
    args = parser.parse_args()
    if not 0 < args.idle <= 10000 or not 0 < args.zones <= 20000 or not 0 < args.seconds <= 120:
        parser.error("bounded: --idle 1-10000, --zones 1-20000, --seconds up to 120")
    report: dict[str, object] = {"source": source()}
    for what in ("idle", "routes", "dyndns2"):
        if args.what in (what, "all"):
            report[what] = {"idle": run_idle, "routes": run_routes, "dyndns2": run_dyndns2}[what](args)
            print(json.dumps({what: report[what]}, indent=2), flush=True)
    with contextlib.suppress(OSError):
        out = BENCH_DIR / "out"
        out.mkdir(exist_ok=True)
        (out / f"control-dos-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

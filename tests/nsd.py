"""Run NSD on 127.0.0.1 as a reference server for differential tests and benchmarks.

NSD is the yardstick dynmx's answers are compared with (design.md, Testing). It runs
without root setup: every file it writes lives in a temporary directory, it listens
on a free ephemeral port, and it is always stopped again. Response rate limiting is
off, since a test sends thousands of queries from one address and RRL would answer
some of them with TC=1 or not at all.

`running_nsd` is the pytest-facing entry point (skips when NSD is not installed);
`Nsd` is the plain context manager, usable outside pytest (benchmarks/bench.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class NsdUnavailable(RuntimeError):
    """NSD is not installed (or not executable) on this machine."""


def find_binary(name: str) -> str | None:
    """Path of an NSD tool; /usr/sbin is often missing from a non-root PATH."""
    return shutil.which(name) or shutil.which(f"/usr/sbin/{name}")


def find_nsd() -> str | None:
    return find_binary("nsd")


def free_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A port free for both UDP and TCP on `host` (DNS servers need both on one port)."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both UDP and TCP on {host}")


def wait_for_soa(
    host: str,
    port: int,
    zone: str,
    timeout: float = START_TIMEOUT,
    alive: Callable[[], bool] | None = None,
    need_data: bool = False,
) -> None:
    """Poll with SOA queries until the server answers (a log line says less than an answer).

    `alive`, if given, is a callable returning False once the server died: stop early.
    `need_data`: only an answer with the SOA counts (a zone still loading may be refused).
    """
    deadline = time.monotonic() + timeout
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    last: Exception | None = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"server on {host}:{port} exited before answering")
        try:
            if dns.query.udp(query, host, port=port, timeout=0.2).answer or not need_data:
                return
        except (OSError, dns.exception.DNSException) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"no SOA answer for {zone} from {host}:{port} in {timeout} s: {last!r}")


def nsd_conf(
    workdir: Path,
    zone_dir: Path,
    port: int,
    zones: dict[str, str],
    zone_options: dict[str, list[str]] | None = None,
    server_count: int = 1,
    hosts: Sequence[str] = ("127.0.0.1",),
    server_options: Sequence[str] = (),
) -> str:
    """An nsd.conf that keeps all state in `workdir` and serves `zones` (name -> file);
    `server_options` are more lines of its `server:` clause."""
    lines = [
        "server:",
        *(f"  ip-address: {host}@{port}" for host in hosts),
        '  username: ""',
        '  chroot: ""',
        f'  zonesdir: "{zone_dir}"',
        '  database: ""',
        f'  pidfile: "{workdir}/nsd.pid"',
        f'  xfrdfile: "{workdir}/xfrd.state"',
        f'  xfrdir: "{workdir}"',
        f'  zonelistfile: "{workdir}/zone.list"',
        f'  logfile: "{workdir}/nsd.log"',
        f"  server-count: {server_count}",
        # Several server processes: one socket each (SO_REUSEPORT), as dynmx's workers.
        f"  reuseport: {'yes' if server_count > 1 else 'no'}",
        "  verbosity: 1",
        # CH TXT version.bind / id.server answer REFUSED, as dynmx does by default.
        "  hide-version: yes",
        "  hide-identity: yes",
        # No response rate limiting: tests and benchmarks send many queries from one source.
        "  rrl-ratelimit: 0",
        "  rrl-whitelist-ratelimit: 0",
        *(f"  {option}" for option in server_options),
        "remote-control:",
        "  control-enable: no",
    ]
    for name, zonefile in zones.items():
        lines += ["zone:", f"  name: {name}", f"  zonefile: {zonefile}"]
        lines += [f"  {option}" for option in (zone_options or {}).get(name, [])]
    return "\n".join(lines) + "\n"


class Nsd:
    """One NSD instance on `port` of `hosts` (127.0.0.1 unless given); a context manager
    that always stops it.

    `prefix` is prepended to the command line, e.g. ("taskset", "-c", "0") to pin
    NSD to a core in benchmarks (the daemon inherits the affinity of its parent).
    """

    def __init__(
        self,
        zone_dir: Path,
        zones: dict[str, str],
        port: int | None = None,
        prefix: Sequence[str] = (),
        zone_options: dict[str, list[str]] | None = None,
        server_count: int = 1,
        hosts: Sequence[str] = ("127.0.0.1",),
        server_options: Sequence[str] = (),
    ) -> None:
        binary = find_nsd()
        if binary is None:
            raise NsdUnavailable("nsd is not installed (apt-get install nsd)")
        self.binary = binary
        self.zone_dir = zone_dir.resolve()
        self.zones = zones
        self.hosts = tuple(hosts)
        self.server_options = tuple(server_options)
        self.port = port if port is not None else free_port(self.hosts[0])
        self.prefix = tuple(prefix)
        self.zone_options = zone_options or {}
        self.server_count = server_count
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.pid: int | None = None

    @property
    def workdir(self) -> Path:
        assert self._tmp is not None, "NSD is not started"
        return Path(self._tmp.name)

    def log(self) -> str:
        """NSD's log file so far (for failure messages)."""
        if self._tmp is None:
            return ""
        path = self.workdir / "nsd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> int:
        """Start NSD and wait until it answers an SOA query; return the port."""
        self._tmp = tempfile.TemporaryDirectory(prefix="dynmx-nsd-")
        conf = self.workdir / "nsd.conf"
        conf.write_text(
            nsd_conf(
                self.workdir,
                self.zone_dir,
                self.port,
                self.zones,
                self.zone_options,
                self.server_count,
                self.hosts,
                self.server_options,
            )
        )
        cmd = [*self.prefix, self.binary, "-c", str(conf)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=START_TIMEOUT)
        if proc.returncode != 0:
            self.stop()
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr}{proc.stdout}")
        try:
            self.pid = self._read_pid()
            first_zone = next(iter(self.zones))
            wait_for_soa(self.hosts[0], self.port, first_zone, alive=self._alive)
        except Exception as exc:
            log = self.log()
            self.stop()
            raise RuntimeError(f"NSD did not start: {exc}\n{log}") from exc
        return self.port

    def _read_pid(self) -> int:
        """The daemon's pid from its pidfile (the `nsd` we ran forks and exits)."""
        pidfile = self.workdir / "nsd.pid"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):  # absent, or being written
                return int(pidfile.read_text().split()[0])
            time.sleep(0.02)
        raise TimeoutError(f"NSD wrote no pidfile {pidfile}")

    def _alive(self) -> bool:
        """Whether the daemon still runs (a zombie waiting for its reaper counts as gone)."""
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (ProcessLookupError, FileNotFoundError):
            return False
        except (OSError, IndexError):
            return True
        return state != "Z"

    def stop(self) -> None:
        """SIGTERM the daemon, wait (bounded) for it to go, SIGKILL if it lingers.

        NSD 4.6.1 takes about 1.7 s to shut down; waiting keeps ports and files from
        being reused while it still holds them.
        """
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while self._alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if self._alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Nsd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_nsd(zone_dir: Path, zones: dict[str, str]) -> Iterator[int]:
    """NSD serving `zones` (name -> file in `zone_dir`) for the block; yields the port.

    Skips the calling test when NSD is not installed; always stops NSD afterwards.
    """
    import pytest

    try:
        nsd = Nsd(zone_dir, zones)
    except NsdUnavailable as exc:
        pytest.skip(str(exc))
    with nsd:
        yield nsd.port

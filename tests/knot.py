"""Run Knot DNS (Debian's knotd) on 127.0.0.1 as a second real peer for zone transfers.

NSD is the yardstick for answers; Knot is the other authoritative server operators pair
dynmx with, and its transfer code is independent of NSD's (and strict about IXFR). Like
`tests/nsd.py`, everything it writes lives in a temporary directory and it is always
stopped again. Its log (stderr) is kept for failure messages.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from tests.nsd import free_port, wait_for_soa

STOP_TIMEOUT = 5.0


class KnotUnavailable(RuntimeError):
    """knotd is not installed on this machine."""


def find_knot(name: str = "knotd") -> str | None:
    return shutil.which(name) or shutil.which(f"/usr/sbin/{name}")


class Knot:
    """One knotd on 127.0.0.1:`port` with the given config clauses (YAML after the `server`,
    `log`, `database` and zone `template` clauses written here, which hold Knot's paths).
    `start()` runs it; as a context manager it is always stopped at the end."""

    def __init__(
        self, clauses: str, zone_files: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        binary = find_knot()
        if binary is None:
            raise KnotUnavailable("knotd is not installed (apt-get install knot)")
        self.binary = binary
        self.clauses = clauses
        self.zone_files = zone_files or {}
        self.port = port if port is not None else free_port()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    @property
    def workdir(self) -> Path:
        assert self._tmp is not None, "Knot is not started"
        return Path(self._tmp.name)

    @property
    def conf(self) -> Path:
        return self.workdir / "knot.conf"

    def log(self) -> str:
        return "".join(self.lines)

    def start(self, wait_zone: str | None = None) -> int:
        """Start knotd; with `wait_zone`, wait until it answers that zone's SOA. Returns the port."""
        self._tmp = tempfile.TemporaryDirectory(prefix="dynmx-knot-")
        for sub in ("run", "db", "zones"):
            (self.workdir / sub).mkdir()
        for name, text in self.zone_files.items():
            (self.workdir / "zones" / name).write_text(text)
        self.conf.write_text(
            "server:\n"
            f'    rundir: "{self.workdir / "run"}"\n'
            f"    listen: 127.0.0.1@{self.port}\n"
            "log:\n  - target: stderr\n    any: info\n"
            f'database:\n    storage: "{self.workdir / "db"}"\n'
            "template:\n  - id: default\n"
            f'    storage: "{self.workdir / "zones"}"\n'
            '    file: "%s.zone"\n' + self.clauses
        )
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        assert self.process.stderr is not None
        stream = self.process.stderr

        def pump() -> None:
            for line in stream:
                self.lines.append(line)

        threading.Thread(target=pump, daemon=True).start()
        if wait_zone is not None:
            try:
                process = self.process
                wait_for_soa("127.0.0.1", self.port, wait_zone, alive=lambda: process.poll() is None)
            except Exception as error:
                self.stop()
                raise RuntimeError(f"Knot did not start: {error}\n{self.log()}") from error
        return self.port

    def control(self, *args: str) -> str:
        """Run `knotc` against this instance (zone-begin, zone-set, zone-commit, ...)."""
        knotc = find_knot("knotc")
        assert knotc is not None
        result = subprocess.run(
            [knotc, "-c", str(self.conf), *args], capture_output=True, text=True, timeout=10, check=False
        )
        assert result.returncode == 0, f"knotc {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Knot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

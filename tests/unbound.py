"""Debian's Unbound as a validating resolver in front of dynmx, for tests: its own config in a
temp directory, run in the foreground as the current user, dynmx its only path to the zone
(a stub-zone) and the zone's DS its only trust anchor; stopped by its process id."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query


@dataclass
class Unbound:
    """A running `unbound -d` and where it listens."""

    process: subprocess.Popen[str]
    port: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (Unbound listens on both)."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free UDP+TCP port on 127.0.0.1")


def config_text(directory: Path, port: int, zone: str, anchor: str, dynmx_port: int) -> str:
    """Validator + iterator, no cache kept past an answer (cache-max-ttl 0, so every query
    reaches dynmx and pool rotation stays visible), `anchor` the only trust anchor."""
    return f"""server:
    verbosity: 1
    interface: 127.0.0.1
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    outgoing-interface: 127.0.0.1
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{directory}"
    pidfile: "{directory}/unbound.pid"
    use-syslog: no
    logfile: ""
    num-threads: 1
    module-config: "validator iterator"
    trust-anchor: "{anchor}"
    local-zone: "test." nodefault
    val-log-level: 2
    cache-min-ttl: 0
    cache-max-ttl: 0
    prefetch: no
    rrset-roundrobin: no
    qname-minimisation: no
remote-control:
    control-enable: no
stub-zone:
    name: "{zone}"
    stub-addr: 127.0.0.1@{dynmx_port}
"""


def _answers(port: int) -> bool:
    query = dns.message.make_query("localhost.", "A")
    try:
        dns.query.udp(query, "127.0.0.1", port=port, timeout=0.3)
    except (OSError, dns.exception.Timeout):
        return False
    return True


@contextmanager
def running_unbound(directory: Path, zone: str, anchor: str, dynmx_port: int) -> Iterator[Unbound]:
    """Start Unbound (checked by unbound-checkconf first), wait at most 10 s for it to
    answer, and stop it (SIGTERM, then SIGKILL) when the block ends."""
    unbound, checkconf = shutil.which("unbound"), shutil.which("unbound-checkconf")
    assert unbound and checkconf, "unbound is not installed (apt-get install unbound)"
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    conf = directory / "unbound.conf"
    conf.write_text(config_text(directory, port, zone, anchor, dynmx_port))
    check = subprocess.run([checkconf, str(conf)], capture_output=True, text=True, timeout=10)
    assert check.returncode == 0, f"unbound-checkconf: {check.stdout}{check.stderr}"
    log = directory / "unbound.log"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [unbound, "-d", "-c", str(conf)], stdout=output, stderr=subprocess.STDOUT, text=True
        )
    running = Unbound(process, port, log)
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):
            assert process.poll() is None, f"unbound exited:\n{running.log_text()}"
            assert time.monotonic() < deadline, f"unbound did not answer in 10 s:\n{running.log_text()}"
            time.sleep(0.05)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

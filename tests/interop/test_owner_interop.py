"""Issue 22's interop check: NSD and Knot secondaries of dynmx, a mixed stream of 500 edits from
every path (nsupdate, dnspython UPDATE, `dynmx record`, `dynmx zone add/rm`, dyndns2, a hand
edit + `dynmx reload`), a restart and a kill -9 in the middle. At the end all three serve the
same serial with the same records, and every acknowledged edit is there."""

from __future__ import annotations

import base64
import random
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import dns.zone
import pytest

from tests.conftest import EDITS, ROOT, TEST_SECRET, RunningServer, wait_until
from tests.knot import Knot, KnotUnavailable
from tests.nsd import Nsd, NsdUnavailable, find_binary, free_port

KEYRING = dns.tsigkeyring.from_text({"ops-key.": ("hmac-sha256", TEST_SECRET)})
ZONE = """\
$ORIGIN example.test.
$TTL 3600
@    SOA ns1 hostmaster 1 86400 3600 1209600 300
@    NS  ns1
ns1  A   127.0.0.1
dyn  A   198.51.100.1
"""
EDITS_TOTAL = 500
# How many of the edits each path makes (the rest are dnspython UPDATEs); subprocess paths
# cost about half a second each, so they are fewer.
PATHS = {"nsupdate": 120, "record": 40, "zone": 10, "dyndns2": 80, "hand": 15}
Serve = Callable[..., RunningServer]


def _soa_serial(port: int) -> int | None:
    try:
        reply = dns.query.udp(
            dns.message.make_query("example.test.", "SOA"), "127.0.0.1", port=port, timeout=1
        )
    except (OSError, dns.exception.Timeout):
        return None
    return int(reply.answer[0][0].serial) if reply.answer else None


def _records(port: int) -> set[str]:
    zone = dns.zone.from_xfr(
        dns.query.xfr("127.0.0.1", "example.test.", port=port, timeout=10, relativize=False), relativize=False
    )
    return {
        f"{name} {rdataset.ttl} {dns.rdatatype.to_text(rdataset.rdtype)} {rdata.to_text()}"
        for name, node in zone.nodes.items()
        for rdataset in node.rdatasets
        for rdata in rdataset
    }


SOA_SERIAL = re.compile(r"(IN SOA \S+ \S+ )(\d+)")


def _file_serial(text: str) -> int | None:
    match = SOA_SERIAL.search(text)
    return int(match.group(2)) if match else None


class Stream:
    """The edits, each through its path, and what was acknowledged."""

    def __init__(self, tmp_path: Path, config: Path, dns_port: int, http_port: int) -> None:
        self.tmp_path = tmp_path
        self.config = config
        self.dns_port = dns_port
        self.http_port = http_port
        self.added: set[str] = set()  # names whose A record an acknowledged edit added
        self.children: set[str] = set()  # zones added and not removed
        self.dyn = "198.51.100.1"
        self.failures: list[str] = []

    def update(self, index: int) -> None:
        message = dns.update.UpdateMessage("example.test.", keyring=KEYRING, keyname="ops-key.")
        message.add(f"u{index}", 300, "A", f"10.1.{index // 256}.{index % 256}")
        try:
            reply = dns.query.tcp(message, "127.0.0.1", port=self.dns_port, timeout=5)
        except (OSError, EOFError, dns.exception.DNSException) as error:
            self.failures.append(f"update {index}: {error!r}")
            return
        if reply.rcode() == dns.rcode.NOERROR:
            self.added.add(f"u{index}")

    def nsupdate(self, index: int) -> None:
        script = (
            f"server 127.0.0.1 {self.dns_port}\nupdate add n{index}.example.test. 300 A 10.2.{index // 256}."
            f"{index % 256}\nsend\n"
        )
        result = subprocess.run(
            ["nsupdate", "-y", f"hmac-sha256:ops-key:{TEST_SECRET}"],
            input=script,
            capture_output=True,
            text=True,
            timeout=20,
        )
        if result.returncode == 0:
            self.added.add(f"n{index}")
        else:
            self.failures.append(f"nsupdate {index}: {result.stderr.strip()}")

    def record(self, index: int) -> None:
        result = self._dynmx("record", "add", f"r{index}.example.test", "A", f"10.3.0.{index % 256}")
        if result.returncode == 0:
            self.added.add(f"r{index}")
        else:
            self.failures.append(f"record {index}: {result.stdout}{result.stderr}")

    def zone(self, index: int) -> None:
        child = f"c{index % 4}.example.test"  # four names: each is added and removed in turn
        verb = "rm" if child + "." in self.children else "add"
        result = self._dynmx("zone", verb, child)
        if result.returncode != 0:
            self.failures.append(f"zone {verb} {child}: {result.stderr}")
        elif verb == "add":
            self.children.add(child + ".")
        else:
            self.children.discard(child + ".")

    def dyndns2(self, index: int) -> None:
        address = f"198.51.100.{index % 250 + 2}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/nic/update?hostname=dyn.example.test&myip={address}"
        )
        request.add_header("Authorization", "Basic " + base64.b64encode(b"dyn:s3cret").decode())
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read().decode().strip()
        except (urllib.error.URLError, OSError) as error:
            self.failures.append(f"dyndns2 {index}: {error!r}")
            return
        if body.startswith(("good", "nochg")):
            self.dyn = address
        else:
            self.failures.append(f"dyndns2 {index}: {body}")

    def hand(self, index: int) -> None:
        """Edit the file as an operator would: a record more and the serial one up, then reload."""
        path = self.tmp_path / "zones" / "example.test.zone"
        served = _soa_serial(self.dns_port)
        wait_until(lambda: _file_serial(path.read_text()) == served, timeout=10)  # written back
        text = path.read_text()
        text = SOA_SERIAL.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + 1}", text, count=1)
        path.write_text(text + f"h{index}.example.test. 300 IN A 10.4.0.{index % 256}\n")
        result = self._dynmx("reload")
        if result.returncode == 0:
            self.added.add(f"h{index}")
        else:
            self.failures.append(f"hand {index}: {result.stdout}{result.stderr}")

    def _dynmx(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dynmx", *args, "-c", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )


@pytest.mark.interop
@pytest.mark.timeout(600)
def test_nsd_and_knot_secondaries_end_identical_after_500_edits_from_every_path(
    serve: Serve, tmp_path: Path
) -> None:
    if find_binary("nsupdate") is None:
        pytest.skip("nsupdate is not installed (apt-get install dnsutils)")
    dns_port, http_port, nsd_port, knot_port = (free_port() for _ in range(4))
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.test.zone").write_text(ZONE)
    config = tmp_path / "dynmx.toml"
    config.write_text(
        f'[server]\nlisten = ["127.0.0.1:{dns_port}"]\nzones_dir = "{zones}"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[http]\nlisten = "127.0.0.1:{http_port}"\n'
        '[defaults]\nns = ["ns1.example.test."]\nhostmaster = "hostmaster.example.test."\n'
        "[dyndns2]\nenabled = true\nttl = 60\nmin_interval = 0\n"
        '[[dyndns2.host]]\nhostname = "dyn.example.test."\nusername = "dyn"\npassword = "s3cret"\n'
        + EDITS
        + 'allow_transfer = ["127.0.0.0/8", "ops-key."]\n'
        + f'notify = ["127.0.0.1:{nsd_port}", "127.0.0.1:{knot_port}"]\n'
    )
    server = serve("--config", str(config))
    secondary_dir = tmp_path / "nsd"
    secondary_dir.mkdir()
    nsd_options = {
        "example.test": [
            f"request-xfr: 127.0.0.1@{dns_port} NOKEY",
            "allow-notify: 127.0.0.1 NOKEY",
            "provide-xfr: 127.0.0.0/8 NOKEY",  # for the comparison at the end
        ]
    }
    knot_clauses = (
        f"key:\n  - id: ops-key.\n    algorithm: hmac-sha256\n    secret: {TEST_SECRET}\n"
        f"remote:\n  - id: primary\n    address: 127.0.0.1@{dns_port}\n    key: ops-key.\n"
        "acl:\n  - id: notify_from_primary\n    address: 127.0.0.1\n    action: notify\n"
        "  - id: compare\n    address: 127.0.0.0/8\n    action: transfer\n"
        "zone:\n  - domain: example.test.\n    master: primary\n    acl: [notify_from_primary, compare]\n"
    )
    try:
        nsd = Nsd(
            secondary_dir, {"example.test": "example.test.zone"}, zone_options=nsd_options, port=nsd_port
        )
        knot = Knot(knot_clauses, port=knot_port)
    except (NsdUnavailable, KnotUnavailable) as error:
        pytest.skip(str(error))
    nsd.start()
    knot.start()
    stream = Stream(tmp_path, config, dns_port, http_port)
    rng = random.Random(22)
    paths = [name for name, count in PATHS.items() for _ in range(count)]
    paths += ["update"] * (EDITS_TOTAL - len(paths))
    rng.shuffle(paths)
    restart_at, kill_at = EDITS_TOTAL // 3, 2 * EDITS_TOTAL // 3
    logs = [server.log_text]
    try:
        for index, path in enumerate(paths):
            if index == restart_at:
                server.stop()
                server = serve("--config", str(config))
                logs.append(server.log_text)
            elif index == kill_at:
                server.stop(signal.SIGKILL)
                server = serve("--config", str(config))
                logs.append(server.log_text)
            getattr(stream, path)(index)
        assert not stream.failures, "\n".join(stream.failures[:20])
        serial = _soa_serial(dns_port)
        wait_until(lambda: _soa_serial(nsd_port) == serial and _soa_serial(knot_port) == serial, timeout=60)
        primary = _records(dns_port)
        assert _records(nsd_port) == primary, nsd.log()
        assert _records(knot_port) == primary, knot.log()
        owners = {line.split(" ", 1)[0] for line in primary}
        missing = sorted(name for name in stream.added if f"{name}.example.test." not in owners)
        lines = [line for log in logs for line in log().splitlines()]
        notable = [line for line in lines if "level=INFO" not in line or "refused" in line]
        assert not missing, f"acknowledged but missing: {missing[:20]}\n" + "\n".join(notable[-60:])
        assert f"dyn.example.test. 60 A {stream.dyn}" in primary
        delegated = {line.split(" ", 1)[0] for line in primary if line.split(" ")[2] == "NS"}
        assert delegated - {"example.test."} == stream.children
        served = "".join(log() for log in logs)
        print(
            f"edits={EDITS_TOTAL} serial={serial} records={len(primary)} added={len(stream.added)}"
            f" children={len(stream.children)} ixfr={served.count('kind=IXFR')}"
            f" axfr={served.count('kind=AXFR')} knot_ixfr={knot.log().count('IXFR, incoming')}"
        )
    finally:
        nsd.stop()
        knot.stop()

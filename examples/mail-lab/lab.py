"""The mail lab: real Postfix, real Unbound, real dynmx, SMTP sinks, all on loopback.

    dynmx      127.0.0.1:<ephemeral>   example.test, round-robin (or weighted) pool mx1 mx2 mx3 + relay
    Unbound    127.0.0.53:53           recursive resolver, stub-zone example.test -> dynmx
    Postfix    127.0.0.1:25            sending MTA, own config/queue directory, resolves via Unbound
    sinks      127.0.0.2-5:25          aiosmtpd, one JSON line per message, fsync'ed

The driver submits N messages to Postfix at a steady rate, kills one primary sink part-way
(SIGTERM: it stops listening), restarts it later, waits for the queue to drain, then checks
every Message-ID arrived exactly once, the round-robin shares, and the failover. With --dane
dynmx signs the zone, Unbound validates it, the sinks require STARTTLS with TLSA-pinned keys,
Postfix runs at smtp_tls_security_level = dane, and a rogue sink (certificate not matching its
TLSA) must receive nothing (see dane.py and the README). Everything
it starts is stopped and its temporary directory removed, whatever happens.

Exit status: 0 all checks passed, 1 a check failed, 2 the lab could not be set up,
77 a prerequisite is missing (not root, postfix/unbound not installed, a port taken).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chart import write_chart  # a sibling module, not part of the package
from dane import Identity, deliveries, first_refusal, make_identity, refused_at  # likewise

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SINKS = {"mx1": "127.0.0.2", "mx2": "127.0.0.3", "mx3": "127.0.0.4", "relay": "127.0.0.5"}
PRIMARIES = ["mx1", "mx2", "mx3"]
RESOLVER = "127.0.0.53"
MTA = "127.0.0.1"
INTERVAL, TIMEOUT, FALL, RISE = 1.0, 1.0, 2, 2
LISTENING = re.compile(r"event=listening proto=(\S+) address=(\S+) port=(\d+)")
SKIP, SETUP_FAILED = 77, 2
HINT_RECIPIENT, HINT_FIRST = "urgent@example.test", "mx3"
# --dane: a sink whose certificate does not match its TLSA record, first MX of its own domain
ROGUE, ROGUE_ADDRESS = "rogue", "127.0.0.6"
WRONG_RECIPIENT, WRONG_FALLBACK = "user@wrong.example.test", "relay"


class Unavailable(Exception):
    """A prerequisite is missing: the lab cannot run here (exit 77)."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(check, timeout: float, what: str, step: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_free(address: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "taken"
        try:
            probe.bind((address, port))
            return True
        except OSError:
            return False


def prerequisites(dane: bool = False) -> None:
    """Raise Unavailable with a reason when the lab cannot run on this machine."""
    if os.geteuid() != 0:
        raise Unavailable("needs root (ports 25 and 53, Postfix)")
    for tool in ("postfix", "postconf", "postqueue", "unbound", "unbound-checkconf"):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            raise Unavailable(f"{tool} not installed (apt-get install postfix unbound)")
    try:
        import aiosmtpd  # noqa: F401
    except ImportError as error:
        raise Unavailable("aiosmtpd not installed in this Python") from error
    for address in [MTA, *SINKS.values(), *([ROGUE_ADDRESS] if dane else [])]:
        if not port_free(address, 25):
            raise Unavailable(f"{address}:25 is taken (a running MTA?)")
    if not (port_free(RESOLVER, 53) and port_free(RESOLVER, 53, socket.SOCK_DGRAM)):
        raise Unavailable(f"{RESOLVER}:53 is taken (systemd-resolved?)")


def sbin(tool: str) -> str:
    return shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or tool


@dataclass
class Lab:
    work: Path
    ttl: int
    resolver_cache_max_ttl: int = 86400
    strategy: str = "round-robin"
    weights: dict[str, float] = field(default_factory=dict)  # per primary, for "weighted"
    seed: int = 0  # dynmx random_seed (the weighted draw); 0 = unpredictable
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    dynmx_port: int = 0
    http_port: int = 0
    dynmx_lines: list[str] = field(default_factory=list)
    postfix_started: bool = False
    identities: dict[str, Identity] = field(default_factory=dict)  # --dane: sink -> cert, key, TLSA
    trust_anchor: str = ""  # --dane: the DS `dynmx dnssec ds` printed; Unbound's only anchor
    transitions: list[tuple[float, str, str]] = field(default_factory=list)
    _watching: bool = False

    # ---------------------------------------------------------------- paths
    @property
    def pf_conf(self) -> Path:
        return self.work / "postfix" / "conf"

    @property
    def pf_queue(self) -> Path:
        return self.work / "postfix" / "queue"

    @property
    def maillog(self) -> Path:
        return self.work / "postfix" / "log" / "maillog"

    def sink_log(self, name: str) -> Path:
        return self.work / "sinks" / f"{name}.jsonl"

    # ---------------------------------------------------------------- dynmx
    def start_dynmx(self) -> None:
        zones = self.work / "zones"
        zones.mkdir()
        (zones / "example.test.zone").write_text(
            "$ORIGIN example.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\n"
            "ns1 A 127.0.0.1\n"
            + "".join(f"{name} A {address}\n" for name, address in SINKS.items())
            + "@ MX 10 mx1\n@ MX 20 mx2\n@ MX 30 mx3\n@ MX 90 relay\n"
            + self.dane_records()
        )
        members = "".join(
            f'[[pool.member]]\nhost = "{name}.example.test."\npreference = {pref}\n'
            f'role = "{"relay" if name == "relay" else "primary"}"\nprobe = "smtp"\nport = 25\n'
            f"interval = {INTERVAL}\ntimeout = {TIMEOUT}\nfall = {FALL}\nrise = {RISE}\n"
            + (f"weight = {self.weights[name]:g}\n" if name in self.weights else "")
            for name, pref in zip(SINKS, (10, 20, 30, 90), strict=True)
        )
        config = self.work / "dynmx.toml"
        config.write_text(
            f'[server]\nlisten = ["127.0.0.1:0"]\nzones_dir = "{zones}"\n'
            f'state_dir = "{self.work / "state"}"\n'
            + (f"random_seed = {self.seed}\n" if self.seed else "")
            + '[http]\nlisten = "127.0.0.1:0"\n'
            f'[[pool]]\nname = "example.test."\nstrategy = "{self.strategy}"\nttl = {self.ttl}\n{members}'
            f'[[pool.hint]]\nlabel = "urgent"\norder = ["{HINT_FIRST}.example.test.", "mx1.example.test."]\n'
            + ('[[zone]]\nname = "example.test."\ndnssec = true\n' if self.identities else "")
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "dynmx", "serve", "--config", str(config)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.processes["dynmx"] = process
        stream = process.stderr
        assert stream is not None

        def pump() -> None:
            for line in stream:
                self.dynmx_lines.append(line)

        threading.Thread(target=pump, daemon=True).start()

        def serving() -> bool:
            for line in list(self.dynmx_lines):
                match = LISTENING.search(line)
                if match and match.group(1) == "udp+tcp":
                    self.dynmx_port = int(match.group(3))
                if match and match.group(1) == "http":
                    self.http_port = int(match.group(3))
            if process.poll() is not None:
                raise RuntimeError("dynmx exited:\n" + "".join(self.dynmx_lines))
            return any("event=serving" in line for line in self.dynmx_lines)

        wait_for(serving, 30, "dynmx to serve")
        if self.identities:
            ds = subprocess.run(
                [sys.executable, "-m", "dynmx", "dnssec", "ds", "example.test", "--config", str(config)],
                capture_output=True, text=True, timeout=30, cwd=ROOT,
            )  # fmt: skip
            if ds.returncode != 0 or not ds.stdout.startswith("example.test. IN DS "):
                raise RuntimeError(f"dynmx dnssec ds: {ds.stdout}{ds.stderr}")
            self.trust_anchor = ds.stdout.strip()
            log(f"example.test signed by dynmx; trust anchor {self.trust_anchor}")
        weights = f", weights {self.weights}, seed {self.seed}" if self.strategy == "weighted" else ""
        log(
            f"dynmx serving example.test on 127.0.0.1:{self.dynmx_port} "
            f"({self.strategy} pool, ttl {self.ttl}{weights})"
        )

    def dane_records(self) -> str:
        """TLSA 3 1 1 for every sink with a certificate; the rogue sink and its domain."""
        if not self.identities:
            return ""
        return f"{ROGUE} A {ROGUE_ADDRESS}\nwrong MX 10 {ROGUE}\nwrong MX 20 {WRONG_FALLBACK}\n" + "".join(
            f"_25._tcp.{name} TLSA 3 1 1 {i.tlsa}\n" for name, i in self.identities.items()
        )

    def states(self) -> dict[str, str]:
        token = (self.work / "state" / "control.token").read_text().strip()  # /status needs it
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/status", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            pool = json.loads(response.read())["pools"][0]
        return {m["host"].split(".")[0]: m["state"] for m in pool["members"]}

    def watch(self) -> None:
        """Record member state changes (from /status, which does not touch the rotation)."""
        self._watching = True

        def loop() -> None:
            last: dict[str, str] = {}
            while self._watching:
                try:
                    now = self.states()
                except OSError:
                    now = last
                stamp = time.time()
                for name, state in now.items():
                    if last.get(name) != state:
                        self.transitions.append((stamp, name, state))
                last = now
                time.sleep(0.05)

        threading.Thread(target=loop, daemon=True).start()

    def first_state_after(self, name: str, state: str, after: float) -> float | None:
        for stamp, member, new in list(self.transitions):
            if member == name and new == state and stamp >= after:
                return stamp
        return None

    # ---------------------------------------------------------------- sinks
    def start_sinks(self, names: list[str]) -> None:
        """Start every sink named, then wait for each to listen (they start side by side)."""
        for name in names:
            self._spawn_sink(name)
        for name in names:
            address = ROGUE_ADDRESS if name == ROGUE else SINKS[name]
            wait_for(functools.partial(port_open, address, 25), 15, f"sink {name} to listen")

    def _spawn_sink(self, name: str) -> None:
        address = ROGUE_ADDRESS if name == ROGUE else SINKS[name]
        command = [sys.executable, str(HERE / "sink.py"), "--name", name, "--address", address]
        command += ["--port", "25", "--log", str(self.sink_log(name))]
        if name in self.identities:
            command += ["--cert", str(self.identities[name].cert), "--key", str(self.identities[name].key)]
        with open(self.work / "sinks" / f"{name}.err", "a") as errors:  # the child keeps its own copy
            process = subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                text=True,
            )
        self.processes[f"sink-{name}"] = process

    def stop_sinks(self, names: list[str]) -> None:
        """SIGTERM every sink named, then wait for each to exit."""
        stopping = [self.processes.pop(f"sink-{name}") for name in names]
        for process in stopping:
            process.send_signal(signal.SIGTERM)
        for process in stopping:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    # ---------------------------------------------------------------- unbound
    def start_unbound(self) -> None:
        directory = self.work / "unbound"
        directory.mkdir()
        conf = directory / "unbound.conf"
        conf.write_text(
            f"""server:
    verbosity: 1
    interface: {RESOLVER}
    port: 53
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    outgoing-interface: 127.0.0.1
    chroot: ""
    username: ""
    directory: "{directory}"
    pidfile: "{directory}/unbound.pid"
    use-syslog: no
    logfile: ""
    num-threads: 1
{self.validation()}    local-zone: "test." nodefault
    cache-min-ttl: 0
    cache-max-ttl: {self.resolver_cache_max_ttl}
    prefetch: no
remote-control:
    control-enable: no
stub-zone:
    name: "example.test"
    stub-addr: 127.0.0.1@{self.dynmx_port}
"""
        )
        check = subprocess.run(
            [sbin("unbound-checkconf"), str(conf)], capture_output=True, text=True, timeout=30
        )
        if check.returncode != 0:
            raise RuntimeError(f"unbound-checkconf: {check.stdout}{check.stderr}")
        with open(directory / "unbound.log", "w") as output:
            self.processes["unbound"] = subprocess.Popen(
                [sbin("unbound"), "-d", "-c", str(conf)], stdout=output, stderr=subprocess.STDOUT, text=True
            )
        wait_for(lambda: port_open(RESOLVER, 53), 15, "unbound to listen")
        anchor = "validating with the DS as only trust anchor" if self.trust_anchor else "not validating"
        log(f"unbound resolving on {RESOLVER}:53, example.test stubbed to dynmx, {anchor}")

    def validation(self) -> str:
        """Unbound's DNSSEC lines: validate with the zone's DS (--dane), or not at all."""
        if not self.trust_anchor:
            return '    module-config: "iterator"\n    domain-insecure: "example.test"\n'
        return (
            '    module-config: "validator iterator"\n'
            f'    trust-anchor: "{self.trust_anchor}"\n'
            "    val-log-level: 2\n"
        )

    # ---------------------------------------------------------------- postfix
    def postconf(self, *args: str) -> str:
        result = subprocess.run(
            [sbin("postconf"), "-c", str(self.pf_conf), *args], capture_output=True, text=True, timeout=30
        )
        if result.returncode != 0:
            raise RuntimeError(f"postconf {' '.join(args)}: {result.stderr}")
        return result.stdout

    def postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sbin("postfix"), "-c", str(self.pf_conf), *args], capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    def start_postfix(self) -> None:
        base = self.work / "postfix"
        for sub in ("conf", "queue", "data", "log"):
            (base / sub).mkdir(parents=True)
        shutil.copy("/etc/postfix/master.cf", self.pf_conf / "master.cf")
        (self.pf_conf / "main.cf").write_text("compatibility_level = 3.6\n")
        shutil.chown(base / "data", "postfix", "postfix")
        # The smtp client runs chrooted into the queue directory: give it its own etc/
        # with a resolv.conf naming Unbound; /etc and /var/spool/postfix stay untouched.
        etc = self.pf_queue / "etc"
        etc.mkdir()
        # trust-ad: glibc >= 2.31 clears the AD bit unless told the resolver is trusted
        (etc / "resolv.conf").write_text(f"nameserver {RESOLVER}\noptions attempts:2 timeout:2 trust-ad\n")
        for name in ("services", "hosts", "nsswitch.conf", "localtime", "host.conf"):
            if Path("/etc", name).is_file():
                shutil.copy(Path("/etc", name), etc / name)
        settings = {
            "queue_directory": str(self.pf_queue),
            "data_directory": str(base / "data"),
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(base / "log"),
            "myhostname": "lab.invalid",
            "mydomain": "lab.invalid",
            "myorigin": "lab.invalid",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "relayhost": "",
            "relay_domains": "",
            "inet_interfaces": MTA,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "default_transport": "smtp",  # Debian's "Local only" sets these to error
            "relay_transport": "smtp",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "smtputf8_enable": "no",
            "biff": "no",
            "append_dot_mydomain": "no",
            # one MX lookup per delivery: no reuse of a session cached for the destination
            "smtp_connection_cache_on_demand": "no",
            "smtp_connection_cache_destinations": "",
            "smtp_connect_timeout": "2s",
            # a message class routed by a hint: MX lookup of urgent._hint.example.test
            "transport_maps": f"texthash:{self.pf_conf / 'transport'}",
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "10s",
            "queue_run_delay": "5s",
            "delay_warning_time": "0",
            "maximal_queue_lifetime": "1h",
            "bounce_queue_lifetime": "1h",
        }
        if self.identities:  # DANE (RFC 7672): TLSA from DNSSEC-validated answers only
            settings["smtp_tls_security_level"] = "dane"
            settings["smtp_dns_support_level"] = "dnssec"
            settings["smtp_tls_loglevel"] = "1"
        (self.pf_conf / "transport").write_text(f"{HINT_RECIPIENT} smtp:urgent._hint.example.test\n")
        self.postconf("-e", *(f"{key}={value}" for key, value in settings.items()))
        self.postfix("check")
        self.postfix("start")
        self.postfix_started = True
        wait_for(lambda: port_open(MTA, 25), 30, "postfix to listen")
        log(f"postfix listening on {MTA}:25 (config {self.pf_conf})")

    def queue_empty(self) -> bool:
        result = subprocess.run(
            [sbin("postqueue"), "-c", str(self.pf_conf), "-p"], capture_output=True, text=True, timeout=30
        )
        return "Mail queue is empty" in result.stdout

    def flush(self) -> None:
        subprocess.run([sbin("postqueue"), "-c", str(self.pf_conf), "-f"], capture_output=True, timeout=30)

    def stop_postfix(self) -> None:
        if not self.postfix_started:
            return
        pid_file = self.pf_queue / "pid" / "master.pid"
        self.postfix("stop", check=False)
        try:
            pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else 0
        except (OSError, ValueError, IndexError):
            pid = 0

        def gone() -> bool:
            if not pid:
                return True
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                return True

        try:
            wait_for(gone, 15, "postfix master to exit")
        except RuntimeError:
            self.postfix("abort", check=False)
            if pid and not gone():
                os.kill(pid, signal.SIGKILL)
        self.postfix_started = False

    # ---------------------------------------------------------------- teardown
    def stop_all(self) -> None:
        self._watching = False
        errors: list[str] = []
        try:
            self.stop_postfix()
        except Exception as problem:  # keep stopping the rest
            errors.append(f"postfix: {problem}")
        for process in self.processes.values():  # all told at once, then waited for in turn
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in list(self.processes.items()):
            if process.poll() is None:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            del self.processes[name]
        for error in errors:
            log(f"teardown: {error}")


# -------------------------------------------------------------------- driver
def submit(index: int, run_id: str, recipient: str = "user@example.test") -> str:
    message_id = f"<lab-{run_id}-{index}@lab.invalid>"
    message = EmailMessage()
    message["From"] = "sender@lab.invalid"
    message["To"] = recipient
    message["Subject"] = f"lab message {index}"
    message["Message-ID"] = message_id
    message.set_content(f"message {index}\n")
    for attempt in range(3):
        try:
            with smtplib.SMTP(MTA, 25, timeout=10) as smtp:
                smtp.send_message(message)
            return message_id
        except (OSError, smtplib.SMTPException):
            if attempt == 2:
                raise
            time.sleep(0.5)
    return message_id


MAILLOG_TIME = re.compile(r"^(\S+)")


def refused_attempts(maillog: Path, address: str) -> list[float]:
    """Times of Postfix connection attempts to `address` that failed (from the maillog)."""
    times: list[float] = []
    if not maillog.exists():
        return times
    year = time.localtime().tm_year
    for line in maillog.read_text(errors="replace").splitlines():
        if f"[{address}]:25" not in line or "connect to" not in line:
            continue
        stamp = line[:15]
        try:
            parsed = time.mktime(time.strptime(f"{year} {stamp}", "%Y %b %d %H:%M:%S"))
        except ValueError:
            try:  # ISO-8601 style maillog timestamps
                parsed = time.mktime(time.strptime(line.split()[0][:19], "%Y-%m-%dT%H:%M:%S"))
            except ValueError:
                continue
        times.append(parsed)
    return times


def run(args: argparse.Namespace) -> int:
    prerequisites(args.dane)
    work = Path(tempfile.mkdtemp(prefix="dynmx-mail-lab-"))
    work.chmod(0o755)  # Postfix daemons (user postfix) must traverse to the queue directory
    (work / "sinks").mkdir()
    weights = dict(zip(PRIMARIES, args.weights, strict=True)) if args.strategy == "weighted" else {}
    lab = Lab(work, args.ttl, args.resolver_max_ttl, args.strategy, weights, args.seed)
    run_id = f"{int(time.time())}-{os.getpid()}"
    failures: list[str] = []
    started = time.monotonic()
    try:
        if args.dane:
            (work / "tls").mkdir()
            for name in [*SINKS, ROGUE]:
                host = f"{name}.example.test"
                lab.identities[name] = make_identity(host, work / "tls", pinned_elsewhere=name == ROGUE)
        lab.start_dynmx()
        lab.start_sinks([*SINKS, *([ROGUE] if args.dane else [])])
        tls = ", STARTTLS required, TLSA 3 1 1 each" if args.dane else ""
        rogue = f"; {ROGUE} {ROGUE_ADDRESS} (certificate not the one its TLSA names)" if args.dane else ""
        log(f"sinks listening on port 25 of {', '.join(SINKS.values())}{tls}{rogue}")
        lab.watch()
        wait_for(lambda: set(lab.states().values()) == {"up"}, 15, "every member up")
        lab.start_unbound()
        lab.start_postfix()

        total, victim = args.messages, args.victim
        # (fraction of the submissions, action, sinks); phases are named by what just happened
        events: list[tuple[int, str, list[str]]] = []
        if args.failover:
            events += [(int(total * 0.2), "kill", [victim]), (int(total * 0.4), "restart", [victim])]
        if args.relay_phase:
            events += [(int(total * 0.6), "kill", PRIMARIES), (int(total * 0.8), "restart", PRIMARIES)]
        phase_names = ["before", f"{victim} down", f"{victim} back", "all down", "all back"]
        if not args.failover:
            phase_names = ["before", "all down", "all back"]
        if not args.relay_phase:
            phase_names = phase_names[:3]
        if not events:
            phase_names = ["before"]
        event_times: list[float] = []
        submitted: list[str] = []
        plan = ", ".join(f"#{i} {action} {'+'.join(names)}" for i, action, names in events) or "no kills"
        log(f"submitting {total} messages at {args.rate}/s; {plan}")
        period = 1.0 / args.rate
        t0 = time.monotonic()
        wall0 = time.time()
        for index in range(total):
            delay = t0 + index * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for at, action, names in events:
                if at == index:
                    (lab.stop_sinks if action == "kill" else lab.start_sinks)(names)
                    event_times.append(time.time())
                    log(f"{action} {'+'.join(names)}")
            submitted.append(submit(index, run_id))
        log(f"submitted {len(submitted)} in {time.monotonic() - t0:.1f} s; waiting for the queue to drain")
        try:
            drained = wait_for(lab.queue_empty, args.drain_timeout, "the Postfix queue to drain", step=0.25)
            log(f"queue empty {drained:.1f} s after the last submission")
        except RuntimeError as error:
            failures.append(str(error))
        hinted: list[str] = []
        if args.hint:
            event_times.append(time.time())
            phase_names.append("hint")
            log(f"submitting {args.hint} messages to {HINT_RECIPIENT} (smtp:urgent._hint.example.test)")
            for index in range(total, total + args.hint):
                hinted.append(submit(index, run_id, HINT_RECIPIENT))
                time.sleep(period)
            submitted += hinted
            try:
                wait_for(lab.queue_empty, args.drain_timeout, "the Postfix queue to drain", step=0.25)
            except RuntimeError as error:
                failures.append(str(error))
        wrong: list[str] = []
        if args.dane and args.wrong:
            event_times.append(time.time())
            phase_names.append("wrong cert")
            log(f"submitting {args.wrong} messages to {WRONG_RECIPIENT} (MX 10 {ROGUE}, 20 {WRONG_FALLBACK})")
            for index in range(len(submitted), len(submitted) + args.wrong):
                wrong.append(submit(index, run_id, WRONG_RECIPIENT))
                time.sleep(period)
            submitted += wrong
            try:
                wait_for(lab.queue_empty, args.drain_timeout, "the Postfix queue to drain", step=0.25)
            except RuntimeError as error:
                failures.append(str(error))

        # ------------------------------------------------------------ results
        records = []
        for name in SINKS:
            path = lab.sink_log(name)
            if path.exists():
                records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        counts = Counter(r["message_id"] for r in records)
        wanted = set(submitted)
        lost = len(wanted - set(counts))
        duplicated = sum(n - 1 for n in counts.values() if n > 1)
        strangers = sum(n for mid, n in counts.items() if mid not in wanted)
        delivered = len(wanted & set(counts))

        def phase(stamp: float) -> str:
            return phase_names[sum(stamp >= t for t in event_times)]

        table: dict[str, Counter[str]] = {name: Counter() for name in SINKS}
        for record in records:
            table[record["sink"]][phase(record["time"])] += 1
        before_total = sum(table[n]["before"] for n in SINKS)
        print()
        header = " ".join(f"{p:>9}" for p in phase_names)
        print(f"{'sink':<6} {'address':<10} {header} {'total':>6} {'share before':>12}")
        for name, address in SINKS.items():
            row = table[name]
            share = row["before"] / before_total if before_total else 0.0
            print(
                f"{name:<6} {address:<10} "
                + " ".join(f"{row[p]:>9}" for p in phase_names)
                + f" {sum(row.values()):>6} {share:>12.1%}"
            )
        if args.timeline > 0:
            print(f"\nper {args.timeline:g} s of delivery time (from the first submission):")
            buckets: dict[int, Counter[str]] = {}
            for record in records:
                buckets.setdefault(int((record["time"] - wall0) // args.timeline), Counter())[
                    record["sink"]
                ] += 1
            for bucket in sorted(buckets):
                cells = " ".join(f"{name}={buckets[bucket][name]:<3}" for name in SINKS)
                print(f"  +{bucket * args.timeline:>5g} s  {cells}")
        maillog = lab.maillog.read_text(errors="replace").splitlines() if lab.maillog.exists() else []
        deferred = sum("status=deferred" in line for line in maillog)
        effective_ttl = min(args.ttl, args.resolver_max_ttl)
        stale = (effective_ttl + 1 if args.resolver_max_ttl else 0) + 2  # cache window + log-second slack
        bound = FALL * INTERVAL * 1.1 + TIMEOUT + 2.0
        print()
        failover_s = float("nan")
        if args.failover:
            kill_time, restart_time = event_times[0], event_times[1]
            down_at = lab.first_state_after(victim, "down", kill_time)
            up_at = lab.first_state_after(victim, "up", restart_time)
            failover_s = (down_at - kill_time) if down_at else float("nan")
            recovery = (up_at - restart_time) if up_at else float("nan")
            refused = refused_attempts(lab.maillog, SINKS[victim])
            late = [t for t in refused if down_at and kill_time <= t < restart_time and t > down_at + stale]
            print(
                f"failover: {victim} killed at +{kill_time - wall0:.1f} s; prober verdict down after "
                f"{failover_s:.2f} s; up again {recovery:.2f} s after its restart"
            )
            print(
                f"postfix: {sum(kill_time <= t < restart_time for t in refused)} refused attempts "
                f"to {victim} "
                f"while down, {len(late)} later than verdict + {stale} s"
            )
            if down_at is None:
                failures.append(f"failover: {victim} never went down after the kill")
            elif failover_s > bound:
                failures.append(f"failover: verdict took {failover_s:.2f} s > {bound:.1f} s")
            if late:
                failures.append(f"failover: {len(late)} attempts to {victim} after the verdict (+{stale} s)")
            if table[victim][f"{victim} down"] > 1:  # at most the message in DATA when it was stopped
                failures.append(f"failover: {victim} recorded {table[victim][f'{victim} down']} while down")
            if up_at is None:
                failures.append(f"failover: {victim} never came back up after restart")
            if table[victim][f"{victim} back"] == 0:
                failures.append(f"failover: {victim} received nothing after its restart")
        if args.relay_phase:
            kill_all, restart_all = event_times[len(events) - 2], event_times[len(events) - 1]
            downs = [lab.first_state_after(n, "down", kill_all) for n in PRIMARIES]
            all_down = max(downs) if all(downs) else None  # type: ignore[type-var]
            late_all = 0
            for name in PRIMARIES:
                late_all += sum(
                    1
                    for t in refused_attempts(lab.maillog, SINKS[name])
                    if all_down and all_down + stale < t < restart_all
                )
            relay_got = table["relay"]["all down"]
            print(
                f"relay: all primaries killed at +{kill_all - wall0:.1f} s; all down after "
                f"{(all_down - kill_all) if all_down else float('nan'):.2f} s; relay received {relay_got}; "
                f"{late_all} attempts to primaries after verdict + {stale} s"
            )
            if all_down is None:
                failures.append("relay: not every primary went down")
            if relay_got == 0:
                failures.append("relay: received nothing while every primary was down")
            if late_all:
                failures.append(f"relay: {late_all} attempts to dead primaries after the verdict")
            if sum(table[n]["all back"] for n in PRIMARIES) == 0:
                failures.append("relay: no primary received mail after the restart")
        print(f"postfix deferrals: {deferred}")
        if args.resolver_max_ttl == 0 and before_total and args.strategy == "weighted":
            # Each delivery's first MX is an independent draw: a sink's count is binomial
            # (n, p = w / sum w); allow `--sigmas` standard deviations of its share.
            weight_sum = sum(weights.values())
            for name in PRIMARIES:
                expected = weights[name] / weight_sum
                share = table[name]["before"] / before_total
                sigma = (expected * (1 - expected) / before_total) ** 0.5
                allowed = args.sigmas * sigma
                verdict = "ok" if abs(share - expected) <= allowed else "FAIL"
                print(
                    f"weighted: {name} weight {weights[name]:g} expected {expected:.1%} observed "
                    f"{share:.1%} ({table[name]['before']}/{before_total}), tolerance "
                    f"±{allowed:.1%} ({args.sigmas:g} sigma, sigma {sigma:.1%}) {verdict}"
                )
                if verdict != "ok":
                    failures.append(
                        f"weighted: {name} share {share:.1%} not within {allowed:.1%} of {expected:.1%}"
                    )
            if table["relay"]["before"]:
                failures.append(f"weighted: relay got {table['relay']['before']} while primaries were up")
        elif args.resolver_max_ttl == 0 and before_total:
            for name in PRIMARIES:
                share = table[name]["before"] / before_total
                if abs(share - 1 / 3) > args.tolerance:
                    failures.append(
                        f"round-robin: {name} share {share:.1%} not within {args.tolerance:.0%} of 33.3%"
                    )
            if table["relay"]["before"]:
                failures.append(f"round-robin: relay got {table['relay']['before']} while primaries were up")
        if lost:
            failures.append(f"{lost} messages lost")
        if duplicated:
            failures.append(f"{duplicated} messages duplicated")
        if strangers:
            failures.append(f"{strangers} messages not submitted by this run")
        if hinted:
            where = Counter(r["sink"] for r in records if r["message_id"] in set(hinted))
            print(f"hint: {sum(where.values())}/{len(hinted)} messages to {HINT_RECIPIENT}: {dict(where)}")
            if where[HINT_FIRST] != len(hinted):
                failures.append(f"hint: {dict(where)} instead of all {len(hinted)} on {HINT_FIRST}")
        if args.dane:
            expected = [*PRIMARIES, *(["relay"] if args.relay_phase or wrong else [])]
            failures += check_dane(maillog, records, wrong, set(submitted), lab.sink_log(ROGUE), expected)
        if args.chart:
            try:
                written = write_chart(
                    Path(args.chart),
                    [(r["time"] - wall0, r["sink"]) for r in records],
                    [(t - wall0, name) for t, name in zip(event_times, phase_names[1:], strict=True)],
                    args.chart_bucket,
                )
                print(f"chart: {written}")
            except OSError as error:
                failures.append(f"chart: {error}")
        for failure in failures:
            print(f"FAIL {failure}")
        print(f"lab time {time.monotonic() - started:.1f} s")
        summary = f"delivered {delivered}/{len(submitted)} lost {lost} duplicated {duplicated}"
        print(f"{summary} failover_s {failover_s:.2f}")
        return 1 if failures else 0
    finally:
        lab.stop_all()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def check_dane(
    maillog: list[str],
    records: list[dict[str, object]],
    wrong: list[str],
    submitted: set[str],
    rogue_log: Path,
    expected: list[str],
) -> list[str]:
    """Every delivery over a DANE-verified connection (RFC 7672 §3); the rogue sink gets
    nothing, and Postfix, having refused the rogue's certificate for each message of its
    domain, delivers that message to the next MX in the same attempt (as Postfix logs it)."""
    failures: list[str] = []
    sent = [d for d in deliveries(maillog) if d.message_id in submitted]
    by_address = {address: name for name, address in SINKS.items()}
    verified = Counter(by_address.get(d.address, d.address) for d in sent if d.tls == "Verified")
    unverified = [d for d in sent if d.tls != "Verified"]
    received = Counter(str(r["sink"]) for r in records)
    print(f"dane: verified deliveries per sink {dict(verified)}; not verified {len(unverified)}")
    for delivery in unverified[:5]:
        print(f"dane: NOT verified: {delivery}")
    if unverified:
        failures.append(f"dane: {len(unverified)} deliveries without a verified TLS connection")
    for name in expected:  # each has a matching TLSA record: each must be reached
        if not verified[name]:
            failures.append(f"dane: no verified delivery to {name}")
    for name, count in received.items():
        if verified[name] != count:
            failures.append(
                f"dane: {name} received {count} messages, Postfix verified {verified[name]} deliveries"
            )
    rogue_got = len(rogue_log.read_text().splitlines()) if rogue_log.exists() else 0
    refused = refused_at(maillog, ROGUE_ADDRESS)
    landed = Counter(str(r["sink"]) for r in records if r["message_id"] in set(wrong))
    print(
        f"dane: {ROGUE} received {rogue_got}; Postfix refused its certificate for "
        f"{len(set(refused) & set(wrong))}/{len(wrong)} messages; {WRONG_RECIPIENT} went to {dict(landed)}"
    )
    for line in first_refusal(maillog, ROGUE_ADDRESS):
        print(f"dane: maillog: {line}")
    if rogue_got:
        failures.append(f"dane: {ROGUE} (certificate not matching its TLSA) received {rogue_got} messages")
    if wrong and landed != Counter({WRONG_FALLBACK: len(wrong)}):
        failures.append(
            f"dane: {dict(landed)} instead of all {len(wrong)} {WRONG_RECIPIENT} on {WRONG_FALLBACK}"
        )
    if set(wrong) - set(refused):
        failures.append(
            f"dane: {len(set(wrong) - set(refused))} messages never met {ROGUE}'s refused certificate"
        )
    return failures


def weight_list(text: str) -> list[float]:
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not numbers: {text!r}") from error
    if len(weights) != len(PRIMARIES) or any(w <= 0 for w in weights):
        raise argparse.ArgumentTypeError(f"need 3 positive weights (mx1,mx2,mx3), got {text!r}")
    return weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", "-n", type=int, default=600, help="messages to submit (600)")
    parser.add_argument("--rate", type=float, default=10.0, help="submissions per second (10)")
    parser.add_argument(
        "--ttl", type=int, default=0, help="pool TTL in seconds (0: every delivery asks dynmx)"
    )
    parser.add_argument("--victim", default="mx2", choices=PRIMARIES, help="the primary killed part-way")
    parser.add_argument(
        "--resolver-max-ttl",
        type=int,
        default=0,
        help="Unbound cache-max-ttl (0: no caching, every delivery asks dynmx; 86400: normal)",
    )
    parser.add_argument(
        "--no-relay-phase", dest="relay_phase", action="store_false", help="do not kill every primary"
    )
    parser.add_argument("--no-failover", dest="failover", action="store_false", help="kill nothing")
    parser.add_argument("--tolerance", type=float, default=0.10, help="round-robin share tolerance (0.10)")
    parser.add_argument(
        "--strategy",
        choices=("round-robin", "weighted"),
        default="round-robin",
        help="the pool's strategy (round-robin)",
    )
    parser.add_argument(
        "--weights",
        type=weight_list,
        default=[3.0, 2.0, 1.0],
        help="weighted: weights of mx1,mx2,mx3 (3,2,1)",
    )
    parser.add_argument(
        "--sigmas",
        type=float,
        default=4.0,
        help="weighted: allowed deviation of each share, in binomial standard deviations (4)",
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="dynmx random_seed for the weighted draw (7; 0: unpredictable)"
    )
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for the queue")
    parser.add_argument("--timeline", type=float, default=0, help="print deliveries per this many seconds")
    parser.add_argument("--hint", type=int, default=20, help="messages routed by the urgent hint (20)")
    parser.add_argument(
        "--chart",
        default=str(Path(tempfile.gettempdir()) / "dynmx-mail-lab-chart.png"),
        help="write the messages-per-sink chart (PNG) here (default: %(default)s; '' for none)",
    )
    parser.add_argument("--chart-bucket", type=float, default=2.0, help="chart bar width in seconds (2)")
    parser.add_argument(
        "--dane",
        action="store_true",
        help="sign example.test, validate in Unbound, STARTTLS sinks with TLSA records, Postfix at "
        "smtp_tls_security_level = dane; plus a sink whose certificate does not match its TLSA",
    )
    parser.add_argument(
        "--wrong", type=int, default=5, help=f"--dane: messages to {WRONG_RECIPIENT} (MX 10 {ROGUE}) (5)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args(argv)
    window = 0.2 * args.messages / args.rate  # each kill/restart phase
    if (args.failover or args.relay_phase) and window < 3.5:
        parser.error(
            f"each phase lasts {window:.1f} s (20 % of messages/rate); the prober needs up to ~3.5 s "
            "for a verdict: use -n >= 18 x rate, or --no-failover --no-relay-phase"
        )

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        return run(args)
    except Unavailable as reason:
        print(f"SKIP {reason}", flush=True)
        return SKIP
    except RuntimeError as error:
        print(f"SETUP FAILED {error}", flush=True)
        return SETUP_FAILED


if __name__ == "__main__":
    sys.exit(main())

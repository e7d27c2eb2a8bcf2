"""The mail lab end to end: real Postfix and Unbound in front of dynmx, SMTP sinks on loopback.

Runs `examples/mail-lab/run` with a smaller N (see examples/mail-lab/README.md): round-robin
shares, failover of one primary, every primary down (relay), exactly-once delivery; and a
weighted pool (3,2,1, seeded) whose shares must follow the weights within 4 sigma. It needs
root (ports 25 and 53) and Debian's postfix and unbound; otherwise it is skipped. The lab
stops Postfix, Unbound, dynmx and the sinks itself and removes its temporary directory; it
touches no system file (Postfix runs from its own config and queue directory).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types

import pytest

from tests.conftest import ROOT

LAB = ROOT / "examples" / "mail-lab" / "lab.py"
SBIN = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
SUMMARY = re.compile(r"^delivered (\d+)/(\d+) lost (\d+) duplicated (\d+) failover_s (\S+)$", re.M)
MESSAGES = 300
HINTED = 20


def _skip_reason() -> str:
    if os.geteuid() != 0:
        return "the mail lab needs root (ports 25 and 53, Postfix)"
    for tool in ("postfix", "postconf", "postqueue", "unbound", "unbound-checkconf"):
        if shutil.which(tool, path=SBIN) is None:
            return f"{tool} is not installed (Debian packages postfix and unbound)"
    return ""


def _run_lab(*options: str) -> str:
    """Run the lab with `options`; skip on exit 77, else assert exit 0; return its output."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    command = [sys.executable, str(LAB), *options]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=360)
    finally:
        if process.poll() is None:  # let the lab tear down what it started (its SIGTERM handler)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    print(output)
    print(f"lab wall time {time.monotonic() - started:.1f} s")
    if process.returncode == 77:
        pytest.skip(output.strip().splitlines()[-1])
    assert process.returncode == 0, output
    return output


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_mail_lab_delivers_every_message_once_and_fails_over() -> None:
    output = _run_lab("--messages", str(MESSAGES), "--rate", "15", "--hint", str(HINTED))
    match = SUMMARY.search(output)
    assert match, output
    delivered, total, lost, duplicated = (int(match.group(i)) for i in range(1, 5))
    assert (delivered, total, lost, duplicated) == (MESSAGES + HINTED, MESSAGES + HINTED, 0, 0)
    assert float(match.group(5)) < 5.0  # fall 2 x interval 1 s + timeout 1 s, with slack


WEIGHTED_MESSAGES = 200
WEIGHTED_LINE = re.compile(
    r"^weighted: (mx\d) weight \S+ expected ([\d.]+)% observed ([\d.]+)% \((\d+)/(\d+)\), "
    r"tolerance ±([\d.]+)% .* ok$",
    re.M,
)


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_mail_lab_weighted_shares_follow_the_weights() -> None:
    """Weights 3,2,1, seeded draw, no kills: each primary's share within 4 sigma of w / sum w."""
    output = _run_lab(
        "--strategy", "weighted", "--weights", "3,2,1", "--messages", str(WEIGHTED_MESSAGES),
        "--rate", "50", "--no-failover", "--no-relay-phase", "--hint", "0", "--chart", "",
    )  # fmt: skip
    match = SUMMARY.search(output)
    assert match, output
    delivered, total, lost, duplicated = (int(match.group(i)) for i in range(1, 5))
    assert (delivered, total, lost, duplicated) == (WEIGHTED_MESSAGES, WEIGHTED_MESSAGES, 0, 0)
    shares = {
        m.group(1): (float(m.group(2)), float(m.group(3)), float(m.group(6)))
        for m in WEIGHTED_LINE.finditer(output)
    }
    assert set(shares) == {"mx1", "mx2", "mx3"}, output
    assert [round(expected, 1) for expected, _, _ in shares.values()] == [50.0, 33.3, 16.7]
    for expected, observed, tolerance in shares.values():
        assert abs(observed - expected) <= tolerance + 0.1  # printed to 0.1 %


DANE_MESSAGES, DANE_HINTED, DANE_WRONG = 60, 5, 5
DANE_VERIFIED = re.compile(r"^dane: verified deliveries per sink (\{.*\}); not verified (\d+)$", re.M)
DANE_ROGUE = re.compile(
    r"^dane: rogue received (\d+); Postfix refused its certificate for (\d+)/(\d+) messages; "
    r"user@wrong\.example\.test went to (\{.*\})$",
    re.M,
)


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_mail_lab_dane_verifies_every_sink_and_refuses_a_wrong_certificate() -> None:
    """RFC 7672 through real Postfix: example.test signed by dynmx, Unbound validating with
    the DS as only anchor, STARTTLS sinks with TLSA 3 1 1 records, Postfix at
    `smtp_tls_security_level = dane`. Every delivery (failover and relay phases included)
    is over a `Verified TLS connection`; the sink whose certificate is not the one its TLSA
    names receives nothing, and each message for its domain goes to the next MX (relay)."""
    output = _run_lab(
        "--dane", "--messages", str(DANE_MESSAGES), "--rate", "3", "--hint", str(DANE_HINTED),
        "--wrong", str(DANE_WRONG), "--chart", "",
    )  # fmt: skip
    total = DANE_MESSAGES + DANE_HINTED + DANE_WRONG
    match = SUMMARY.search(output)
    assert match, output
    assert tuple(int(match.group(i)) for i in range(1, 5)) == (total, total, 0, 0)
    verified = DANE_VERIFIED.search(output)
    assert verified, output
    per_sink = ast.literal_eval(verified.group(1))  # the dict the lab printed
    assert set(per_sink) == {"mx1", "mx2", "mx3", "relay"}, output  # the relay phase: relay too
    assert sum(per_sink.values()) == total and verified.group(2) == "0", output
    rogue = DANE_ROGUE.search(output)
    assert rogue, output
    assert rogue.group(1) == "0", output
    assert (rogue.group(2), rogue.group(3)) == (str(DANE_WRONG), str(DANE_WRONG)), output
    assert rogue.group(4) == f"{{'relay': {DANE_WRONG}}}", output


def _dane_module() -> types.ModuleType:
    """examples/mail-lab/dane.py, imported by path (the lab is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mail_lab_dane", LAB.parent / "dane.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


MAILLOG = """\
Dec 07 14:09:22 lab postfix/cleanup[1]: 03BFD218024: message-id=<m1@lab.invalid>
Dec 07 14:09:22 lab postfix/cleanup[1]: 0F6EA2185D1: message-id=<m2@lab.invalid>
Dec 07 14:09:23 lab postfix/smtp[7]: server certificate verification failed for rogue.example.test[127.0.0.6]:25: num=65:no matching DANE TLSA records
Dec 07 14:09:23 lab postfix/smtp[7]: Untrusted TLS connection established to rogue.example.test[127.0.0.6]:25: TLSv1.3
Dec 07 14:09:23 lab postfix/smtp[8]: Anonymous TLS connection established to mx1.example.test[127.0.0.2]:25: TLSv1.3
Dec 07 14:09:23 lab postfix/smtp[7]: 03BFD218024: Server certificate not verified
Dec 07 14:09:23 lab postfix/smtp[7]: Verified TLS connection established to relay.example.test[127.0.0.5]:25: TLSv1.3
Dec 07 14:09:23 lab postfix/smtp[7]: 03BFD218024: to=<u@wrong.example.test>, relay=relay.example.test[127.0.0.5]:25, delay=0.02, dsn=2.0.0, status=sent (250 OK recorded)
Dec 07 14:09:23 lab postfix/smtp[8]: 0F6EA2185D1: to=<u@example.test>, relay=mx1.example.test[127.0.0.2]:25, delay=0.01, dsn=2.0.0, status=sent (250 OK recorded)
""".splitlines()  # noqa: E501 (Postfix log lines as logged)


def test_mail_lab_dane_log_pairs_each_delivery_with_the_tls_of_its_own_connection() -> None:
    """The lab's maillog reader: a delivery counts as verified only when the last TLS line of
    the same smtp process was `Verified` to the same address; a refusal is tied to its host."""
    dane = _dane_module()
    found = dane.deliveries(MAILLOG)
    assert [(d.message_id, d.address, d.tls) for d in found] == [
        ("<m1@lab.invalid>", "127.0.0.5", "Verified"),
        ("<m2@lab.invalid>", "127.0.0.2", "Anonymous"),
    ]
    assert dane.refused_at(MAILLOG, "127.0.0.6") == ["<m1@lab.invalid>"]
    assert dane.refused_at(MAILLOG, "127.0.0.2") == []
    assert len(dane.first_refusal(MAILLOG, "127.0.0.6")) == 5

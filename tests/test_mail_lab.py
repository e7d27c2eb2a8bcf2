"""The mail lab end to end: real Postfix and Unbound in front of dynmx, SMTP sinks on loopback.

Runs `examples/mail-lab/run` with a smaller N (see examples/mail-lab/README.md): round-robin
shares, failover of one primary, every primary down (relay), exactly-once delivery. It needs
root (ports 25 and 53) and Debian's postfix and unbound; otherwise it is skipped. The lab
stops Postfix, Unbound, dynmx and the sinks itself and removes its temporary directory; it
touches no system file (Postfix runs from its own config and queue directory).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

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


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_mail_lab_delivers_every_message_once_and_fails_over() -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    command = [sys.executable, str(LAB), "--messages", str(MESSAGES), "--rate", "10", "--hint", str(HINTED)]
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
    match = SUMMARY.search(output)
    assert match, output
    delivered, total, lost, duplicated = (int(match.group(i)) for i in range(1, 5))
    assert (delivered, total, lost, duplicated) == (MESSAGES + HINTED, MESSAGES + HINTED, 0, 0)
    assert float(match.group(5)) < 5.0  # fall 2 x interval 1 s + timeout 1 s, with slack

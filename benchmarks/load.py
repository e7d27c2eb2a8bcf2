"""Load time and memory of `dynmx serve` for a large zone (issue 2 target: 100,000 names, < 30 s, < 1 GiB).

Generates one zone of N names (A for every name, MX for every 4th, AAAA for every
10th), starts `python -m dynmx serve` on 127.0.0.1, and reports the seconds until it
logs `event=serving`, the peak resident memory (VmHWM) and the number of precompiled
entries. Not a test; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"


def write_zone(directory: Path, names: int) -> Path:
    path = directory / "big.test.zone"
    with path.open("w") as out:
        out.write("$ORIGIN big.test.\n$TTL 3600\n@ SOA ns1 h 1 7200 3600 1209600 300\n@ NS ns1\n")
        out.write("ns1 A 192.0.2.53\n")
        for i in range(names):
            out.write(f"h{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n")
            if i % 4 == 0:
                out.write(f"h{i} MX 10 h{i + 1}\n")
            if i % 10 == 0:
                out.write(f"h{i} AAAA 2001:db8::{i & 0xFFFF:x}\n")
    return path


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(zone_dir: Path, timeout: float) -> dict[str, float]:
    command = [sys.executable, "-m", "dynmx", "serve", "--zones", str(zone_dir), "--listen", "127.0.0.1:0"]
    started = time.monotonic()
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if "event=serving" in line:
                seconds = time.monotonic() - started
                entries = int(line.rsplit("entries=", 1)[1].split()[0])
                return {
                    "load_seconds": round(seconds, 2),
                    "peak_rss_mib": round(vm_kib(process.pid, "VmHWM") / 1024, 1),
                    "rss_mib": round(vm_kib(process.pid, "VmRSS") / 1024, 1),
                    "entries": entries,
                }
            if time.monotonic() - started > timeout:
                break
        raise RuntimeError("dynmx did not report serving in time")
    finally:
        process.terminate()
        process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_zone(Path(tmp), args.names)
        result = {"names": args.names, **measure(Path(tmp), args.timeout)}
    print(json.dumps(result))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"load-{args.names}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

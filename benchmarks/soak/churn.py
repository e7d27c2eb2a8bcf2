"""Memory under churn: RSS of dynmx after batches of reloads or UPDATEs, with no query load.

The soak mixes everything; this isolates what grows. dynmx serves soak.py's zone and
config (probes off), then gets `--batches` batches of `--size` reloads (POST /reload) or
UPDATEs (one TXT name added and deleted in turn, so the data does not grow), and VmRSS
is read after each batch. A healthy server steps up once (a second table alive during
a reload, allocator arenas) and then stays flat; a line that keeps rising means every
reload or edit leaves something behind.

    .venv/bin/python benchmarks/soak/churn.py reload [--batches 6 --size 20]
    .venv/bin/python benchmarks/soak/churn.py update [--batches 6 --size 150]

Prints one line per batch and writes benchmarks/out/churn-<what>-<time>.json. Not a test.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import OUT, ROOT, Dynmx, mib, source, stamp, tree_rss_kib
from soak import KEY, MEMBERS, ZONE, write_config, write_zone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("reload", "update"))
    parser.add_argument("--batches", type=int, default=6, help="batches (1-100)")
    parser.add_argument("--size", type=int, default=0, help="operations per batch (default 20 / 150)")
    args = parser.parse_args()
    size = args.size or (20 if args.what == "reload" else 150)
    if not 1 <= args.batches <= 100 or not 1 <= size <= 10_000:
        parser.error("--batches 1-100, --size 1-10000")
    secret = base64.b64encode(os.urandom(32)).decode()
    keyring = dns.tsigkeyring.from_text({KEY: ("hmac-sha256", secret)})
    rss: list[float] = []
    seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dynmx-churn-") as tmp:
        workdir = Path(tmp)
        (workdir / "zones").mkdir()
        write_zone(workdir / "zones" / f"{ZONE}.zone")
        config = write_config(workdir, secret, dict.fromkeys(MEMBERS, 1))
        config.write_text(config.read_text().replace('probe = "smtp"', 'probe = "none"'))
        with Dynmx(["--config", str(config)], workdir) as server:

            def operation(i: int) -> None:
                if args.what == "reload":
                    url = f"http://127.0.0.1:{server.http_port}/reload"
                    with urllib.request.urlopen(
                        urllib.request.Request(url, method="POST", headers=server.auth()), timeout=60
                    ):
                        return
                update = dns.update.UpdateMessage(f"{ZONE}.", keyring=keyring, keyname=KEY)
                if i % 2 == 0:
                    update.add(f"churn.dyn.{ZONE}.", 60, "TXT", f'"churn {i}"')
                else:
                    update.delete(f"churn.dyn.{ZONE}.", "TXT")
                reply = dns.query.tcp(update, "127.0.0.1", port=server.port, timeout=30)
                if reply.rcode() != dns.rcode.NOERROR:
                    raise RuntimeError(f"UPDATE answered {dns.rcode.to_text(reply.rcode())}")

            rss.append(mib(tree_rss_kib(server.pid)))
            print(f"churn: {args.what}: RSS {rss[0]} MiB at start")
            for batch in range(args.batches):
                begun = time.monotonic()
                for i in range(batch * size, (batch + 1) * size):
                    operation(i)
                seconds.append(round(time.monotonic() - begun, 2))
                rss.append(mib(tree_rss_kib(server.pid)))
                print(
                    f"churn: {args.what}: {(batch + 1) * size:5d} done, RSS {rss[-1]} MiB ({seconds[-1]} s)"
                )
            log = server.log_summary()
    per_op = (rss[-1] - rss[1]) * 1024 / (size * (args.batches - 1)) if args.batches > 1 else 0.0
    print(f"churn: growth after the first batch: {per_op:.1f} KiB per {args.what}")
    path = OUT / f"churn-{args.what}-{stamp()}.json"
    OUT.mkdir(parents=True, exist_ok=True)
    result = {"what": args.what, "size": size, "rss_mib": rss, "batch_seconds": seconds}
    result |= {"kib_per_operation_after_first_batch": round(per_op, 1), "source": source(), "log": log}
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

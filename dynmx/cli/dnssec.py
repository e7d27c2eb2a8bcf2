"""`dynmx dnssec ds ZONE` and `dynmx dnssec keys ZONE`: what the parent zone needs.

Both read the key the server made in `state_dir/keys` on its first start with `[[zone]]
dnssec = true`; neither makes one nor ever prints the private key. `ds` prints the DS
record (SHA-256, RFC 4509) to hand the registrar, as `ZONE. IN DS ...` (BIND's
`dnssec-dsfromkey`, Knot's `keymgr ds`).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """`dynmx dnssec ds|keys ZONE`; sets `func=run`."""
    dnssec = subparsers.add_parser("dnssec", help="DS records and keys of the zones dynmx signs")
    verbs = dnssec.add_subparsers(dest="dnssec_command", required=True)
    for verb, text in (
        ("ds", "print the zone's DS record (SHA-256) for its parent: ZONE. IN DS ..."),
        ("keys", "list the zone's signing keys: tag, algorithm, flags, created, DNSKEY"),
    ):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("zone", help="the zone, e.g. example.com")
        parser.add_argument("--config", "-c", required=True, help="TOML config file (for state_dir)")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=run)
    return dnssec


def run(args: argparse.Namespace) -> int:
    """0: printed; 1: the zone has no key yet (the server makes it); 2: bad config."""
    import warnings
    from pathlib import Path

    with warnings.catch_warnings():  # dnspython loads DSA support, which cryptography deprecates
        warnings.filterwarnings("ignore", message="DSA is deprecated")
        import dns.dnssec
    import dns.name

    from dynmx.config import load_config
    from dynmx.zone.keys import key_path, load_key

    config = load_config(Path(args.config))
    origin = dns.name.from_text(args.zone)
    state_dir = config.path(config.server.state_dir)
    key = load_key(state_dir, origin)
    if key is None:
        configured = any(dns.name.from_text(z.name) == origin and z.dnssec for z in config.zone)
        why = (
            "start the server to make it"
            if configured
            else "set dnssec = true in its [[zone]] and start the server"
        )
        print(f"dynmx: {origin} has no DNSSEC key in {state_dir / 'keys'}: {why}", file=sys.stderr)
        return 1
    name = origin.to_text()
    if args.dnssec_command == "ds":
        ds = dns.dnssec.make_ds(origin, key.dnskey, "SHA256")
        print(
            json.dumps({"zone": name, "ds": [ds.to_text()]}) if args.json else f"{name} IN DS {ds.to_text()}"
        )
        return 0
    import time

    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.created))
    algorithm = dns.dnssec.algorithm_to_text(key.algorithm)
    role = "CSK" if key.flags == 257 else "ZSK"
    if args.json:
        fields = {"zone": name, "tag": key.tag, "algorithm": key.algorithm, "flags": key.flags, "role": role}
        extra = {"created": created, "file": str(key_path(state_dir, origin)), "dnskey": key.dnskey.to_text()}
        print(json.dumps([fields | extra], indent=2))
        return 0
    print(
        f"zone={name} tag={key.tag} algorithm={key.algorithm} ({algorithm}) flags={key.flags} ({role})"
        f" created={created} file={key_path(state_dir, origin)}"
    )
    print(f"{name} IN DNSKEY {key.dnskey.to_text()}")
    return 0

"""`dynmx key generate NAME`: a new TSIG key (RFC 8945) as a ready `[[key]]` block.

What BIND's `tsig-keygen` and Knot's `keymgr -t` do for their configs: a random secret as
long as the algorithm's digest (RFC 8945 6: no shorter than half of it; the digest length
is what both tools make), base64, printed with the `nsupdate -y` and `dig -y` lines that
use it. With `--secret-file PATH` the secret goes to a new 0600 file and the block names it,
so the config itself holds no secret.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
from pathlib import Path

from dynmx.config_choices import TSIG_ALGORITHMS
from dynmx.errors import CommandError

SECRET_BYTES = {  # the digest length of each algorithm
    "hmac-sha256": 32,
    "hmac-sha384": 48,
    "hmac-sha512": 64,
    "hmac-sha224": 28,
    "hmac-sha1": 20,
    "hmac-md5": 16,
}


def new_secret(algorithm: str) -> str:
    """A fresh base64 secret for `algorithm`, from the system's CSPRNG."""
    return base64.b64encode(secrets.token_bytes(SECRET_BYTES[algorithm])).decode()


def key_block(name: str, algorithm: str, secret: str = "", secret_file: str = "") -> str:
    """The `[[key]]` TOML block; exactly one of `secret` and `secret_file`."""
    lines = ["[[key]]", f"name = {json.dumps(name)}", f"algorithm = {json.dumps(algorithm)}"]
    lines.append(
        f"secret_file = {json.dumps(secret_file)}" if secret_file else f"secret = {json.dumps(secret)}"
    )
    return "\n".join(lines) + "\n"


def usage_lines(name: str, algorithm: str, secret: str = "", secret_file: str = "") -> list[str]:
    """How BIND's clients use the key (`-y` puts the secret in the process list: for a shared
    machine, prefer `nsupdate -k` with a key file)."""
    value = secret if secret else f'"$(cat {secret_file})"'
    spec = f"{algorithm}:{name}:{value}"
    return [
        f"nsupdate -y {spec}",
        f"dig -y {spec} @SERVER ZONE SOA",
    ]


def write_secret_file(path: Path, secret: str) -> None:
    """A new file holding the secret, 0600 from its creation; an existing file is refused."""
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(f"{path}: exists; remove it or name another --secret-file") from None
    except OSError as error:
        raise CommandError(f"{path}: cannot create ({error.strerror or error})") from None
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(secret + "\n")


def run(args: argparse.Namespace) -> int:
    from dynmx.config_values import absolute_name  # here: building the parser loads no config code

    try:
        name = absolute_name(args.name)
    except ValueError as error:
        raise CommandError(f"key name {args.name!r}: {error}") from None
    secret = new_secret(args.algorithm)
    secret_file = ""
    if args.secret_file:
        path = Path(args.secret_file).resolve()
        write_secret_file(path, secret)
        secret_file = str(path)
    block = key_block(name, args.algorithm, "" if secret_file else secret, secret_file)
    usage = usage_lines(name, args.algorithm, "" if secret_file else secret, secret_file)
    if args.json:
        found: dict[str, object] = {"name": name, "algorithm": args.algorithm, "block": block, "usage": usage}
        found.update({"secret_file": secret_file} if secret_file else {"secret": secret})
        print(json.dumps(found, indent=2))
        return 0
    print(f"# TSIG key {name} ({args.algorithm}); add this block to the config, and the key's name to")
    print("# a zone's allow_update or allow_transfer:")
    print(block, end="")
    print("# use it:")
    for line in usage:
        print(f"#   {line}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    key = sub.add_parser("key", help="make TSIG keys")
    verbs = key.add_subparsers(dest="key_command", required=True)
    generate = verbs.add_parser(
        "generate", help="print a new TSIG key as a [[key]] block (like tsig-keygen, keymgr -t)"
    )
    generate.add_argument("name", help="the key's name, e.g. ops-key (a final dot is added)")
    generate.add_argument(
        "--algorithm", "-a", choices=TSIG_ALGORITHMS, default="hmac-sha256", help="default: hmac-sha256"
    )
    generate.add_argument(
        "--secret-file", metavar="PATH", help="write the secret to this new file (0600); the block names it"
    )
    generate.add_argument("--json", action="store_true", help="print the key as JSON")
    generate.set_defaults(func=run)

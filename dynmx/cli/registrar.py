"""`dynmx registrar discover DOMAIN`: find a domain's registrar over RDAP and print its config block.

The block is printed, or with `--write FILE` appended to a config file (atomically: temp
file, fsync, rename), refused when the file already has a `[[registrar]]` of that name.
Secrets are left empty in the block, so the config does not load until they are filled in.
A registrar missing from the directory exits 1 and prints a webhook template to start from.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from dynmx.errors import RegistrarDiscoveryError
from dynmx.selfcheck.rdap_files import DEFAULT_BOOTSTRAP, DEFAULT_DIRECTORY, IANA_BOOTSTRAP

if TYPE_CHECKING:
    from dynmx.selfcheck.rdap import DirectoryEntry, Registrar


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """`dynmx registrar discover ...`; sets `func=run`."""
    registrar = subparsers.add_parser("registrar", help="find a domain's registrar and its adapter config")
    verbs = registrar.add_subparsers(dest="registrar_command", required=True)
    find = verbs.add_parser(
        "discover", help="look up DOMAIN's registrar over RDAP; print a [[registrar]] block"
    )
    find.add_argument("domain", help="the registered domain, e.g. example.com")
    find.add_argument(
        "--bootstrap",
        default=str(DEFAULT_BOOTSTRAP),
        help=f"RDAP bootstrap file, path or URL (default: the excerpt in examples/; full: {IANA_BOOTSTRAP})",
    )
    find.add_argument("--directory", default=str(DEFAULT_DIRECTORY), help="registrar directory TOML")
    find.add_argument("--write", metavar="FILE", help="append the block to this config file")
    find.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)")
    find.add_argument("--json", action="store_true", help="print what was found as JSON (block included)")
    find.set_defaults(func=run)
    return registrar


def run(args: argparse.Namespace) -> int:
    """0: block printed or written; 1: registrar not in the directory (template printed); 2: error."""
    import asyncio

    from dynmx.selfcheck.rdap import RegistrarNotInDirectory, block_name, discover  # httpx: only to run

    as_json = getattr(args, "json", False)
    try:
        found = asyncio.run(discover(args.domain, args.bootstrap, args.directory, args.timeout))
    except RegistrarNotInDirectory as miss:
        if as_json:
            print(json.dumps(_found(args.domain, miss.registrar, None, miss.block, str(miss)), indent=2))
        else:
            print(miss.block, end="")
        print(f"dynmx: {miss}", file=sys.stderr)
        return 1
    except RegistrarDiscoveryError as error:
        print(f"dynmx: {error}", file=sys.stderr)
        return 2
    if not args.write:
        if as_json:
            print(json.dumps(_found(found.domain, found.registrar, found.entry, found.block), indent=2))
        else:
            print(found.block, end="")
        return 0
    try:
        append_block(Path(args.write), block_name(found.domain), found.block)
    except RegistrarDiscoveryError as error:
        print(f"dynmx: {error}", file=sys.stderr)
        return 2
    registrar = found.registrar
    name = block_name(found.domain)
    print(f"ok: [[registrar]] {name} ({registrar.name}, {found.entry.adapter}) added to {args.write}")
    print("fill in the empty values before `dynmx serve` or `dynmx check`")
    return 0


def _found(
    domain: str, registrar: Registrar, entry: DirectoryEntry | None, block: str, missing: str = ""
) -> dict[str, object]:
    """`discover --json`: the registrar RDAP named, the directory's adapter for it (None when
    the directory has none: `block` is then the webhook template), and the block."""
    return {
        "domain": domain,
        "registrar": {"name": registrar.name, "iana_id": registrar.iana_id, "rdap_url": registrar.rdap_url},
        "adapter": None
        if entry is None
        else {"name": entry.name, "adapter": entry.adapter, "url": entry.url},
        "template": entry is None or entry.template,
        "missing": missing or None,
        "block": block,
    }


def append_block(path: Path, name: str, block: str) -> None:
    """Append `block` to the config at `path`, unless a `[[registrar]]` named `name` is there."""
    try:
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text)
    except OSError as error:
        raise RegistrarDiscoveryError(f"{path}: cannot read ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise RegistrarDiscoveryError(f"{path}: not valid TOML ({error}); fix it first") from None
    existing = document.get("registrar", [])
    if not isinstance(existing, list):
        raise RegistrarDiscoveryError(f"{path}: registrar is not an array of tables ([[registrar]])")
    if any(isinstance(table, dict) and str(table.get("name", "")).lower() == name for table in existing):
        raise RegistrarDiscoveryError(
            f"{path}: a [[registrar]] named {name!r} exists; edit or remove it first"
        )
    new_text = text + ("\n" if text and not text.endswith("\n") else "") + ("\n" if text else "") + block
    try:
        tomllib.loads(new_text)
    except tomllib.TOMLDecodeError as error:  # the block is generated; this guards against our own bugs
        raise RegistrarDiscoveryError(f"{path}: the result would not be valid TOML ({error})") from None
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(new_text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, path.stat().st_mode & 0o7777)  # keep a config holding secrets private
        os.replace(temp, path)
    except OSError as error:
        Path(temp).unlink(missing_ok=True)
        raise RegistrarDiscoveryError(f"{path}: cannot write ({error.strerror})") from None

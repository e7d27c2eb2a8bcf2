"""`dynmx pool add|rm|set` and `dynmx pool member-add|member-rm|member-set`: edit the config
file's pools.

The file is edited as text, block by block, so comments and layout survive; the result
must load exactly as `dynmx serve` would load it before it replaces the file (atomic
rename), and a running server applies it on reload (POST /reload, or SIGHUP).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import tempfile
from pathlib import Path

from dynmx.cli.client import ControlClient
from dynmx.config import POOL_KINDS, PROBES, ROLES, STRATEGIES, absolute_name, load_config
from dynmx.errors import ConfigError, ControlError
from dynmx.filemode import keep_mode

Block = tuple[int, int]  # [start, end) line indexes
MEMBER_KEYS = ("preference", "weight", "role", "probe")  # what member-set changes


def _header(line: str) -> str:
    return line.strip().split("#", 1)[0].strip()


def pool_blocks(lines: list[str]) -> dict[str, Block]:
    """Every [[pool]] block by its (normalised) name; a block ends at the next table that is not its own."""
    blocks: dict[str, Block] = {}
    index = 0
    while index < len(lines):
        if _header(lines[index]) != "[[pool]]":
            index += 1
            continue
        end = index + 1
        while end < len(lines):
            head = _header(lines[end])
            if head.startswith("[") and not head.startswith("[[pool."):
                break
            end += 1
        name = _value_of(lines[index:end], "name")
        if name is not None:
            blocks[absolute_name(name)] = (index, end)
        index = end
    return blocks


def _value_of(lines: list[str], key: str) -> str | None:
    """A top-level `key = "value"` of a block (before its first sub-table)."""
    for line in lines[1:]:
        head = _header(line)
        if head.startswith("["):
            return None
        name, _, value = head.partition("=")
        if name.strip() == key:
            return value.strip().strip('"')
    return None


def _sub_blocks(lines: list[str], start: int, end: int, header: str) -> list[Block]:
    found: list[Block] = []
    index = start
    while index < end:
        if _header(lines[index]) == header:
            stop = index + 1
            while stop < end and not _header(lines[stop]).startswith("["):
                stop += 1
            found.append((index, stop))
            index = stop
        else:
            index += 1
    return found


def _same_host(written: str | None, typed: str) -> bool:
    """Whether a member's `host` is the host typed: names with or without the final dot, in
    any case; addresses in any spelling."""
    if written is None:
        return False
    try:
        return ipaddress.ip_address(written) == ipaddress.ip_address(typed)
    except ValueError:
        return absolute_name(written).lower() == absolute_name(typed).lower()


def _toml(value: str) -> str:
    try:
        float(value)
        return value
    except ValueError:
        return json.dumps(value)


def _assign(body: list[str], key: str, value: object) -> None:
    """Set `key = value` among the top-level keys of a block (`body[0]` is its header): in
    place, keeping the line's indentation and comment, else after the block's last key."""
    assignment = f"{key} = {_toml(str(value))}"
    for index, line in enumerate(body[1:], 1):
        head = _header(line)
        if head.startswith("["):
            break
        if head.partition("=")[0].strip() == key:
            indent = line[: len(line) - len(line.lstrip())]
            _, hashed, comment = line.partition("#")
            kept = f"   #{comment}" if hashed and line.split("#", 1)[0].count('"') % 2 == 0 else ""
            body[index] = f"{indent}{assignment}{kept}"
            return
    keys = [i for i, line in enumerate(body[1:], 1) if _header(line)]
    own = [i for i in keys if i < next((k for k in keys if _header(body[k]).startswith("[")), len(body))]
    at = own[-1] + 1 if own else 1
    indent = body[own[0]][: len(body[own[0]]) - len(body[own[0]].lstrip())] if own else ""
    body.insert(at, f"{indent}{assignment}")


def edit(text: str, args: argparse.Namespace) -> str:
    """The config text with one pool edit applied; ControlError when the edit makes no sense."""
    lines = text.splitlines()
    blocks = pool_blocks(lines)
    pool = absolute_name(args.pool)
    if args.verb == "add":
        if pool in blocks:
            raise ControlError(f"pool {pool} already exists")
        new = ["", "[[pool]]", f'name = "{pool}"', f'strategy = "{args.strategy}"', f'kind = "{args.kind}"']
        new += [f"ttl = {args.ttl}"]
        return "\n".join(lines + new) + "\n"
    if pool not in blocks:
        raise ControlError(f"no pool {pool} in the config")
    start, end = blocks[pool]
    if args.verb == "rm":
        return "\n".join(lines[:start] + lines[end:]) + "\n"
    if args.verb == "set":
        body = lines[start:end]
        for key, value in (("strategy", args.strategy), ("ttl", args.ttl), ("kind", args.kind)):
            if value is not None:
                _assign(body, key, value)
        return "\n".join(lines[:start] + body + lines[end:]) + "\n"
    host = args.host
    members = _sub_blocks(lines, start, end, "[[pool.member]]")
    matching = [b for b in members if _same_host(_value_of(["x", *lines[b[0] + 1 : b[1]]], "host"), host)]
    if args.verb == "member-rm":
        if not matching:
            raise ControlError(f"{host} is not a member of pool {pool}")
        first, last = matching[0]
        return "\n".join(lines[:first] + lines[last:]) + "\n"
    if args.verb == "member-set":
        if not matching:
            raise ControlError(f"{host} is not a member of pool {pool}: add it with member-add")
        first, last = matching[0]
        body = lines[first:last]
        given = [(key, getattr(args, key)) for key in MEMBER_KEYS if getattr(args, key) is not None]
        if not given:
            raise ControlError("member-set needs at least one of " + ", ".join(f"--{k}" for k in MEMBER_KEYS))
        for key, value in given:
            _assign(body, key, value)
        return "\n".join(lines[:first] + body + lines[last:]) + "\n"
    if matching:
        raise ControlError(f"{host} is already a member of pool {pool}: change it with member-set")
    member = [
        "[[pool.member]]",
        f'host = "{host}"',
        f"preference = {args.preference}",
        f'role = "{args.role}"',
    ]
    member += [f"weight = {args.weight}", f'probe = "{args.probe}"']
    insert_at = members[-1][1] if members else end
    return "\n".join(lines[:insert_at] + member + lines[insert_at:]) + "\n"


def run_pool(args: argparse.Namespace) -> int:
    path = Path(args.config)
    text = path.read_text(encoding="utf-8")
    new_text = edit(text, args)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    keep_mode(handle, path)  # a config readable by the server's group stays so
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(new_text)
        out.flush()
        os.fsync(out.fileno())
    try:
        config = load_config(Path(temp))  # the result must load as `serve` would load it
    except ConfigError as error:
        Path(temp).unlink()
        message = str(error).replace(temp, str(path))
        raise ControlError(f"the edit would make the config invalid: {message}") from None
    os.replace(temp, path)
    print(f"ok: {args.verb} {args.pool}{' ' + args.host if getattr(args, 'host', None) else ''} in {path}")
    client = ControlClient(config)
    if not client.available():
        print("no running server to tell; the change applies when it starts")
        return 0
    try:
        ok = client.request("POST", "/reload", timeout=300).json().get("ok")
    except ControlError:
        print("no running server answered; the change applies when it starts")
        return 0
    print("the running server reloaded" if ok else "the running server reported problems on reload")
    return 0


EXAMPLES = {
    "add": "example:\n  dynmx pool add example.test --strategy weighted -c dynmx.toml\n",
    "set": "example:\n  dynmx pool set example.test --strategy least-load --ttl 60 -c dynmx.toml\n",
    "member-add": (
        "example:\n  dynmx pool member-add example.test mx3.example.test --preference 30 --role relay"
        " -c dynmx.toml\n"
    ),
    "member-set": (
        "Changes only the keys given; the member keeps its other keys, comments and place.\n\n"
        "examples:\n  dynmx pool member-set example.test mx1.example.test --weight 3 -c dynmx.toml\n"
        "  dynmx pool member-set example.test mx2.example.test --preference 20 --role standby -c dynmx.toml\n"
    ),
}


def _parser(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], verb: str, text: str
) -> argparse.ArgumentParser:
    return verbs.add_parser(
        verb,
        help=text,
        description=text,
        epilog=EXAMPLES.get(verb),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _member_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--preference, --weight, --role, --probe; their allowed values are the config's own."""

    def default(value: object) -> object:
        return value if defaults else None

    shown = " (default: %(default)s)" if defaults else ""
    parser.add_argument(
        "--preference", type=int, default=default(10), help="base preference, 0-65535" + shown
    )
    parser.add_argument(
        "--weight", type=float, default=default(1.0), help="weighted: share of first place" + shown
    )
    parser.add_argument("--role", choices=ROLES, default=default("primary"), help="member role" + shown)
    parser.add_argument("--probe", choices=PROBES, default=default("smtp"), help="health probe" + shown)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], func: object) -> None:
    pool = sub.add_parser("pool", help="add, remove or change pools and their members in the config file")
    verbs = pool.add_subparsers(dest="verb", required=True)
    add = _parser(verbs, "add", "add a pool (then add members)")
    add.add_argument("pool")
    add.add_argument("--strategy", choices=STRATEGIES, default="round-robin", help="(default: %(default)s)")
    add.add_argument(
        "--kind", choices=POOL_KINDS, default="mx", help="the RRset rewritten (default: %(default)s)"
    )
    add.add_argument("--ttl", type=int, default=30, help="TTL of rewritten answers (default: %(default)s)")
    remove = _parser(verbs, "rm", "remove a pool")
    remove.add_argument("pool")
    change = _parser(verbs, "set", "change a pool's strategy, kind or ttl")
    change.add_argument("pool")
    change.add_argument("--strategy", choices=STRATEGIES)
    change.add_argument("--kind", choices=POOL_KINDS, help="the RRset rewritten")
    change.add_argument("--ttl", type=int)
    member_add = _parser(verbs, "member-add", "add a member to a pool")
    member_add.add_argument("pool")
    member_add.add_argument("host")
    _member_options(member_add, defaults=True)
    member_set = _parser(verbs, "member-set", "change a member's preference, weight, role or probe in place")
    member_set.add_argument("pool")
    member_set.add_argument("host")
    _member_options(member_set, defaults=False)
    member_rm = _parser(verbs, "member-rm", "remove a member from a pool")
    member_rm.add_argument("pool")
    member_rm.add_argument("host")
    for parser in verbs.choices.values():
        parser.add_argument("--config", "-c", required=True, help="TOML config file to edit")
        parser.set_defaults(func=func)

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

from dynmx.config import load_config
from dynmx.config_values import absolute_name
from dynmx.errors import CommandError, ConfigError
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
    """The config text with one pool edit applied; CommandError when the edit makes no sense."""
    lines = text.splitlines()
    blocks = pool_blocks(lines)
    pool = absolute_name(args.pool)
    if args.verb == "add":
        if pool in blocks:
            raise CommandError(f"pool {pool} already exists")
        new = ["", "[[pool]]", f'name = "{pool}"', f'strategy = "{args.strategy}"', f'kind = "{args.kind}"']
        new += [f"ttl = {args.ttl}"]
        return "\n".join(lines + new) + "\n"
    if pool not in blocks:
        raise CommandError(f"no pool {pool} in the config")
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
            raise CommandError(f"{host} is not a member of pool {pool}")
        first, last = matching[0]
        return "\n".join(lines[:first] + lines[last:]) + "\n"
    if args.verb == "member-set":
        if not matching:
            raise CommandError(f"{host} is not a member of pool {pool}: add it with member-add")
        first, last = matching[0]
        body = lines[first:last]
        given = [(key, getattr(args, key)) for key in MEMBER_KEYS if getattr(args, key) is not None]
        if not given:
            raise CommandError("member-set needs at least one of " + ", ".join(f"--{k}" for k in MEMBER_KEYS))
        for key, value in given:
            _assign(body, key, value)
        return "\n".join(lines[:first] + body + lines[last:]) + "\n"
    if matching:
        raise CommandError(f"{host} is already a member of pool {pool}: change it with member-set")
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
        raise CommandError(f"the edit would make the config invalid: {message}") from None
    os.replace(temp, path)
    print(f"ok: {args.verb} {args.pool}{' ' + args.host if getattr(args, 'host', None) else ''} in {path}")
    from dynmx.cli.client import ControlClient  # here: building the parser loads no server code

    client = ControlClient(config)
    if not client.available():
        print("no running server to tell; the change applies when it starts")
        return 0
    try:
        ok = client.request("POST", "/reload", timeout=300).json().get("ok")
    except CommandError:
        print("no running server answered; the change applies when it starts")
        return 0
    print("the running server reloaded" if ok else "the running server reported problems on reload")
    return 0

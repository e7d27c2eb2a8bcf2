"""`dynmx record add|rm|set`: zone edits as RFC 2136 UPDATE messages, handed to the one owner.

With a server running, the edit goes to it over its control socket (so it is checked,
journaled, written and NOTIFYed there); `--server HOST:PORT` sends it as a TSIG-signed
UPDATE instead, as nsupdate would. `--offline` applies the very same UPDATE message to
the zone files as the owner of the state directory, and is refused while a server owns
it. Every path shares RFC 2136 semantics (dynmx.control.update) and the owner's commit.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.update

from dynmx.app.update_service import load_keyring
from dynmx.app.zonescan import scan_zones
from dynmx.cli.args import domain
from dynmx.cli.client import ControlClient
from dynmx.cli.edits import (
    RecordEdit,
    build_update,
    check_conflicts,
    check_edit,
    edit_from_command,
    needs_check,
    nothing_matched,
    probe_message,
    unmatched,
)
from dynmx.cli.owning import OfflineEdit, offline_owner, server_holder
from dynmx.config import Config
from dynmx.config_values import parse_hostport
from dynmx.control.lock import StateDirBusy
from dynmx.control.update import UpdateRefused, evaluate
from dynmx.errors import CommandError, ZoneLoadError
from dynmx.zone.loader import LoadedZone

UPDATE_TIMEOUT = 10.0


def _zones(config: Config) -> dict[dns.name.Name, LoadedZone]:
    zones, problems = scan_zones(config.path(config.server.zones_dir), {})
    if problems:
        raise CommandError("zones do not load cleanly:\n" + "\n".join(str(p) for p in problems))
    return {zone.origin: zone for zone in zones.values()}


def _zone_of(name: dns.name.Name, zones: dict[dns.name.Name, LoadedZone], explicit: str | None) -> LoadedZone:
    if explicit:
        origin = dns.name.from_text(explicit)
        if origin not in zones:
            raise CommandError(f"unknown zone {origin}")
        return zones[origin]
    candidates = [origin for origin in zones if name.is_subdomain(origin)]
    if not candidates:
        raise CommandError(f"{name} is in no served zone")
    return zones[max(candidates, key=len)]


Send = Callable[[dns.update.UpdateMessage], tuple[dns.rcode.Rcode, str]]
NO_CHANGE = "no change"  # the reason the owner gives for a message that changed nothing


def _key_for(config: Config, origin: dns.name.Name) -> tuple[dict[dns.name.Name, object], dns.name.Name]:
    zone_config = config.zone_settings(origin.to_text())  # its [[zone]] block, else [defaults]
    if not zone_config.allow_update:
        raise CommandError(
            f"no [[zone]] block or [defaults] allows updates of {origin} (allow_update = [key names])"
        )
    keyring = load_keyring(config)
    keyname = dns.name.from_text(zone_config.allow_update[0])
    return dict(keyring), keyname


def _records_given(args: argparse.Namespace) -> list[list[str]]:
    """The words of each record: the positional data (one record), then each --data."""
    return ([list(args.data)] if args.data else []) + [[text] for text in args.more or ()]


def run_record(args: argparse.Namespace, config: Config) -> int:
    if args.verb == "batch":
        from dynmx.cli.batch import run_batch

        return run_batch(args, config)
    zones = _zones(config)
    zone = _zone_of(domain(args.name), zones, args.zone)
    ttl = getattr(args, "ttl", 0)
    edit = edit_from_command(args.verb, args.name, args.type, ttl, _records_given(args), zone.origin)
    label = f"{edit.describe()} in {zone.origin}"
    return apply_edits(args, config, zone, [edit], label)


def apply_edits(
    args: argparse.Namespace, config: Config, zone: LoadedZone, edits: list[RecordEdit], label: str
) -> int:
    """Hand `edits` to the owner as one UPDATE message (control socket, `--server`, or
    `--offline`); say `ok`, `refused` or what a removal did not find."""
    for edit in edits:
        check_edit(edit, zone.origin)
    check_conflicts(edits, zone.zone)
    if args.server:
        absent = _absent_remote(args, config, zone.origin, edits)
        for edit in absent:
            where = f"{edit.where}: " if edit.where else ""
            print(f"{where}{nothing_matched(edit, zone.origin)}; nothing sent", file=sys.stderr)
        if absent:
            return 1
    with _sender(args, config, zone) as (send, suffix):
        rcode, reason = send(build_update(edits, zone.origin))
        if rcode in (dns.rcode.NXDOMAIN, dns.rcode.NXRRSET):
            missing = unmatched(
                edits, rcode, lambda e: send(probe_message(e, zone.origin))[0] == dns.rcode.NOERROR
            )
            for edit in missing:
                where = f"{edit.where}: " if edit.where else ""
                print(f"{where}{nothing_matched(edit, zone.origin)}; nothing changed", file=sys.stderr)
            if missing:
                return 1
        if rcode != dns.rcode.NOERROR:
            print(f"refused: {dns.rcode.to_text(rcode)}{': ' + reason if reason else ''}")
            return 1
    removals = [e for e in edits if e.verb == "rm"]
    if reason == NO_CHANGE and removals:
        if len(removals) == 1:
            print(nothing_matched(removals[0], zone.origin), file=sys.stderr)
        else:
            print("nothing matched: none of the records to remove is there; nothing changed", file=sys.stderr)
        return 1
    done = " (no change: already so)" if reason == NO_CHANGE else ""
    print(f"ok: {label}{suffix}{done}")
    return 0


@contextlib.contextmanager
def _sender(args: argparse.Namespace, config: Config, zone: LoadedZone) -> Iterator[tuple[Send, str]]:
    """How this command's UPDATE messages reach the owner, and the suffix its `ok` line gets."""
    if args.server:
        yield _tsig_sender(args, config, zone.origin), ""
        return
    holder = server_holder(config)
    if args.offline:
        if holder is not None:
            raise CommandError(_busy(config, holder))
        try:
            with offline_owner(config, f"dynmx record {args.verb} --offline") as edit:
                yield _offline_sender(edit, zone.origin), " (offline)"
        except StateDirBusy as busy:
            raise CommandError(_busy(config, busy.holder)) from None
        return
    if holder is None:
        raise CommandError(
            f"no running server owns {config.path(config.server.state_dir)}: start one, or edit the"
            " files with --offline"
        )
    client = ControlClient(config)

    def send(message: dns.update.UpdateMessage) -> tuple[dns.rcode.Rcode, str]:
        reply = client.request("POST", "/update", body=message.to_wire(), timeout=300, local=True)
        result = reply.json()
        try:
            rcode = dns.rcode.from_text(str(result.get("rcode")))
        except dns.rcode.UnknownRcode:
            raise CommandError(f"the server answered {reply.status}: {reply.text()}") from None
        return rcode, str(result.get("reason") or "")

    yield send, ""


def _busy(config: Config, holder: str) -> str:
    return (
        f"--offline refused: {config.path(config.server.state_dir)} is owned by {holder}; edit through"
        " the running server (drop --offline), which journals, writes and NOTIFYs the change"
    )


def _tsig_sender(args: argparse.Namespace, config: Config, origin: dns.name.Name) -> Send:
    """RFC 2136 UPDATE with TSIG to `--server`, as nsupdate would (a server elsewhere)."""
    keyring, keyname = _key_for(config, origin)
    host, port = parse_hostport(args.server)

    def send(message: dns.update.UpdateMessage) -> tuple[dns.rcode.Rcode, str]:
        message.use_tsig(keyring, keyname)
        try:
            reply = dns.query.tcp(message, host, port=port, timeout=UPDATE_TIMEOUT)
        except (OSError, dns.exception.DNSException) as error:
            raise CommandError(f"cannot send the update to {host}:{port}: {error}") from None
        return reply.rcode(), ""

    return send


def _absent_remote(
    args: argparse.Namespace, config: Config, origin: dns.name.Name, edits: list[RecordEdit]
) -> list[RecordEdit]:
    """`--server`: the removals of records the server does not hold, asked (TSIG-signed, over
    TCP) before the UPDATE, whose reply cannot say that a removal found nothing. A query that
    fails checks nothing; the prerequisites still guard names and RRsets."""
    keyring, keyname = _key_for(config, origin)
    host, port = parse_hostport(args.server)
    held: dict[tuple[dns.name.Name, int], set[dns.rdata.Rdata] | None] = {}
    absent: list[RecordEdit] = []
    for edit in needs_check(edits):
        if edit.rdtype is None or not edit.rdatas:
            continue
        key = (edit.name, int(edit.rdtype))
        if key not in held:
            query = dns.message.make_query(edit.name, edit.rdtype)
            query.use_tsig(keyring, keyname)
            try:
                reply = dns.query.tcp(query, host, port=port, timeout=UPDATE_TIMEOUT)
            except (OSError, dns.exception.DNSException):
                held[key] = None
                continue
            found = [r for r in reply.answer if r.name == edit.name and r.rdtype == edit.rdtype]
            held[key] = {rdata for rrset in found for rdata in rrset}
        records = held[key]
        if records is not None and not records & set(edit.rdatas):
            absent.append(edit)
    return absent


def _offline_sender(edit: OfflineEdit, origin: dns.name.Name) -> Send:
    """Apply messages to the zone files as the owner of the state directory, with the same
    RFC 2136 code and commit as the server (refused while a server owns the directory)."""

    def send(update: dns.update.UpdateMessage) -> tuple[dns.rcode.Rcode, str]:
        message = dns.message.from_wire(update.to_wire())
        assert isinstance(message, dns.update.UpdateMessage)
        zone = edit.zones[origin]
        try:
            changes = evaluate(zone.zone, origin, message)
        except UpdateRefused as refused:
            return refused.rcode, str(refused)
        if not changes:
            return dns.rcode.NOERROR, NO_CHANGE
        try:
            edit.zones[origin] = edit.owner.commit(zone, changes)
        except ZoneLoadError as error:
            return dns.rcode.REFUSED, "the zone would be invalid: " + "; ".join(
                p.reason for p in error.problems
            )
        return dns.rcode.NOERROR, ""

    return send

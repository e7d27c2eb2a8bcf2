"""Record edits as zone-file text, and the one RFC 2136 UPDATE message that carries them.

The data of a record is the rdata of a zone-file line, as nsupdate's `update add NAME TTL
TYPE DATA...` reads it: the words given are joined by spaces and read by dnspython's
zone-file reader, so `MX 10 mx1` is one record however the shell split it, and names are
relative to the zone's origin. One rule for TXT and SPF on the command line: an argument
that holds whitespace and no quote was quoted in the shell (`"v=spf1 mx -all"`), so it is
one string; unquoted words stay one string each, as in a zone file.

A removal says what must be there: each one becomes a prerequisite (RFC 2136 §2.4.1 name in
use, §2.4.1 RRset exists), so whoever applies the message refuses a removal of nothing, in
the same step as the edit. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.ttl
import dns.update
import dns.zone

from dynmx.cli.args import domain
from dynmx.errors import CommandError

VERBS = ("add", "rm", "set")
TEXT_TYPES = frozenset({dns.rdatatype.TXT, dns.rdatatype.SPF})
SOA = dns.rdatatype.SOA
NS = dns.rdatatype.NS
CNAME = dns.rdatatype.CNAME


@dataclass(frozen=True, slots=True)
class RecordEdit:
    """One change: add records, replace an RRset (`set`), or remove records, an RRset or a
    name (`rm`, with `rdtype` None for the whole name)."""

    verb: str
    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType | None
    ttl: int
    rdatas: tuple[dns.rdata.Rdata, ...]
    where: str = ""  # `FILE:LINE` of a batch line

    def describe(self) -> str:
        kind = "" if self.rdtype is None else " " + dns.rdatatype.to_text(self.rdtype)
        return f"{self.verb} {self.name}{kind}"

    def fail(self, reason: str) -> CommandError:
        return CommandError(f"{self.where}: {reason}" if self.where else reason)


def rdata_text(rdtype: dns.rdatatype.RdataType, words: Sequence[str]) -> str:
    """The zone-file rdata for the words of one record (see the module's TXT rule)."""
    if rdtype in TEXT_TYPES:
        words = [f'"{w}"' if any(c.isspace() for c in w) and '"' not in w else w for w in words]
    return " ".join(words)


def parse_type(text: str) -> dns.rdatatype.RdataType:
    try:
        return dns.rdatatype.from_text(text)
    except (dns.exception.DNSException, ValueError):
        raise CommandError(f"unknown record type {text!r}") from None


def parse_rdata(rdtype: dns.rdatatype.RdataType, text: str, origin: dns.name.Name) -> dns.rdata.Rdata:
    """One record from its zone-file rdata; a clear error names the type and the text."""
    try:
        return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=origin, relativize=False)
    except (dns.exception.DNSException, ValueError) as error:
        raise CommandError(f"bad record data for {dns.rdatatype.to_text(rdtype)} {text!r}: {error}") from None


def record_from_words(
    rdtype: dns.rdatatype.RdataType, words: Sequence[str], origin: dns.name.Name
) -> dns.rdata.Rdata:
    """One record from command-line words; words that are each a record of their own (two
    addresses) get a hint to give them one record per `--data`."""
    text = rdata_text(rdtype, words)
    try:
        return parse_rdata(rdtype, text, origin)
    except CommandError as error:
        if len(words) > 1 and all(_parses(rdtype, w, origin) for w in words):
            kind = dns.rdatatype.to_text(rdtype)
            hint = " ".join(f"--data {w!r}" if " " in w else f"--data {w}" for w in words)
            raise CommandError(
                f"{error}; the data is one record, read as a zone-file line: give each of several"
                f" {kind} records with --data ({hint})"
            ) from None
        raise


def _parses(rdtype: dns.rdatatype.RdataType, text: str, origin: dns.name.Name) -> bool:
    try:
        dns.rdata.from_text(dns.rdataclass.IN, rdtype, text, origin=origin, relativize=False)
    except (dns.exception.DNSException, ValueError):
        return False
    return True


def check_edit(edit: RecordEdit, origin: dns.name.Name) -> None:
    """Refuse what RFC 2136 §3.4.2.3-4 would silently ignore, with the reason."""
    if edit.verb != "rm":
        return
    if edit.rdtype == SOA:
        raise edit.fail(
            f"the SOA record of {edit.name} cannot be removed: a zone always has one (RFC 2136"
            " §3.4.2.3); `dynmx zone rm` removes the whole zone"
        )
    if edit.rdtype == NS and edit.name == origin and not edit.rdatas:
        raise edit.fail(
            f"the NS records of the apex {origin} cannot all be removed (RFC 2136 §3.4.2.3): remove"
            " them one at a time (rm NAME NS DATA); the last one stays"
        )


def needs_check(edits: Sequence[RecordEdit]) -> list[RecordEdit]:
    """The removals that must find something: all but those of what an earlier edit of the
    same message adds (prerequisites are checked before any of the message is applied)."""
    added: set[tuple[dns.name.Name, int]] = set()
    checked: list[RecordEdit] = []
    for edit in edits:
        if edit.verb == "rm":
            if edit.rdtype is None:
                if not any(name == edit.name for name, _ in added):
                    checked.append(edit)
            elif (edit.name, edit.rdtype) not in added:
                checked.append(edit)
        elif edit.rdtype is not None:
            added.add((edit.name, edit.rdtype))
    return checked


def prerequisite(message: dns.update.UpdateMessage, edit: RecordEdit) -> None:
    if edit.rdtype is None:
        message.present(edit.name)  # §2.4.4 name is in use
    else:
        message.present(edit.name, edit.rdtype)  # §2.4.1 RRset exists (value independent)


def build_update(
    edits: Sequence[RecordEdit], origin: dns.name.Name, keyring: object = None, keyname: object = None
) -> dns.update.UpdateMessage:
    """The one UPDATE message for `edits`, in order, with a prerequisite per removal. The
    first `set` of an RRset replaces it; later ones of the same RRset add to the new one."""
    update = dns.update.UpdateMessage(origin, keyring=keyring, keyname=keyname)  # type: ignore[arg-type]
    for edit in needs_check(edits):
        prerequisite(update, edit)
    replaced: set[tuple[dns.name.Name, int]] = set()
    for edit in edits:
        if edit.verb == "set" and edit.rdtype is not None and (edit.name, edit.rdtype) not in replaced:
            replaced.add((edit.name, edit.rdtype))  # several `set`s of one RRset give it together
            update.delete(edit.name, edit.rdtype)
        if edit.verb in ("add", "set"):
            for rdata in edit.rdatas:
                update.add(edit.name, edit.ttl, rdata)
        elif edit.rdtype is None:
            update.delete(edit.name)
        elif edit.rdatas:
            for rdata in edit.rdatas:
                update.delete(edit.name, rdata)
        else:
            update.delete(edit.name, edit.rdtype)
    return update


def probe_message(
    edit: RecordEdit, origin: dns.name.Name, keyring: object = None, keyname: object = None
) -> dns.update.UpdateMessage:
    """An UPDATE with only `edit`'s prerequisite and no change: asks whether it holds."""
    update = dns.update.UpdateMessage(origin, keyring=keyring, keyname=keyname)  # type: ignore[arg-type]
    prerequisite(update, edit)
    return update


def unmatched(
    edits: Sequence[RecordEdit], rcode: dns.rcode.Rcode, holds: Callable[[RecordEdit], bool]
) -> list[RecordEdit]:
    """The removals whose prerequisite failed with `rcode` (NXDOMAIN: a name, NXRRSET: an
    RRset); `holds` asks the server again when several could be the one."""
    candidates = [e for e in needs_check(edits) if (e.rdtype is None) == (rcode == dns.rcode.NXDOMAIN)]
    if len(candidates) <= 1:
        return candidates
    return [e for e in candidates if not holds(e)] or candidates


def nothing_matched(edit: RecordEdit, origin: dns.name.Name) -> str:
    """What a removal that found nothing says, as knotc and pdnsutil say it."""
    if edit.rdtype is None:
        if edit.name == origin:
            return f"nothing matched: {edit.name} holds nothing to remove (the apex keeps its SOA and NS)"
        return f"nothing matched: {edit.name} has no records in {origin}"
    kind = dns.rdatatype.to_text(edit.rdtype)
    if edit.rdatas:
        given = ", ".join(r.to_text() for r in edit.rdatas)
        if edit.rdtype == NS and edit.name == origin:
            return (
                f"nothing removed: {edit.name} has no NS record {given}, or it is the zone's last NS"
                " (RFC 2136 §3.4.2.4 keeps it)"
            )
        return f"nothing matched: {edit.name} has no {kind} record {given}"
    return f"nothing matched: {edit.name} has no {kind} records"


def check_conflicts(edits: Sequence[RecordEdit], zone: dns.zone.Zone) -> None:
    """Say clearly what RFC 2136 would silently ignore: data beside a CNAME, a CNAME beside
    data (RFC 1034 §3.6.2), following the edits in order over the zone as read."""
    types: dict[dns.name.Name, set[int]] = {}

    def at(name: dns.name.Name) -> set[int]:
        if name not in types:
            node = zone.nodes.get(name)
            types[name] = {int(r.rdtype) for r in node.rdatasets} if node is not None else set()
        return types[name]

    for edit in edits:
        present = at(edit.name)
        if edit.verb == "rm":
            if edit.rdtype is None:
                present.clear()
            elif not edit.rdatas:
                present.discard(int(edit.rdtype))
            continue
        assert edit.rdtype is not None
        others = present - {int(edit.rdtype), dns.rdatatype.RRSIG, dns.rdatatype.NSEC}
        wanted = dns.rdatatype.to_text(edit.rdtype)
        if edit.rdtype == CNAME and others:
            held = ", ".join(sorted(dns.rdatatype.to_text(dns.rdatatype.RdataType.make(t)) for t in present))
            raise edit.fail(f"CNAME conflict: {edit.name} already has {held} (RFC 1034 3.6.2)")
        if edit.rdtype != CNAME and CNAME in present:
            raise edit.fail(
                f"CNAME conflict: {edit.name} is a CNAME; it cannot have {wanted} too (RFC 1034 3.6.2)"
            )
        present.add(int(edit.rdtype))


def edit_from_command(
    verb: str,
    name: str,
    rdtype_text: str | None,
    ttl: int,
    records: Sequence[Sequence[str]],
    origin: dns.name.Name,
) -> RecordEdit:
    """The edit of one `dynmx record add|rm|set` command: `records` are the words of each
    record given (the positional data, then each `--data`)."""
    rdtype = parse_type(rdtype_text) if rdtype_text is not None else None
    if verb in ("add", "set") and not records:
        raise CommandError(f"record {verb} needs the record data")
    if rdtype is None and records:
        raise CommandError("record rm: record data needs the TYPE before it")
    rdatas = tuple(record_from_words(rdtype, words, origin) for words in records if rdtype is not None)
    return RecordEdit(verb, domain(name), rdtype, ttl, rdatas)


# -- batch files ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One change of a batch file, split but not yet read against its zone."""

    where: str
    verb: str
    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType | None
    ttl: int | None
    data: str

    def edit(self, origin: dns.name.Name, default_ttl: int) -> RecordEdit:
        rdatas: tuple[dns.rdata.Rdata, ...] = ()
        if self.data and self.rdtype is not None:
            try:
                rdatas = (parse_rdata(self.rdtype, self.data, origin),)
            except CommandError as error:
                raise CommandError(f"{self.where}: {error}") from None
        ttl = self.ttl if self.ttl is not None else default_ttl
        return RecordEdit(self.verb, self.name, self.rdtype, ttl, rdatas, self.where)


def _word(rest: str) -> tuple[str, str]:
    parts = rest.split(None, 1)
    return (parts[0], parts[1] if len(parts) > 1 else "") if parts else ("", "")


def parse_batch_line(text: str, where: str) -> BatchLine | None:
    """`add NAME [TTL] [IN] TYPE DATA...`, `set ...` alike, `rm NAME [TYPE [DATA...]]`; None
    for a blank line or a `#` comment."""
    line = text.strip()
    if not line or line.startswith("#"):
        return None
    verb, rest = _word(line)
    if verb not in VERBS:
        raise CommandError(f"{where}: unknown change {verb!r}: expected add, rm or set")
    name_text, rest = _word(rest)
    if not name_text:
        raise CommandError(f"{where}: {verb} needs a NAME")
    try:
        name = domain(name_text)
    except CommandError as error:
        raise CommandError(f"{where}: {error}") from None
    ttl: int | None = None
    token, rest = _word(rest)
    if verb != "rm" and token:
        try:
            ttl = int(dns.ttl.from_text(token))
            token, rest = _word(rest)
        except dns.exception.DNSException:
            pass
    if token.upper() == "IN":
        token, rest = _word(rest)
    if not token:
        if verb != "rm":
            raise CommandError(f"{where}: {verb} needs NAME [TTL] TYPE DATA")
        return BatchLine(where, verb, name, None, None, "")
    try:
        rdtype = parse_type(token)
    except CommandError as error:
        raise CommandError(f"{where}: {error}") from None
    if verb != "rm" and not rest.strip():
        raise CommandError(f"{where}: {verb} {name} {token} needs the record data")
    return BatchLine(where, verb, name, rdtype, ttl, rest.strip())


def parse_batch(text: str, source: str) -> list[BatchLine]:
    """Every change of a batch file; the first bad line is an error naming `source:LINE`."""
    lines = [parse_batch_line(line, f"{source}:{number}") for number, line in enumerate(text.splitlines(), 1)]
    found = [line for line in lines if line is not None]
    if not found:
        raise CommandError(f"{source}: no changes (one per line: add|rm|set NAME ...)")
    return found

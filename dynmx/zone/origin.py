"""Which zone a file holds: a leading `$ORIGIN`, else the file's name without ".zone"."""

from __future__ import annotations

from pathlib import Path

import dns.exception
import dns.name
import dns.tokenizer

from dynmx.errors import Problem, ZoneLoadError

ZONE_SUFFIX = ".zone"


def decide_origin(path: Path, text: str) -> tuple[dns.name.Name, dns.name.Name]:
    """The zone origin, and the origin the reader starts with (to read a relative $ORIGIN)."""
    from_file = _name_of_file(path)
    leading = _leading_origin(text)
    if leading is not None:
        try:
            name = dns.name.from_text(leading, origin=from_file)
        except (dns.exception.DNSException, ValueError):
            name = None  # the reader reports the bad $ORIGIN line itself
        if name is not None and name.is_absolute():
            return name, from_file if from_file is not None else name
    if from_file is None:
        reason = f"no leading $ORIGIN, and the file name {path.name!r} is not a domain name"
        raise ZoneLoadError([Problem(str(path), 1, reason)])
    return from_file, from_file


def _name_of_file(path: Path) -> dns.name.Name | None:
    stem = path.name.removesuffix(ZONE_SUFFIX)
    if not stem:
        return None
    try:
        return dns.name.from_text(stem, origin=dns.name.root)
    except (dns.exception.DNSException, ValueError):
        return None


def _leading_origin(text: str) -> str | None:
    """The value of a $ORIGIN line preceded only by blank, comment and $TTL lines, if any."""
    tok = dns.tokenizer.Tokenizer(text)
    try:
        while True:
            token = tok.get(want_leading=True)
            if token.is_eol():
                continue
            if not token.is_identifier():
                return None
            directive = token.value.upper()
            if directive == "$TTL":
                while not tok.get().is_eol_or_eof():
                    pass
                continue
            if directive != "$ORIGIN":
                return None
            value = tok.get()
            return value.value if value.is_identifier() else None
    except dns.exception.DNSException:
        return None

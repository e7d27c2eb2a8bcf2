"""What a probe concluded, before timing is added, and how evidence is made safe to show.

Evidence travels to logs, `/status` and metrics labels, so it is printable ASCII, at most
200 characters, and any secret the probe knows of (URL userinfo, query values) is cut out
first (design.md: secrets never logged).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

EVIDENCE_MAX = 200


@dataclass(frozen=True, slots=True)
class Verdict:
    """A probe's finding: `reason` is "ok" or one of the fault names in probes.REASONS."""

    reason: str
    evidence: str = ""
    load: float | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def printable(data: bytes | str, secrets: Iterable[str] = ()) -> str:
    """`data` as printable ASCII (others as \\xNN escapes), secrets masked, cut to 200 characters."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    out: list[str] = []
    size = 0
    for char in text:
        piece = char if " " <= char <= "~" else char.encode("unicode_escape").decode("ascii")
        if size + len(piece) > EVIDENCE_MAX:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def url_secrets(url: str) -> list[str]:
    """The parts of `url` that may be credentials: userinfo and query values, raw and decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found: list[str] = []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, _, password = userinfo.partition(":")
        found += [userinfo, user, password, unquote(user), unquote(password)]
    if parts.query:
        found.append(parts.query)
        found += [value for _, value in parse_qsl(parts.query, keep_blank_values=False)]
    return [s for s in found if s]

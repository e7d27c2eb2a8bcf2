"""Where a key of a TOML file is written, so config errors read `file:line: reason`.

tomllib gives values without positions. This scanner reads the (already valid) TOML text
once and notes the line of every table header (`[server]`, `[[pool]]`, `[[pool.member]]`,
arrays of tables counted as `pool[0]`, `pool[1]`), every key line, and the elements of
arrays and inline tables. A key path from a config error (`pool[1].member[0].port`) is
then looked up, dropping trailing parts until something is found: a missing key is
reported at the table that lacks it. It is best effort: what it cannot place is line 1.
"""

from __future__ import annotations

import contextlib
import json
import re
import tomllib
from collections.abc import Callable

KeyPath = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SEGMENT = re.compile(r"([A-Za-z0-9_-]+)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")
_AT = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.DOTALL)
_AT_END = re.compile(r"^(.*) \(at end of document\)$", re.DOTALL)
_UNKNOWN = ": unknown key ("


def shown_key(key: str) -> str:
    """A key as a message shows it: as written, or TOML-quoted when it is not printable text
    (a tab or a line break in it must not break the one-line `file:line: reason`)."""
    return key if key.isprintable() and key == key.strip() and key else json.dumps(key)


def _unquoted(key: str) -> str:
    """A key from a message, as `shown_key` wrote it."""
    if len(key) > 1 and key[0] == key[-1] == '"':
        with contextlib.suppress(ValueError):  # not JSON after all: a key written with quotes in it
            return str(json.loads(key))
    return key


def _decoded(raw: str) -> str:
    """A quoted key's contents as TOML reads them (escapes resolved), by tomllib itself."""
    try:
        return str(tomllib.loads(f'k = "{raw}"')["k"])
    except (tomllib.TOMLDecodeError, KeyError):
        return raw


def toml_error(message: str, text: str) -> tuple[int, str]:
    """tomllib's `Reason (at line 3, column 10)` as (3, 'Reason (column 10)')."""
    if match := _AT.fullmatch(message):
        return int(match.group(2)), f"{match.group(1)} (column {match.group(3)})"
    if match := _AT_END.fullmatch(message):
        return max(1, text.count("\n") + (0 if text.endswith("\n") else 1)), f"{match.group(1)} (at the end)"
    return 1, message


def parse_path(message: str) -> KeyPath:
    """The key path a config message starts with: `pool[0].member[1].port: ...` -> ('pool', 0, ...)."""
    path: list[str | int] = []
    pos = 0
    while True:
        start, known = pos, len(path)
        match = _SEGMENT.match(message, pos)
        if match is not None:
            path.append(match.group(1))
            path.extend(int(index) for index in _INDEX.findall(match.group(2)))
            pos = match.end()
            if message.startswith(".", pos):
                pos += 1
                continue
            if message.startswith(": ", pos):
                return tuple(path)
        # Not a bare key from here: an unknown key written quoted in the file (`"a b" = 1`).
        del path[known:]
        end = message.find(_UNKNOWN, start)
        if end > start:
            path.append(_unquoted(message[start:end]))
        return tuple(path)


def key_line(text: str, path: KeyPath) -> int:
    """The line of `path` (or of its nearest written parent) in the TOML `text`; 1 if unknown."""
    lines = _Scanner(text).run()
    for end in range(len(path), 0, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 1


class _Scanner:
    """Walks TOML text once; `lines` maps resolved key paths to the line they start on."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.arrays: dict[KeyPath, int] = {}  # array-of-tables path -> elements so far
        self.table: KeyPath = ()

    def run(self) -> dict[KeyPath, int]:
        try:
            while self.pos < len(self.text):
                self._statement()
        except IndexError:  # text that tomllib would refuse: keep what was found
            pass
        return self.lines

    # -- characters ---------------------------------------------------------------------

    def _peek(self, count: int = 1) -> str:
        return self.text[self.pos : self.pos + count]

    def _advance(self, count: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + count)
        self.pos += count

    def _blank(self, newlines: bool) -> None:
        """Skip spaces, tabs, comments and (if `newlines`) line ends."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self._advance()
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self._advance((len(self.text) if end < 0 else end) - self.pos)
            else:
                return

    # -- statements ---------------------------------------------------------------------

    def _statement(self) -> None:
        self._blank(newlines=True)
        if self.pos >= len(self.text):
            return
        start = self.line
        if self._peek(2) == "[[":
            self._advance(2)
            name = self._key()
            self._blank(newlines=False)
            self._advance(2)
            parent = self._resolve(name[:-1])
            array = (*parent, name[-1])
            index = self.arrays.get(array, 0)
            self.arrays[array] = index + 1
            self.table = (*array, index)
            self.lines.setdefault(array, start)
            self.lines[self.table] = start
        elif self._peek() == "[":
            self._advance()
            name = self._key()
            self._blank(newlines=False)
            self._advance()
            self.table = self._resolve(name)
            self.lines.setdefault(self.table, start)
        else:
            self._keyvalue(self.table)
        self._rest_of_line()

    def _rest_of_line(self) -> None:
        self._blank(newlines=False)
        while self.pos < len(self.text) and self.text[self.pos] not in "\r\n":
            self._advance()  # not expected in valid TOML; skip to the next line

    def _resolve(self, name: KeyPath) -> KeyPath:
        """A header's dotted name with the current element of each array of tables in it."""
        resolved: list[str | int] = []
        for part in name:
            resolved.append(part)
            count = self.arrays.get(tuple(resolved))
            if count:
                resolved.append(count - 1)
        return tuple(resolved)

    def _key(self) -> KeyPath:
        """A dotted key: bare or quoted parts separated by dots."""
        parts: list[str | int] = []
        while True:
            self._blank(newlines=False)
            char = self._peek()
            if char == '"':
                parts.append(_decoded(self._string()))
            elif char == "'":
                parts.append(self._string())
            else:
                match = _BARE.match(self.text, self.pos)
                if match is None:
                    return tuple(parts)
                parts.append(match.group())
                self._advance(match.end() - self.pos)
            self._blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._advance()

    def _keyvalue(self, table: KeyPath) -> None:
        start = self.line
        path = (*table, *self._key())
        self.lines.setdefault(path, start)
        self._blank(newlines=False)
        if self._peek() == "=":
            self._advance()
        self._blank(newlines=False)
        self._value(path)

    # -- values -------------------------------------------------------------------------

    def _value(self, path: KeyPath) -> None:
        char = self._peek()
        if char in "\"'":
            self._string()
        elif char == "[":
            self._array(path)
        elif char == "{":
            self._inline_table(path)
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}#\r\n \t":
                self._advance()

    def _array(self, path: KeyPath) -> None:
        self._advance()
        index = 0
        while True:
            self._blank(newlines=True)
            if self._peek() == "]":
                self._advance()
                return
            if self._peek() == ",":
                self._advance()
                continue
            if self.pos >= len(self.text):
                return
            self.lines.setdefault((*path, index), self.line)
            self._progress(self._value, (*path, index))
            index += 1

    def _inline_table(self, path: KeyPath) -> None:
        self._advance()
        while True:
            self._blank(newlines=True)
            if self._peek() == "}":
                self._advance()
                return
            if self._peek() == ",":
                self._advance()
                continue
            if self.pos >= len(self.text):
                return
            self._progress(self._keyvalue, path)

    def _progress(self, step: Callable[[KeyPath], None], path: KeyPath) -> None:
        """Run one step of an array or inline table; skip a character it could not read."""
        start = self.pos
        step(path)
        if self.pos == start:
            self._advance()

    def _string(self) -> str:
        """A basic, literal or multi-line string; returns its raw contents (for quoted keys)."""
        quote = self._peek()
        if self._peek(3) == quote * 3:
            self._advance(3)
            end = self.text.find(quote * 3, self.pos)
            while end >= 0 and quote == '"' and _escaped(self.text, end):
                end = self.text.find(quote * 3, end + 1)
            end = len(self.text) if end < 0 else end
            while self.text.startswith(quote, end + 3):  # up to two quotes may end the contents
                end += 1
            value = self.text[self.pos : end]
            self._advance(end + 3 - self.pos)
            return value
        self._advance()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] != quote:
            if quote == '"' and self.text[self.pos] == "\\":
                self._advance()
            self._advance()
        value = self.text[start : self.pos]
        self._advance()
        return value


def _escaped(text: str, pos: int) -> bool:
    """Whether the character at `pos` follows an odd number of backslashes."""
    count = 0
    while pos - count - 1 >= 0 and text[pos - count - 1] == "\\":
        count += 1
    return count % 2 == 1

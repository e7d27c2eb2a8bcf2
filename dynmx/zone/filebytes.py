"""A zone file's bytes: read within a size limit (checked before and while reading), decoded
as UTF-8, and named by a digest so that a reload parses only what changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dynmx.errors import Problem, ZoneLoadError
from dynmx.zone.limits import DEFAULT_MAX_FILE_SIZE


def file_digest(data: bytes) -> bytes:
    """Names a file's bytes: a reload parses a zone again only when they changed."""
    return new_digest(data).digest()


def new_digest(data: bytes = b"") -> hashlib.blake2b:
    """The hash behind `file_digest`, for bytes that come in pieces."""
    return hashlib.blake2b(data, digest_size=16)


def read_zone_bytes(path: Path, limit: int = DEFAULT_MAX_FILE_SIZE) -> bytes:
    """The file's bytes; ZoneLoadError when it cannot be read or holds more than `limit`
    (checked before reading, and while reading a file that grows)."""
    try:
        with path.open("rb") as source:  # buffered: a read of n bytes returns n unless at the end
            size = os.fstat(source.fileno()).st_size
            check_size(path, size, limit, stat=True)
            data = source.read(size + 1)  # as stat saw it, and a byte more to see it grew
            if len(data) > size:
                data += source.read(limit + 1 - len(data))
    except OSError as error:
        raise ZoneLoadError(
            [Problem(str(path), 0, f"cannot read zone file: {error.strerror or error}")]
        ) from None
    check_size(path, len(data), limit)
    return data


def read_digest(path: Path, limit: int = DEFAULT_MAX_FILE_SIZE) -> bytes:
    """`file_digest` of the file, read a piece at a time (a large file need not be held to
    learn it is unchanged); ZoneLoadError as `read_zone_bytes`."""
    digest = new_digest()
    read = 0
    try:
        with path.open("rb") as source:
            check_size(path, os.fstat(source.fileno()).st_size, limit, stat=True)
            while piece := source.read(min(1 << 20, limit + 1 - read)):
                digest.update(piece)
                read += len(piece)
                check_size(path, read, limit)
    except OSError as error:
        raise ZoneLoadError(
            [Problem(str(path), 0, f"cannot read zone file: {error.strerror or error}")]
        ) from None
    return digest.digest()


def check_size(path: Path, size: int, limit: int, stat: bool = False) -> None:
    """ZoneLoadError for a file over `limit`: its `size` as stat gives it, or as much as was read."""
    if size > limit:
        held = f"{size:,} bytes" if stat else f"over {limit:,} bytes when read"
        reason = f"zone file of {held}, larger than max_zone_file_size ({limit:,} bytes): not loaded"
        raise ZoneLoadError([Problem(str(path), 0, reason)])


def decode_text(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        reason = f"not UTF-8 text: byte 0x{data[error.start]:02x} cannot be decoded"
        raise ZoneLoadError([Problem(str(path), line, reason)]) from None

"""A zone file written atomically: temp file, fsync, rename, fsync of the directory.

A crash leaves the old file or the new one, never half of either; the digest of what was
written comes back, so a reload that reads the file again knows it for this version.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, cast

import dns.zone

from dynmx.filemode import keep_mode
from dynmx.zone.filebytes import new_digest
from dynmx.zone.soa import serial_of


class _HashingFile:
    """The file `Zone.to_file` writes to (it writes bytes when it can), hashing as it goes:
    the digest costs no second pass and no copy of a large zone's text."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = new_digest()

    def write(self, data: bytes | str) -> int:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        self.digest.update(raw)
        return self.out.write(raw)


def write_atomically(path: Path, zone: dns.zone.Zone, *, exclusive: bool = False) -> bytes:
    """Temp file in the same directory, fsync, rename, fsync the directory: old or new, never half.
    `exclusive`: FileExistsError rather than replace a file that is there (a hard link, not a
    rename, puts it in place: the check and the creation are one step).

    Returns the digest of the bytes written (`file_digest`): a reload that reads them back
    knows them for this version and does not parse them again."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        keep_mode(handle, path)
        with os.fdopen(handle, "wb") as out:
            hashing = _HashingFile(out)
            hashing.write(f"; written by dynmx; serial {serial_of(zone)}\n")
            hashing.write(f"$ORIGIN {zone.origin}\n")
            zone.to_file(cast(BinaryIO, hashing), sorted=True, relativize=False, want_origin=False)
            out.flush()
            os.fsync(out.fileno())
        if exclusive:
            os.link(temp, path)
            os.unlink(temp)
        else:
            os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return hashing.digest.digest()

"""The control listener's token: a secret in `STATE_DIR/control.token` that the CLI sends.

The HTTP control listener (`[http] listen`) answers any process that can reach its port,
and any web page through a browser; the token says who may change state there (as rndc's
key, the PowerDNS API key). The server makes it at its first start with a listener: 32
random octets, URL-safe base64, written to a private temporary file (mode 0600, O_EXCL)
and linked into place, so the file never exists with other content or another mode and a
symlink planted at its name is never followed. Existing tokens are read with O_NOFOLLOW
and refused when the file is not a regular file of this user readable by no one else (as
ssh refuses a private key others can read): delete it and reload for a new one. The local
control socket needs no token: its file mode authorizes, as knotc's does.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import os
import secrets
import stat
import tempfile
from pathlib import Path

TOKEN_FILE = "control.token"
MIN_LENGTH = 16  # characters of a token written by hand
MAX_LENGTH = 512


class TokenError(PermissionError):
    """The token file cannot be used (an OSError, so starting a listener fails with it)."""


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def ensure_token(state_dir: Path) -> str:
    """The token of `state_dir`, made first when there is none."""
    path = token_path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        return read_token(path, private=True)
    except FileNotFoundError:
        pass
    fd, temporary = tempfile.mkstemp(prefix=".control.token-", dir=state_dir)  # 0600, O_EXCL
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # made meanwhile by another: that one stands
            os.link(temporary, path, follow_symlinks=False)
    finally:
        os.unlink(temporary)
    return read_token(path, private=True)


def read_token(path: Path, private: bool = False) -> str:
    """The token in `path`; `private` also refuses a file that others may read or that another
    user owns (the server's check; a client reading one it can read need not judge it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise TokenError(f"{path}: a symbolic link; the token must be a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise TokenError(f"{path}: not a regular file")
        if private and (info.st_uid != os.geteuid() or info.st_mode & 0o077):
            raise TokenError(
                f"{path}: readable by others or not owned by this user (mode {info.st_mode & 0o777:04o});"
                " remove it to have a new token made, or chmod 600 it"
            )
        data = os.read(fd, MAX_LENGTH + 2)
    finally:
        os.close(fd)
    token = data.decode("ascii", "replace").strip()
    if not MIN_LENGTH <= len(token) <= MAX_LENGTH or not token.isascii() or not token.isprintable():
        raise TokenError(f"{path}: expected one line of {MIN_LENGTH}-{MAX_LENGTH} printable characters")
    if " " in token:
        raise TokenError(f"{path}: a token has no spaces")
    return token


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization: Bearer TOKEN` header carries `token` (compared in constant time)."""
    if not authorization or not token:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode())

"""The control token file (`dynmx.control.token`): made private and safely, refused when others
can read it or it is a link, compared in constant time."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from dynmx.control.token import TokenError, bearer_matches, ensure_token, read_token


def test_a_token_file_that_others_can_read_or_a_link_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    token = ensure_token(state)
    assert ensure_token(state) == token
    path = state / "control.token"
    path.chmod(0o644)
    with pytest.raises(TokenError, match="readable by others"):
        ensure_token(state)
    assert read_token(path) == token  # a client may read what it can
    path.unlink()
    (tmp_path / "elsewhere").write_text("y" * 43 + "\n")
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TokenError, match="symbolic link"):
        ensure_token(state)
    path.unlink()
    path.write_text("short\n")
    path.chmod(0o600)
    with pytest.raises(TokenError, match="printable"):
        ensure_token(state)
    assert not [p for p in state.iterdir() if p.name.startswith(".control.token-")]


def test_a_new_token_is_private_and_random(tmp_path: Path) -> None:
    first = ensure_token(tmp_path / "a")
    second = ensure_token(tmp_path / "b")
    assert first != second and len(first) >= 43
    info = (tmp_path / "a" / "control.token").lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()


def test_racing_starts_agree_on_one_token(tmp_path: Path) -> None:
    state = tmp_path / "state"
    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(ensure_token(state))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found) == 8


def test_bearer_matches_only_the_token() -> None:
    token = "A" * 43
    assert bearer_matches(f"Bearer {token}", token)
    assert bearer_matches(f"bearer  {token} ", token)
    assert not bearer_matches(f"Basic {token}", token)
    assert not bearer_matches("Bearer " + "A" * 42, token)
    assert not bearer_matches(None, token)
    assert not bearer_matches("Bearer ", "")
    assert not bearer_matches("Bearer \udcff", token)

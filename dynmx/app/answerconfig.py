"""Which parts of the config shape the compiled answers: a reload that changes only others
keeps the table it serves (NSD's and Knot's reload likewise leave zones alone that a
changed setting does not touch)."""

from __future__ import annotations

import dataclasses

from dynmx.config import Config, Dyndns2Config, HttpConfig, LogConfig


def answers_alike(old: Config, new: Config) -> bool:
    """Whether a table compiled under `old` is the one `new` would compile."""
    return old == new or _answer_part(old) == _answer_part(new)


def _answer_part(config: Config) -> Config:
    """Without the control listener, the log level (applied at start), the dyndns2 listener
    and the registrars' DS push: none is read by the table's compile (`build_table`)."""
    return dataclasses.replace(
        config, http=HttpConfig(), log=LogConfig(), dyndns2=Dyndns2Config(), registrar=()
    )

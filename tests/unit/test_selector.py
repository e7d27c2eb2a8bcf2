"""A pool's selector by plain calls: rotation, and the DO=1 side of a zone dynmx signs, which
serves the signed variants of whatever generation its parent holds."""

from __future__ import annotations

import random

from dynmx.answer.dynamic import ROTATE, Selector, SelectorState, SignedSelector
from dynmx.wire.response import Entry

HERE = ("127.0.0.1", 5300)


def _entry(body: bytes) -> Entry:
    return Entry(rcode=0, authoritative=True, body=body, spans=())


def _state(*bodies: bytes, signed: SelectorState | None = None) -> SelectorState:
    return SelectorState(
        variants=tuple(_entry(body) for body in bodies),
        firsts=tuple(body.decode() for body in bodies),
        mode=ROTATE,
        cumulative=(),
        hints={},
        hits=[0] * len(bodies),
        signed=signed,
    )


def _generation(*names: str) -> SelectorState:
    return _state(*(n.encode() for n in names), signed=_state(*(f"{n}+sig".encode() for n in names)))


def test_rotation_gives_each_variant_in_turn() -> None:
    selector = Selector("pool", _state(b"a", b"b", b"c"), None, random.Random(1).random)
    assert [selector.pick(HERE).body for _ in range(4)] == [b"a", b"b", b"c", b"a"]  # type: ignore[union-attr]


def test_the_signed_side_picks_the_signed_variants_of_its_parents_generation_rfc_4035() -> None:
    parent = Selector("pool", _generation("a", "b"), None, random.Random(1).random)
    signed = SignedSelector(parent)
    assert [signed.pick(HERE).body for _ in range(2)] == [b"a+sig", b"b+sig"]  # type: ignore[union-attr]


def test_a_new_generation_reaches_the_signed_side_at_once() -> None:
    parent = Selector("pool", _generation("a", "b"), None, random.Random(1).random)
    signed = SignedSelector(parent)
    parent.replace(_generation("c"))
    assert signed.pick(HERE).body == b"c+sig"  # type: ignore[union-attr]
    assert signed.first_counts() == {"c+sig": 1}


def test_a_generation_without_signatures_is_served_as_it_is_by_the_signed_side() -> None:
    parent = Selector("pool", _generation("a"), None, random.Random(1).random)
    signed = SignedSelector(parent)
    parent.replace(_state(b"plain"))
    assert signed.pick(HERE).body == b"plain"  # type: ignore[union-attr]

"""The exception tree drawn in errors.py's docstring is the whole tree (design.md, one exception
tree): every class rooted on DynmxError, wherever defined, is drawn under its parent."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dynmx.errors

PACKAGE = Path(__file__).resolve().parents[2] / "dynmx"


def _bases() -> dict[str, set[str]]:
    """Every class in the package by name, with the names of its bases."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                names = {b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases}
                found.setdefault(node.name, set()).update(names)
    return found


def _rooted_on_dynmx_error(bases: dict[str, set[str]]) -> set[str]:
    rooted = {"DynmxError"}
    for _ in range(len(bases)):  # a fixed point within as many rounds as there are classes
        more = {name for name, parents in bases.items() if parents & rooted} - rooted
        if not more:
            break
        rooted |= more
    return rooted


def _drawn() -> dict[str, int]:
    """Class name -> depth in the drawing (0: DynmxError)."""
    doc = dynmx.errors.__doc__ or ""
    drawn = {}
    for line in doc.splitlines():
        match = re.match(r"^    ((?:\|   |    )*)(?:\+-- )?([A-Z]\w+)\b", line)
        if match and (match.group(2) == "DynmxError" or "+--" in line):
            drawn[match.group(2)] = len(match.group(1)) // 4 + (0 if match.group(2) == "DynmxError" else 1)
    return drawn


def test_every_dynmx_error_is_drawn_in_the_tree() -> None:
    missing = sorted(_rooted_on_dynmx_error(_bases()) - set(_drawn()))
    assert not missing, f"not drawn in errors.py's docstring: {missing}"


def test_every_drawn_class_is_rooted_on_dynmx_error() -> None:
    strays = sorted(set(_drawn()) - _rooted_on_dynmx_error(_bases()))
    assert not strays, f"drawn but not DynmxError subclasses: {strays}"


def test_the_tree_names_the_three_errors_that_cross_modules() -> None:
    """SelfCheckError, RegistrarDiscoveryError and UpdateRefused are caught far from where
    they are raised (app, cli): they hang directly under DynmxError."""
    drawn = _drawn()
    assert {
        name: drawn.get(name) for name in ("SelfCheckError", "RegistrarDiscoveryError", "UpdateRefused")
    } == {
        "SelfCheckError": 1,
        "RegistrarDiscoveryError": 1,
        "UpdateRefused": 1,
    }

"""Imports point downward only (design.md, Layers): checked by walking the AST."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dynmx"

# Layer order, top first; a module may import its own layer and those below it.
LAYERS = ["cli", "app", "server", "control", "health", "selfcheck", "policy", "answer", "zone", "wire"]
# Shared leaves anyone may import.
COMMON = {"errors", "config", "config_lines", "logs", "metrics", "__init__", "__main__"}
SANS_IO = {"wire", "policy", "zone", "answer"}
IO_MODULES = {"asyncio", "socket", "selectors", "dns.query", "dns.asyncquery", "httpx", "dynmx.server"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _layer_of(module_path: Path) -> str:
    relative = module_path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_known_layer() -> None:
    for path in _modules():
        layer = _layer_of(path)
        assert layer in LAYERS or layer in COMMON, f"{path}: not in design.md's layers"


def test_imports_point_downward_only() -> None:
    problems = []
    for path in _modules():
        layer = _layer_of(path)
        if layer in COMMON:
            continue
        rank = LAYERS.index(layer)
        for name in _imports(path):
            if not name.startswith("dynmx."):
                continue
            target = name.split(".")[1]
            if target in COMMON:
                continue
            if LAYERS.index(target) < rank:
                problems.append(f"{path.relative_to(PACKAGE)} imports {name} (layer above)")
    assert not problems, "\n".join(problems)


def test_sans_io_layers_import_no_event_loop_sockets_or_server() -> None:
    problems = []
    for path in _modules():
        if _layer_of(path) not in SANS_IO:
            continue
        for name in _imports(path):
            if any(name == bad or name.startswith(bad + ".") for bad in IO_MODULES):
                problems.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not problems, "\n".join(problems)


def test_wire_imports_nothing_but_errors_and_stdlib() -> None:
    problems = []
    for path in (PACKAGE / "wire").rglob("*.py"):
        for name in _imports(path):
            if name.startswith("dns") or (
                name.startswith("dynmx.") and not name.startswith(("dynmx.wire", "dynmx.errors"))
            ):
                problems.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not problems, "\n".join(problems)


def test_server_never_imports_dnspython() -> None:
    """server/ moves bytes (design.md); DNS logic stays below it."""
    problems = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in (PACKAGE / "server").rglob("*.py")
        for name in _imports(path)
        if name == "dns" or name.startswith("dns.")
    ]
    assert not problems, "\n".join(problems)

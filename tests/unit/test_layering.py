"""Imports point downward only (design.md, Layers): checked by walking the AST.

The rules, as enforced here:

* Layers, top first: cli, app, server, control, health, selfcheck, policy, answer, zone, wire.
  A module may import its own layer and those below it; every import counts, also one inside
  a function or under TYPE_CHECKING (a lazy import upward is still an arrow upward).
  `__main__` is the entry point and sits above cli; `dynmx/__init__.py` imports nothing.
* Leaves that any module may import, and that import no layer: `errors`, `config_lines`,
  `logs`, `filemode` (they import only each other), and `metrics` (only the leaves above: app
  hands its collectors the callables and numbers they read).
* `config` and its `config_*` modules are leaves too: they import each other, the leaves above
  and the vocabulary leaves `health.kinds` and `zone.limits`, which import nothing from dynmx;
  so loading a config loads no probe, httpx, asyncio or zone parser.
* No import cycle among modules (module-level imports; TYPE_CHECKING blocks and imports
  inside functions are not run at import time, so they are left out).
* The zone writer (`control.writer` and the pieces it is made of: `versions`, `edit_validation`,
  `diffs`, `zonefile`) and the journal (`control.journal`) are control/'s: other layers go
  through `control.owner` and friends.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Set
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "dynmx"

# Layer order, top first; a module may import its own layer and those below it.
LAYERS = [
    "cli",
    "app",
    "server",
    "control",
    "store",
    "health",
    "selfcheck",
    "policy",
    "answer",
    "zone",
    "wire",
]
LEAVES = {"errors", "config_lines", "logs", "filemode"}  # import nothing of dynmx but each other
VOCABULARY = {"dynmx.health.kinds", "dynmx.zone.limits"}  # import nothing of dynmx at all
CONFIG = {  # the config: a leaf made of modules with one job each, importing each other
    "config",
    "config_build",
    "config_choices",
    "config_keys",
    "config_pools",
    "config_reload",
    "config_schema",
    "config_selfcheck",
    "config_server",
    "config_values",
    "config_zones",
}
MAY_IMPORT = {  # what each top-level module outside the layers may import from dynmx
    "errors": LEAVES,
    "config_lines": LEAVES,
    "logs": LEAVES,
    "filemode": LEAVES,
    "metrics": LEAVES,
    **{module: LEAVES | VOCABULARY | CONFIG for module in CONFIG},
    "__init__": set(),
    "__main__": {"cli"},
}
COMMON = set(MAY_IMPORT) - {"__main__"}  # what any layer may import
PRIVATE_TO_CONTROL = {  # the writer, its pieces, and the journal
    "dynmx.control.writer",
    "dynmx.control.versions",
    "dynmx.control.edit_validation",
    "dynmx.control.diffs",
    "dynmx.control.zonefile",
    "dynmx.control.journal",
}
# app still writes secondary and catalog zone files and builds the journal itself: the split of
# App (issue 28) moves these behind control/. Listed exactly, so the list can only shrink.
APP_WRITER_DEBT = {
    "app/root.py": {"dynmx.control.writer"},
    "app/catalog.py": {"dynmx.control.writer"},
    "app/secondary.py": {"dynmx.control.writer"},
    "app/transfer_service.py": {"dynmx.control.journal"},
}
SANS_IO = {"wire", "policy", "zone", "answer"}
IO_MODULES = {"asyncio", "socket", "selectors", "dns.query", "dns.asyncquery", "httpx", "dynmx.server"}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _names(node: ast.stmt, modules: Set[str]) -> set[str]:
    """The modules one import statement names: `from a import b` names a.b if that is one of
    `modules`, else a."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return {
            f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
            for alias in node.names
        }
    return set()


def imports_in(source: str, *, module_level: bool = False, modules: Set[str] = frozenset()) -> set[str]:
    """Every module `source` imports; with `module_level`, only those run when it is imported
    (not inside functions or methods, not under TYPE_CHECKING). `modules`: the package's own,
    to tell `from package import module` from `from module import name`."""
    tree = ast.parse(source)
    if not module_level:
        return {
            name for node in ast.walk(tree) if isinstance(node, ast.stmt) for name in _names(node, modules)
        }
    found: set[str] = set()
    todo: list[ast.stmt] = list(tree.body)
    for _ in range(100_000):  # bounded: a module has far fewer statements
        if not todo:
            break
        node = todo.pop()
        found |= _names(node, modules)
        if isinstance(node, ast.If) and not _is_type_checking(node):
            todo += node.body + node.orelse
        elif isinstance(node, ast.Try):
            todo += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        elif isinstance(node, ast.With):
            todo += node.body
    return found


def _imports(path: Path) -> set[str]:
    return imports_in(path.read_text())


def _layer_of(module_path: Path) -> str:
    relative = module_path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _sources(root: Path = PACKAGE) -> dict[str, str]:
    """{path relative to the package, as `a/b.py`: source} of every module."""
    return {path.relative_to(root).as_posix(): path.read_text() for path in sorted(root.rglob("*.py"))}


def _module_name(relative: str) -> str:
    parts = ["dynmx", *relative.removesuffix(".py").split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_problems(sources: Mapping[str, str]) -> list[str]:
    """Every import in `sources` ({`layer/module.py`: text}) that breaks the rules above."""
    problems = []
    known = {_module_name(relative) for relative in sources}
    for relative, source in sources.items():
        layer = relative.split("/")[0].removesuffix(".py")
        for name in sorted(imports_in(source, modules=known)):
            if not name.startswith("dynmx.") or name in VOCABULARY:
                continue
            target = name.split(".")[1]
            if layer in MAY_IMPORT:
                allowed = MAY_IMPORT[layer]
                if target not in allowed and name not in allowed:
                    problems.append(f"{relative} imports {name} (a leaf imports only {sorted(allowed)})")
            elif target in COMMON:
                continue
            elif LAYERS.index(target) < LAYERS.index(layer):
                problems.append(f"{relative} imports {name} (layer above)")
    return problems


def cycles(sources: Mapping[str, str]) -> list[list[str]]:
    """Import cycles among the modules of `sources`, by module-level imports only."""
    known = {_module_name(relative) for relative in sources}
    graph = {
        _module_name(relative): sorted(
            name for name in imports_in(source, module_level=True, modules=known) if name in known
        )
        for relative, source in sources.items()
    }
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path: list[str] = [start]
        stack = [iter(graph[start])]
        state[start] = 1
        while stack:  # depth first, without recursion; each module is entered once
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return found


def test_every_module_has_a_known_layer() -> None:
    for path in _modules():
        layer = _layer_of(path)
        assert layer in LAYERS or layer in MAY_IMPORT, f"{path}: not in design.md's layers"


def test_imports_point_downward_only() -> None:
    problems = layer_problems(_sources())
    assert not problems, "\n".join(problems)


def test_the_layer_check_catches_an_upward_import() -> None:
    """The checker itself, on a made-up tree: zone importing answer, and config importing health's
    probes, are caught; a downward import is not."""
    fake = {
        "zone/loader.py": "import dns.zone\nfrom dynmx.wire.query import Query\n",
        "zone/bad.py": "def f():\n    from dynmx.answer.engine import Engine\n",
        "config.py": "from dynmx.errors import ConfigError\nfrom dynmx.health import probes\n",
        "health/probes.py": "import httpx\n",
        "metrics.py": "from dynmx.app import App\n",
    }
    assert layer_problems(fake) == [
        "zone/bad.py imports dynmx.answer.engine (layer above)",
        f"config.py imports dynmx.health.probes (a leaf imports only {sorted(MAY_IMPORT['config'])})",
        f"metrics.py imports dynmx.app (a leaf imports only {sorted(LEAVES)})",
    ]


def test_vocabulary_leaves_import_nothing_of_dynmx() -> None:
    sources = _sources()
    problems = [
        f"{relative} imports {name}"
        for relative, source in sources.items()
        if _module_name(relative) in VOCABULARY
        for name in imports_in(source)
        if name.startswith("dynmx")
    ]
    assert not problems, "\n".join(problems)


def test_no_import_cycle() -> None:
    found = cycles(_sources())
    assert not found, "\n".join(" -> ".join(cycle) for cycle in found)


def test_the_cycle_check_catches_a_cycle_but_not_a_type_checking_import() -> None:
    fake = {
        "health/a.py": "from dynmx.health.b import B\n",
        "health/b.py": "from dynmx.health.c import C\n",
        "health/c.py": "import dynmx.health.a\n",
        "health/d.py": "import typing\nif typing.TYPE_CHECKING:\n    from dynmx.health.e import E\n",
        "health/e.py": "from dynmx.health.d import D\ndef f():\n    import dynmx.health.e\n",
    }
    assert cycles(fake) == [["dynmx.health.a", "dynmx.health.b", "dynmx.health.c", "dynmx.health.a"]]


def test_only_control_imports_the_writer_and_the_journal() -> None:
    """One owner of zone data (issue 22): the writer and the journal are reached through control/
    (its owner, writeback, zones), never directly from cli or server."""
    found: dict[str, set[str]] = {}
    for relative, source in _sources().items():
        if relative.startswith("control/"):
            continue
        private = {name for name in imports_in(source) if name in PRIVATE_TO_CONTROL}
        if private:
            found[relative] = private
    assert found == APP_WRITER_DEBT


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

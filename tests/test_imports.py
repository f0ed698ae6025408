"""The import graph of bioweb/ has no cycles, and the dashboard does not reach into the API.

Every `import` and `from ... import` in bioweb/ counts, at module level or inside a function
(a lazy import hides a cycle, it does not remove it); relative imports are resolved; a name
imported from a package counts as its submodule when there is one, else as the package's
__init__. Migrations are scripts, not part of the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bioweb"

# Cycles known and accepted for now, each to be removed by its owner (none today: the dashboard's
# blueprints import their shared helpers from views/helpers.py, not from the package).
KNOWN_CYCLES: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}


def imports_of(name: str, path: Path, modules: dict[str, Path] | set[str]) -> set[str]:
    """The bioweb modules that module `name` (at `path`) imports, anywhere in its code."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return {module for module in found if module in modules and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _without_known(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {
        name: {target for target in targets if frozenset({name, target}) not in KNOWN_CYCLES}
        for name, targets in graph.items()
    }


def test_bioweb_has_no_import_cycles():
    found = cycles(_without_known(_graph()))
    assert found == [], (
        "import cycles in bioweb/ (a module in each group imports, maybe lazily, one that imports it "
        f"back; route modules import bioweb.api.core, not the package): {found}"
    )


def test_known_cycles_are_still_there():
    """An entry of KNOWN_CYCLES that no longer exists must be removed from it."""
    graph = _graph()
    for pair in KNOWN_CYCLES:
        first, second = sorted(pair)
        assert second in graph[first] and first in graph[second], f"{sorted(pair)} is gone: drop it"


def test_dashboard_never_imports_the_api():
    offenders = {
        name: sorted(t for t in targets if t == "bioweb.api" or t.startswith("bioweb.api."))
        for name, targets in _graph().items()
        if name == "bioweb.views" or name.startswith("bioweb.views.")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_events_only_writes_and_imports_no_other_service():
    assert not {t for t in _graph()["bioweb.services.events"] if t.startswith("bioweb.services")}


def test_the_walker_resolves_relative_and_lazy_imports(tmp_path):
    package = tmp_path / "bioweb" / "things"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from . import a\n")
    (package / "a.py").write_text(
        "from .. import models\nfrom . import b, helper_name\n\ndef later():\n    from .b import x\n"
    )
    modules = {"bioweb", "bioweb.models", "bioweb.things", "bioweb.things.a", "bioweb.things.b"}
    assert imports_of("bioweb.things", package / "__init__.py", modules) == {"bioweb.things.a"}
    assert imports_of("bioweb.things.a", package / "a.py", modules) == {
        "bioweb.models",  # a submodule of the package it is imported from
        "bioweb.things.b",  # module level and inside a function
        "bioweb.things",  # helper_name is no module: the package's __init__
    }
    graph = {
        "bioweb.things": {"bioweb.things.a"},
        "bioweb.things.a": {"bioweb.things", "bioweb.models"},
        "bioweb.models": set(),
    }
    assert cycles(graph) == [["bioweb.things", "bioweb.things.a"]]

"""The package's shape: the imports of index/ and bot/ form no cycle, and index/ (the
knowledge side) never imports bot/ (the front ends). Imports inside functions count too:
a lazy import only hides a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("index", "bot")


def imports_of(path: Path, package: str) -> set[str]:
    """The project modules ``path`` imports, as dotted names (``index.models``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package if node.level == 1 else ""
                module = ".".join(part for part in (base, node.module or "") if part)
            else:
                module = node.module or ""
            # ``from index import bm25`` imports the module index.bm25.
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in PACKAGES}
    return found


def module_graph() -> dict[str, set[str]]:
    files = {
        f"{package}.{path.stem}": path
        for package in PACKAGES
        for path in sorted((REPO / package).glob("*.py"))
        if path.stem != "__init__"
    }
    graph = {}
    for name, path in files.items():
        targets = imports_of(path, name.split(".")[0])
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read() -> None:
    graph = module_graph()
    assert "index.models" in graph["index.answer"]
    assert "index.bm25" in graph["index.ingest"]  # ``from index import bm25``
    assert any(target.startswith("index.") for target in graph["bot.cli"])


def test_no_import_cycle() -> None:
    assert find_cycle(module_graph()) is None


def test_index_never_imports_bot() -> None:
    graph = module_graph()
    wrong = {
        name: sorted(t for t in targets if t.startswith("bot.")) for name, targets in graph.items()
    }
    assert {name: t for name, t in wrong.items() if name.startswith("index.") and t} == {}


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),  # a diamond is no cycle
    ],
)
def test_find_cycle(graph: dict[str, set[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle

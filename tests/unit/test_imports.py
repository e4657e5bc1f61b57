"""No import cycles among the harness's modules.

Every ``import``/``from ... import`` in a harness module counts, at module level and
inside functions alike (a function-level import only postpones a cycle, it does not remove
it), except those under ``if TYPE_CHECKING:``, which never run. An edge goes to the module
named: ``from harness import images`` is an edge to ``harness.images``, ``from
harness.images.docker import x`` one to ``harness.images.docker``; the parent package that
Python initialises on the way is not counted, or every package whose ``__init__`` imports
its own submodules would be a cycle. References resolved at run time
(``importlib.import_module``, e.g. the run's noted cleanups) are not imports.

Run as a script to print the graph's cycles: ``python tests/unit/test_imports.py``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "harness"


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for every module of the package."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, skipping ``if TYPE_CHECKING:`` bodies."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.orelse:
            yield from _imports(stmt)
        return
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _imports(child)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the harness modules it imports."""
    files = module_files(root)
    modules = set(files)

    def target(name: str) -> str | None:
        while name and name not in modules:  # `import harness.a.b` where b is a function
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from . import x, from ..a import b
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import sub` imports the submodule; `from mod import name` the module
                names = [f"{base}.{alias.name}" for alias in node.names]
                names = [n if n in modules else base for n in names]
            for name in names:
                if name == PACKAGE or name.startswith(PACKAGE + "."):
                    hit = target(name)
                    if hit is not None and hit != module:
                        edges.add(hit)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The shortest cycle through each import that is part of a cycle, as ``[a, b, ...,
    a]`` starting at its smallest module; sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the graph has a few dozen nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    found: set[tuple[str, ...]] = set()
    for component in components:
        for u in component:
            for v in graph[u] & component:  # the shortest cycle through each edge
                path = _shortest_path(graph, v, u, component)
                cycle = [u, *path[:-1]] if u != v else [u]
                turn = cycle.index(min(cycle))
                found.add(tuple(cycle[turn:] + cycle[:turn]))
    return sorted([*c, c[0]] for c in found)


def _shortest_path(graph: dict[str, set[str]], src: str, dst: str, within: set[str]) -> list[str]:
    """Breadth-first ``[src, ..., dst]`` inside ``within`` (it exists: one component)."""
    paths = {src: [src]}
    queue = [src]
    while queue:
        v = queue.pop(0)
        if v == dst:
            return paths[v]
        for w in sorted(graph[v] & within):
            if w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no path {src} -> {dst}")


def describe(found: list[list[str]]) -> str:
    return "\n".join(" -> ".join(c) for c in found)


def test_the_checker_sees_function_level_imports_and_skips_type_checking(
    tmp_path: Path,
) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from harness import a\n")
    (pkg / "a.py").write_text("def f():\n    from harness.b import g\n")
    (pkg / "b.py").write_text("import harness.a\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness import d\n"
    )
    (pkg / "d.py").write_text("from . import c\n")
    (pkg / "sub" / "__init__.py").write_text("from harness.sub.x import y\n")
    (pkg / "sub" / "x.py").write_text("from ..sub import z\n")
    (pkg / "sub" / "z.py").write_text("")
    graph = import_graph(tmp_path)
    assert graph["harness.d"] == {"harness.c"}
    assert graph["harness.c"] == set()
    assert graph["harness.sub.x"] == {"harness.sub.z"}
    assert cycles(graph) == [["harness.a", "harness.b", "harness.a"]]


def test_no_import_cycles_among_harness_modules() -> None:
    found = cycles(import_graph())
    assert not found, f"import cycles among harness modules:\n{describe(found)}"


if __name__ == "__main__":
    result = cycles(import_graph())
    print(describe(result) or "no import cycles")
    sys.exit(1 if result else 0)

"""The shape of app/, read from its source with ``ast`` (nothing is imported):

* no import cycle between its modules, counting the imports a module runs when it is loaded
  (module level, class bodies and module-level ``if``/``try`` included; imports inside
  functions, and ``if TYPE_CHECKING:`` blocks, which never run, left out);
  A package's ``__init__`` counts when a name is imported from it (``from app.jobs import
  JobQueue``), not merely because one of its submodules is (``from app.jobs.keys import ...``);
* no module over MAX_LINES lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

APP = ROOT / "app"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(APP.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _load_time_imports(tree: ast.Module):
    """The Import and ImportFrom nodes run when the module is loaded."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue  # runs when called, not when loaded
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
        elif isinstance(node, ast.ClassDef):
            pending.extend(node.body)
        elif isinstance(node, ast.stmt):
            pending.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
            if isinstance(node, ast.Try):  # handlers are not statements themselves
                for handler in node.handlers:
                    pending.extend(handler.body)


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The app modules an import statement loads: ``from app.x import y`` loads app.x.y when it
    is a module, else app.x (the package's ``__init__``)."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "app" or alias.name.startswith("app."):
                found.add(alias.name)
        return {name for name in found if name in modules}
    if node.level:  # relative: from the module's package, up level - 1 packages
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        if not node.module or not (node.module == "app" or node.module.startswith("app.")):
            return set()
        base = node.module
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.add(candidate if candidate in modules else base)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: set[str] = set()
        for node in _load_time_imports(tree):
            edges |= _targets(module, path, node, modules)
        graph[module] = edges - {module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_within(graph, set(component)) for component in components]


def _cycle_within(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, by breadth-first search."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & component):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if successor not in parents:
                    parents[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle in {component}")  # a strongly connected component has one


def test_the_checker_finds_cycles_and_reads_imports_as_python_does(tmp_path):
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    modules = {"app": APP / "__init__.py", "app.jobs": APP / "jobs" / "__init__.py", "app.jobs.store": APP / "jobs" / "store.py",
               "app.jobs.keys": APP / "jobs" / "keys.py", "app.settings": APP / "settings.py"}  # fmt: skip
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from . import keys\n"
        "from .. import settings\n"
        "import app.settings\n"
        "from app.jobs import JobQueue\n"
        "try:\n    from .keys import X\nexcept ImportError:\n    from app.settings import Y\n"
        "if TYPE_CHECKING:\n    from app.jobs.store import Z\n"
        "def f():\n    from app.jobs.store import W\n"
    )
    tree = ast.parse(source)
    edges = set()
    for node in _load_time_imports(tree):
        edges |= _targets("app.jobs.store", modules["app.jobs.store"], node, modules)
    assert edges == {"app.jobs.keys", "app.settings", "app.jobs"}


def test_app_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 10, sorted(graph)  # it did find app's modules
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in app/ (module-level imports):\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_no_module_of_app_is_over_400_lines():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in sorted(APP.rglob("*.py"))}
    over = {path: lines for path, lines in sizes.items() if lines > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: " + ", ".join(f"{path} ({lines})" for path, lines in over.items())

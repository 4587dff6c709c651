"""The shape of offload's code (app/ and offload/), read from its source with ``ast`` (nothing
is imported):

* no import cycle between its modules. Every import of one of the project's own modules counts,
  wherever it is written: at module level, in a class body, under ``if TYPE_CHECKING:`` and inside
  a function. A cycle that Python meets only when a function runs, or that only a type checker
  reads, still ties the modules together: neither can be read, tested or moved without the other.
  A package's ``__init__`` counts when a name is imported from it (``from app.jobs import
  JobQueue``), not merely because one of its submodules is (``from app.jobs.keys import ...``);
* the layers' directions (:data:`NEVER`): web -> jobs -> tasks, worker -> jobs; jobs never imports
  web or worker, tasks never import jobs, web or worker, web and worker never import each other,
  the modules below the layers (:data:`FOUNDATION`) import none of them, nothing but dev/ imports
  dev/, and offload/ (the client and the task API a team's own tasks import) never imports app/;
* one door into jobs (:data:`WEB_SEES_OF_JOBS`): app/web imports from ``app.jobs`` itself (the
  package's ``__init__``, its public API) the names listed there and nothing else, never one of
  its modules; and it never imports redis or RQ, which are the job layer's.

Module size follows cohesion: there is no line cap.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from .conftest import ROOT

APP = ROOT / "app"
PACKAGES = ("app", "offload")

#: The modules below every layer: configuration, Redis clients, logs and tracing.
FOUNDATION = ("app.settings", "app.connections", "app.logs", "app.tracing", "app.telemetry")
#: A layer (a package, or a module, and everything in it) and the layers it never imports.
NEVER: dict[str, tuple[str, ...]] = {
    "app.jobs": ("app.web", "app.worker", "app.dev"),
    "app.tasks": ("app.jobs", "app.web", "app.worker", "app.dev"),
    "app.worker": ("app.web", "app.dev"),
    "app.web": ("app.worker", "app.dev"),
    **{module: ("app.web", "app.jobs", "app.tasks", "app.worker", "app.dev") for module in FOUNDATION},
    "offload": ("app",),
}

#: All that app/web may import of the job layer: these names, from ``app.jobs`` itself (the
#: package's ``__init__``: its public API, each name re-exported there explicitly), never from
#: one of its modules. The job service (made once in ``create_app``), who is asking and the
#: idempotency claim the service hands back; the contract (its models, patterns and limits) and
#: the job types; the errors the web answers with a 4xx, and those of Redis not answering (a 503).
WEB_SEES_OF_JOBS = frozenset(
    {
        "JobQueue", "Principal", "ANONYMOUS", "IdempotencyClaim", "RateCount", "RateLimited",
        "schemas", "batch_schemas", "bulk_schemas", "schedule_schemas", "catalog",
        "JobNotFound", "BatchNotFound", "ScheduleNotFound", "UnknownQueue", "JobStateConflict", "InvalidSubmission",
        "QueueFull", "IdempotencyConflict", "IdempotencyInFlight", "ScheduleLimitReached", "STORE_UNAVAILABLE",
    }
)  # fmt: skip
#: Packages app/web never imports: Redis and RQ are the job layer's. (rq-dashboard, which the web
#: mounts, is a package of its own; the job service tells it how offload stores jobs.)
WEB_NEVER = ("redis", "rq")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def _imports(tree: ast.Module):
    """Every Import and ImportFrom node of the module, wherever it is written."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def _is_project(name: str) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in PACKAGES)


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from ... import`` statement imports from."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):  # relative: from the module's package, up level - 1 packages
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The project's modules an import statement names: ``from app.x import y`` names app.x.y when
    it is a module, else app.x (the package's ``__init__``)."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if _is_project(alias.name):
                found.add(alias.name)
        return {name for name in found if name in modules}
    base = _base(module, path, node)
    if not _is_project(base):
        return set()
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        found.add(candidate if candidate in modules else base)
    return {name for name in found if name in modules}


@functools.cache
def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: set[str] = set()
        for node in _imports(tree):
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


def layer_of(module: str) -> str | None:
    """The layer of :data:`NEVER` a module belongs to (the longest that contains it), or None."""
    containing = [layer for layer in NEVER if module == layer or module.startswith(f"{layer}.")]
    return max(containing, key=len, default=None)


def wrong_way(graph: dict[str, set[str]]) -> list[str]:
    """Every import against :data:`NEVER`, as ``importer -> imported``."""
    found = []
    for module, imported in sorted(graph.items()):
        layer = layer_of(module)
        for target in sorted(imported):
            if layer is not None and any(target == never or target.startswith(f"{never}.") for never in NEVER[layer]):
                found.append(f"{module} -> {target}")
    return found


def around_the_door(module: str, path: Path, tree: ast.Module) -> list[str]:
    """Every import of a web module that goes round the job layer's public API
    (:data:`WEB_SEES_OF_JOBS`), or to Redis or RQ, as ``line: statement``; wherever it is written."""
    found = []
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.partition(".")[0] in WEB_NEVER or alias.name == "app.jobs" or alias.name.startswith("app.jobs."):
                    found.append(f"{node.lineno}: import {alias.name}")
            continue
        base = _base(module, path, node)
        for alias in node.names:
            if base == "app.jobs":
                wrong = alias.name not in WEB_SEES_OF_JOBS
            else:
                wrong = (
                    base.startswith("app.jobs.")
                    or base.partition(".")[0] in WEB_NEVER
                    or (base == "app" and alias.name == "jobs")
                )
            if wrong:
                found.append(f"{node.lineno}: from {base} import {alias.name}")
    return found


def _exported(init: Path) -> tuple[list[str], set[str]]:
    """A package's ``__all__``, and the names its ``__init__`` re-exports explicitly
    (``from .x import Y as Y``, ``from . import x as x``)."""
    tree = ast.parse(init.read_text(), filename=str(init))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets):
            names = [element.value for element in node.value.elts]  # type: ignore[attr-defined]
    explicit = {
        alias.asname
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname == alias.name
    }
    return names, explicit


def test_the_checker_finds_cycles_and_reads_every_import_of_the_project():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    modules = {"app": APP / "__init__.py", "app.jobs": APP / "jobs" / "__init__.py", "app.jobs.store": APP / "jobs" / "store.py",
               "app.jobs.keys": APP / "jobs" / "keys.py", "app.settings": APP / "settings.py",
               "app.jobs.batches": APP / "jobs" / "batches.py", "app.jobs.events": APP / "jobs" / "events.py",
               "offload": ROOT / "offload" / "__init__.py", "offload.tasks": ROOT / "offload" / "tasks.py"}  # fmt: skip
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import json, redis\n"
        "from . import keys\n"
        "from .. import settings\n"
        "import app.settings\n"
        "from app.jobs import JobQueue\n"
        "from offload.tasks import Task\n"
        "try:\n    from .keys import X\nexcept ImportError:\n    from app.settings import Y\n"
        "if TYPE_CHECKING:\n    from .batches import Z\n"
        "def f():\n    from app.jobs.events import W\n"
    )
    edges = set()
    for node in _imports(ast.parse(source)):
        edges |= _targets("app.jobs.store", modules["app.jobs.store"], node, modules)
    assert edges == {"app.jobs.keys", "app.settings", "app.jobs", "offload.tasks", "app.jobs.batches", "app.jobs.events"}


def test_the_checker_reads_the_layers_directions():
    graph = {
        "app.web.jobs": {"app.jobs.store", "app.tasks.webhook", "app.settings"},
        "app.jobs.store": {"app.jobs.keys", "app.web.problems"},
        "app.tasks.words": {"offload.tasks", "app.jobs"},
        "app.worker.mixin": {"app.jobs.job"},
        "app.settings": {"app.telemetry", "app.web"},
        "offload.client": {"offload.events", "app.jobs"},
        "app.dev.stack": {"app.web", "app.worker"},
    }
    assert wrong_way(graph) == [
        "app.jobs.store -> app.web.problems",
        "app.settings -> app.web",
        "app.tasks.words -> app.jobs",
        "offload.client -> app.jobs",
    ]
    assert layer_of("app.jobs") == "app.jobs" and layer_of("app.jobsx") is None and layer_of("app") is None


def test_no_import_cycle():
    graph = import_graph()
    assert {"app.jobs.store", "app.web.jobs", "offload.client", "offload.tasks"} <= graph.keys(), sorted(graph)
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (every import of app/ and offload/ modules):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


@pytest.mark.parametrize("layer", sorted(NEVER))
def test_imports_point_the_layers_way(layer):
    graph = {module: imported for module, imported in import_graph().items() if layer_of(module) == layer}
    assert graph, f"no module in {layer}"
    found = wrong_way(graph)
    assert not found, f"{layer} never imports {', '.join(NEVER[layer])}:\n" + "\n".join(found)


def test_the_door_checker_reads_every_way_round():
    source = (
        "from typing import TYPE_CHECKING\n"
        "import redis, json\n"
        "import rq.job\n"
        "import rq_dashboard\n"
        "import app.jobs.store\n"
        "from rq import Worker\n"
        "from ..jobs import JobQueue, schemas\n"
        "from ..jobs import keys\n"
        "from ..jobs.resource import links\n"
        "from .. import jobs\n"
        "from app.jobs import catalog\n"
        "from app.jobs.search import JobFilter\n"
        "from .problems import problem\n"
        "if TYPE_CHECKING:\n    from ..jobs.store import JobQueue\n"
        "def f():\n    from redis.exceptions import RedisError\n"
    )
    found = around_the_door("app.web.views", APP / "web" / "views.py", ast.parse(source))
    assert found == [
        "2: import redis",
        "3: import rq.job",
        "5: import app.jobs.store",
        "6: from rq import Worker",
        "8: from app.jobs import keys",
        "9: from app.jobs.resource import links",
        "10: from app import jobs",
        "12: from app.jobs.search import JobFilter",
        "15: from app.jobs.store import JobQueue",
        "17: from redis.exceptions import RedisError",
    ]


def test_the_web_sees_jobs_only_through_their_public_api():
    modules = {module: path for module, path in _modules().items() if layer_of(module) == "app.web"}
    assert "app.web.jobs" in modules and "app.web.openapi.document" in modules, sorted(modules)
    found = []
    for module, path in sorted(modules.items()):
        tree = ast.parse(path.read_text(), filename=str(path))
        found += [f"{path.relative_to(ROOT)}:{line}" for line in around_the_door(module, path, tree)]
    assert not found, (
        "app/web imports of the job layer only its public API (from app.jobs import one of WEB_SEES_OF_JOBS), "
        "and never redis or rq:\n" + "\n".join(found)
    )


def test_the_public_api_of_jobs_names_what_the_web_sees():
    names, explicit = _exported(APP / "jobs" / "__init__.py")
    assert len(names) == len(set(names))
    assert WEB_SEES_OF_JOBS <= set(names), sorted(WEB_SEES_OF_JOBS - set(names))
    assert set(names) <= explicit, f"re-export explicitly (from .x import Y as Y): {sorted(set(names) - explicit)}"

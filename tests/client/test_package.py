"""offload/ stands on its own: it imports nothing of the server (app/), so it can ship without
Flask, RQ or Redis (tests/test_architecture.py holds this rule too, beside the other layers')."""

from __future__ import annotations

import ast

import pytest

from ..conftest import ROOT

MODULES = sorted((ROOT / "offload").rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_the_client_imports_nothing_of_the_server(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level}
    assert not {name for name in imported if name == "app" or name.startswith("app.")}


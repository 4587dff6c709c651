"""Every Lua script offload runs, loaded by name from ``lua/``, as Dramatiq keeps its broker's.

A script is read once per process and registered on a connection by :func:`register`, which
answers redis-py's :class:`~redis.commands.core.Script` (EVALSHA, and EVAL again after a server
restart flushed its script cache).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("lua")


@functools.cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``; a name without a file raises :class:`FileNotFoundError`."""
    return (LUA / f"{name}.lua").read_text()


def register(connection: Any, name: str) -> Any:
    """The script ``name`` registered on ``connection``, ready to call with ``keys=`` and ``args=``."""
    return connection.register_script(source(name))


def names() -> list[str]:
    """Every script there is, by name."""
    return sorted(path.stem for path in LUA.glob("*.lua"))

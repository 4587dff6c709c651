"""gunicorn.conf.py caps glibc's malloc arenas at two (``mallopt(M_ARENA_MAX, 2)``) in the master
before it forks its gthread workers, unless ``MALLOC_ARENA_MAX`` is set: a worker's 16 threads
each kept an arena of their own (bench/FINDINGS.md section 17: peak RSS after the batch phase
235 -> 164 MiB). Run as gunicorn runs the file, with glibc's mallopt seen through a stand-in."""

from __future__ import annotations

import ctypes
import runpy
import sys
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


class _Libc:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


@pytest.fixture
def mallopt_calls(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setattr(ctypes, "CDLL", lambda name: _Libc(calls))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # no metrics directory of its own
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    return calls


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_master_caps_malloc_arenas_at_two(mallopt_calls):
    runpy.run_path(str(CONF))
    assert mallopt_calls == [(-8, 2)]


def test_malloc_arena_max_in_the_environment_wins(mallopt_calls, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    runpy.run_path(str(CONF))
    assert mallopt_calls == []


"""gunicorn's Prometheus directory (gunicorn.conf.py) does not outlive its server (issue 16).

Every start made a ``/tmp/offload-metrics-*`` directory and nothing removed it: 79 of them on one
developer machine. The master now removes its own on exit, and the next start removes one that a
killed master left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from ..conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def _start(tmp_path, port: int) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PORT": str(port), "WEB_CONCURRENCY": "1", "WEB_THREADS": "2"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # gunicorn reads ./gunicorn.conf.py from its working directory, as make run and the image do.
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=30, what="gunicorn")
    return process


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _metrics_dirs(tmp_path) -> list:
    return sorted(path.name for path in tmp_path.glob("offload-metrics-*"))


def test_gunicorn_removes_its_metrics_directory_on_exit(tmp_path):
    process = _start(tmp_path, free_port())
    try:
        assert len(_metrics_dirs(tmp_path)) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert _metrics_dirs(tmp_path) == []


def test_a_killed_masters_metrics_directory_is_removed_by_the_next_start(tmp_path):
    killed = _start(tmp_path, free_port())
    os.killpg(os.getpgid(killed.pid), 0)  # alive
    left = _metrics_dirs(tmp_path)
    killed.kill()  # SIGKILL: no exit hook runs
    killed.wait(10)
    for child in subprocess.run(["pgrep", "-P", str(killed.pid)], capture_output=True, text=True).stdout.split():
        os.kill(int(child), signal.SIGKILL)  # its orphaned gunicorn workers
    assert _metrics_dirs(tmp_path) == left  # still there
    process = _start(tmp_path, free_port())
    try:
        now = _metrics_dirs(tmp_path)
        assert len(now) == 1 and now != left
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert _metrics_dirs(tmp_path) == []

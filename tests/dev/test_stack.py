"""``make run`` (``python -m app.dev``, app/dev/stack.py): the whole dev stack under
supervisord, with embedded Valkey and SMTP sink, restarting what crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from ..conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.integration


def test_make_run_dev_stack_starts_and_stops_cleanly(tmp_path):
    """``python -m app.dev`` (what ``make run`` execs) with embedded Valkey and SMTP sink."""
    port, redis_port, smtp_port = free_port(), free_port(), free_port()
    env = {
        key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "SMTP_URL")
    } | {"PORT": str(port), "DEV_REDIS_PORT": str(redis_port), "DEV_SMTP_PORT": str(smtp_port),
         "VAR_DIR": str(tmp_path / "var"), "WORKER_COUNT": "2"}  # fmt: skip
    log = open(tmp_path / "stack.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "app.dev"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ok(f"{base}/readyz"), timeout=30, what="the dev stack")
        job = requests.post(
            f"{base}/jobs", json={"type": "send_email", "to": "dev@example.com", "subject": "s", "body": "b"}, timeout=5
        ).json()
        done = requests.get(f"{base}/jobs/{job['id']}?wait=20", timeout=30).json()
        assert done["status"] == "finished", done
        mail = wait_until(lambda: list((tmp_path / "var" / "mail").glob("*.eml")), what="an .eml file")
        assert b"Subject: s" in mail[0].read_bytes()
        assert list((tmp_path / "var" / "valkey").rglob("*.aof*")), "AOF must be on"
        workers = wait_until(
            lambda: len(_workers(base)) == 2 and _workers(base), timeout=20, what="two workers in the dashboard"
        )
        assert len(workers) == 2
        # A crashed process is restarted, as compose's restart policy does: Valkey and a worker.
        config = str(tmp_path / "var" / "supervisord.conf")
        for program in ("valkey", "worker:worker-0"):
            pid = _supervised_pid(config, program)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: _supervised_pid(config, program) not in (0, pid), timeout=30, what=f"{program} restarted")
        wait_until(lambda: _ok(f"{base}/readyz"), timeout=30, what="Redis back")
        job = requests.post(f"{base}/jobs", json={"type": "count_words", "text": "after the crash"}, timeout=5).json()
        assert requests.get(f"{base}/jobs/{job['id']}?wait=20", timeout=30).json()["status"] == "finished"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        log.close()
    assert code == 0, (tmp_path / "stack.log").read_text()
    output = (tmp_path / "stack.log").read_text()
    for name in ("valkey", "smtp", "worker-0", "worker-1", "web"):
        assert f"stopped: {name}" in output, name
    assert not _ok(f"{base}/healthz")


def _supervised_pid(config: str, program: str) -> int:
    supervisorctl = str(Path(sys.executable).with_name("supervisorctl"))
    out = subprocess.run([supervisorctl, "-c", config, "pid", program], capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() else 0


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _workers(base: str) -> list:
    try:
        return requests.get(f"{base}/dashboard/0/data/workers.json", timeout=2).json()["workers"]
    except (requests.RequestException, ValueError, KeyError):
        return []

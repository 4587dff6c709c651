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
    output = (tmp_path / "var" / "supervisord.log").read_text()  # supervisord's own record (it runs silent)
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


def test_make_run_valkey_shows_as_valkey_server_and_a_kill_under_load_loses_no_accepted_job(tmp_path):
    """Issue 16: in ps the stack's Valkey was a path deep in site-packages; and the Redis kill of the
    fault suite ran only on the test harness, not on the supervised stack that `make run` starts."""
    import threading
    import time

    port, redis_port, smtp_port = free_port(), free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "SMTP_URL", "API_KEYS")} | {
        "PORT": str(port), "DEV_REDIS_PORT": str(redis_port), "DEV_SMTP_PORT": str(smtp_port),
        "VAR_DIR": str(tmp_path / "var"), "WEBHOOK_SECRET": "",
    }  # fmt: skip
    log = open(tmp_path / "stack.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([sys.executable, "-m", "app.dev"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    config = str(tmp_path / "var" / "supervisord.conf")
    try:
        wait_until(lambda: _ok(f"{base}/readyz"), timeout=60, what="the dev stack")
        pid = _supervised_pid(config, "valkey")
        title = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
        assert title.startswith(f"valkey-server 127.0.0.1:{redis_port}"), title
        assert str(pid) in subprocess.run(["pgrep", "valkey-server"], capture_output=True, text=True).stdout.split()

        accepted: list[str] = []
        stop = threading.Event()

        def submit() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    answer = requests.post(f"{base}/jobs", json={"type": "count_words", "text": f"job {n}"}, timeout=5)
                except requests.RequestException:
                    continue
                if answer.status_code == 202:
                    accepted.append(answer.json()["id"])
                else:
                    assert answer.status_code == 503, answer.text
                    time.sleep(0.05)

        threads = [threading.Thread(target=submit) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: len(accepted) > 30, timeout=30, what="some accepted jobs")
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(lambda: _supervised_pid(config, "valkey") not in (0, pid), timeout=30, what="valkey restarted")
            wait_until(lambda: _ok(f"{base}/readyz"), timeout=30, what="Redis back")
            back_in = time.monotonic() - killed_at
            count_at_recovery = len(accepted)
            wait_until(lambda: len(accepted) > count_at_recovery + 10, timeout=30, what="submissions after the restart")
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
        assert back_in < 10, f"Redis answered again {back_in:.1f} s after the kill"
        # Every 202 survived the kill (AOF, appendfsync always) and ends. A job that a worker was
        # running when Redis died can stay `started` until its heartbeat lapses (25 s at make
        # run's 10 s beat) and maintenance requeues it: give it that, and the requeued run.
        deadline = time.monotonic() + 60
        for job_id in accepted:
            body = requests.get(f"{base}/jobs/{job_id}", timeout=10).json()
            while body["status"] != "finished" and time.monotonic() < deadline:
                body = requests.get(f"{base}/jobs/{job_id}?wait=5", timeout=30).json()
            assert body["status"] == "finished", body
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        log.close()

"""``st run <stack>/openapi.json --checks all`` against the real ``make run`` stack exits 0.

This is what a new user tries (issue 16), run exactly so: schemathesis' CLI as a subprocess, every
check, no exclusions, default generation settings. It reads ``schemathesis.toml`` at the checkout's
root, which says the two things an OpenAPI document cannot (see that file): how long
``GET /jobs/{id}?wait=30`` may take, and that a reused ``Idempotency-Key`` is 422 by contract.

The stack is ``python -m app.dev`` (what ``make run`` execs) on ports of its own, with callbacks
off (``WEBHOOK_SECRET=``): with them on, every callback the fuzzer invented and the API accepted
would make a worker POST to some public address. About 70-120 s on the 2-core machine.
"""

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

ST = str(Path(sys.executable).with_name("st"))


@pytest.mark.timeout(420)
def test_st_run_checks_all_passes_against_the_make_run_stack(tmp_path):
    port, redis_port, smtp_port = free_port(), free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "SMTP_URL", "API_KEYS")} | {
        "PORT": str(port),
        "DEV_REDIS_PORT": str(redis_port),
        "DEV_SMTP_PORT": str(smtp_port),
        "VAR_DIR": str(tmp_path / "var"),
        "WEBHOOK_SECRET": "",
    }
    log = open(tmp_path / "stack.log", "wb")  # noqa: SIM115 - closed below
    stack = subprocess.Popen([sys.executable, "-m", "app.dev"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(base), timeout=60, what="the dev stack")
        run = subprocess.run(
            [ST, "run", f"{base}/openapi.json", "--checks", "all", "--no-color"],
            cwd=ROOT,  # where schemathesis.toml is
            capture_output=True,
            text=True,
            timeout=360,
        )
    finally:
        stack.send_signal(signal.SIGTERM)
        stack.wait(90)
        log.close()
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "No issues found" in run.stdout, report


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False

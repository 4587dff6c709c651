"""Celery + Flower 2 as an HTTP job service, beside offload in ``make bench`` (issue 15).

A client that wants Celery over HTTP runs Flower and calls its REST API: ``POST
/api/task/async-apply/<task>`` with ``{"args": [...], "kwargs": {...}}`` answers the task's id
(and, with a result backend, its state), and ``GET /api/task/result/<id>?timeout=<s>`` waits for
the result (``flower/api/tasks.py``, Flower 2.2). The harness drives it with the same load
generator, in the same rounds and on the same Valkey (Celery's own database) as offload's
``POST /jobs`` and ``POST`` + ``GET ?wait=``:

* **Auth on**, as offload's API keys are: Flower with ``--basic_auth``, every request carrying the
  credentials (Flower 2 refuses its API without auth unless ``FLOWER_UNAUTHENTICATED_API=true``).
* Flower's other defaults stay: one Tornado process (Flower keeps its events state in memory, so
  it runs as one process), task events enabled on the workers (Flower turns them on within five
  seconds anyway; the workers start with them here so every sample sees the same), and no access
  log (Flower drops Tornado's unless ``--debug``; offload writes a JSON line per request).
* The workers are ``bench/celery_app.py``'s prefork workers with the same ``count_words`` and
  ``noop`` tasks as offload's, results in Redis.

Nothing here rate-limits, deduplicates (no ``Idempotency-Key``) or counts Prometheus metrics: the
ratio says what offload's features and its durability cost against the bare Celery path.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import subprocess
import time
from pathlib import Path

from bench import system

USER = "bench"
SUBMIT_TASK = "bench.count_words"
LATENCY_TASK = "bench.noop"
#: Task states after which ``GET /api/task/result`` has nothing more to wait for.
DONE_STATES = ("SUCCESS", "FAILURE", "REVOKED")


def installed() -> bool:
    from importlib import metadata

    try:
        return bool(metadata.version("flower"))
    except metadata.PackageNotFoundError:
        return False


class Flower:
    """One Flower process for the bench's Celery app; started and stopped by the phase using it."""

    def __init__(self, *, python: str, root: Path, env: dict[str, str], log: Path, port: int) -> None:
        self.python, self.root, self.env, self.log, self.port = python, root, env, log, port
        self.password = secrets.token_urlsafe(18)
        self.credential = base64.b64encode(f"{USER}:{self.password}".encode()).decode()
        self.base = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Basic {self.credential}", "Content-Type": "application/json"}

    @staticmethod
    def submit_path(task: str = SUBMIT_TASK) -> str:
        return f"/api/task/async-apply/{task}"

    @staticmethod
    def submit_body(**kwargs: object) -> str:
        return json.dumps({"args": [], "kwargs": kwargs})

    def start(self, timeout: float = 30.0) -> None:
        command = [
            self.python, "-m", "celery", "-A", "bench.celery_app", "flower",
            "--address=127.0.0.1", f"--port={self.port}", f"--basic_auth={USER}:{self.password}",
        ]  # fmt: skip
        env = {key: value for key, value in self.env.items() if key != "FLOWER_UNAUTHENTICATED_API"}
        self.process = system.spawn(command, cwd=self.root, env=env, log=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Flower exited with {self.process.returncode}; see {self.log}")
            if self._answers():
                return
            time.sleep(0.1)
        raise RuntimeError(f"Flower did not come up within {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        system.stop(self.process)
        self.process = None

    def _answers(self) -> bool:
        """An authenticated API call answers 200 (the broker is reachable, auth is on)."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/api/task/types", headers=self.headers)
            return conn.getresponse().status == 200
        except OSError:
            return False

    def latency(self, n: int, warm: int = 10) -> dict[str, list[float]]:
        """``n`` no-op tasks one after the other: ``POST async-apply``, then ``GET
        result?timeout=10`` until the task is done. Milliseconds: total, the POST, the wait."""
        samples: dict[str, list[float]] = {"total": [], "post": [], "wait": []}
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = self.submit_body()
        try:
            for i in range(n + warm):
                time.sleep(0.005)  # as offload's: let the workers go back to waiting
                started = time.perf_counter()
                conn.request("POST", self.submit_path(LATENCY_TASK), body=body, headers=self.headers)
                response = conn.getresponse()
                answer = json.loads(response.read() or b"{}")
                posted = time.perf_counter()
                if response.status != 200:
                    raise RuntimeError(f"Flower's async-apply answered {response.status}: {answer}")
                state = answer.get("state")
                while state not in DONE_STATES:
                    conn.request("GET", f"/api/task/result/{answer['task-id']}?timeout=10", headers=self.headers)
                    response = conn.getresponse()
                    state = json.loads(response.read() or b"{}").get("state")
                    if response.status != 200:
                        raise RuntimeError(f"Flower's result answered {response.status}")
                done = time.perf_counter()
                if state != "SUCCESS":
                    raise RuntimeError(f"Flower's latency task ended {state}")
                if i >= warm:  # the first ones warm the pool, the result consumer, connections
                    samples["total"].append((done - started) * 1000)
                    samples["post"].append((posted - started) * 1000)
                    samples["wait"].append((done - posted) * 1000)
        finally:
            conn.close()
        return samples

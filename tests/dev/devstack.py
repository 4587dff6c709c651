"""A ``make run`` stack for tests: ``python -m app.dev`` on ports and a var/ folder of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import requests

from ..conftest import ROOT, free_port, wait_until


@dataclass
class DevStack:
    """``python -m app.dev`` (what ``make run`` execs) on ports and a var/ folder of its own."""

    tmp: Path
    name: str
    port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)
    smtp_port: int = field(default_factory=free_port)
    extra: dict[str, str] = field(default_factory=dict)  # environment on top of env()'s
    process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def var(self) -> Path:
        return self.tmp / f"var-{self.name}"

    @property
    def log(self) -> Path:
        return self.tmp / f"{self.name}.log"

    def env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SMTP_URL", "API_KEYS")}
        return inherited | {
            "PORT": str(self.port), "DEV_REDIS_PORT": str(self.redis_port), "DEV_SMTP_PORT": str(self.smtp_port),
            "VAR_DIR": str(self.var), "WORKER_COUNT": "1", "WEB_CONCURRENCY": "1", "WEBHOOK_SECRET": "",
        } | self.extra  # fmt: skip

    def start(self) -> DevStack:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.dev"], cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, workers: int = 1) -> DevStack:
        wait_until(lambda: ok(f"{self.base}/readyz"), timeout=60, what=f"stack {self.name}")
        wait_until(lambda: self.workers() == workers, timeout=30, what=f"stack {self.name}'s workers")
        return self

    def workers(self) -> int:
        try:
            rows = requests.get(f"{self.base}/queues", timeout=5).json()["queues"]
        except (requests.RequestException, ValueError, KeyError):
            return -1
        return max(row["workers"] for row in rows)

    def submit(self, text: str) -> str:
        answer = requests.post(f"{self.base}/jobs", json={"type": "count_words", "text": text}, timeout=10)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    def job(self, job_id: str, wait: int = 0) -> requests.Response:
        return requests.get(f"{self.base}/jobs/{job_id}?wait={wait}", timeout=wait + 10)

    def processes(self) -> list[int]:
        """The launcher (supervisord, once exec'd) and every process under it."""
        if self.process is None:
            return []
        found, pending = [], [self.process.pid]
        while pending:
            pid = pending.pop()
            found.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as handle:
                        pending.extend(int(child) for child in handle.read().split())
            except OSError:
                pass
        return found

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            everything = self.processes()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                for pid in everything:  # leave nothing behind, even when the stop failed
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False

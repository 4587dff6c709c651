"""Fixtures: fast ones on fakeredis, and real ones (Valkey server, SMTP server, worker and
gunicorn subprocesses) for everything that crosses a process boundary."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis
import requests
from rq.serializers import JSONSerializer

from app import create_app
from app.devstack import valkey_command
from app.queueing import JobQueue, OffloadJob
from app.settings import Settings, get_settings
from app.smtp_sink import start as start_smtp
from app.workers import OffloadSimpleWorker

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(autouse=True)
def _fresh_settings_cache():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# --- fast: fakeredis --------------------------------------------------------------------


@pytest.fixture
def settings(monkeypatch) -> Settings:
    """Settings through the environment, so in-process workers (get_settings) see the same."""
    monkeypatch.setenv("ENABLE_DIAGNOSTIC_TASKS", "1")
    monkeypatch.setenv("DEFAULT_MAX_RETRIES", "0")
    return get_settings()


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def job_queue(fake_redis, settings) -> JobQueue:
    return JobQueue(fake_redis, settings)


@pytest.fixture
def app(settings, job_queue):
    return create_app(settings, job_queue=job_queue)


@pytest.fixture
def client(app):
    return app.test_client()


def run_jobs(queue: JobQueue) -> None:
    """Run every queued job in this process, as a worker would (burst mode)."""
    worker = OffloadSimpleWorker(
        list(queue.queues.values()), connection=queue.connection, serializer=JSONSerializer, job_class=OffloadJob
    )
    worker.work(burst=True)


# --- real servers -----------------------------------------------------------------------


class ValkeyProcess:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [*valkey_command(self.port, self.data_dir), "--logfile", str(self.data_dir / "valkey.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), what="Valkey to answer")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def valkey(tmp_path_factory) -> Iterator[ValkeyProcess]:
    server = ValkeyProcess(tmp_path_factory.mktemp("valkey"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clean_valkey(valkey) -> ValkeyProcess:
    if valkey.process is None or valkey.process.poll() is not None:
        valkey.start()
    valkey.client().flushall()
    return valkey


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory):
    port = free_port()
    controller, sink = start_smtp("127.0.0.1", port, tmp_path_factory.mktemp("mail"))
    sink.url = f"smtp://127.0.0.1:{port}"
    yield sink
    controller.stop()


@pytest.fixture
def smtp(smtp_server):
    smtp_server.messages.clear()
    smtp_server.envelopes.clear()
    smtp_server.fail_with = None
    return smtp_server


class Stack:
    """Real processes: gunicorn and workers against a real Valkey and SMTP server."""

    def __init__(self, valkey: ValkeyProcess, smtp_url: str, tmp: Path, extra_env: dict[str, str]) -> None:
        self.valkey = valkey
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "REDIS_URL": valkey.url,
            "SMTP_URL": smtp_url,
            "MAIL_FROM": "offload@example.test",
            "ENABLE_DIAGNOSTIC_TASKS": "1",
            "DEFAULT_MAX_RETRIES": "0",
            "JOB_HEARTBEAT_SECONDS": "2",
            "RATE_LIMIT_ENABLED": "0",  # tests of limits set their own; the rest must not hit them
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        self.tmp = tmp
        self.web: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._logs: list = []

    def _log(self, name: str):
        handle = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(handle)
        return handle

    def start_web(self) -> None:
        command = [
            sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
            "--workers", "2", "--threads", "8", "--worker-class", "gthread", "wsgi:app",
        ]  # fmt: skip
        log = self._log("web")
        self.web = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._healthy, what="gunicorn to answer")

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.base}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def start_worker(self, *args: str) -> subprocess.Popen:
        log = self._log(f"worker-{len(self.workers)}")
        process = subprocess.Popen(
            [sys.executable, "worker.py", *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.workers.append(process)
        return process

    def post(self, body: dict, **kwargs) -> requests.Response:
        return requests.post(f"{self.base}/jobs", json=body, timeout=10, **kwargs)

    def post_raw(self, data: bytes, content_type: str = "application/json") -> requests.Response:
        return requests.post(f"{self.base}/jobs", data=data, headers={"Content-Type": content_type}, timeout=10)

    def session_post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(f"{self.base}{path}", timeout=10, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"{self.base}{path}", timeout=40, **kwargs)

    def wait_for(self, job_id: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            body = self.get(f"/jobs/{job_id}?wait=5").json()
            if body["status"] in ("finished", "failed", "canceled", "stopped") or time.monotonic() > deadline:
                return body

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("*.log")))

    def stop(self) -> None:
        for process in [*self.workers, self.web]:
            if process and process.poll() is None:
                process.terminate()
        for process in [*self.workers, self.web]:
            if process:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
        for handle in self._logs:
            handle.close()


@pytest.fixture
def stack_factory(clean_valkey, smtp, tmp_path):
    stacks: list[Stack] = []

    def make(workers: int = 1, web: bool = True, **extra_env: str) -> Stack:
        stack = Stack(clean_valkey, smtp.url, tmp_path, extra_env)
        stacks.append(stack)
        if web:
            stack.start_web()
        for _ in range(workers):
            stack.start_worker()
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture
def stack(stack_factory) -> Stack:
    return stack_factory()

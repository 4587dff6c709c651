"""Fixtures: fast ones on fakeredis, and real ones (Valkey server, SMTP server, worker and
gunicorn subprocesses) for everything that crosses a process boundary.

The real-process tests run on one *deployment* by default: the default worker class on a single
Valkey server. A test marked ``@pytest.mark.deployments("default", "forking", "cluster")`` runs
once on each deployment named (see DEPLOYMENTS): ``stack_factory`` starts that worker class and
``clean_valkey`` is that topology. The other deployments carry their own markers, which
``make test`` leaves out (pyproject's addopts) and ``make test-forking-worker`` / ``make test-ha``
select.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fakeredis
import pytest
import redis
import requests
from rq.serializers import JSONSerializer

from app import create_app
from app.dev.smtp_sink import start as start_smtp
from app.dev.stack import valkey_command
from app.jobs import catalog
from app.jobs.engine.job import OffloadJob
from app.jobs.store import JobQueue
from app.settings import Settings, get_settings
from app.worker import OffloadSimpleWorker

# A team's own tasks (tests/user_tasks.py), registered in every test process as in every stack's
# processes (Stack's OFFLOAD_TASKS): what the suite sees of the registry does not depend on order.
from . import user_tasks  # noqa: E402, F401

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
def _restore_environ():
    """Put the environment back after each test: ``app.dev.stack.main()`` adds to os.environ (for
    the processes supervisord starts), and a test calling it must not change the next one's settings."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


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
def trips(monkeypatch) -> list[bytes]:
    """The round trips this process sends to Redis from now on, on any connection: one packed
    command (or pipeline) each, as redis-py sends it. ``trips.clear()`` starts counting again."""
    sent: list = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):  # noqa: ANN001, ANN202
        sent.append(command)
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
    return sent


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


PROBLEM = "application/problem+json"


def queued_count(job_queue) -> int:
    return sum(queue.count for queue in job_queue.queues.values())


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


def submit(job_queue: JobQueue, settings: Settings, owner=None, **fields) -> dict:
    """``JobQueue.submit`` with a request body validated as the API does."""
    spec = catalog.request_adapter(True).validate_python(fields, context={"settings": settings})
    return job_queue.submit(spec, owner=owner)


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


# --- deployments: which worker class, on which topology ------------------------------------


@dataclass(frozen=True)
class Deployment:
    name: str
    #: Environment of the stack's processes (a test's own extra_env wins over it).
    env: tuple[tuple[str, str], ...] = ()
    topology: str = "single"  # or "cluster": three primaries (tests/ha/harness.py)
    marks: tuple = ()


DEPLOYMENTS = {
    "default": Deployment("default"),
    # RQ's forking worker keeps the same promises as the default fast worker (make test-forking-worker).
    "forking": Deployment(
        "forking", env=(("WORKER_CLASS", "forking"),), marks=(pytest.mark.integration, pytest.mark.forkingworker)
    ),
    # The whole service on a 3-primary Redis Cluster (make test-ha): REDIS_CLUSTER=1 and
    # RQ_KEY_PREFIX={offload} in the environment that gunicorn and the workers inherit.
    "cluster": Deployment("cluster", topology="cluster", marks=(pytest.mark.integration, pytest.mark.ha)),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.deployments(*names)``: the test once per deployment named, each carrying
    that deployment's marks. Unmarked tests run on the default deployment only."""
    marker = metafunc.definition.get_closest_marker("deployments")
    if marker is None:
        return
    unknown = set(marker.args) - set(DEPLOYMENTS)
    assert marker.args and not unknown, f"{metafunc.definition.nodeid}: unknown deployments {sorted(unknown)}"
    params = [pytest.param(DEPLOYMENTS[name], id=name, marks=DEPLOYMENTS[name].marks) for name in marker.args]
    metafunc.parametrize("deployment", params, indirect=True)


@pytest.fixture
def deployment(request) -> Deployment:
    return getattr(request, "param", DEPLOYMENTS["default"])


@pytest.fixture(scope="session")
def suite_cluster(tmp_path_factory):
    """One 3-primary cluster for every test run on the "cluster" deployment (started on first use)."""
    from tests.ha.harness import ClusterAsValkey, start_cluster

    with start_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield ClusterAsValkey(nodes)


@pytest.fixture
def clean_valkey(request, deployment, monkeypatch):
    """The deployment's Redis, emptied: the single Valkey server, or the cluster (with the
    cluster settings in the environment the stack's processes inherit)."""
    if deployment.topology == "cluster":
        cluster = request.getfixturevalue("suite_cluster")
        for node in cluster.nodes:
            node.client().flushall()
        monkeypatch.setenv("REDIS_CLUSTER", "1")
        monkeypatch.setenv("RQ_KEY_PREFIX", "{offload}")
        return cluster
    valkey = request.getfixturevalue("valkey")
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
            # A team's own tasks, loaded by every process as OFFLOAD_TASKS says (tests/user_tasks.py).
            "OFFLOAD_TASKS": "tests.user_tasks",
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

    def wait_for_workers(self, count: int, queue: str = "default", **kwargs) -> None:
        """Wait until ``count`` workers serve ``queue``: a worker process takes a second or more to
        register under load, and a test that counts workers at work must not start before."""

        def serving() -> bool:
            rows = self.get("/queues", **kwargs).json()["queues"]
            return any(row["name"] == queue and row["workers"] >= count for row in rows)

        wait_until(serving, timeout=60, interval=0.2, what=f"{count} workers on {queue}")

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
def stack_factory(clean_valkey, smtp, tmp_path, deployment):
    stacks: list[Stack] = []

    def make(workers: int = 1, web: bool = True, **extra_env: str) -> Stack:
        stack = Stack(clean_valkey, smtp.url, tmp_path, {**dict(deployment.env), **extra_env})
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

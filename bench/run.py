"""``make bench``: offload's performance, measured in one run against its own servers.

It starts a Valkey server (the one ``make run`` uses, AOF on), gunicorn with offload's own
``gunicorn.conf.py`` (API keys, rate limits on at their defaults, metrics on, JSON logs at
INFO) and, in turn, each contender's workers. Contenders take turns, round after
round, so that a slow minute on a shared machine hits them all; the figure kept is the
median of the rounds, and only ratios inside one run mean much.

Phases (``--phases``):

* ``intake``  — ``POST /jobs`` (count_words, API key, Idempotency-Key) against ``GET /healthz``, and
  the same submission of a team's own task with the same fields (``bench/user_tasks.py``),
  with the same load generator (wrk, else an asyncio client) on the same gunicorn. The
  submissions take 64 client keys in turn, so the default per-key limits (50/s, 2000/min)
  are checked on every request but never reached, as with many clients. In the same rounds,
  Celery + Flower 2's ``POST /api/task/async-apply/bench.count_words`` (``bench/flower.py``).
* ``batch``   — jobs accepted per second through ``POST /jobs/batch`` (100 and 1,000 jobs a request)
  against ``POST /jobs``, no workers (``bench/batch.py``).
* ``drain``   — no-op and small ``count_words`` jobs per second, queue pre-filled: offload's
  forking worker, offload's fast worker, plain ``rq worker`` (forking and SimpleWorker), Celery
  (prefork) at its defaults (a task acknowledged on receipt: lost if its worker dies), Celery
  configured not to lose tasks (``celery-safe``: ``task_acks_late``, ``task_reject_on_worker_lost``,
  prefetch multiplier 1) and Dramatiq with its Redis broker (at-least-once, prefetching), two
  worker processes each, all on the same Redis server (issue 26, item 5).
* ``latency`` — submit-to-finished through HTTP (``POST`` then ``GET ?wait=``), idle workers;
  Celery + Flower 2 the same way (``async-apply``, then ``GET /api/task/result/<id>?timeout=``).
* ``bulk``    — ``count_words`` on 1 MiB texts through one worker, against
  ``len(text.split())`` (and the task itself) in this process.
* ``memory``  — peak RSS of web and worker processes; a worker's RSS after 1,000 jobs and
  after 50,000 (the forking worker gets as far as its time allows).
* ``sigkill`` — what a worker's SIGKILL does to the job in hand, per contender: lost, run again
  or failed saying so, measured by killing a worker mid-job (``bench/sigkill.py``).

Writes ``bench/results/bench.json``, ``bench.txt`` (the table) and ``bench.png`` (the chart);
``--quick`` writes ``bench-quick.*`` instead and takes about a minute.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import secrets
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import batch as batch_phase  # noqa: E402
from bench import flower as flower_contender  # noqa: E402
from bench import loadgen, report, system  # noqa: E402

PYTHON = sys.executable
SMALL_TEXT = "the quick brown fox jumps over the lazy dog " * 2
MIB = 1024 * 1024
CLIENT_KEYS = 64

FULL = {
    "rounds": 3,
    "intake_seconds": 5.0,
    "intake_connections": 16,
    "drain_window": 3.0,
    "latency_jobs": 120,
    "bulk_jobs": 12,
    "memory_jobs": 50_000,
    "memory_baseline": 1_000,
    "memory_fork_seconds": 40.0,
    "sigkill_wait": 45.0,
    "wait_quiet": 180.0,
}
QUICK = {
    "rounds": 1,
    "intake_seconds": 2.0,
    "intake_connections": 16,
    "drain_window": 1.0,
    "latency_jobs": 20,
    "bulk_jobs": 4,
    "memory_jobs": 2_000,
    "memory_baseline": 1_000,
    "memory_fork_seconds": 0.0,
    "sigkill_wait": 30.0,
    "wait_quiet": 0.0,
}

# A rough jobs/s per contender (two workers) to size the first round's backlog; later rounds
# use what the earlier ones measured.
FIRST_GUESS = {
    "offload-forking": 80, "offload-fast": 700, "rq-forking": 90, "rq-simple": 500, "celery": 1000, "celery-safe": 600,
    "dramatiq": 600,
}  # fmt: skip
DRAIN_CONTENDERS = ("offload-forking", "offload-fast", "rq-forking", "rq-simple", "celery", "celery-safe", "dramatiq")
#: The bench extra's contenders, and the distribution each needs.
EXTRA = {"celery": "celery", "celery-safe": "celery", "dramatiq": "dramatiq", "flower": "flower"}
#: "flower": Celery + Flower 2's HTTP API, beside offload's in the intake and latency phases.
ALL_CONTENDERS = (*DRAIN_CONTENDERS, "flower")
PHASES = ("intake", "batch", "drain", "latency", "bulk", "memory", "sigkill")


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def words_text(size: int, seed: int) -> str:
    """``size`` characters of ASCII words and newlines, like prose (about 5 letters a word)."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 10))) for _ in range(5000)]
    parts: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choices(vocabulary, k=rng.randint(6, 16))) + "\n"
        parts.append(line)
        length += len(line)
    return "".join(parts)[: size - 1] + "\n"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cfg = dict(QUICK if args.quick else FULL)
        if args.rounds:
            self.cfg["rounds"] = args.rounds
        self.tmp = Path(tempfile.mkdtemp(prefix="offload-bench-"))
        self.logs = self.tmp / "logs"
        self.logs.mkdir()
        self.results: dict = {}
        self.valkey: subprocess.Popen | None = None
        self.web: subprocess.Popen | None = None
        self.cpu = system.CpuMeter()
        self.rates: dict[tuple[str, str], float] = {}
        self.worker_peaks: dict[str, dict[str, float]] = {}
        self.celery_done = 0
        self.dramatiq_filled = 0
        self._celery_listener: threading.Thread | None = None

    # --- servers ----------------------------------------------------------------------

    def start_servers(self) -> None:
        from app.dev.stack import valkey_command

        self.redis_port = free_port()
        self.redis_base = f"redis://127.0.0.1:{self.redis_port}"
        (self.tmp / "valkey").mkdir()
        self.valkey = system.spawn(
            valkey_command(self.redis_port, self.tmp / "valkey"), cwd=ROOT, env=dict(os.environ), log=self.logs / "valkey.log"
        )
        import redis

        self.r0 = redis.Redis.from_url(f"{self.redis_base}/0")
        self.r1 = redis.Redis.from_url(f"{self.redis_base}/1")
        self.r2 = redis.Redis.from_url(f"{self.redis_base}/2")
        self.r3 = redis.Redis.from_url(f"{self.redis_base}/3")
        self._wait(lambda: self._pings(self.r0), 15, "Valkey")
        self.valkey_version = self.r0.info("server").get("valkey_version") or self.r0.info("server").get("redis_version")
        # REDIS_APPENDFSYNC (app.dev.stack) may lower it for a what-if run; the table says so.
        self.appendfsync = self.r0.config_get("appendfsync").get("appendfsync")

        # Rate limits stay at offload's defaults (50/second and 2000/minute per key): the
        # intake load is spread over 64 client keys, as many clients would, so it never
        # reaches a limit while every request still goes through the limiter.
        self.client_secrets = [secrets.token_urlsafe(24) for _ in range(CLIENT_KEYS)]
        self.client_secret = self.client_secrets[0]
        self.admin_secret = secrets.token_urlsafe(24)
        self.web_port = free_port()
        self.base = f"http://127.0.0.1:{self.web_port}"
        self.env = {
            **os.environ,
            "REDIS_URL": f"{self.redis_base}/0",
            "HOST": "127.0.0.1",
            "PORT": str(self.web_port),
            "API_KEYS": ",".join([*(f"client{i}:client:{key}" for i, key in enumerate(self.client_secrets)), f"ops:admin:{self.admin_secret}"]),
            "RATE_LIMIT_ENABLED": "1",
            "ENABLE_DIAGNOSTIC_TASKS": "1",
            "OFFLOAD_TASKS": "bench.user_tasks",  # a user task: its submission against count_words's
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
            "BENCH_CELERY_URL": f"{self.redis_base}/2",
            "BENCH_DRAMATIQ_URL": f"{self.redis_base}/3",
        }
        for key in ("WORKER_CLASS", "PROMETHEUS_MULTIPROC_DIR", "WEB_CONCURRENCY", "WEB_THREADS", "MAX_QUEUE_DEPTH", "RATE_LIMIT_SUBMIT", "RATE_LIMIT_READ"):
            self.env.pop(key, None)
        os.environ.update(
            {k: v for k, v in self.env.items() if k in ("REDIS_URL", "ENABLE_DIAGNOSTIC_TASKS", "API_KEYS", "BENCH_DRAMATIQ_URL")}
        )

        from app.jobs import JobQueue
        from app.settings import Settings

        self.settings = Settings()
        self.job_queue = JobQueue(self.r0, self.settings)

        self.web = system.spawn(
            [PYTHON, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=self.env, log=self.logs / "web.log"
        )
        self._wait(self._web_up, 30, "gunicorn")

    @staticmethod
    def _pings(client) -> bool:  # noqa: ANN001
        try:
            return bool(client.ping())
        except Exception:  # noqa: BLE001
            return False

    def _web_up(self, port: int | None = None) -> bool:
        import http.client

        try:
            conn = http.client.HTTPConnection("127.0.0.1", port or self.web_port, timeout=1)
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False

    @staticmethod
    def _wait(predicate, timeout: float, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")

    def close(self) -> None:
        if self._celery_listener is not None:
            self._celery_stop = True
        system.stop(self.web)
        system.stop(self.valkey)
        if self.args.keep_logs:
            log(f"logs kept in {self.logs}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # --- contenders ---------------------------------------------------------------------

    def start_workers(self, name: str, count: int, extra_env: dict | None = None) -> list[subprocess.Popen]:
        env = {**self.env, **(extra_env or {})}
        procs = []
        for i in range(count):
            logfile = self.logs / f"{name}-{i}.log"
            if name == "offload-forking":
                command = [PYTHON, "worker.py"]
                env["WORKER_CLASS"] = "forking"
            elif name == "offload-fast":
                command = [PYTHON, "bench/launch_worker.py"]
                env["WORKER_CLASS"] = "fast"
            elif name in ("rq-forking", "rq-simple"):
                worker_class = "rq.worker.Worker" if name == "rq-forking" else "rq.worker.SimpleWorker"
                command = [PYTHON, "bench/rq_worker.py", "worker", "--url", f"{self.redis_base}/1", "-w", worker_class, "bench"]
            elif name in ("celery", "celery-safe"):
                if name == "celery-safe":
                    env["BENCH_CELERY_SAFE"] = "1"
                # At INFO, as offload's workers run (LOG_LEVEL above) and as Celery's own documentation
                # runs its workers: each logs a line for a job taken and one for a job done, so the
                # drain compares the engines at the same logging (before 2026-12-07: -l WARNING, no
                # line a task, against offload's two; CELERY_LOGLEVEL=WARNING for that comparison).
                command = [
                    PYTHON, "-m", "celery", "-A", "bench.celery_app", "worker", "-P", "prefork", "-c", str(count),
                    "--without-gossip", "--without-mingle", "--without-heartbeat",
                    "-l", os.environ.get("CELERY_LOGLEVEL", "INFO"), "-n", f"bench{i}@%h",
                ]  # fmt: skip
                procs.append(system.spawn(command, cwd=ROOT, env=env, log=logfile))
                break  # one Celery main process with `count` prefork children
            elif name == "dramatiq":
                # one thread a process: two jobs at a time, as the others (its default is 8)
                command = [PYTHON, "-m", "dramatiq", "bench.dramatiq_app", "--processes", str(count), "--threads", "1"]
                procs.append(system.spawn(command, cwd=ROOT, env=env, log=logfile))
                break  # one Dramatiq main process with `count` worker processes
            else:
                raise ValueError(name)
            procs.append(system.spawn(command, cwd=ROOT, env=env, log=logfile))
        return procs

    def _flower(self) -> flower_contender.Flower | None:
        """Flower for the bench's Celery app, not started yet; None (and said) when Celery or
        Flower is not installed."""
        if not (self.celery_ok and flower_contender.installed()):
            log("flower is not installed (pip install -e '.[bench]'): Celery + Flower is left out")
            return None
        return flower_contender.Flower(python=PYTHON, root=ROOT, env=self.env, log=self.logs / "flower.log", port=free_port())

    @staticmethod
    def _started(flower: flower_contender.Flower) -> bool:
        """Start Flower; when it cannot, say so and go on without it (a long run is not lost to it)."""
        try:
            flower.start()
        except RuntimeError as exc:
            log(f"{exc}: Celery + Flower is left out of this phase")
            flower.stop()
            return False
        return True

    def stop_workers(self, name: str, procs: list[subprocess.Popen]) -> None:
        peaks = self.worker_peaks.setdefault(name, {"main_mib": 0.0, "child_mib": 0.0})
        for proc in procs:
            if proc.poll() is None:
                peaks["main_mib"] = max(peaks["main_mib"], system.peak_rss_mib(proc.pid))
                if name in ("offload-fast", "celery", "celery-safe", "dramatiq"):  # persistent children: the horse, the pool
                    for child in system.children(proc.pid):
                        peaks["child_mib"] = max(peaks["child_mib"], system.peak_rss_mib(child))
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def reset(self, name: str) -> None:
        {"celery": self.r2, "celery-safe": self.r2, "dramatiq": self.r3, "rq-forking": self.r1, "rq-simple": self.r1}.get(name, self.r0).flushdb()
        self.celery_done = 0
        self.dramatiq_filled = 0

    def fill(self, name: str, kind: str, n: int, text: str = SMALL_TEXT) -> None:
        if name.startswith("offload"):
            self._fill_offload(kind, n, [text])
        elif name.startswith("rq"):
            from rq import Queue

            queue = Queue("bench", connection=self.r1)
            func = "bench.rq_tasks.noop" if kind == "noop" else "bench.rq_tasks.count_words"
            kwargs = {} if kind == "noop" else {"text": text}
            for start in range(0, n, 500):
                queue.enqueue_many([Queue.prepare_data(func, kwargs=kwargs) for _ in range(min(500, n - start))])
        elif name == "dramatiq":
            from bench import dramatiq_app

            dramatiq_app.fill(kind, {} if kind == "noop" else {"text": text}, n)
            self.dramatiq_filled += n
        else:
            self._fill_celery("bench.noop" if kind == "noop" else "bench.count_words", {} if kind == "noop" else {"text": text}, n)

    def _fill_celery(self, task: str, kwargs: dict, n: int) -> None:
        """One message sent by Celery's own ``send_task``, then ``n`` copies of it under ids of
        their own, pushed in pipelines (``send_task`` takes ~4 ms a message here, and the
        queue must be filled faster than Celery drains it)."""
        import uuid

        app = self._celery_producer()
        app.send_task(task, kwargs=kwargs)
        template = json.loads(self.r2.lpop("celery"))
        for start in range(0, n, 1000):
            with self.r2.pipeline(transaction=False) as pipe:
                for _ in range(min(1000, n - start)):
                    task_id = str(uuid.uuid4())
                    message = {
                        **template,
                        "headers": {**template["headers"], "id": task_id, "root_id": task_id},
                        "properties": {**template["properties"], "correlation_id": task_id, "delivery_tag": str(uuid.uuid4())},
                    }
                    pipe.lpush("celery", json.dumps(message))
                pipe.execute()

    def _fill_offload(self, kind: str, n: int, texts: list[str]) -> list[str]:
        from app.jobs import catalog

        adapter = catalog.request_adapter(True)
        bodies = [{"type": "noop"}] if kind == "noop" else [{"type": "count_words", "text": t} for t in texts]
        specs = [adapter.validate_python(body, context={"settings": self.settings}) for body in bodies]
        ids: list[str] = []

        def submit(i: int) -> str:
            return self.job_queue.submit(specs[i % len(specs)], owner="bench")["id"]

        with ThreadPoolExecutor(max_workers=4) as pool:
            ids.extend(pool.map(submit, range(n)))
        return ids

    def _clone_fill(self, template_id: str, n: int) -> None:
        """``n`` copies of a job that went through ``JobQueue.submit``, each under an id of its
        own, queued through the queue class (so any wake-up signal the queue sends is sent):
        50,000 real submissions would cost the memory phase a minute of CPU."""
        import uuid

        from app.jobs.engine.job import OffloadJob
        from app.jobs.keys import JOB_INDEX_KEY, METRICS_KEY

        fields = self.r0.hgetall(OffloadJob.key_for(template_id))
        queue = self.job_queue.queues["default"]
        with self.r0.pipeline(transaction=False) as pipe:
            for _ in range(n):
                job_id = str(uuid.uuid4())
                pipe.hset(OffloadJob.key_for(job_id), mapping=fields)
                queue.push_job_id(job_id, pipeline=pipe)
                pipe.zadd(JOB_INDEX_KEY, {job_id: time.time()})
                pipe.hincrby(METRICS_KEY, "enqueued:noop", 1)
            pipe.execute()

    def _celery_producer(self):  # noqa: ANN202
        from celery import Celery

        if not hasattr(self, "_celery_app"):
            # The producer has no result backend: Celery would otherwise subscribe to every
            # task's result channel in this process. The workers store results (celery_app).
            self._celery_app = Celery("bench-producer", broker=f"{self.redis_base}/2")
            self._celery_app.conf.update(task_serializer="json", accept_content=["json"])
        return self._celery_app

    def _start_celery_listener(self) -> None:
        if self._celery_listener is not None:
            return
        self._celery_stop = False
        pubsub = self.r2.pubsub(ignore_subscribe_messages=True)
        pubsub.psubscribe("celery-task-meta-*")

        def listen() -> None:
            while not self._celery_stop:
                message = pubsub.get_message(timeout=0.2)
                if message and message.get("type") == "pmessage":
                    self.celery_done += 1

        self._celery_listener = threading.Thread(target=listen, name="celery-results", daemon=True)
        self._celery_listener.start()

    def completed(self, name: str, kind: str) -> int:
        if name.startswith("offload"):
            from app.jobs.keys import METRICS_KEY

            values = self.r0.hmget(METRICS_KEY, f"finished:{kind}", f"failed:{kind}")
            return sum(int(v) for v in values if v)
        if name.startswith("rq"):
            return int(self.r1.zcard("rq:finished:bench")) + int(self.r1.zcard("rq:failed:bench"))
        if name == "dramatiq":
            from bench import dramatiq_app

            return self.dramatiq_filled - dramatiq_app.pending()
        return self.celery_done

    # --- phases -------------------------------------------------------------------------

    def phase(self, name: str):  # noqa: ANN201
        bench = self

        class _Phase:
            def __enter__(self_inner):  # noqa: N805
                log(f"phase {name}")
                self_inner.load = os.getloadavg()[0]
                bench.cpu.reset()
                self_inner.started = time.monotonic()

            def __exit__(self_inner, *exc):  # noqa: N805, ANN002
                cpu = bench.cpu.read()
                bench.results.setdefault("load", {})[name] = {
                    "loadavg_1m_at_start": round(self_inner.load, 2),
                    **cpu,
                }
                log(f"phase {name} took {time.monotonic() - self_inner.started:.0f} s; other processes used {cpu['foreign_cores']} cores")

        return _Phase()

    def intake(self) -> None:
        rounds, seconds, conns = self.cfg["rounds"], self.cfg["intake_seconds"], self.cfg["intake_connections"]
        body = json.dumps({"type": "count_words", "text": "the quick brown fox jumps over the lazy dog"})
        tokens = ",".join(self.client_secrets)
        use_wrk = not self.args.python_load
        # A diagnostic, not a target: the same submissions on a second gunicorn with the rate
        # limiter off, to show what the limiter costs.
        port = free_port()
        unlimited = system.spawn(
            [PYTHON, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env={**self.env, "PORT": str(port), "RATE_LIMIT_ENABLED": "0"},
            log=self.logs / "web-unlimited.log",
        )
        base_unlimited = f"http://127.0.0.1:{port}"
        submit = {"method": "POST", "path": "/jobs", "body": body, "token": tokens}
        user_task = {**submit, "body": json.dumps({"type": "bench_echo", "text": "the quick brown fox jumps over the lazy dog"})}
        variants: dict[str, dict] = {
            "healthz": {"base": self.base, "method": "GET", "path": "/healthz"},
            "submit": {"base": self.base, **submit},
            "submit_user_task": {"base": self.base, **user_task},
            "submit_no_ratelimit": {"base": base_unlimited, **submit},
        }
        # Celery + Flower 2's HTTP API: the same count_words submission, in the same rounds.
        flower = self._flower() if "flower" in self.args.contenders else None
        if flower is not None:
            variants["flower_submit"] = {
                "base": flower.base, "method": "POST", "path": flower.submit_path(), "scheme": "Basic",
                "body": flower.submit_body(text="the quick brown fox jumps over the lazy dog"), "token": flower.credential,
            }  # fmt: skip
        runs: dict[str, list[loadgen.LoadResult]] = {name: [] for name in variants}
        try:
            self._wait(lambda: self._web_up(port), 30, "the second gunicorn")
            if flower is not None and not self._started(flower):
                flower = None
                del variants["flower_submit"], runs["flower_submit"]
            for variant in variants.values():  # warm every server's processes and the limiter's keys
                if variant["method"] == "POST":
                    loadgen.run_load(**variant, seconds=1, connections=conns, use_wrk=use_wrk)
            servers = {"healthz": self.web, "submit": self.web, "submit_user_task": self.web, "submit_no_ratelimit": unlimited}
            for r in range(rounds):
                names = list(variants)
                for which in names[r % len(names) :] + names[: r % len(names)]:
                    res = self._intake_run(variants[which], servers.get(which), seconds=seconds, connections=conns, use_wrk=use_wrk)
                    runs[which].append(res)
                    log(f"  intake {which}: {res.rps:.0f} req/s p50 {res.p50_ms:.1f} ms p99 {res.p99_ms:.1f} ms non-2xx {res.non_2xx}")
        finally:
            system.stop(unlimited)
            if flower is not None:
                flower.stop()
        self.r0.flushdb()
        self.r2.flushdb()
        out = {"tool": runs["healthz"][0].tool, "connections": conns, "seconds_each": seconds, "client_api_keys": CLIENT_KEYS}
        for which, results in runs.items():
            out[which] = {
                "rps": round(statistics.median(r.rps for r in results), 1),
                "p50_ms": round(statistics.median(r.p50_ms for r in results), 3),
                "p99_ms": round(statistics.median(r.p99_ms for r in results), 3),
                "non_2xx": sum(r.non_2xx for r in results),
                "errors": sum(r.errors for r in results),
                "rounds": [r.as_dict() for r in results],
            }
        healthz = out["healthz"]["rps"]
        out["ratio"] = round(out["submit"]["rps"] / healthz, 3) if healthz else None
        out["ratio_no_ratelimit"] = round(out["submit_no_ratelimit"]["rps"] / healthz, 3) if healthz else None
        # A team's own task (bench/user_tasks.py) against the built-in with the same fields.
        out["user_task_to_builtin"] = [
            round(u.rps / s.rps, 3) if s.rps else None for s, u in zip(runs["submit"], runs["submit_user_task"], strict=True)
        ]
        out["ratio_rounds"] = [
            round(s.rps / h.rps, 3) if h.rps else None for h, s in zip(runs["healthz"], runs["submit"], strict=True)
        ]
        if "flower_submit" in out:
            flower_rps = out["flower_submit"]["rps"]
            out["flower"] = {"auth": "basic", "version": _version("flower"), "processes": 1}
            out["ratio_to_flower"] = round(out["submit"]["rps"] / flower_rps, 3) if flower_rps else None
            out["ratio_to_flower_rounds"] = [
                round(s.rps / f.rps, 3) if f.rps else None for f, s in zip(runs["flower_submit"], runs["submit"], strict=True)
            ]
        self.results["intake"] = out

    def _intake_run(self, variant: dict, server: subprocess.Popen | None, *, seconds: float, connections: int, use_wrk: bool) -> loadgen.LoadResult:
        """One intake measurement; for gunicorn, again (up to twice) when one of its worker
        processes served (almost) nothing. The load generator opens all its keep-alive
        connections at once and the gthread workers race to accept them: about one run in
        three, one process takes every connection and the figure halves (bench/FINDINGS.md).
        Each round records the busier process's share of the CPU and how many tries it took."""
        workers = system.children(server.pid) if server is not None else []
        for attempt in range(1, 4):
            self.r0.flushdb()
            self.r2.flushdb()
            before = [system.cpu_seconds(pid) for pid in workers]
            res = loadgen.run_load(**variant, seconds=seconds, connections=connections, use_wrk=use_wrk)
            used = [system.cpu_seconds(pid) - start for pid, start in zip(workers, before, strict=True)]
            if len(used) < 2 or sum(used) <= 0:
                return res
            res.extra = {"busiest_worker_cpu_share": round(max(used) / sum(used), 3), "tries": attempt}
            if min(used) / sum(used) >= 0.1:
                break
            log(f"  one gunicorn worker served {100 * max(used) / sum(used):.0f}% of {variant['method']} {variant['path']}: measured again")
        return res

    def batch(self) -> None:
        self.results["batch"] = batch_phase.measure(
            self.base, ",".join(self.client_secrets), rounds=self.cfg["rounds"], seconds=self.cfg["intake_seconds"],
            use_wrk=not self.args.python_load, flush=self.r0.flushdb, log=log,
        )  # fmt: skip

    def drain(self) -> None:
        contenders = [c for c in self.args.contenders if c in DRAIN_CONTENDERS and self.available(c)]
        kinds = ("noop", "count_words")
        out: dict = {kind: {c: {"rounds": []} for c in contenders} for kind in kinds}
        for r in range(self.cfg["rounds"]):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            for kind in kinds:
                for name in order:
                    cell = self._drain_cell(name, kind)
                    out[kind][name]["rounds"].append(cell)
                    log(f"  drain {kind:11s} {name:16s} {cell['jobs_per_s']:8.1f} jobs/s ({cell['measured_jobs']} jobs in {cell['seconds']:.2f} s)")
        for kind in kinds:
            for name in contenders:
                rounds = [c["jobs_per_s"] for c in out[kind][name]["rounds"] if c["jobs_per_s"]]
                out[kind][name]["jobs_per_s"] = round(statistics.median(rounds), 1) if rounds else None
            fork = out[kind].get("offload-forking", {}).get("jobs_per_s")
            out[kind]["ratios"] = {}
            for anchor in ("celery", "celery-safe", "dramatiq"):  # each offload worker against each anchor
                base = out[kind].get(anchor, {}).get("jobs_per_s")
                out[kind]["ratios"].update(
                    {
                        f"{name}/{anchor}": round(out[kind][name]["jobs_per_s"] / base, 3)
                        for name in contenders
                        if base and out[kind][name]["jobs_per_s"] and name.startswith("offload")
                    }
                )
            if fork:
                out[kind]["ratios"].update(
                    {
                        f"{name}/offload-forking": round(out[kind][name]["jobs_per_s"] / fork, 3)
                        for name in contenders
                        if out[kind][name]["jobs_per_s"] and name != "offload-forking"
                    }
                )
        out["workers_per_contender"] = 2
        self.results["drain"] = out

    def _drain_cell(self, name: str, kind: str) -> dict:
        window = self.cfg["drain_window"]
        warmup = 0.3
        guess = self.rates.get((name, kind)) or FIRST_GUESS[name] * (0.9 if kind == "count_words" else 1.0)
        n = int(min(40_000, max(60, guess * (window + warmup) * 1.25)))
        self.reset(name)
        if name.startswith("celery"):
            self._start_celery_listener()
        self.fill(name, kind, n)
        if name.startswith("celery"):
            time.sleep(0.3)
            self.celery_done = 0
        procs = self.start_workers(name, 2)
        samples: list[tuple[float, int]] = []
        try:
            start = time.monotonic()
            first: float | None = None
            while True:
                done = self.completed(name, kind)
                now = time.monotonic()
                samples.append((now, done))
                if done and first is None:
                    first = now
                if done >= n or (first is not None and now - first > window + warmup) or now - start > 60 + window:
                    break
                time.sleep(0.02)
        finally:
            self.stop_workers(name, procs)
        self.reset(name)
        if first is None:
            return {"jobs": n, "measured_jobs": 0, "seconds": 0.0, "jobs_per_s": 0.0}
        begin = next(((t, d) for t, d in samples if t >= first + warmup), samples[-1])
        if begin == samples[-1]:  # finished inside the warm-up: use everything from the first completion
            begin = next((t, d) for t, d in samples if t >= first)
        end = samples[-1]
        if end[1] >= n:  # the first sample at the total
            end = next((t, d) for t, d in samples if d >= n)
        seconds = end[0] - begin[0]
        jobs = end[1] - begin[1]
        rate = jobs / seconds if seconds > 0 else 0.0
        if rate:
            self.rates[(name, kind)] = rate
        return {"jobs": n, "measured_jobs": jobs, "seconds": round(seconds, 3), "jobs_per_s": round(rate, 1)}

    def latency(self) -> None:
        """Submit-to-finished through HTTP, and where it goes: the POST's answer, the GET
        ?wait= that follows, and (from the job's own timestamps, millisecond precision) the
        time from enqueue to the end of the job on the worker side. Celery + Flower 2 the same
        way through its API (``POST async-apply``, then ``GET result?timeout=``), in the same rounds."""
        contenders = [c for c in ("offload-forking", "offload-fast") if c in self.args.contenders]
        flower = self._flower() if "flower" in self.args.contenders else None
        if flower is not None:
            contenders.append("flower")
        parts = ("total", "post", "wait", "queue_to_end", *TIMELINE)
        out: dict = {c: {part: [] for part in parts} for c in contenders}
        n = self.cfg["latency_jobs"]
        try:
            if flower is not None and not self._started(flower):
                contenders.remove("flower")
                del out["flower"]
            for r in range(self.cfg["rounds"] if contenders else 0):
                for name in contenders[r % len(contenders) :] + contenders[: r % len(contenders)]:
                    self.r0.flushdb()
                    self.r2.flushdb()
                    if name == "flower":  # Celery's prefork workers, two processes, task events on
                        procs = self.start_workers("celery", 2, {"BENCH_CELERY_EVENTS": "1"})
                    else:
                        procs = self.start_workers(name, 2)
                    try:
                        samples = flower.latency(n) if name == "flower" else self._offload_latency(n)
                    except Exception as exc:  # noqa: BLE001 - Flower's failure costs only Flower's figures
                        if name != "flower":
                            raise
                        log(f"  latency flower failed ({exc}): Celery + Flower is left out of this phase")
                        contenders.remove("flower")
                        del out["flower"]
                        continue
                    finally:
                        self.stop_workers("celery" if name == "flower" else name, procs)
                    for part in parts:
                        out[name][part].extend(samples.get(part, []))
                    worker_side = f", enqueue to end {_pct(samples['queue_to_end'], 50):.1f}" if "queue_to_end" in samples else ""
                    log(
                        f"  latency {name:16s} p50 {_pct(samples['total'], 50):6.2f} ms  p99 {_pct(samples['total'], 99):6.2f} ms"
                        f"  (POST {_pct(samples['post'], 50):.2f}, GET {_pct(samples['wait'], 50):.2f}{worker_side})"
                    )
        finally:
            if flower is not None:
                flower.stop()
        for name in contenders:
            total = out[name].pop("total")
            breakdown = {f"{part}_p50_ms": round(_pct(found, 50), 3) if (found := out[name].pop(part)) else None for part in parts[1:]}
            if name == "flower":
                breakdown["queue_to_end_p50_ms"] = None  # Celery's results carry no enqueue time
            out[name].update(
                {"n": len(total), "p50_ms": round(_pct(total, 50), 3), "p99_ms": round(_pct(total, 99), 3), "max_ms": round(max(total), 3), **breakdown}
            )
        if "flower" in out:
            flower_p50, flower_p99 = out["flower"]["p50_ms"], out["flower"]["p99_ms"]
            out["ratios_to_flower"] = {
                name: {"p50": round(out[name]["p50_ms"] / flower_p50, 3), "p99": round(out[name]["p99_ms"] / flower_p99, 3)}
                for name in contenders
                if name != "flower" and flower_p50 and flower_p99
            }
        out["workers"] = 2
        self.r0.flushdb()
        self.r2.flushdb()
        self.results["latency"] = out

    def _offload_latency(self, n: int, warm: int = 10) -> dict[str, list[float]]:
        """``n`` no-op jobs one after the other through offload's gunicorn (``POST /jobs``, then
        ``GET /jobs/{id}?wait=10``), the first ``warm`` left out."""
        import http.client

        body = json.dumps({"type": "noop"})
        samples: dict[str, list[float]] = {part: [] for part in ("total", "post", "wait", "queue_to_end", *TIMELINE)}
        conn = http.client.HTTPConnection("127.0.0.1", self.web_port, timeout=30)
        try:
            for i in range(n + warm):
                # Keys in turn, as many clients (one key would meet its 50/second limit);
                # a client key sees only its own jobs, so the GET uses the same key.
                key = self.client_secrets[i % len(self.client_secrets)]
                headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                time.sleep(0.005)  # let the workers go back to waiting on the queue
                started, wall_started = time.perf_counter(), time.time()
                conn.request("POST", "/jobs", body=body, headers={**headers, "Idempotency-Key": secrets.token_hex(8)})
                response = conn.getresponse()
                job = json.loads(response.read())
                posted = time.perf_counter()
                if response.status != 202:
                    raise RuntimeError(f"submit answered {response.status}: {job}")
                while job["status"] not in ("finished", "failed"):
                    conn.request("GET", f"/jobs/{job['id']}?wait=10", headers=headers)
                    response = conn.getresponse()
                    job = json.loads(response.read())
                done, wall_done = time.perf_counter(), time.time()
                if job["status"] != "finished":
                    raise RuntimeError(f"latency job ended {job['status']}")
                if i >= warm:  # the first ten warm the horse, the listener thread, connections
                    samples["total"].append((done - started) * 1000)
                    samples["post"].append((posted - started) * 1000)
                    samples["wait"].append((done - posted) * 1000)
                    samples["queue_to_end"].append(_ms_between(job["enqueued_at"], job["ended_at"]))
                    # The job's life on one clock (the server's timestamps have millisecond precision).
                    moments = [wall_started, *(_epoch(job[name]) for name in ("enqueued_at", "started_at", "ended_at")), wall_done]
                    for part, (a, b) in zip(TIMELINE, itertools.pairwise(moments), strict=True):
                        samples[part].append((b - a) * 1000)
        finally:
            conn.close()
        return samples

    def bulk(self) -> None:
        from app import tasks

        contenders = [c for c in ("offload-forking", "offload-fast") if c in self.args.contenders]
        texts = [words_text(MIB, seed) for seed in range(4)]
        size_mb = len(texts[0].encode()) / 1e6
        out: dict = {"text_bytes": len(texts[0].encode()), "jobs_per_round": self.cfg["bulk_jobs"], "workers": 1}
        inproc_split: list[float] = []
        inproc_task: list[float] = []
        round_split: list[float] = []  # each round's in-process rate, the yardstick of that round's workers
        per: dict[str, list[float]] = {c: [] for c in contenders}
        for r in range(self.cfg["rounds"]):
            this_round: list[float] = []
            for text in texts:
                for _ in range(3):
                    t = time.perf_counter()
                    len(text.split())
                    this_round.append(size_mb / (time.perf_counter() - t))
                    t = time.perf_counter()
                    tasks.count_words(text)
                    inproc_task.append(size_mb / (time.perf_counter() - t))
            inproc_split += this_round
            round_split.append(statistics.median(this_round))
            for name in contenders if r % 2 == 0 else list(reversed(contenders)):
                self.r0.flushdb()
                k = self.cfg["bulk_jobs"]
                ids = self._fill_offload("count_words", k, texts)
                procs = self.start_workers(name, 1)
                try:
                    self._wait(lambda k=k: self.completed(name, "count_words") >= k, 120, f"{k} bulk jobs")
                finally:
                    self.stop_workers(name, procs)
                from app.jobs.engine.job import OffloadJob

                jobs = OffloadJob.fetch_many(ids, connection=self.r0, serializer=self.job_queue.serializer)
                ends = sorted(job.ended_at.timestamp() for job in jobs if job and job.ended_at)
                rate = (len(ends) - 1) * size_mb / (ends[-1] - ends[0]) if len(ends) > 1 and ends[-1] > ends[0] else 0.0
                per[name].append(rate)
                log(f"  bulk {name:16s} {rate:6.1f} MB/s")
        self.r0.flushdb()
        out["in_process_split_mb_s"] = round(statistics.median(inproc_split), 1)
        out["in_process_split_rounds"] = [round(x, 1) for x in round_split]
        out["in_process_count_words_mb_s"] = round(statistics.median(inproc_task), 1)
        for name in contenders:
            mbs = statistics.median(per[name]) if per[name] else 0.0
            # The ratio is the median of each round's worker rate over the in-process rate of the
            # same round: this machine's speed drifts by a third within minutes (section 13 of
            # bench/FINDINGS.md), and a worker and a yardstick taken in different moments disagree.
            ratios = [rate / split for rate, split in zip(per[name], round_split, strict=True) if split]
            ratio = statistics.median(ratios) if ratios else 0.0
            out[name] = {"mb_s": round(mbs, 1), "rounds": [round(x, 1) for x in per[name]], "ratio": round(ratio, 3), "round_ratios": [round(x, 3) for x in ratios]}
        log(f"  bulk in-process len(text.split()) {out['in_process_split_mb_s']} MB/s, count_words {out['in_process_count_words_mb_s']} MB/s")
        self.results["bulk"] = out

    def memory(self) -> None:
        out: dict = {}
        baseline = self.cfg["memory_baseline"]
        if "offload-fast" in self.args.contenders:
            out["offload-fast"] = self._memory_run("offload-fast", self.cfg["memory_jobs"], baseline, None)
        if "offload-forking" in self.args.contenders and self.cfg["memory_fork_seconds"]:
            out["offload-forking"] = self._memory_run(
                "offload-forking", self.cfg["memory_jobs"], baseline, self.cfg["memory_fork_seconds"]
            )
        out["web_peak_rss_mib"] = self._web_peaks()
        out["worker_peak_rss_mib"] = {k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in self.worker_peaks.items()}
        self.results["memory"] = out

    def _memory_run(self, name: str, total: int, baseline: int, seconds: float | None) -> dict:
        """One worker; a producer keeps a backlog; RSS read after ``baseline`` jobs and at the end."""
        self.r0.flushdb()
        extra = {"BENCH_HORSE_MAX_JOBS": "0"} if name == "offload-fast" else {}
        procs = self.start_workers(name, 1, extra)
        worker = procs[0]
        stop = threading.Event()
        submitted = [0]

        def produce() -> None:
            while not stop.is_set() and submitted[0] < total:
                backlog = submitted[0] - self.completed(name, "noop")
                if backlog > 3000:
                    time.sleep(0.05)
                    continue
                batch = min(1000, total - submitted[0])
                self._clone_fill(template, batch)
                submitted[0] += batch

        template = self._fill_offload("noop", 1, [""])[0]
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        readings: dict = {}
        started = time.monotonic()
        deadline = started + (seconds if seconds else 900)
        try:
            while True:
                done = self.completed(name, "noop")
                # a time-limited run (the forking worker) reads its baseline early enough to
                # leave most of its time for the growth
                early = seconds is not None and time.monotonic() - started > 0.35 * seconds and done > 0
                if "at_baseline" not in readings and (done >= baseline or early):
                    readings["at_baseline"] = self._worker_rss(name, worker.pid, done)
                if done >= total or time.monotonic() > deadline:
                    readings["at_end"] = self._worker_rss(name, worker.pid, done)
                    break
                time.sleep(0.05)
        finally:
            stop.set()
            producer.join(10)
            self.stop_workers(name, procs)
        self.r0.flushdb()
        result = {"jobs_target": total, "seconds": round(time.monotonic() - started, 1), **readings}
        if "at_baseline" in readings:
            first, last = readings["at_baseline"], readings["at_end"]
            for part in ("worker_rss_mib", "horse_rss_mib"):
                if first.get(part) and last.get(part):
                    result[f"{part.removesuffix('_mib')}_growth_pct"] = round(100 * (last[part] - first[part]) / first[part], 2)
        log(f"  memory {name}: {json.dumps(result)}")
        return result

    def _worker_rss(self, name: str, pid: int, done: int) -> dict:
        reading = {"jobs": done, "worker_rss_mib": round(system.rss_mib(pid), 1)}
        if name == "offload-fast":
            horse = system.youngest_child(pid)
            if horse:
                reading["horse_rss_mib"] = round(system.rss_mib(horse), 1)
        return reading

    def _web_peaks(self) -> dict:
        if self.web is None:
            return {}
        workers = system.children(self.web.pid)
        return {
            "arbiter": round(system.peak_rss_mib(self.web.pid), 1),
            "workers": [round(system.peak_rss_mib(pid), 1) for pid in workers],
            "max_worker": round(max((system.peak_rss_mib(pid) for pid in workers), default=0.0), 1),
        }

    def sigkill(self) -> None:
        from bench import sigkill

        order = ("offload-fast", "offload-forking", "celery", "celery-safe", "dramatiq")
        contenders = [c for c in order if c in self.args.contenders and self.available(c)]
        self.results["sigkill"] = sigkill.run(self, contenders, self.cfg["sigkill_wait"], log)

    def available(self, contender: str) -> bool:
        """Whether a contender's distribution is installed (the bench extra's are optional)."""
        dist = EXTRA.get(contender)
        return dist is None or _version(dist) is not None

    # --- the run ------------------------------------------------------------------------

    def wait_until_quiet(self) -> None:
        limit, patience = self.args.max_load, self.cfg["wait_quiet"] if self.args.wait_quiet is None else self.args.wait_quiet
        load = os.getloadavg()[0]
        deadline = time.monotonic() + patience
        while load >= limit and time.monotonic() < deadline:
            log(f"load average {load:.2f} >= {limit}; waiting (up to {deadline - time.monotonic():.0f} s more)")
            time.sleep(10)
            load = os.getloadavg()[0]
        self.results["load_before"] = {"loadavg": [round(x, 2) for x in os.getloadavg()], "quiet": load < limit, "limit": limit}

    def run(self) -> dict:
        self.wait_until_quiet()
        started = time.time()
        if {"intake", "batch"} & set(self.args.phases) and not self.args.python_load and self.args.install:
            loadgen.ensure_wrk(log)
        self.celery_ok = _version("celery") is not None
        for name in self.args.contenders:
            if not self.available(name):
                log(f"{EXTRA[name]} is not installed (pip install -e '.[bench]'): {name} is left out")
        self.start_servers()
        self.results.update(
            {
                "schema": 1,
                "mode": "quick" if self.args.quick else "full",
                "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": "make bench" if not self.args.quick else "python -m bench --quick",
                "machine": system.machine(),
                "versions": {
                    "offload_git": _git_revision(),
                    "valkey": self.valkey_version,
                    "rq": _version("rq"),
                    "redis-py": _version("redis"),
                    "hiredis": _version("hiredis"),
                    "celery": _version("celery"),
                    "dramatiq": _version("dramatiq"),
                    "flower": _version("flower"),
                    "kombu": _version("kombu"),
                    "gunicorn": _version("gunicorn"),
                    "flask": _version("flask"),
                    "wrk": loadgen.wrk_version() if not self.args.python_load else None,
                },
                "config": {
                    **self.cfg,
                    "contenders": list(self.args.contenders),
                    "phases": list(self.args.phases),
                    "client_api_keys": CLIENT_KEYS,
                    "rate_limits": {"submit": self.settings.rate_limit_submit, "read": self.settings.rate_limit_read},
                    "web": {"processes": self.settings.web_concurrency, "threads": self.settings.web_threads},
                    "log_level": "INFO",
                    "appendfsync": self.appendfsync,
                },
            }
        )
        for name in PHASES:
            if name in self.args.phases:
                with self.phase(name):
                    getattr(self, name)()
        if "memory" not in self.args.phases:
            peaks = {k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in self.worker_peaks.items()}
            self.results["memory"] = {"web_peak_rss_mib": self._web_peaks(), "worker_peak_rss_mib": peaks}
        self.results["load_after"] = {"loadavg": [round(x, 2) for x in os.getloadavg()]}
        self.results["duration_s"] = round(time.time() - started, 1)
        self.results["targets"] = report.targets(self.results)
        return self.results


def _pct(samples: list[float], p: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


#: A job's life in the latency phase, from the client's POST to the client holding the finished
#: job: POST sent -> enqueued (the web's work before the submission's script), enqueued ->
#: started (the POST's script, a worker woken, the dequeue script), started -> ended (the job in
#: the horse), ended -> answered (the outcome script, the event, the GET's read and answer).
TIMELINE = ("to_enqueued", "enqueued_to_started", "started_to_ended", "ended_to_answered")


def _epoch(moment: str) -> float:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def _ms_between(start: str, end: str) -> float:
    parse = lambda moment: datetime.fromisoformat(moment.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds() * 1000


def _git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "app"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute (writes bench-quick.*)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--contenders", default=",".join(ALL_CONTENDERS), help=f"subset of {','.join(ALL_CONTENDERS)}")
    parser.add_argument("--rounds", type=int, default=0, help="rounds of each comparison (default 3, quick 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="directory for the JSON, table and chart")
    parser.add_argument("--name", default="", help="file stem (default bench, or bench-quick with --quick)")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for the 1-minute load average to drop below this")
    parser.add_argument("--wait-quiet", type=float, default=None, help="seconds to wait for that (default 180, quick 0)")
    parser.add_argument("--python-load", action="store_true", help="use the asyncio load generator even if wrk is there")
    parser.add_argument("--no-install", dest="install", action="store_false", help="do not apt-get install wrk")
    parser.add_argument("--no-chart", dest="chart", action="store_false", help="skip the PNG")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (their directory is printed)")
    args = parser.parse_args(argv)
    args.phases = [p for p in args.phases.split(",") if p]
    args.contenders = [c for c in args.contenders.split(",") if c]
    for value, allowed in ((args.phases, PHASES), (args.contenders, ALL_CONTENDERS)):
        unknown = set(value) - set(allowed)
        if unknown:
            parser.error(f"unknown: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    try:
        results = bench.run()
    finally:
        bench.close()
    stem = args.name or ("bench-quick" if args.quick else "bench")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = report.table(results)
    (args.out / f"{stem}.txt").write_text(table + "\n")
    print(table)
    if args.chart:
        note = report.chart(results, args.out / f"{stem}.png")
        if note:
            log(note)
    log(f"wrote {args.out / (stem + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

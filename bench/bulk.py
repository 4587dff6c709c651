"""Bulk retry and search at scale: 200,000 failed jobs (issue 18; rq-dashboard becomes unusable
near 200k failed jobs).

Runs alone (``python -m bench.bulk [--jobs N]``) on its own servers: a Valkey (as ``make run``
starts it, AOF fsynced on every write) and one gunicorn web process (1 worker, 4 threads). It

1. creates N real failed jobs straight in Valkey, in pipelines of 1,000: RQ's job hash, failure
   result (a stream entry) and failed-registry entry, plus offload's index entry; what
   ``GET /jobs/{id}`` shows as ``failed`` with ``error.type`` ``RuntimeError`` (see :func:`populate`);
2. times a search over them over HTTP: the first page of ``?error_type=RuntimeError``, and a
   walk of the whole index with a metadata filter nothing matches (every page, following ``next``);
3. times ``POST /jobs/bulk`` retrying all of them, 10,000 a request, following ``next``;
4. checks that every job is queued, once (the queue holds N ids, N distinct), and prints the
   figures and the web process's peak RSS (VmHWM), also as JSON to bench/results/bulk.json.

No worker runs: the retried jobs stay queued, so the figure is the bulk action's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis
import requests
from rq.job import JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import utcformat

from app.dev.stack import valkey_command
from app.jobs.engine.job import ATTEMPTS_FIELD, OffloadJob
from app.jobs.keys import JOB_INDEX_KEY
from app.jobs.engine.queue import OffloadQueue, register_queues
from app.tasks import diagnostic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FAILURE_TTL = 7 * 86400
TRACEBACK = 'Traceback (most recent call last):\n  File "app/tasks/diagnostic.py", line 15, in fail\nRuntimeError: failed on purpose\n'


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001, S110 - not up yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def populate(connection: redis.Redis, count: int) -> float:
    """N failed ``fail`` jobs on the default queue; returns the seconds it took.

    The first job is made by RQ itself (``Queue.create_job``, ``Job.save``, ``Result`` of a
    failure, ``FailedJobRegistry.add``); the others are copies of its hash and result with their
    own id, creation time and metadata, written in pipelines of 1,000 (making each through RQ's
    objects costs ~0.5 ms of Python a job: minutes at 200,000 on this 2-core machine)."""
    queue = OffloadQueue("default", connection=connection, serializer=JSONSerializer, job_class=OffloadJob)
    registry = FailedJobRegistry("default", connection=connection, job_class=OffloadJob, serializer=JSONSerializer)
    func_name = f"{diagnostic.fail.__module__}.{diagnostic.fail.__name__}"
    started = time.perf_counter()
    template = queue.create_job(
        func_name,
        kwargs={"message": "failed on purpose"},
        meta={"type": "fail", "owner": None, "max_retries": 0, "metadata": {"n": 0}},
        result_ttl=3600,
        failure_ttl=FAILURE_TTL,
        description="fail",
    )
    moment = datetime.now(UTC)
    template.origin = "default"
    template.enqueued_at = template.started_at = template.ended_at = moment
    template._status = JobStatus.FAILED
    fields = {**template.to_dict(), ATTEMPTS_FIELD: 1}
    result = Result(template.id, Result.Type.FAILED, connection=connection, exc_string=TRACEBACK, serializer=JSONSerializer)
    result_fields = result.serialize()
    expires = time.time() + FAILURE_TTL
    done = 0
    while done < count:
        size = min(1000, count - done)
        with connection.pipeline(transaction=False) as pipe:
            for n in range(done, done + size):
                job_id = str(uuid.uuid4())
                created = time.time()
                key = OffloadJob.key_for(job_id)
                meta = {"type": "fail", "owner": None, "max_retries": 0, "metadata": {"n": n}}
                pipe.hset(key, mapping={**fields, "created_at": utcformat(datetime.fromtimestamp(created, UTC)), "meta": JSONSerializer.dumps(meta)})
                pipe.expire(key, FAILURE_TTL)
                pipe.xadd(Result.get_key(job_id), result_fields, maxlen=10)
                pipe.expire(Result.get_key(job_id), FAILURE_TTL)
                pipe.zadd(registry.key, {job_id: expires})
                pipe.zadd(JOB_INDEX_KEY, {job_id: created})
            pipe.execute()
        done += size
    return time.perf_counter() - started


def peak_rss_mib(master_pid: int) -> float:
    """The largest VmHWM among gunicorn's worker processes (children of the master)."""
    peak = 0
    for task in Path(f"/proc/{master_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--page", type=int, default=10_000, help="limit of each bulk request")
    args = parser.parse_args(argv)
    figures: dict = {"jobs": args.jobs, "bulk_limit": args.page}
    with tempfile.TemporaryDirectory(prefix="offload-bulk-bench-") as tmp:
        port = free_port()
        valkey = subprocess.Popen([*valkey_command(port, Path(tmp))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        web = None
        try:
            url = f"redis://127.0.0.1:{port}/0"
            connection = redis.Redis.from_url(url)
            wait_for(connection.ping, 15, "Valkey")
            register_queues(connection)
            connection.config_set("appendfsync", "everysec")  # populating only; timed work runs as shipped
            connection.config_set("maxmemory", "4gb")  # ~5.5 KB a failed job: 200,000 is over make run's 1 GB
            figures["populate_seconds"] = round(populate(connection, args.jobs), 1)
            connection.config_set("appendfsync", "always")
            print(f"created {args.jobs} failed jobs in {figures['populate_seconds']} s", flush=True)

            web_port = free_port()
            env = {**os.environ, "REDIS_URL": url, "ENABLE_DIAGNOSTIC_TASKS": "1", "RATE_LIMIT_ENABLED": "0"}
            web = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{web_port}", "--workers", "1",
                 "--threads", "4", "--worker-class", "gthread", "--timeout", "120", "wsgi:app"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            base = f"http://127.0.0.1:{web_port}"
            wait_for(lambda: requests.get(f"{base}/healthz", timeout=1).ok, 30, "gunicorn")
            figures["web_rss_mib_before"] = round(peak_rss_mib(web.pid), 1)

            started = time.perf_counter()
            first = requests.get(f"{base}/jobs?error_type=RuntimeError&limit=50", timeout=120)
            first.raise_for_status()
            figures["search_first_page_seconds"] = round(time.perf_counter() - started, 3)
            assert len(first.json()["jobs"]) == 50

            started, pages, link = time.perf_counter(), 0, "/jobs?metadata_key=n&metadata_value=none&limit=50"
            while link:
                page = requests.get(f"{base}{link}", timeout=120)
                page.raise_for_status()
                pages += 1
                link = page.json()["next"]
            figures["search_full_walk_seconds"] = round(time.perf_counter() - started, 2)
            figures["search_full_walk_requests"] = pages
            print(f"search: first page {figures['search_first_page_seconds']} s; whole index (no match) "
                  f"{figures['search_full_walk_seconds']} s in {pages} requests", flush=True)  # fmt: skip

            started, cursor, requests_made, done, slowest = time.perf_counter(), None, 0, 0, 0.0
            while True:
                one = time.perf_counter()
                body = {"action": "retry", "filter": {"error_type": "RuntimeError"}, "limit": args.page, "cursor": cursor}
                answer = requests.post(f"{base}/jobs/bulk", json=body, timeout=300)
                answer.raise_for_status()
                slowest = max(slowest, time.perf_counter() - one)
                reply = answer.json()
                requests_made += 1
                done += reply["done"]
                cursor = reply["next"]
                if cursor is None:
                    break
            elapsed = time.perf_counter() - started
            figures.update(
                retry_seconds=round(elapsed, 1),
                retry_jobs_per_second=round(done / elapsed),
                retry_requests=requests_made,
                retry_slowest_request_seconds=round(slowest, 2),
                retried=done,
            )
            queued = [member for member in connection.lrange("rq:queue:default", 0, -1)]
            figures["queued_after"] = len(queued)
            figures["queued_distinct"] = len(set(queued))
            figures["failed_registry_after"] = connection.zcard(registry_key := "rq:failed:default")
            figures["web_rss_mib_peak"] = round(peak_rss_mib(web.pid), 1)
            print(f"bulk retry: {done} jobs in {figures['retry_seconds']} s ({figures['retry_jobs_per_second']} jobs/s), "
                  f"{requests_made} requests, slowest {figures['retry_slowest_request_seconds']} s; queued after: "
                  f"{len(queued)} ({len(set(queued))} distinct), left in {registry_key}: "
                  f"{figures['failed_registry_after']}; web peak RSS {figures['web_rss_mib_peak']} MiB", flush=True)  # fmt: skip
        finally:
            for process in (web, valkey):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    process.wait(30)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bulk.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    ok = figures["retried"] == figures["queued_after"] == figures["queued_distinct"] == args.jobs
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

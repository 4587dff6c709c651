"""Job counters for /metrics, kept in Redis so every web process reports the same figures
for jobs run by any worker on any host.

Each function takes an optional ``pipeline`` (RQ's convention): given one, its commands
ride in the caller's transaction and it sends nothing itself.
"""

from __future__ import annotations

import logging

import redis
from rq.job import Job

from ..admin import timeseries
from ..keys import METRICS_KEY
from ..reading.resource import describe_exception

log = logging.getLogger(__name__)

#: Upper bounds (seconds) of the job run-time histogram buckets.
RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


def record_outcome(
    connection: redis.Redis, job: Job, outcome: str, pipeline: redis.client.Pipeline | None = None
) -> None:
    """Count a job's end (``finished``, ``failed``, ``retried`` or ``stopped``) and its run
    time, by type. With ``pipeline``, the commands join it (the caller executes it)."""
    job_type = job.meta.get("type", "unknown")
    pipe = pipeline if pipeline is not None else connection.pipeline(transaction=False)
    pipe.hincrby(METRICS_KEY, f"{outcome}:{job_type}", 1)
    seconds = None
    if job.started_at and job.ended_at and outcome != "retried":
        seconds = max(0.0, (job.ended_at - job.started_at).total_seconds())
        bucket = next((str(le) for le in RUNTIME_BUCKETS if seconds <= le), "+Inf")
        pipe.hincrby(METRICS_KEY, f"runtime_bucket:{job_type}:{bucket}", 1)
        pipe.hincrbyfloat(METRICS_KEY, f"runtime_sum:{job_type}", seconds)
    if outcome in ("finished", "failed"):  # the charts' per-minute series (app/jobs/timeseries.py)
        timeseries.count(pipe, outcome, job.origin, seconds=seconds)
    if pipeline is not None:
        return
    try:
        pipe.execute()
    except redis.RedisError:
        log.warning("could not count the end of job %s", job.id, extra={"job_id": job.id})
    finally:
        pipe.reset()


def remember_failure(job: Job, exc_string: str) -> None:
    """Keep an attempt's error on a job that is about to be retried (RQ keeps only final ones)."""
    job.meta["last_error"] = describe_exception(exc_string, timeout=job.timeout)
    try:
        job.save_meta()
    except redis.RedisError:
        log.warning("could not save the error of job %s", job.id, extra={"job_id": job.id})

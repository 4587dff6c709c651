"""RQ's private methods and attributes that offload calls, each behind one named function.

RQ offers no public way to do these in a caller's transaction (its public methods open their own
pipelines or refuse one). Each call is pinned by a test in ``tests/jobs/engine/test_rq_private.py``
that names it and the RQ version, so an RQ upgrade that renames or reshapes one fails there first.
"""

from __future__ import annotations

import redis
from rq.job import Job
from rq.queue import Queue


def set_dependency_ids(job: Job, ids: list[str]) -> None:
    """Make ``job`` depend on ``ids`` before its dependency is registered in a transaction already
    in MULTI (RQ's ``Queue.setup_dependencies`` does this with a pipeline of its own)."""
    job._dependency_ids = ids  # noqa: SLF001


def enqueue_rate_limited(queue: Queue, job: Job, pipeline: redis.client.Pipeline) -> None:
    """Save a job that has a rate limit as ``rate_limited`` and promote it onto its queue if a slot
    is free, in the caller's transaction (RQ's ``enqueue_job`` refuses a pipeline for such a job)."""
    queue._enqueue_rate_limited_job(job, pipeline=pipeline)  # noqa: SLF001


def enqueue_at_front(queue: Queue, job: Job, pipeline: redis.client.Pipeline) -> None:
    """Put a job at the front of its queue in the caller's transaction, as RQ's own retry does,
    without RQ's public ``enqueue_job`` (which would run its dependency and rate-limit checks)."""
    queue._enqueue_job(job, pipeline=pipeline, at_front=True)  # noqa: SLF001


def record_failure(job: Job, exc_string: str, pipeline: redis.client.Pipeline) -> None:
    """RQ's bookkeeping of a final failure (its failed registry, result, TTLs; and offload's own
    ending, :meth:`app.jobs.engine.job.OffloadJob._handle_failure`), in the caller's transaction."""
    job._handle_failure(exc_string, pipeline)  # noqa: SLF001

"""RQ's storage format, read and written by hand where RQ's classes would cost a round trip a job.

A job is a hash at ``rq:job:<id>`` (fields ``status``, ``origin``, ``meta`` (JSON), ``timeout``,
``enqueued_at``, ``started_at``, ``ended_at``, ``exc_info``, ``rate_limit_key``, ...), its
results a stream at ``rq:results:<id>``, its dependents and dependencies sets beside it; a rate
limit's configuration a hash with a ``concurrency`` field; a queue's workers a set. Offload reads
many jobs' fields in one pipelined round trip (search, bulk actions, batches, dependencies) and
changes a few fields at once (a bulk retry) where RQ would restore and save whole jobs one
transaction each. Every such read and write is here, so an RQ that stores a job differently is
mended in one module; ``tests/jobs/engine/test_rq_private.py`` checks each fact against RQ.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import redis
from rq.job import Job, JobStatus
from rq.rate_limit import RateLimitRegistry
from rq.queue import Queue
from rq.registry import CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.utils import current_timestamp, now, utcformat
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from . import scripts

#: The fields of a job's hash a filter needs (:func:`read_summaries`), and offload's own
#: attempts counter (:data:`app.jobs.engine.job.ATTEMPTS_FIELD`) after them.
SUMMARY_FIELDS = ("status", "origin", "meta", "timeout", "rate_limit_key", "rate_limit_concurrency")
#: What RQ's ``FailedJobRegistry.requeue`` resets on a job it puts back on its queue.
_REQUEUED = {"enqueued_at": None, "started_at": "", "ended_at": "", "exc_info": ""}


def job_key(job_id: str) -> str:
    """The hash RQ keeps job ``job_id`` in."""
    return Job.key_for(job_id)


def job_id_of(key: str) -> str:
    """The id of the job whose hash is ``key``."""
    return key.removeprefix(Job.redis_job_namespace_prefix)


def queue_key(name: str) -> str:
    """The list RQ keeps queue ``name``'s waiting job ids in."""
    return f"{Queue.redis_queue_namespace_prefix}{name}"


def dependents_key(job_id: str) -> str:
    """RQ's set of the jobs waiting on ``job_id``."""
    return Job.dependents_key_for(job_id)


def dependencies_key(job_id: str) -> str:
    """RQ's set of the jobs ``job_id`` waits on (``rq:job::<id>:dependencies``, RQ's double colon
    and all; it has no class method for it)."""
    return f"{Job.redis_job_namespace_prefix}:{job_id}:dependencies"


def status(raw: bytes | str | None) -> JobStatus | None:
    """A job's status from its hash's ``status`` field (None: no such job)."""
    if raw is None:
        return None
    return JobStatus(raw.decode() if isinstance(raw, bytes) else raw)


def ask_status(pipe: redis.client.Pipeline, job_id: str) -> None:
    """Ask (in ``pipe``) for a job's status; :func:`status` reads the reply."""
    pipe.hget(job_key(job_id), "status")


def read_statuses(connection: redis.Redis, job_ids: Iterable[str]) -> list[JobStatus | None]:
    """Each job's status (None: expired or unknown), in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            ask_status(pipe, job_id)
        return [status(raw) for raw in pipe.execute()]


def ask_status_and_meta(pipe: redis.client.Pipeline, job_id: str) -> None:
    """Ask (in ``pipe``) for a job's status and meta; :func:`status_and_meta` reads the reply."""
    pipe.hmget(job_key(job_id), "status", "meta")


def status_and_meta(reply: list) -> tuple[JobStatus, dict] | None:
    """The status and meta of :func:`ask_status_and_meta`'s reply; None when the job is gone or its
    meta is not JSON."""
    raw_status, raw_meta = reply
    if raw_status is None or raw_meta is None:
        return None
    try:
        meta = json.loads(raw_meta)
    except ValueError:
        return None
    return status(raw_status), meta  # type: ignore[return-value]


def read_summaries(connection: redis.Redis, job_ids: list[str], *extra: str) -> list[dict | None]:
    """Of each job, what a filter needs (None: it expired), with no payload read and no dates
    parsed, in one round trip: ``status`` (JobStatus or None), ``origin``, ``meta`` (dict),
    ``timeout``, ``rate_limit_key``, ``rate_limit_concurrency``, and the ``extra`` fields as bytes."""
    fields = (*SUMMARY_FIELDS, *extra)
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(job_key(job_id), fields)
        replies = pipe.execute()
    found: list[dict | None] = []
    for reply in replies:
        raw_status, origin, meta, timeout, limit_key, limit, *rest = reply
        if origin is None:
            found.append(None)
            continue
        try:
            loaded = JSONSerializer.loads(meta) if meta else {}
        except ValueError:
            loaded = {}
        found.append(
            {
                "status": status(raw_status),
                "origin": origin.decode(),
                "meta": loaded if isinstance(loaded, dict) else {},
                "timeout": int(timeout) if timeout and timeout.isdigit() else None,
                "rate_limit_key": limit_key.decode() if limit_key else None,
                "rate_limit_concurrency": int(limit) if limit and limit.isdigit() else None,
                **dict(zip(extra, rest, strict=True)),
            }
        )
    return found


def latest_results(connection: redis.Redis, job_ids: list[str]) -> list[Result | None]:
    """Each job's latest result (RQ's results stream), in one round trip (RQ's ``latest_result``
    is one a job)."""
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.xrevrange(Result.get_key(job_id), "+", "-", count=1)
        replies = pipe.execute()
    found: list[Result | None] = []
    for job_id, reply in zip(job_ids, replies, strict=True):
        if not reply:
            found.append(None)
            continue
        result_id, payload = reply[0]
        found.append(Result.restore(job_id, result_id.decode(), payload, connection=connection, serializer=JSONSerializer))
    return found


def save_meta(job: Job, pipeline: redis.client.Pipeline) -> None:
    """RQ's ``save_meta``, in the caller's transaction (RQ's sends it alone)."""
    pipeline.hset(job.key, "meta", job.serializer.dumps(job.meta))


def mark_ended_at(job: Job, pipeline: redis.client.Pipeline) -> None:
    """Write ``job.ended_at`` into its hash in the caller's transaction (RQ writes it only in its
    worker's outcome code)."""
    pipeline.hset(job.key, "ended_at", utcformat(job.ended_at))


def mark_rate_limited(job_id: str, pipeline: redis.client.Pipeline) -> None:
    """Set a job's status to ``rate_limited`` (waiting for a slot of its limit)."""
    pipeline.hset(job_key(job_id), "status", "rate_limited")


def requeue(connection: redis.Redis, by_origin: dict[str, list[str]], pipeline: redis.client.Pipeline) -> None:
    """What RQ's ``FailedJobRegistry.requeue`` changes for each job (off the failed and canceled
    registries; status, times, error, TTL), field by field and a registry per command, in the
    caller's transaction; putting them on their queues is the caller's."""
    fields = {**_REQUEUED, "status": JobStatus.QUEUED.value, "enqueued_at": utcformat(now())}
    for origin, ids in by_origin.items():
        for registry_class in (FailedJobRegistry, CanceledJobRegistry):
            pipeline.zrem(registry_class(origin, connection=connection).key, *ids)
        for job_id in ids:
            pipeline.hset(job_key(job_id), mapping=fields)
            pipeline.persist(job_key(job_id))


def delete(connection: redis.Redis, by_origin: dict[str, list[str]], pipeline: redis.client.Pipeline) -> None:
    """Delete ended jobs, their results and RQ's sets about them, and take them off the registries
    of ended jobs, in the caller's transaction (RQ's ``Job.delete`` is a transaction a job)."""
    for origin, ids in by_origin.items():
        for registry_class in (FinishedJobRegistry, FailedJobRegistry, CanceledJobRegistry):
            pipeline.zrem(registry_class(origin, connection=connection).key, *ids)
        for job_id in ids:
            pipeline.delete(job_key(job_id), dependents_key(job_id), dependencies_key(job_id), Result.get_key(job_id))


class QueuedCanceler:
    """Cancels queued jobs in one script a batch (``lua/cancel_queued.lua``): a job is canceled
    only if the script itself takes it off its queue (or its limit's waiting set), which a worker's
    dequeue that got there first makes impossible."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._script = scripts.register(connection, "cancel_queued")

    def __call__(self, jobs: list[tuple[str, str, str | None]], channel: str) -> list[str]:
        """Cancel each ``(job id, its queue's name, the waiting key of its rate limit or None)``;
        answers the ids canceled, each published on ``channel``."""
        keys: list[str] = []
        for job_id, origin, waiting in jobs:
            canceled = CanceledJobRegistry(origin, connection=self.connection).key
            keys += [job_key(job_id), queue_key(origin), canceled, waiting or job_key(job_id)]
        done = self._script(keys=keys, args=[current_timestamp(), channel, *(job_id for job_id, _, _ in jobs)])
        return [raw.decode() if isinstance(raw, bytes) else raw for raw in done]


def waiting_key(connection: redis.Redis, rate_limit_key: str) -> str:
    """The sorted set of the jobs waiting for a slot of ``rate_limit_key``."""
    return RateLimitRegistry(rate_limit_key, connection).rate_limited_key


def ask_limit(pipe: redis.client.Pipeline, registry: RateLimitRegistry) -> None:
    """Ask (in ``pipe``) for a rate limit's concurrency as RQ configured it."""
    pipe.hget(registry.config_key, "concurrency")


def workers_key(queue_name: str) -> str:
    """RQ's set of the workers (their keys) that serve ``queue_name``."""
    return WORKERS_BY_QUEUE_KEY % queue_name

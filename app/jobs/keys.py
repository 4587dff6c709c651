"""Every Redis key and channel name offload writes beside RQ's own, and the names it gives RQ's
rate limits.

They all start with RQ's key prefix, so in Redis Cluster they share its hash tag (one slot,
one node) and every multi-key transaction stays legal. RQ's keys (queues, registries, job
hashes) are RQ's business: :mod:`app.jobs.engine.queue` and :mod:`app.jobs.store` reach them only
through RQ's classes.
"""

from __future__ import annotations

import hashlib

from rq.defaults import RQ_KEY_PREFIX

#: Prefix of every key offload itself writes.
KEY_PREFIX = f"{RQ_KEY_PREFIX}:offload"
#: Pub/sub channel a worker publishes a job's id on when the job ends (``?wait=`` listens).
EVENTS_CHANNEL = f"{KEY_PREFIX}:events"
#: Sorted set of every job id by creation time: the index ``GET /jobs`` pages through.
JOB_INDEX_KEY = f"{KEY_PREFIX}:jobs"
#: Hash of counters (``enqueued:<type>``, ``finished:<type>``, run-time buckets) for /metrics.
METRICS_KEY = f"{KEY_PREFIX}:metrics"
#: List an idle worker blocks on; every enqueue pushes a token (see :class:`~app.jobs.engine.queue.OffloadQueue`).
WAKE_KEY = f"{KEY_PREFIX}:wake"
#: Set of the names of the paused queues: both workers' dequeue scripts skip them (app/jobs/queues_admin.py).
PAUSED_QUEUES_KEY = f"{KEY_PREFIX}:paused"
#: Sorted set of every schedule id by creation time: the index ``GET /schedules`` pages through.
SCHEDULE_INDEX_KEY = f"{KEY_PREFIX}:schedules"
#: Sorted set of the enabled schedules by their next run (Unix seconds): what the tickers poll.
SCHEDULE_DUE_KEY = f"{KEY_PREFIX}:schedules:due"
#: Set of ids of jobs that ended failed, canceled or stopped with dependents still waiting on them
#: (written in the job's outcome transaction; :mod:`app.jobs.submitting.dependencies` fails the dependents).
ORPHANING_KEY = f"{KEY_PREFIX}:orphaning"
#: Set of ids of batches that have ended and whose callback is yet to be queued (:mod:`app.jobs.submitting.batches`).
BATCH_CALLBACKS_DUE_KEY = f"{KEY_PREFIX}:batches:due"


def text_key(job_id: str, field: str = "text") -> str:
    """Where a long text of a job's ``long_text`` field is kept, outside RQ's job payload
    (``text``, count_words's field, keeps the name it had before any field could)."""
    suffix = "" if field == "text" else f":{field}"
    return f"{KEY_PREFIX}:text:{job_id}{suffix}"


def state_key(job_id: str, name: str) -> str:
    """A value of a job's own state (``ctx.state``), kept across its attempts."""
    return f"{KEY_PREFIX}:state:{job_id}:{name}"


def cancel_key(job_id: str) -> str:
    """Set when a client asks to cancel a running job: its task's ``ctx.cancelled()`` reads it."""
    return f"{KEY_PREFIX}:cancel:{job_id}"


def schedule_key(schedule_id: str) -> str:
    """A periodic schedule (a hash: cadence, job submission, next and last run)."""
    return f"{KEY_PREFIX}:schedule:{schedule_id}"


def stranded_key(job_id: str) -> str:
    """When maintenance first saw ``job_id`` stranded on an intermediate list."""
    return f"{KEY_PREFIX}:stranded:{job_id}"


def batch_key(batch_id: str) -> str:
    """A batch's record: a hash (created_at, owner, total, jobs, callback_url, metadata, ended_at)."""
    return f"{KEY_PREFIX}:batch:{batch_id}"


def batch_pending_key(batch_id: str) -> str:
    """The set of a batch's jobs that have not ended yet."""
    return f"{KEY_PREFIX}:batch:{batch_id}:pending"


def idempotency_key(owner: str | None, key: str) -> str:
    """A client's ``Idempotency-Key``, scoped to the client and hashed (keys may be long)."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{KEY_PREFIX}:idempotency:{owner or '-'}:{digest}"


def rate_limit_prefix() -> str:
    """Flask-Limiter's key prefix."""
    return f"{KEY_PREFIX}:ratelimit"


def timeseries_key(minute: int) -> str:
    """One minute's counts per queue, for the page's charts (:mod:`app.jobs.admin.timeseries`)."""
    return f"{KEY_PREFIX}:ts:{minute}"


# The names of the RQ rate limits offload gives jobs (:mod:`app.jobs.running.concurrency`). RQ keeps a
# limit's keys under ``<RQ_KEY_PREFIX>:rl:<name>``, so a name carries no prefix of its own.

#: A client's fair share: ``offload:client:<owner>``.
FAIR_SHARE_LIMIT_PREFIX = "offload:client:"
#: A client's own concurrency key: ``offload:key:<length of owner>:<owner>:<key>``.
CONCURRENCY_LIMIT_PREFIX = "offload:key:"

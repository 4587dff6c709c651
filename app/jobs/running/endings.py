"""What a job's end adds to the transaction that records it: its batch's bookkeeping, and a
note that its dependents will wait in vain.

:meth:`app.jobs.engine.job.OffloadJob._handle_success` and ``_handle_failure`` call :func:`job_ended`
with the pipeline of the outcome transaction. RQ calls those two for every final outcome, on
every path: the fast worker's one-transaction success, RQ's own success and failure handling
(both workers, a stopped job, a dead work horse) and maintenance failing an abandoned job.
So a batch's count of unfinished jobs drops in the same transaction that writes the job's
status, whichever process ends the job, and can never drift from the statuses.

The commands are small Lua scripts, sent with ``EVAL`` (so the transaction needs no
``SCRIPT LOAD`` round trip before it, and a Redis Cluster pipeline, which refuses ``EVALSHA``
and has no ``eval()``, takes them too): a script is atomic, and the one below tells exactly
one job's end that it was the batch's last, even when two workers end the last two jobs at
the same moment.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from rq.job import Job

from ..keys import BATCH_CALLBACKS_DUE_KEY, ORPHANING_KEY, batch_key, batch_pending_key

#: KEYS: the batch's pending set, its hash, the set of batches whose callback is due.
#: ARGV: the job id, the time, seconds the batch's record is kept once it has ended, the batch id.
#: SREM answers 1 for one end of each job only (a second end of the same job changes nothing),
#: and only the SREM that empties the set goes on, if the record is still there (a batch may
#: have expired before a retried job of it ends). HSETNX then lets the batch end once, ever: a
#: job retried after its batch ended reopens it, but its callback is never sent twice.
_BATCH_JOB_ENDED = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('SCARD', KEYS[1]) > 0 or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[3])
if redis.call('HSETNX', KEYS[2], 'ended_at', ARGV[2]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[2], 'callback_url') == 1 then redis.call('SADD', KEYS[3], ARGV[4]) end
return 1
"""

#: KEYS: the job's dependents set (RQ's), the set of jobs whose dependents are to be failed.
#: ARGV: the job id. Only a job that has dependents is noted.
_ORPHANING = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('SADD', KEYS[2], ARGV[1]) end
return 0
"""

#: A batch's record outlives its end by this much at least (its jobs' own TTLs may be longer).
MIN_BATCH_TTL = 24 * 3600


def job_ended(job: Job, pipeline: redis.client.Pipeline, *, finished: bool) -> None:
    """Add the end of ``job`` to its outcome transaction: its batch's count, and (unless it
    finished) the note that its dependents are to be failed."""
    batch_id = job.meta.get("batch_id")
    if batch_id:
        ttl = max(MIN_BATCH_TTL, job.result_ttl or 0, job.failure_ttl or 0)
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        pipeline.execute_command(
            "EVAL", _BATCH_JOB_ENDED, 3, batch_pending_key(batch_id), batch_key(batch_id), BATCH_CALLBACKS_DUE_KEY,
            job.id, now, ttl, batch_id,
        )  # fmt: skip
    if not finished:
        pipeline.execute_command("EVAL", _ORPHANING, 2, job.dependents_key, ORPHANING_KEY, job.id)


def job_reopened(job: Job, pipeline: redis.client.Pipeline) -> None:
    """A job of a batch runs again (``POST /jobs/{id}/retry``): the batch waits for it again."""
    batch_id = job.meta.get("batch_id")
    if batch_id:
        pipeline.sadd(batch_pending_key(batch_id), job.id)
        pipeline.persist(batch_key(batch_id))

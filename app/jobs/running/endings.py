"""What a job's end adds to the transaction that records it: its batch's bookkeeping, and a
note that its dependents will wait in vain.

:meth:`app.jobs.engine.job.OffloadJob._handle_success` and ``_handle_failure`` call :func:`job_ended`
with the pipeline of the outcome transaction. RQ calls those two for every final outcome, on
every path: the fast worker's one-transaction success, RQ's own success and failure handling
(both workers, a stopped job, a dead work horse) and maintenance failing an abandoned job.
So a batch's count of unfinished jobs drops in the same transaction that writes the job's
status, whichever process ends the job, and can never drift from the statuses.

The commands are small Lua scripts (``engine/lua/batch_job_ended.lua`` and ``orphaning.lua``),
sent with ``EVAL`` (so the transaction needs no
``SCRIPT LOAD`` round trip before it, and a Redis Cluster pipeline, which refuses ``EVALSHA``
and has no ``eval()``, takes them too): a script is atomic, and the one below tells exactly
one job's end that it was the batch's last, even when two workers end the last two jobs at
the same moment.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from rq.job import Job

from ..engine import scripts
from ..keys import BATCH_CALLBACKS_DUE_KEY, ORPHANING_KEY, batch_key, batch_pending_key


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
            "EVAL", scripts.source("batch_job_ended"), 3, batch_pending_key(batch_id), batch_key(batch_id), BATCH_CALLBACKS_DUE_KEY,
            job.id, now, ttl, batch_id,
        )  # fmt: skip
    if not finished:
        pipeline.execute_command("EVAL", scripts.source("orphaning"), 2, job.dependents_key, ORPHANING_KEY, job.id)


def job_reopened(job: Job, pipeline: redis.client.Pipeline) -> None:
    """A job of a batch runs again (``POST /jobs/{id}/retry``): the batch waits for it again."""
    batch_id = job.meta.get("batch_id")
    if batch_id:
        pipeline.sadd(batch_pending_key(batch_id), job.id)
        pipeline.persist(batch_key(batch_id))

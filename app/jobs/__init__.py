"""Jobs: the contract, and the one door into RQ and Redis.

The HTTP layer calls :class:`JobQueue` (``store``) and never Redis; the worker runs
:class:`~app.jobs.job.OffloadJob` objects from :class:`~app.jobs.queue.OffloadQueue`.

=================  =============================================================
``schemas``        the contract: request and resource models (pydantic)
``batch_schemas``  the batch contract
``catalog``        job types: the task registry as submission models, a job's task found again
``context``        each task inside its job: its ``ctx``, and ``run`` (progress, state, cancel)
``job``            the RQ job class: runs catalog tasks only, validated again
``queue``          the RQ queue class: a dequeue that never loses a job
``store``          :class:`JobQueue`: submit, get, wait, cancel, retry, list
``resource``       the job resource a client sees, and its links
``submission``     writing new jobs, one or a batch, in one transaction
``batches``        ``POST /jobs/batch``: the batch record, its counts, its callback
``dependencies``   ``depends_on``: checks at submission; failing orphaned dependents
``endings``        what a job's end adds to its outcome transaction
``idempotency``    ``Idempotency-Key`` claims and replays
``events``         job-events pub/sub, for ``?wait=`` and live streams
``listing``        ``GET /jobs`` pages and cursors
``search``         the job index walked in bounded batches: id prefix, metadata, error type
``bulk``           retry, cancel, delete by filter, safe while workers run (``bulk_schemas``)
``callbacks``      retry backoff; queueing a job's callback delivery
``counters``       counters for /metrics, kept in Redis
``keys``           every Redis key offload writes beside RQ's
``access``         :class:`Principal`: who may see which job
``schedules``      periodic schedules in Redis (contract: ``schedule_schemas``)
``ticker``         running them: each due tick claimed once, with its job
``cadence``        cron (UTC) and interval ticks, pure functions of a moment
``errors``         the exceptions of this layer
``queues_admin``   pausing and resuming queues; per-queue depths and workers
``timeseries``     per-minute counts per queue, for the page's charts
``tracing``        a job's attempts as spans of its W3C trace; its callback's trace
=================  =============================================================
"""

from .access import ANONYMOUS, Principal
from .errors import (
    BatchNotFound,
    DeliveryUnknown,
    IdempotencyConflict,
    IdempotencyInFlight,
    InvalidArgumentsError,
    InvalidSubmission,
    JobNotFound,
    JobStateConflict,
    MissingTextError,
    QueueFull,
    UnknownTaskError,
)
from .store import JobQueue

__all__ = [
    "ANONYMOUS",
    "BatchNotFound",
    "DeliveryUnknown",
    "IdempotencyConflict",
    "IdempotencyInFlight",
    "InvalidArgumentsError",
    "InvalidSubmission",
    "JobNotFound",
    "JobQueue",
    "JobStateConflict",
    "MissingTextError",
    "Principal",
    "QueueFull",
    "UnknownTaskError",
]

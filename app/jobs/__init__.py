"""Jobs: the contract, and the one door into RQ and Redis.

The HTTP layer calls :class:`JobQueue` (``store``) and never Redis; the worker runs
:class:`~app.jobs.job.OffloadJob` objects from :class:`~app.jobs.queue.OffloadQueue`.

=================  =============================================================
``schemas``        the contract: request and resource models (pydantic)
``catalog``        job types: arguments model, plain function, runner
``runners``        each task inside its job (progress, send-once email, webhooks)
``job``            the RQ job class: runs catalog tasks only, validated again
``queue``          the RQ queue class: a dequeue that never loses a job
``store``          :class:`JobQueue`: submit, get, wait, cancel, retry, list
``resource``       the job resource a client sees, and its links
``idempotency``    ``Idempotency-Key`` claims and replays
``events``         job-ended pub/sub, for ``?wait=``
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
=================  =============================================================
"""

from .access import ANONYMOUS, Principal
from .errors import (
    DeliveryUnknown,
    IdempotencyConflict,
    IdempotencyInFlight,
    InvalidArgumentsError,
    JobNotFound,
    JobStateConflict,
    MissingTextError,
    QueueFull,
    UnknownTaskError,
)
from .store import JobQueue

__all__ = [
    "ANONYMOUS",
    "DeliveryUnknown",
    "IdempotencyConflict",
    "IdempotencyInFlight",
    "InvalidArgumentsError",
    "JobNotFound",
    "JobQueue",
    "JobStateConflict",
    "MissingTextError",
    "Principal",
    "QueueFull",
    "UnknownTaskError",
]

"""Jobs: the contract, and the one door into RQ and Redis.

The HTTP layer sees this package through its public API, the names below the table: one service
object, :class:`JobQueue` (``store``; ``create_app`` makes it once and keeps it in
``app.extensions``), the contract models, the errors and the catalog. It never imports a module
of this package itself, nor Redis or RQ. The worker runs :class:`~app.jobs.job.OffloadJob`
objects from :class:`~app.jobs.queue.OffloadQueue`.

=================  =============================================================
``schemas``        the contract: request and resource models (pydantic), patterns, limits
``responses``      the contract's response models: the job resource and its links, problems
``batch_schemas``  the batch contract
``bulk_schemas``   the bulk-action contract
``catalog``        job types: the task registry as submission models, a job's task found again
``context``        each task inside its job: its ``ctx``, and ``run`` (progress, state, cancel)
``job``            the RQ job class: runs catalog tasks only, validated again
``queue``          the RQ queue class: a dequeue that never loses a job
``store``          :class:`JobQueue`, the service: jobs, batches, search, bulk, queues, schedules
``resource``       the job resource a client sees, from what RQ stores
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
``dashboard``      what rq-dashboard needs to read offload's jobs
``tracing``        a job's attempts as spans of its W3C trace; its callback's trace
=================  =============================================================
"""

# The public API: all that the HTTP layer sees of this package (tests/test_architecture.py holds it
# to that). Each name is re-exported explicitly, as Flask's own ``__init__`` does.

# The service, made once per app, and who is asking.
from .access import ANONYMOUS as ANONYMOUS
from .access import Principal as Principal
from .idempotency import IdempotencyClaim as IdempotencyClaim
from .store import JobQueue as JobQueue

# The contract: request and response models, their patterns and limits; the job types.
from . import batch_schemas as batch_schemas
from . import bulk_schemas as bulk_schemas
from . import catalog as catalog
from . import responses as responses
from . import schedule_schemas as schedule_schemas
from . import schemas as schemas

# The errors: what the HTTP layer answers with a 4xx, and STORE_UNAVAILABLE (a 503).
from .errors import STORE_UNAVAILABLE as STORE_UNAVAILABLE
from .errors import BatchNotFound as BatchNotFound
from .errors import DeliveryUnknown as DeliveryUnknown
from .errors import IdempotencyConflict as IdempotencyConflict
from .errors import IdempotencyInFlight as IdempotencyInFlight
from .errors import InvalidArgumentsError as InvalidArgumentsError
from .errors import InvalidSubmission as InvalidSubmission
from .errors import JobNotFound as JobNotFound
from .errors import JobStateConflict as JobStateConflict
from .errors import MissingTextError as MissingTextError
from .errors import QueueFull as QueueFull
from .errors import ScheduleLimitReached as ScheduleLimitReached
from .errors import ScheduleNotFound as ScheduleNotFound
from .errors import UnknownQueue as UnknownQueue
from .errors import UnknownTaskError as UnknownTaskError

__all__ = [
    "ANONYMOUS",
    "STORE_UNAVAILABLE",
    "BatchNotFound",
    "DeliveryUnknown",
    "IdempotencyClaim",
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
    "ScheduleLimitReached",
    "ScheduleNotFound",
    "UnknownQueue",
    "UnknownTaskError",
    "batch_schemas",
    "bulk_schemas",
    "catalog",
    "responses",
    "schedule_schemas",
    "schemas",
]

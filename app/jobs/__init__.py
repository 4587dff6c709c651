"""Jobs: the contract, and the one door into RQ and Redis.

The HTTP layer sees this package through its public API, the names below the table: one service
object, :class:`JobQueue` (``store``; ``create_app`` makes it once and keeps it in
``app.extensions``), the contract models, the errors and the catalog. It never imports a module
of this package itself, nor Redis or RQ. The worker runs :class:`~app.jobs.engine.job.OffloadJob`
objects from :class:`~app.jobs.engine.queue.OffloadQueue`.

Its modules are grouped by what changes together; each package's ``__init__`` says what it owns.

================  ================================================================================
``store``         :class:`JobQueue`, the service: jobs, batches, search, bulk, queues, schedules
``contract/``     the HTTP contract's models: requests, resources, problems, patterns, limits
``engine/``       the RQ engine: RQ's job and queue classes, every use of RQ's private API and
                  storage format, every Lua script (``engine/lua/``)
``submitting/``   new jobs, one or a batch; idempotency keys; ``depends_on``; batches
``running/``      around a job a worker runs: its ``ctx``, its end, callbacks, counters, events,
                  traces, concurrency slots
``reading/``      the job resource, ``GET /jobs`` pages, search, rq-dashboard
``admin/``        bulk actions, queues (pause, depths), the charts' time series
``scheduling/``   periodic schedules, their ticker, cadences
``catalog``       job types: the task registry as submission models, a job's task found again
``keys``          every Redis key offload writes beside RQ's
``access``        :class:`Principal`: who may see which job
``errors``        the exceptions of this layer
================  ================================================================================
"""

# The public API: all that the HTTP layer sees of this package (tests/test_architecture.py holds it
# to that). Each name is re-exported explicitly, as Flask's own ``__init__`` does.

# The service, made once per app, and who is asking.
from .access import ANONYMOUS as ANONYMOUS
from .access import Principal as Principal
from .store import JobQueue as JobQueue
from .engine.submit import RateCount as RateCount
from .submitting.idempotency import IdempotencyClaim as IdempotencyClaim

# The contract: request and response models, their patterns and limits; the job types.
from . import catalog as catalog
from .contract import batch_schemas as batch_schemas
from .contract import bulk_schemas as bulk_schemas
from . import catalog as catalog
from .contract import schedule_schemas as schedule_schemas
from .contract import schemas as schemas

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
from .errors import RateLimited as RateLimited
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
    "RateCount",
    "RateLimited",
    "ScheduleLimitReached",
    "ScheduleNotFound",
    "UnknownQueue",
    "UnknownTaskError",
    "batch_schemas",
    "bulk_schemas",
    "catalog",
    "schedule_schemas",
    "schemas",
]

"""offload: the task API, and the Python client and command line.

``offload.task`` registers a job type of your own (:mod:`offload.tasks`); ``offload.testing``
runs one as a plain function in a test.

``offload.client.Client`` is a synchronous, typed client of the HTTP API (submit any task type,
describe the types, get, wait, cancel, retry, list, live events); ``offload.cli`` is the
``offload`` command built on it.
This package needs only pydantic and httpx (and click and rich for the command): it imports
nothing of the server in ``app/``, so it could ship on its own.
"""

from .client import Client
from .errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    EventsUnavailable,
    Forbidden,
    NotFound,
    OffloadError,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)
from .fields import TaskField
from .models import TERMINAL_STATUSES, Event, Job, JobError, JobStatus, Page, Progress, TaskDefaults, TaskInfo
from .tasks import Context, PermanentFailure, RetryLater, Task, long_text, task, upload

__all__ = [
    "TERMINAL_STATUSES",
    "BadRequest",
    "Client",
    "Conflict",
    "Context",
    "ConnectionFailed",
    "Event",
    "EventsUnavailable",
    "Forbidden",
    "Job",
    "JobError",
    "JobStatus",
    "NotFound",
    "OffloadError",
    "Page",
    "PermanentFailure",
    "Progress",
    "RateLimited",
    "RetryLater",
    "ServerError",
    "ServiceUnavailable",
    "Task",
    "TaskDefaults",
    "TaskField",
    "TaskInfo",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
    "long_text",
    "task",
    "upload",
]

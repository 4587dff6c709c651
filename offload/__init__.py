"""offload's Python client and command line.

``offload.client.Client`` is a synchronous, typed client of the HTTP API (submit, get, wait,
cancel, retry, list, live events); ``offload.cli`` is the ``offload`` command built on it.
This package needs only httpx (and click and rich for the command): it imports nothing of the
server in ``app/``, so it could ship on its own.
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
from .models import TERMINAL_STATUSES, Event, Job, JobError, JobStatus, Page, Progress

__all__ = [
    "TERMINAL_STATUSES",
    "BadRequest",
    "Client",
    "Conflict",
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
    "Progress",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
]

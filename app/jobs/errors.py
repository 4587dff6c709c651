"""The exceptions of the job layer.

The HTTP layer turns the first seven into problem+json answers; the others end a job
``failed`` with their name as ``error.type``, so a client can tell them apart.
"""

from __future__ import annotations

from offload.tasks import PermanentFailure

from ..tasks.mail import DeliveryUnknown  # noqa: F401 - one of the job layer's errors, raised by send_email


class JobNotFound(Exception):
    """No such job, or not one the caller may see (404)."""


class QueueFull(Exception):
    """The queue holds MAX_QUEUE_DEPTH jobs already (503: backpressure)."""


class JobStateConflict(Exception):
    """The job is in a state where the operation makes no sense (409)."""


class IdempotencyConflict(Exception):
    """Same Idempotency-Key, different body (422)."""


class IdempotencyInFlight(Exception):
    """Same Idempotency-Key while the first request is still being handled (409)."""


class InvalidSubmission(Exception):
    """Jobs that cannot be made, found once Redis is asked (422): their dependencies are unknown
    to the caller, or ended without finishing. ``errors`` maps an item's index to its field errors."""

    def __init__(self, errors: dict[int, list[dict]]) -> None:
        super().__init__("the submission is not valid")
        self.errors = errors


class BatchNotFound(Exception):
    """No such batch, or not one the caller may see (404)."""


class DependencyFailed(Exception):
    """A job's dependency ended failed, canceled or stopped, so the job never runs."""


class UnknownTask(Exception):
    """The job's type is not registered in this worker (never one of its tasks, or a rolling
    deploy reached the web before this worker). Its retries still apply: a worker that has the
    task may run it."""


#: The name it had before the task API.
UnknownTaskError = UnknownTask


class ResultTooLarge(PermanentFailure):
    """The task returned more than ``MAX_RESULT_BYTES`` of JSON: kept in Redis with the job and
    sent to every poller, it is refused (store the data elsewhere and return where it is)."""


class InvalidResult(PermanentFailure):
    """The task returned something that is not JSON (a set, bytes, an object)."""





class InvalidArgumentsError(Exception):
    """The job's stored arguments do not pass the task's validation any more."""


class MissingTextError(Exception):
    """The job's text, kept in a key of its own, is not in Redis any more."""

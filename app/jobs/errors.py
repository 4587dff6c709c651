"""The exceptions of the job layer.

The HTTP layer turns the first five into problem+json answers; the last four end a job
``failed`` with their name as ``error.type``, so a client can tell them apart.
"""

from __future__ import annotations


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


class UnknownTaskError(Exception):
    """The job names a function that is not one of offload's tasks."""


class DeliveryUnknown(Exception):
    """A previous attempt died mid-transfer; the message is not sent again (at most once)."""


class InvalidArgumentsError(Exception):
    """The job's stored arguments do not pass the task's validation any more."""


class MissingTextError(Exception):
    """The job's text, kept in a key of its own, is not in Redis any more."""

"""The exceptions of the job layer.

The HTTP layer turns the first ten into problem+json answers, and :data:`STORE_UNAVAILABLE`
into a 503; the others end a job ``failed`` with their name as ``error.type``, so a client can
tell them apart.
"""

from __future__ import annotations

import redis

from offload.tasks import PermanentFailure

from ..tasks.mail import DeliveryUnknown  # noqa: F401 - one of the job layer's errors, raised by send_email


class JobNotFound(Exception):
    """No such job, or not one the caller may see (404)."""


class QueueFull(Exception):
    """The queue holds MAX_QUEUE_DEPTH jobs already (503: backpressure)."""


class JobStateConflict(Exception):
    """The job is in a state where the operation makes no sense (409)."""


class RateLimited(Exception):
    """A rate-limit window the submission counted (``RateCount``) is over its amount: nothing was
    written (429; the web's limiter answers it)."""


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


class ScheduleNotFound(Exception):
    """No such schedule, or not one the caller may see (404)."""


class ScheduleLimitReached(Exception):
    """The service holds MAX_SCHEDULES schedules already (409)."""


class UnknownQueue(LookupError):
    """No queue of this name (offload's queues are fixed: ``high``, ``default``, ``low``)."""


#: What the job layer raises when Redis does not answer: redis-py's errors, and the Redis Cluster
#: troubles (SlotNotCoveredError, "no node for slot", too many redirections) it raises as
#: RedisClusterException, which is not a RedisError. The same outage to a client (503). A tuple,
#: for ``except`` and for one error handler each: they come from RQ and redis-py (and from
#: rq-dashboard's own views) as they are, not wrapped.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (redis.RedisError, redis.exceptions.RedisClusterException)


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

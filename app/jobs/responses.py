"""The contract's response models: the job resource (and its links) and RFC 9457 problems.

They describe what the API answers (the OpenAPI document is generated from them and tests
validate answers against them); :mod:`app.jobs.schemas` holds the request side.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from ..settings import QUEUE_NAMES

QueueName = Literal["high", "default", "low"]
assert set(QueueName.__args__) == set(QUEUE_NAMES)  # type: ignore[attr-defined]



def rfc3339(moment: datetime | None) -> str | None:
    """The contract's timestamps: RFC 3339 UTC, in milliseconds, with ``Z``."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: A moment of the contract: a datetime, written as :func:`rfc3339` writes it (pydantic's own JSON
#: would write microseconds), and described as a ``date-time`` string either way.
Timestamp = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

JobStatusName = Literal["queued", "scheduled", "deferred", "started", "finished", "failed", "canceled", "stopped"]


class Progress(BaseModel):
    done: int
    total: int


class JobError(BaseModel):
    type: str = Field(description="What kind of failure: the exception's class, e.g. SmtpError, JobTimeout.")
    message: str


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # an action the job's status does not allow is left out, never null


class JobLinks(BaseModel):
    """Where to act on the job, relative to the server. Only the actions the job's status allows
    now are there: `cancel` while it is queued, scheduled, deferred or started, `retry` once it
    is failed, stopped or canceled; a finished job has `self` alone."""

    self: str = Field(description="The job: `GET` it.")
    cancel: str | SkipJsonSchema[None] = Field(
        None,
        description="`POST` here to cancel the job (queued, scheduled or deferred) or stop it (started). Present only "
        "in those statuses.",
        json_schema_extra=_no_default,
    )
    retry: str | SkipJsonSchema[None] = Field(
        None,
        description="`POST` here to put the job back on its queue. Present only when it is failed, stopped or canceled.",
        json_schema_extra=_no_default,
    )


#: The public statuses ``POST /jobs/{id}/cancel`` and ``POST /jobs/{id}/retry`` accept
#: (:meth:`app.jobs.store.JobQueue.cancel` and ``.retry``).
CANCELABLE_STATUSES = frozenset({"queued", "scheduled", "deferred", "started"})
RETRYABLE_STATUSES = frozenset({"failed", "stopped", "canceled"})


def links(resource: dict) -> dict[str, str]:
    """The ``links`` of a job resource (:class:`JobLinks`), built here and only here: ``self``, and
    the action its status allows, ``cancel`` or ``retry`` (a finished job has neither). The job
    layer describes a job without them (:func:`app.jobs.resource.describe`); each answer adds them."""
    job_id, status = resource["id"], resource["status"]
    found = {"self": f"/jobs/{job_id}"}
    if status in CANCELABLE_STATUSES:
        found["cancel"] = f"/jobs/{job_id}/cancel"
    elif status in RETRYABLE_STATUSES:
        found["retry"] = f"/jobs/{job_id}/retry"
    return found


def with_links(resource: dict) -> dict:
    """The resource with its ``links``."""
    return {**resource, "links": links(resource)}


class JobResource(BaseModel):
    """What ``GET /jobs/{id}`` answers."""

    id: str
    type: str
    status: JobStatusName
    queue: QueueName
    created_at: Timestamp | None
    enqueued_at: Timestamp | None
    started_at: Timestamp | None
    ended_at: Timestamp | None
    attempts: int
    max_retries: int
    progress: Progress | None
    result: dict[str, Any] | None
    error: JobError | None
    metadata: dict[str, Any] | None
    schedule_id: str | None = Field(description="The schedule that started this job (POST /schedules), or null.")
    depends_on: list[str] | None = Field(description="The ids of the jobs this one waits for; null when none.")
    batch_id: str | None = Field(description="The batch this job was submitted in (`POST /jobs/batch`), or null.")
    concurrency_key: str | None = Field(
        description="The job's `concurrency_key` as submitted, or null; while it waits for a slot it is `queued`."
    )
    concurrency_limit: int | None = Field(description="The `concurrency_limit` it was submitted with, or null.")
    trace_id: str | None = Field(
        description="The W3C trace this job belongs to (32 hex digits): the one of the `traceparent` sent with "
        "`POST /jobs`, or a new one. The worker's log lines for the job carry it, and so does the `traceparent` of "
        "its callback. Null only for jobs stored before tracing existed.",
        pattern="^[0-9a-f]{32}$",
    )
    links: JobLinks


class FieldError(BaseModel):
    field: str
    message: str


class RateLimitBreach(BaseModel):
    """Which rate limit a 429 hit, and when it lets requests by again."""

    limit: str = Field(description='The limit, e.g. "50 per 1 second".')
    applies_to: str = Field(description='What it counts: "POST /jobs" or "the other /jobs calls".')
    per: Literal["API key", "client address"]
    setting: Literal["RATE_LIMIT_SUBMIT", "RATE_LIMIT_READ"] = Field(description="The setting that sets it.")
    retry_after: int = Field(description="Seconds until a request is let by again (as `Retry-After`).")
    reset_at: str = Field(description="When that is, RFC 3339 UTC.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None
    request_id: str | None = None
    rate_limit: RateLimitBreach | None = Field(None, description="On a 429: the limit that was hit.")

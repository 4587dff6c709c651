"""The job contract: what a client may submit and what it gets back.

These pydantic models are the single source of truth for request validation, for the answers
and for the OpenAPI document: :class:`JobOptions` is what every submission takes beside its
task's own fields (each task's arguments model, :mod:`app.tasks` and the team's;
:mod:`app.jobs.catalog` joins the two), :class:`JobResource` and :class:`Problem` what it gets
back. One module, as one contract: a field added to a request and to the resource is one change.
Limits that come from settings (text size, retries, timeouts) are checked against the
settings passed in the validation context, so the models stay importable without them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from annotated_types import Ge

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    StrictStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from ...settings import QUEUE_NAMES
from ...tasks.fields import TOO_LARGE, settings_of  # noqa: F401 - TOO_LARGE: the web's 413 test
from ...tasks.webhook import URL_PATTERN, shape_problem

# --- what the API answers: the job resource (and its links), problems -----------------------------

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
    layer describes a job without them (:func:`app.jobs.reading.resource.describe`); each answer adds them."""
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


# --- what a client may submit ------------------------------------------------------------------------

TERMINAL_STATUSES = frozenset({"finished", "failed", "canceled", "stopped"})

#: Dependencies one job may have (``depends_on``).
MAX_DEPENDENCIES = 100
#: What a job id (and a batch id) looks like: RQ makes 32 hex digits, a schedule's tick names its
#: job ``<schedule>-<tick>``. Unanchored, to go inside other patterns (a cursor, a reference).
JOB_ID_FORM = r"[A-Za-z0-9_-]{1,64}"
#: A whole string that is a job id (or an ``id_prefix``, which has the same form).
JOB_ID_PATTERN = rf"^{JOB_ID_FORM}$"
JOB_ID = re.compile(JOB_ID_PATTERN)
#: A job id, or (in a batch) ``$N``: the job made from item N of the same batch.
JobReference = Annotated[StrictStr, Field(pattern=rf"^(?:{JOB_ID_FORM}|\$[0-9]{{1,4}})$")]
#: A ``concurrency_key``: printable ASCII without spaces (it becomes part of a Redis key name).
ConcurrencyKey = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[!-~]+$")]

#: A page's ``cursor`` (``GET /jobs``, ``GET /schedules``, bulk actions): ``<score>:<id>``, the
#: position of the last entry of a page in its index (:mod:`app.jobs.reading.listing`). Any string of this
#: form is a position (the page starts after it), so the OpenAPI document declares it and means it.
CURSOR_PATTERN = rf"^[0-9]{{1,16}}(\.[0-9]{{1,16}})?:{JOB_ID_FORM}$"
#: ``Idempotency-Key``: 1 to 255 printable ASCII characters, spaces only inside (HTTP strips them
#: at the ends), as the IETF draft's sf-string. The API refuses any other value with 400, and the
#: OpenAPI document declares this same pattern, so the two cannot disagree.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
#: ``GET /jobs`` with a search parameter walks the job index newest first, this many entries a
#: round trip, and one request looks at :data:`SEARCH_SCAN_BUDGET` entries at most: a page may then
#: be short, even empty, and still have a ``next`` (:mod:`app.jobs.reading.search`).
SEARCH_BATCH = 500
SEARCH_SCAN_BUDGET = 20_000
#: ``GET /stats/timeseries?minutes=``: at most this many minutes (:mod:`app.jobs.admin.timeseries`).
MAX_TIMESERIES_MINUTES = 120


_settings = settings_of


def check_metadata_size(value: dict | None, info: ValidationInfo) -> dict | None:
    """``metadata`` (of a job or a batch) is at most ``max_metadata_bytes`` as compact JSON."""
    if value is None:
        return value
    settings = _settings(info)
    limit = settings.max_metadata_bytes if settings else 4096
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if size > limit:
        raise PydanticCustomError("too_long", "must be at most {limit} bytes as JSON", {"limit": limit})
    return value


#: A ``callback_url`` (of a job, a batch, a schedule's job): the document states the shape the
#: server checks (``URL_PATTERN``); whether its host resolves to public addresses is checked at
#: submission and again before each delivery, which no schema can say.
CallbackUrl = Annotated[StrictStr, Field(max_length=2048, json_schema_extra={"pattern": URL_PATTERN})]


def check_callback_scheme(value: str | None) -> str | None:
    """A ``callback_url`` has the shape of ``URL_PATTERN``, said with the cause when it has not."""
    if value is not None and (problem := shape_problem(value)) is not None:
        raise PydanticCustomError("url", problem)
    return value


def _integral_float_to_int(value: object) -> object:
    """JSON has one number type: ``77.0`` is the integer 77 (JSON Schema's ``integer`` says so
    too). Strings and booleans stay refused (StrictInt), and so do numbers with a fraction."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: On a StrictInt, after its bounds (so the schema still says ``minimum``): 3 and 3.0 alike.
_INTEGRAL = BeforeValidator(_integral_float_to_int)


#: RFC 3339's date-time (section 5.6), what the document's ``format: date-time`` means.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _text_only(value: object) -> object:
    """A time is an RFC 3339 string, as the document says: pydantic would also take a number
    (as Unix seconds), or a string of one ("0.0", as a form sends it), which it does not allow."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise PydanticCustomError("datetime_type", "must be an RFC 3339 date-time string")
    return value


_TEXT_ONLY = BeforeValidator(_text_only)

#: The options a setting caps (``422`` beyond it): the field, and the setting's name.
_CEILINGS = {
    "timeout_seconds": "max_timeout_seconds",
    "max_retries": "max_retries_limit",
    "concurrency_limit": "max_concurrency_limit",
}


class JobOptions(BaseModel):
    """Options every job type accepts."""

    model_config = ConfigDict(extra="forbid")

    queue: QueueName = Field("default", description="Queue to run on; workers serve high, then default, then low.")
    delay_seconds: Annotated[float, Field(strict=True, ge=0, le=365 * 24 * 3600)] | None = Field(
        None, description="Run no earlier than this many seconds from now."
    )
    run_at: Annotated[AwareDatetime, _TEXT_ONLY] | None = Field(None, description="Run no earlier than this RFC 3339 time.")
    timeout_seconds: Annotated[StrictInt, Ge(1), _INTEGRAL] | None = Field(
        None, description="Bound on each attempt; default from settings."
    )
    max_retries: Annotated[StrictInt, Ge(0), _INTEGRAL] | None = Field(None, description="Retries after a failed attempt.")
    callback_url: CallbackUrl | None = Field(
        None, description="POSTed the job resource when the job ends (finished, or failed for good)."
        " Its host must resolve to public addresses (checked at submission and before each delivery) unless the"
        " server sets ALLOW_PRIVATE_CALLBACKS=1."
    )
    metadata: dict[str, Any] | None = Field(None, description="Your own data, at most 4 KiB as JSON; echoed back.")
    concurrency_key: ConcurrencyKey | None = Field(
        None,
        description="Jobs of yours with the same key run at most `concurrency_limit` at once, across all workers "
        "(e.g. `mail:example.com` for one recipient domain); the others stay `queued` until a slot frees. Keys are "
        "your own: another API key's jobs with the same key do not share your slots.",
    )
    concurrency_limit: Annotated[StrictInt, Ge(1), _INTEGRAL] | None = Field(
        None,
        description="How many jobs with this `concurrency_key` may be queued or running at once (default 1, at most "
        "`MAX_CONCURRENCY_LIMIT`). The latest submission's limit applies to the key.",
    )
    depends_on: list[JobReference] | None = Field(
        None,
        max_length=MAX_DEPENDENCIES,
        description="Ids of jobs that must finish first; the job is `deferred` until they have. If one of them fails "
        "(or is canceled or stopped) the job fails with error type `DependencyFailed`. In a batch, `$N` names the job "
        "of item N of the same batch (an earlier item only).",
    )

    @model_validator(mode="after")
    def _one_schedule(self) -> JobOptions:
        if self.delay_seconds is not None and self.run_at is not None:
            # ctx "field": a cross-field error names the field to fix, not the whole body.
            raise PydanticCustomError("schedule_conflict", "give delay_seconds or run_at, not both", {"field": "run_at"})
        if self.depends_on and (self.delay_seconds is not None or self.run_at is not None):
            raise PydanticCustomError(
                "schedule_conflict", "a job with depends_on runs when they finish: no delay_seconds or run_at",
                {"field": "depends_on"},
            )  # fmt: skip
        if self.concurrency_limit is not None and self.concurrency_key is None:
            raise PydanticCustomError(
                "missing_key", "concurrency_limit needs a concurrency_key", {"field": "concurrency_limit"}
            )  # fmt: skip
        return self

    @field_validator("depends_on")
    @classmethod
    def _distinct_dependencies(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(value)) or None if value is not None else None

    @field_validator("run_at")
    @classmethod
    def _run_at_in_range(cls, value: datetime | None) -> datetime | None:
        # A time with no UTC form (9999-12-31T23:59:59-01:00) would overflow when scheduled.
        if value is not None:
            try:
                value.astimezone(UTC) + timedelta(seconds=1)
            except OverflowError:
                raise PydanticCustomError("datetime_range", "out of range: must fall within the years 1 to 9999 in UTC") from None
        return value

    @field_validator(*_CEILINGS)
    @classmethod
    def _at_most_the_setting(cls, value: int | None, info: ValidationInfo) -> int | None:
        settings = _settings(info)
        limit = getattr(settings, _CEILINGS[info.field_name]) if settings else None
        if value is not None and limit is not None and value > limit:
            raise PydanticCustomError("less_than_equal", "must be at most {limit}", {"limit": limit})
        return value

    _metadata_size = field_validator("metadata")(check_metadata_size)
    _callback_scheme = field_validator("callback_url")(check_callback_scheme)

    def task_arguments(self) -> dict[str, Any]:
        """The fields that are the task's own arguments (everything but the options)."""
        return self.model_dump(exclude=set(JobOptions.model_fields) | {"type"})

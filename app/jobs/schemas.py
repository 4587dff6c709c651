"""The job contract: what a client may submit and what it gets back.

These pydantic models are the single source of truth for request validation, for the
arguments a worker re-validates before it runs a job, and for the OpenAPI document.
Limits that come from settings (text size, retries, timeouts) are checked against the
settings passed in the validation context, so the models stay importable without them.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Union

from annotated_types import Ge

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..settings import Settings

# The response models (app/jobs/responses.py) are part of the contract too: importable from here.
from .responses import (  # noqa: F401 - re-exported
    FieldError,
    JobError,
    JobLinks,
    JobResource,
    JobStatusName,
    Problem,
    Progress,
    QueueName,
    RateLimitBreach,
)

TERMINAL_STATUSES = frozenset({"finished", "failed", "canceled", "stopped"})

#: The error type that the HTTP layer answers with 413 instead of 422.
TOO_LARGE = "too_large"

_FORBIDDEN_HEADER_CHARS = ("\r", "\n", "\x00")

#: Dependencies one job may have (``depends_on``).
MAX_DEPENDENCIES = 100
#: A job id, or (in a batch) ``$N``: the job made from item N of the same batch.
JobReference = Annotated[StrictStr, Field(pattern=r"^(?:[A-Za-z0-9_-]{1,64}|\$[0-9]{1,4})$")]
#: A ``concurrency_key``: printable ASCII without spaces (it becomes part of a Redis key name).
ConcurrencyKey = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[!-~]+$")]


def _settings(info: ValidationInfo) -> Settings | None:
    return (info.context or {}).get("settings")


def _utf8_size(value: str) -> int:
    # surrogatepass: a lone surrogate from JSON ("\ud800") is counted, not a crash here;
    # the field validators reject it separately.
    return len(value.encode("utf-8", "surrogatepass"))


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


def check_callback_scheme(value: str | None) -> str | None:
    """A ``callback_url`` (of a job or a batch) is an http:// or https:// URL."""
    if value is not None and not value.lower().startswith(("http://", "https://")):
        raise PydanticCustomError("url_scheme", "must be an http:// or https:// URL")
    return value


def _reject_lone_surrogates(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_unicode", "must be valid Unicode (no unpaired surrogates)") from None
    return value


def _integral_float_to_int(value: object) -> object:
    """JSON has one number type: ``77.0`` is the integer 77 (JSON Schema's ``integer`` says so
    too). Strings and booleans stay refused (StrictInt), and so do numbers with a fraction."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: On a StrictInt, after its bounds (so the schema still says ``minimum``): 3 and 3.0 alike.
_INTEGRAL = BeforeValidator(_integral_float_to_int)


def _text_only(value: object) -> object:
    """A time is an RFC 3339 string, as the document says: pydantic would also take a number
    (as Unix seconds), which the document does not allow."""
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "must be an RFC 3339 date-time string")
    return value


_TEXT_ONLY = BeforeValidator(_text_only)

#: What the validators below refuse, said in the OpenAPI document as JSON Schema.
NO_HEADER_BREAKS_PATTERN = "^[^\r\n\x00]*$"
NO_NUL_PATTERN = "^[^\x00]*$"
#: The special-use domains email_validator refuses (RFC 6761 and kin): never deliverable.
SPECIAL_USE_EMAIL_DOMAIN_PATTERN = (
    "[.@]([Aa][Rr][Pp][Aa]|[Ii][Nn][Vv][Aa][Ll][Ii][Dd]|[Ll][Oo][Cc][Aa][Ll]|[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt]"
    "|[Oo][Nn][Ii][Oo][Nn]|[Tt][Ee][Ss][Tt])\\.?$"
)


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
    callback_url: Annotated[StrictStr, Field(max_length=2048)] | None = Field(
        None, description="POSTed the job resource when the job ends (finished, or failed for good)."
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


# --- count_words -----------------------------------------------------------------------


def _check_text(value: str, info: ValidationInfo) -> str:
    settings = _settings(info)
    limit = settings.max_text_bytes if settings else None
    if limit is not None and _utf8_size(value) > limit:
        raise PydanticCustomError(TOO_LARGE, "must be at most {limit} bytes of UTF-8", {"limit": limit})
    return _reject_lone_surrogates(value)


class CountWordsArgs(BaseModel):
    """Arguments of the ``count_words`` task, re-checked by the worker before it runs."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(min_length=1, description="The text to count; at most MAX_TEXT_BYTES of UTF-8.")

    _text_limit = field_validator("text")(_check_text)


class CountWordsRequest(JobOptions, CountWordsArgs):
    type: Literal["count_words"]


class CountWordsResult(BaseModel):
    words: int = Field(description="len(text.split())")
    characters: int
    lines: int = Field(description="len(text.splitlines())")


# --- send_email ------------------------------------------------------------------------


def _no_header_breaks(value: str) -> str:
    if any(char in value for char in _FORBIDDEN_HEADER_CHARS):
        raise PydanticCustomError("header_injection", "must not contain CR, LF or NUL characters")
    return value


class SendEmailArgs(BaseModel):
    """Arguments of the ``send_email`` task, re-checked by the worker before it runs."""

    model_config = ConfigDict(extra="forbid")

    to: StrictStr = Field(
        max_length=320,
        description="One recipient address, not at a special-use domain (.arpa, .invalid, .local, .localhost, "
        ".onion, .test): those are never deliverable.",
        json_schema_extra={"format": "email", "not": {"pattern": SPECIAL_USE_EMAIL_DOMAIN_PATTERN}},
    )
    subject: StrictStr = Field(
        "", max_length=998, description="One line: no CR or LF.", json_schema_extra={"pattern": NO_HEADER_BREAKS_PATTERN}
    )
    body: StrictStr = Field(description="Plain-text body.", json_schema_extra={"pattern": NO_NUL_PATTERN})

    @field_validator("to")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        _no_header_breaks(value)
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise PydanticCustomError("email", "not a valid email address: {reason}", {"reason": str(exc)}) from None

    @field_validator("subject")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return _reject_lone_surrogates(_no_header_breaks(value))

    @field_validator("body")
    @classmethod
    def _body_size(cls, value: str, info: ValidationInfo) -> str:
        if "\x00" in value:
            raise PydanticCustomError("nul_character", "must not contain NUL characters")
        return _check_text(value, info)


class SendEmailRequest(JobOptions, SendEmailArgs):
    type: Literal["send_email"]


class SendEmailResult(BaseModel):
    message_id: str
    accepted: list[str]
    sent_at: str


# --- diagnostic tasks (only with ENABLE_DIAGNOSTIC_TASKS=1) -------------------------------


class SleepArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: Annotated[float, Field(strict=True, ge=0, le=3600)]


class SleepRequest(JobOptions, SleepArgs):
    type: Literal["sleep"]


class NoopArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoopRequest(JobOptions, NoopArgs):
    type: Literal["noop"]


class FailArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: StrictStr = "failed on purpose"


class FailRequest(JobOptions, FailArgs):
    type: Literal["fail"]


class WebhookArgs(BaseModel):
    """A callback delivery (internal: enqueued by workers, never by clients)."""

    model_config = ConfigDict(extra="forbid")

    url: StrictStr
    body: StrictStr
    event: Literal["job.finished", "job.failed", "batch.done"]


PUBLIC_REQUESTS: tuple[type[JobOptions], ...] = (CountWordsRequest, SendEmailRequest)
DIAGNOSTIC_REQUESTS: tuple[type[JobOptions], ...] = (SleepRequest, NoopRequest, FailRequest)


@functools.cache
def request_adapter(diagnostic: bool) -> TypeAdapter:
    """A validator for a submission, discriminated on ``type``."""
    models = PUBLIC_REQUESTS + (DIAGNOSTIC_REQUESTS if diagnostic else ())
    return TypeAdapter(Annotated[Union[models], Field(discriminator="type")])  # noqa: UP007 - built from a tuple


def type_names(diagnostic: bool) -> list[str]:
    models = PUBLIC_REQUESTS + (DIAGNOSTIC_REQUESTS if diagnostic else ())
    return [model.model_fields["type"].annotation.__args__[0] for model in models]


"""The schedule contract: what ``POST /schedules`` and ``PATCH /schedules/{id}`` accept and what a
schedule resource looks like (see :mod:`app.jobs.scheduling.schedules` for how schedules run).

The job a schedule starts is not modelled here: it is a job submission exactly as ``POST /jobs``
takes it, validated with the same models (:func:`app.jobs.contract.schemas.request_adapter`) when the
schedule is created and again at every tick.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# The cadence's bounds are this contract's too (the OpenAPI document states CRON_PATTERN and
# MAX_EVERY_SECONDS, from here); they are defined beside the code that reads cron and intervals.
from ..scheduling.cadence import CRON_PATTERN, MAX_CRON_LENGTH, MAX_EVERY_SECONDS, check_cron  # noqa: F401 - CRON_PATTERN
from .schemas import _INTEGRAL, JobError, Timestamp

#: Fields of a job submission that make no sense in a schedule: the schedule says when.
TIMING_FIELDS = ("delay_seconds", "run_at", "depends_on")

ScheduleName = Annotated[StrictStr, Field(min_length=1, max_length=200)]
CronText = Annotated[
    StrictStr,
    Field(
        max_length=MAX_CRON_LENGTH,
        description="Five cron fields, minute hour day-of-month month day-of-week, in UTC "
        "(e.g. `*/5 * * * *`), or @hourly, @daily, @midnight, @weekly, @monthly, @yearly.",
        examples=["*/5 * * * *", "0 3 * * MON-FRI", "@daily"],
    ),
]
EverySeconds = Annotated[
    StrictInt,
    Field(ge=1, le=MAX_EVERY_SECONDS, description="Run every this many seconds, counted from when it was set."),
    _INTEGRAL,  # 60.0 is the integer 60 in JSON (and in the document's JSON Schema)
]


def _cron(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_cron(value)
    except ValueError as exc:
        raise PydanticCustomError("cron", "{reason}", {"reason": str(exc)}) from None


def _interval(value: int | None, info: ValidationInfo) -> int | None:
    settings = (info.context or {}).get("settings")
    least = settings.min_schedule_seconds if settings else 1
    if value is not None and value < least:
        raise PydanticCustomError("greater_than_equal", "must be at least {least}", {"least": least})
    return value


#: JSON Schema for "exactly one of cron and every_seconds, not null" (the OpenAPI document
#: then says what :meth:`ScheduleRequest._one_cadence` checks; null counts as absent).
_EXACTLY_ONE_CADENCE = {
    "oneOf": [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in ("cron", "every_seconds")
    ]
}


class ScheduleRequest(BaseModel):
    """``POST /schedules``: a job submission and when to run it (``cron`` or ``every_seconds``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_EXACTLY_ONE_CADENCE)

    job: dict[str, Any] = Field(
        description="The job to start at each tick: a body of `POST /jobs`, validated the same way "
        "(without `delay_seconds` or `run_at`: the schedule says when)."
    )
    cron: CronText | None = None
    every_seconds: EverySeconds | None = None
    name: ScheduleName | None = Field(None, description="Your label for it.")
    enabled: StrictBool = Field(True, description="A disabled schedule starts no job until it is enabled again.")

    _check_cron = field_validator("cron")(_cron)
    _check_interval = field_validator("every_seconds")(_interval)

    @model_validator(mode="after")
    def _one_cadence(self) -> ScheduleRequest:
        if (self.cron is None) == (self.every_seconds is None):
            raise PydanticCustomError("cadence", "give cron or every_seconds (exactly one of them)", {"field": "cron"})
        return self


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class SchedulePatch(BaseModel):
    """``PATCH /schedules/{id}``: the fields given change; the others stay as they are.

    Giving ``cron`` makes it a cron schedule, giving ``every_seconds`` an interval schedule (not
    both); either starts the cadence afresh from now, as enabling a disabled schedule does.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"not": {"required": ["cron", "every_seconds"]}})

    enabled: StrictBool = Field(None, json_schema_extra=_no_default)  # type: ignore[assignment]
    cron: CronText = Field(None, json_schema_extra=_no_default)  # type: ignore[assignment]
    every_seconds: EverySeconds = Field(None, json_schema_extra=_no_default)  # type: ignore[assignment]
    name: ScheduleName | None = Field(None, description="A new label; null removes it.")

    _check_cron = field_validator("cron")(_cron)
    _check_interval = field_validator("every_seconds")(_interval)

    @model_validator(mode="after")
    def _at_most_one_cadence(self) -> SchedulePatch:
        if self.cron is not None and self.every_seconds is not None:
            raise PydanticCustomError("cadence", "give cron or every_seconds, not both", {"field": "cron"})
        return self


class ScheduleLinks(BaseModel):
    self: str


class ScheduleResource(BaseModel):
    """What ``GET /schedules/{id}`` answers. Times are RFC 3339 UTC."""

    id: str
    name: str | None
    cron: str | None = Field(description="The cron expression (UTC), or null for an interval schedule.")
    every_seconds: int | None = Field(description="The interval, or null for a cron schedule.")
    enabled: bool
    job: dict[str, Any] = Field(description="The job submission it starts at each tick, as it was given.")
    created_at: Timestamp
    updated_at: Timestamp
    next_run_at: Timestamp | None = Field(description="The next tick; null while the schedule is disabled.")
    last_run_at: Timestamp | None = Field(description="When the last tick was run (a job started, or skipped).")
    last_job_id: str | None = Field(description="The job the last tick started; its `schedule_id` is this id.")
    last_error: JobError | None = Field(
        description="Why the last tick started no job (`QueueFull`, or `InvalidJob` when the job no longer "
        "passes validation on this server); null when it started one."
    )
    links: ScheduleLinks


class ScheduleList(BaseModel):
    """What ``GET /schedules`` answers: a page of schedules, newest first."""

    schedules: list[ScheduleResource]
    next: str | None = Field(description="The URL of the next page, or null on the last page.")

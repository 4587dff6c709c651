"""The contract of ``POST /jobs/bulk``: the request (an action and a filter) and its answer.

The filter's fields are those of ``GET /jobs``'s search (:mod:`app.jobs.reading.search`), plus a
creation time range, which is a score range of the job index (jobs outside it cost nothing).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter
from pydantic_core import PydanticCustomError

from ..reading.search import JobFilter
from .schemas import _INTEGRAL, CURSOR_PATTERN, JOB_ID_PATTERN, QueueName

#: Jobs one bulk request acts on at most, and when it does not say.
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000


def _rfc3339_text(value: object) -> object:
    """A time must come as RFC 3339 text, as the schema says: pydantic would also take a number."""
    if value is not None and not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date-time string")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]

#: An `error.type` to filter on (the bulk filter here, `GET /jobs?error_type=` in app/web/search.py).
ERROR_TYPE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$"


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(None, description="Only jobs of this type.")
    queue: QueueName | None = Field(None, description="Only jobs on this queue.")
    error_type: Annotated[StrictStr, Field(pattern=ERROR_TYPE_PATTERN)] | None = Field(
        None, description="Only jobs whose `error.type` is this (e.g. `RuntimeError`, `JobTimeout`, `WorkerDied`)."
    )
    id_prefix: Annotated[StrictStr, Field(pattern=JOB_ID_PATTERN)] | None = Field(None, description="Only jobs whose id starts so.")
    metadata: dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[StrictStr, Field(max_length=256)]] | None = Field(
        None,
        max_length=8,
        description="Only jobs whose `metadata` has each of these keys with this value (a non-string value "
        'compared as its compact JSON, e.g. `"1234"` for 1234).',
    )
    created_after: Moment | None = Field(None, description="Only jobs created at or after this RFC 3339 time.")
    created_before: Moment | None = Field(
        None, description="Only jobs created before this RFC 3339 time (a range that holds no time matches no job)."
    )

    def job_filter(self) -> JobFilter:
        status = getattr(self, "status", None)
        return JobFilter(
            statuses=frozenset([status]) if status else frozenset(),
            type=self.type,
            queue=self.queue,
            id_prefix=self.id_prefix,
            metadata=dict(self.metadata or {}),
            error_type=self.error_type,
            created_after=self.created_after.timestamp() if self.created_after else None,
            created_before=self.created_before.timestamp() if self.created_before else None,
        )


class RetryFilter(_Filter):
    """Which jobs to retry: failed ones unless `status` says stopped or canceled."""

    status: Literal["failed", "stopped", "canceled"] | None = Field(None, description="Failed when not given.")


class CancelFilter(_Filter):
    """Which queued jobs to cancel."""

    status: Literal["queued"] | None = Field(None, description="Queued: the only status a bulk cancel takes.")


class DeleteFilter(_Filter):
    """Which ended jobs to delete: finished ones unless `status` says otherwise."""

    status: Literal["finished", "failed", "canceled", "stopped"] | None = Field(None, description="Finished when not given.")


_LIMIT = Field(DEFAULT_LIMIT, description=f"At most this many matching jobs in this request (at most {MAX_LIMIT}).")
_CURSOR = Field(None, description="Go on where the previous request stopped: its `next`.")
Limit = Annotated[StrictInt, Field(ge=1, le=MAX_LIMIT), _INTEGRAL]  # 412 and 412.0 alike, as JSON Schema's integer
Cursor = Annotated[StrictStr, Field(pattern=CURSOR_PATTERN)] | None


class _BulkPage(BaseModel):
    """What every action takes beside its filter: how many jobs this request may handle, and
    where the previous request stopped."""

    model_config = ConfigDict(extra="forbid")
    limit: Limit = _LIMIT
    cursor: Cursor = _CURSOR


class BulkRetry(_BulkPage):
    """Put every matching failed (stopped, canceled) job back on its queue."""

    action: Literal["retry"]
    filter: RetryFilter = Field(default_factory=RetryFilter)


class BulkCancel(_BulkPage):
    """Cancel every matching queued job (one a worker has taken already is skipped)."""

    action: Literal["cancel"]
    filter: CancelFilter = Field(default_factory=CancelFilter)


class BulkDelete(_BulkPage):
    """Delete every matching ended job: its hash, result and index entry."""

    action: Literal["delete"]
    filter: DeleteFilter = Field(default_factory=DeleteFilter)


#: One page of an action, as a validated request.
BulkAction = BulkRetry | BulkCancel | BulkDelete
#: A bulk request: one page of an action, after ``cursor``, newest jobs first.
BulkRequest = TypeAdapter(Annotated[BulkAction, Field(discriminator="action")])


class BulkResult(BaseModel):
    """What one bulk request did."""

    action: Literal["retry", "cancel", "delete"]
    matched: int = Field(description="Jobs that matched the filter when read.")
    done: int = Field(description="Jobs retried, canceled or deleted.")
    skipped: int = Field(description="Jobs that matched but had changed (e.g. a worker took them) when acted on.")
    next: str | None = Field(
        description="Not null: this request stopped at its limit or scan budget; send the same body with this "
        "`cursor` to go on. Null: no more jobs to look at."
    )

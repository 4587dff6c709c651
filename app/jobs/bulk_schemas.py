"""The contract of ``POST /jobs/bulk``: the request (an action and a filter) and its answer.

The filter's fields are those of ``GET /jobs``'s search (:mod:`app.jobs.search`), plus a
creation time range, which is a score range of the job index (jobs outside it cost nothing).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from .bulk import DEFAULT_LIMIT, MAX_LIMIT
from .listing import CURSOR_PATTERN
from .schemas import JobStatusName, QueueName
from .search import JobFilter

_ID_PREFIX = r"^[A-Za-z0-9_-]{1,64}$"
_ERROR_TYPE = r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$"


class BulkFilter(BaseModel):
    """Which jobs: every field given must hold. The action decides the statuses it takes (and
    its default): retry failed (default), stopped or canceled jobs; cancel queued ones; delete
    finished (default), failed, canceled or stopped ones."""

    model_config = ConfigDict(extra="forbid")

    status: JobStatusName | None = Field(None, description="Only jobs in this status (one the action takes).")
    type: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(None, description="Only jobs of this type.")
    queue: QueueName | None = Field(None, description="Only jobs on this queue.")
    error_type: Annotated[StrictStr, Field(pattern=_ERROR_TYPE)] | None = Field(
        None, description="Only jobs whose `error.type` is this (e.g. `ValueError`, `JobTimeout`, `WorkerDied`)."
    )
    id_prefix: Annotated[StrictStr, Field(pattern=_ID_PREFIX)] | None = Field(None, description="Only jobs whose id starts so.")
    metadata: dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[StrictStr, Field(max_length=256)]] | None = Field(
        None,
        max_length=8,
        description="Only jobs whose `metadata` has each of these keys with this value (a non-string value "
        "compared as its compact JSON, e.g. `\"1234\"` for 1234).",
    )
    created_after: AwareDatetime | None = Field(None, description="Only jobs created at or after this RFC 3339 time.")
    created_before: AwareDatetime | None = Field(None, description="Only jobs created before this RFC 3339 time.")

    def job_filter(self) -> JobFilter:
        return JobFilter(
            statuses=frozenset([self.status]) if self.status else frozenset(),
            type=self.type,
            queue=self.queue,
            id_prefix=self.id_prefix,
            metadata=dict(self.metadata or {}),
            error_type=self.error_type,
            created_after=self.created_after.timestamp() if self.created_after else None,
            created_before=self.created_before.timestamp() if self.created_before else None,
        )


class BulkRequest(BaseModel):
    """One page of a bulk action: act on up to `limit` matching jobs, newest first, after `cursor`."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["retry", "cancel", "delete"] = Field(description="What to do to each matching job.")
    filter: BulkFilter = Field(default_factory=BulkFilter, description="Which jobs.")
    limit: Annotated[StrictInt, Field(ge=1, le=MAX_LIMIT)] = Field(
        DEFAULT_LIMIT, description=f"At most this many matching jobs in this request (at most {MAX_LIMIT})."
    )
    cursor: Annotated[StrictStr, Field(pattern=CURSOR_PATTERN)] | None = Field(
        None, description="Go on where the previous request stopped: its `next`."
    )


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

"""The batch contract: what ``POST /jobs/batch`` takes and answers, and the batch resource.

The items of ``jobs`` are validated one by one with the models of :mod:`app.jobs.contract.schemas` (so one
bad item is refused alone, with its own problem), which is why ``jobs`` is a list of anything
here: the OpenAPI document points its items at ``JobRequest``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .schemas import (
    CallbackUrl,
    JobResource,
    JobStatusName,
    Problem,
    _settings,
    check_callback_scheme,
    check_metadata_size,
)


class BatchRequest(BaseModel):
    """A batch: jobs to write in one transaction, and what to do when all of them have ended."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[Any] = Field(
        min_length=1,
        description="The jobs, each as `POST /jobs` takes it. An item may name an earlier item in `depends_on` as "
        "`$N` (its index).",
    )
    callback_url: CallbackUrl | None = Field(
        None, description="POSTed the batch resource once, when every job of the batch has ended (`batch.done`)."
        " Its host must resolve to public addresses (checked at submission and before each delivery) unless the"
        " server sets ALLOW_PRIVATE_CALLBACKS=1."
    )
    metadata: dict[str, Any] | None = Field(None, description="Your own data, at most 4 KiB as JSON; echoed back.")

    @field_validator("jobs")
    @classmethod
    def _not_too_many(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        settings = _settings(info)
        limit = settings.max_batch_jobs if settings else 1000
        if len(value) > limit:
            raise PydanticCustomError("too_long", "at most {limit} jobs in one batch", {"limit": limit})
        return value

    _callback_scheme = field_validator("callback_url")(check_callback_scheme)
    _metadata_size = field_validator("metadata")(check_metadata_size)


class BatchLinks(BaseModel):
    self: str


class BatchResource(BaseModel):
    """What ``GET /batches/{id}`` answers."""

    id: str
    created_at: str = Field(description="RFC 3339 UTC.")
    total: int = Field(description="Jobs in the batch (its valid items).")
    counts: dict[JobStatusName, int] = Field(description="Jobs by status, now (every status, 0 included).")
    jobs: list[str] = Field(description="The jobs' ids, in the order of their items.")
    done: bool = Field(description="Every job of the batch has ended (finished, failed, canceled or stopped).")
    callback_url: str | None
    metadata: dict[str, Any] | None
    links: BatchLinks


class BatchItemAccepted(BaseModel):
    index: int = Field(description="The item's index in `jobs`.")
    status: Literal[202]
    job: JobResource


class BatchItemRejected(BaseModel):
    index: int = Field(description="The item's index in `jobs`.")
    status: Literal[422]
    problem: Problem = Field(description="Why this item was not made into a job; no job was made for it.")


class BatchAnswer(BaseModel):
    """What ``POST /jobs/batch`` answers: the batch, and a result for every item, in order."""

    batch: BatchResource
    results: list[BatchItemAccepted | BatchItemRejected]

"""``GET /stats/timeseries``: per-minute counts per queue for the charts on the page.

Any key may read it, as ``/queues``: the figures are counts, never another client's jobs.
The job service reads them (the Redis side is :mod:`app.jobs.admin.timeseries`).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, Field

from ..jobs import schemas
from ..settings import QUEUE_NAMES
from .context import job_queue, principal
from .problems import ApiProblem
from .ratelimit import limiter, read_limit
from .routes import Answer, route

bp = Blueprint("stats", __name__)
DEFAULT_MINUTES = 60

Count = Annotated[int, Field(ge=0)]
Line = list[Count]


class QueueSeries(BaseModel):
    """One queue's figures per minute, oldest first (one value per entry of `times`)."""

    enqueued: Line = Field(description="Jobs submitted (queued or scheduled).")
    finished: Line = Field(description="Jobs that finished.")
    failed: Line = Field(description="Jobs that failed for good (an attempt that is retried is not counted).")
    mean_run_seconds: list[Annotated[float, Field(ge=0)] | None] = Field(
        description="Mean run time of the jobs that ended that minute; null when none did."
    )


class QueueSeriesByQueue(BaseModel):
    high: QueueSeries
    default: QueueSeries
    low: QueueSeries


assert tuple(QueueSeriesByQueue.model_fields) == QUEUE_NAMES


class Timeseries(BaseModel):
    # What GET /stats/timeseries answers (the job layer counts: app.jobs.admin.timeseries). A comment,
    # not a docstring: pydantic would make a docstring the schema's description.

    minutes: int = Field(ge=1, le=schemas.MAX_TIMESERIES_MINUTES)
    step_seconds: Literal[60]
    times: list[Annotated[str, Field(json_schema_extra={"format": "date-time"})]] = Field(
        description="The start of each minute (UTC), oldest first; the last is the current minute."
    )
    queues: QueueSeriesByQueue


@route(
    bp, "GET", "/stats/timeseries", operation_id="getTimeseries", tag="queues", summary="Jobs per minute",
    description="Per queue and per minute over the last `minutes` minutes: jobs enqueued, finished and failed, "
    "and the mean run time of the jobs that ended. What the charts on the page at `/` draw. Any key may read it.",
    parameters=(
        {
            "name": "minutes",
            "in": "query",
            "description": f"How many minutes, ending with the current one (at most {schemas.MAX_TIMESERIES_MINUTES}).",
            "schema": {"type": "integer", "minimum": 1, "maximum": schemas.MAX_TIMESERIES_MINUTES, "default": DEFAULT_MINUTES},
        },
        "RequestId",
    ),
    responses={200: Answer("OK.", Timeseries), 422: "ValidationFailed", 429: "TooManyRequests"},
)  # fmt: skip
@limiter.limit(read_limit)
def timeseries_view() -> Response:
    principal()
    text = request.args.get("minutes", str(DEFAULT_MINUTES))
    minutes = int(text) if text.isascii() and text.isdigit() and len(text) <= 4 else 0
    if not 1 <= minutes <= schemas.MAX_TIMESERIES_MINUTES:
        raise ApiProblem(
            422,
            "the query is not valid",
            title="Validation Failed",
            errors=[{"field": "minutes", "message": f"must be an integer from 1 to {schemas.MAX_TIMESERIES_MINUTES}"}],
        )
    answer = Timeseries.model_validate(job_queue().timeseries(minutes))
    return Response(json.dumps(answer.model_dump(mode="json")), mimetype="application/json")

"""``GET /stats/timeseries``: per-minute counts per queue for the charts on the page.

Any key may read it, as ``/queues``: the figures are counts, never another client's jobs.
The job service reads them (the Redis side is :mod:`app.jobs.timeseries`).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from ..jobs import schemas
from .context import job_queue, principal
from .problems import ApiProblem
from .ratelimit import limiter, read_limit
from .routes import Answer, route

bp = Blueprint("stats", __name__)

DEFAULT_MINUTES = 60


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
    responses={200: Answer("OK.", "Timeseries"), 422: "ValidationFailed", 429: "TooManyRequests"},
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
    body = job_queue().timeseries(minutes)
    return Response(json.dumps(body), mimetype="application/json")

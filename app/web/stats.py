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

bp = Blueprint("stats", __name__)

DEFAULT_MINUTES = 60


@bp.get("/stats/timeseries")
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

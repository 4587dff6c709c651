"""``POST /jobs/bulk``: retry, cancel or delete every job matching a filter (admin only).

One request acts on at most ``limit`` jobs (and scans a bounded part of the index), and answers
the counts and a ``next`` cursor to send back for the rest; how the batches stay safe while
workers run is in :mod:`app.jobs.bulk`.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request
from pydantic import ValidationError

from ..jobs.bulk import BulkActions
from ..jobs.bulk_schemas import BulkRequest
from . import auth
from .context import job_queue, settings
from .parsing import read_submission
from .problems import ApiProblem, field_errors
from .ratelimit import limiter, submit_limit

bp = Blueprint("bulk", __name__)


def actions() -> BulkActions:
    found = current_app.extensions.get("offload.bulk")
    if found is None:
        found = current_app.extensions["offload.bulk"] = BulkActions(job_queue().connection)
    return found


@bp.post("/jobs/bulk")
@limiter.limit(submit_limit)
def bulk_action() -> Response:
    who = auth.authenticate(request, settings(), admin=True)
    if request.mimetype != "application/json":
        raise ApiProblem(415, "send application/json", headers={"Accept-Post": "application/json"})
    payload = read_submission()
    try:
        spec = BulkRequest.model_validate(payload)
    except ValidationError as exc:
        raise ApiProblem(422, "the bulk request is not valid", title="Validation Failed", errors=field_errors(exc)) from None
    job_filter = spec.filter.job_filter()
    if (
        job_filter.created_after is not None
        and job_filter.created_before is not None
        and job_filter.created_after >= job_filter.created_before
    ):
        raise ApiProblem(
            422, "created_after must be before created_before", title="Validation Failed",
            errors=[{"field": "filter.created_before", "message": "must be after created_after"}],
        )  # fmt: skip
    try:
        outcome = actions().run(spec.action, who, job_filter, limit=spec.limit, cursor=spec.cursor)
    except ValueError as exc:
        raise ApiProblem(
            422, str(exc), title="Validation Failed", errors=[{"field": "filter.status", "message": str(exc)}]
        ) from None
    body = {"action": spec.action, **outcome.as_dict(), "next": outcome.next}
    return Response(json.dumps(body), status=200, mimetype="application/json")

"""``POST /jobs/bulk``: retry, cancel or delete every job matching a filter (admin only).

One request acts on at most ``limit`` jobs (and scans a bounded part of the index), and answers
the counts and a ``next`` cursor to send back for the rest; how the batches stay safe while
workers run is in :mod:`app.jobs.bulk`.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request
from pydantic import ValidationError

from ..jobs import bulk_schemas
from . import auth
from .context import job_queue, settings
from .parsing import read_submission
from .problems import ApiProblem, field_error
from .ratelimit import limiter, submit_limit

bp = Blueprint("bulk", __name__)


@bp.route("/jobs/bulk", methods=["OPTIONS"], provide_automatic_options=False)
def bulk_options() -> Response:
    """Flask's own answer would list ``GET`` too: ``GET /jobs/{job_id}`` matches ``/jobs/bulk``."""
    return Response(status=200, headers={"Allow": "POST, OPTIONS"})


@bp.post("/jobs/bulk", provide_automatic_options=False)
@limiter.limit(submit_limit)
def bulk_action() -> Response:
    who = auth.authenticate(request, settings(), admin=True)
    if request.mimetype != "application/json":
        raise ApiProblem(415, "send application/json", headers={"Accept-Post": "application/json"})
    payload = read_submission()
    try:
        spec = bulk_schemas.BulkRequest.validate_python(payload)
    except ValidationError as exc:
        raise ApiProblem(422, "the bulk request is not valid", title="Validation Failed", errors=_errors(exc)) from None
    outcome = job_queue().bulk(spec, who)
    body = {"action": spec.action, **outcome.as_dict(), "next": outcome.next}
    return Response(json.dumps(body), status=200, mimetype="application/json")


_ACTIONS = ("retry", "cancel", "delete")


def _errors(exc: ValidationError) -> list[dict]:
    """:func:`field_error`s, for a union told apart by ``action`` (not a job's ``type``): a missing
    or unknown action names ``action``, and the action's tag is left out of the field paths."""
    errors = []
    for error in exc.errors(include_url=False):
        if error["type"] == "union_tag_not_found":
            errors.append({"field": "action", "message": f"required: one of {', '.join(_ACTIONS)}"})
            continue
        if error["type"] == "union_tag_invalid":
            given = (error.get("ctx") or {}).get("tag", "")
            message = f"{given!r} is not one of the actions: {', '.join(_ACTIONS)}"
            errors.append({"field": "action", "message": message})
            continue
        loc = error["loc"]
        if loc and loc[0] in _ACTIONS:  # the union's branch, named by its tag
            error = {**error, "loc": loc[1:]}
        errors.append(field_error(error))
    return errors

"""``POST /jobs/bulk``: retry, cancel or delete every job matching a filter (admin only).

One request acts on at most ``limit`` jobs (and scans a bounded part of the index), and answers
the counts and a ``next`` cursor to send back for the rest; how the batches stay safe while
workers run is in :mod:`app.jobs.admin.bulk`.
"""

from __future__ import annotations

import copy

from flask import Blueprint, Response, request
from pydantic import ValidationError

from ..jobs import bulk_schemas
from . import auth
from . import answers
from .context import job_queue, settings
from .parsing import read_submission
from .problems import ApiProblem, field_error
from .ratelimit import limiter, submit_limit
from .routes import Answer, ref, route

bp = Blueprint("bulk", __name__)

_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": ref("BulkRequest"),
            "examples": {
                "retry": {
                    "summary": "Retry every job that failed with a timeout on the default queue",
                    "value": {"action": "retry", "filter": {"queue": "default", "error_type": "JobTimeout"}},
                },
                "cancel": {
                    "summary": "Cancel the queued jobs of one import",
                    "value": {"action": "cancel", "filter": {"metadata": {"import": "2026-05"}}},
                },
                "delete": {
                    "summary": "Delete finished jobs created before a date, 10,000 a request",
                    "value": {"action": "delete", "filter": {"created_before": "2026-01-01T00:00:00Z"}, "limit": 10000},
                },
            },
        }
    },
}


@bp.route("/jobs/bulk", methods=["OPTIONS"], provide_automatic_options=False)
def bulk_options() -> Response:
    """Flask's own answer would list ``GET`` too: ``GET /jobs/{job_id}`` matches ``/jobs/bulk``."""
    return Response(status=200, headers={"Allow": "POST, OPTIONS"})


@route(
    bp, "POST", "/jobs/bulk", operation_id="bulkJobs", tag="jobs",
    summary="Retry, cancel or delete jobs by filter (admin)",
    description="Act on every job matching `filter`, newest first, in batches: `retry` puts failed (or "
    "stopped, canceled) jobs back on their queues, `cancel` cancels queued ones, `delete` deletes ended ones "
    f"(finished by default). One request acts on at most `limit` jobs (at most {bulk_schemas.MAX_LIMIT}) and "
    "looks at a bounded part of the job index; send the same body again with `cursor` set to the answer's `next` until "
    "`next` is null. Safe while workers run: each job is checked and changed atomically, so a job being run "
    "is never touched, none is queued twice and none is lost (those that changed meanwhile count as "
    "`skipped`). Needs an admin key.",
    parameters=("RequestId",),
    body=lambda _build: copy.deepcopy(_BODY),
    responses={
        200: Answer(
            "What this request did. Follow `next` (send the same body with `cursor`) for the rest.",
            bulk_schemas.BulkResult,
        ),
        400: "BadRequest", 413: "ContentTooLarge", 415: "BulkUnsupportedMediaType", 422: "ValidationFailed",
        429: "TooManyRequests",
    },
    admin=True,
    rule_options={"provide_automatic_options": False},
)  # fmt: skip
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
    return Response(answers.as_json(bulk_schemas.BulkResult, body), status=200, mimetype="application/json")


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

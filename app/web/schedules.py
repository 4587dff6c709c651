"""``/schedules``: periodic jobs. Create, list, get, change (enable, disable, new cadence) and
delete schedules; the workers run them (:mod:`app.jobs.ticker`).

A schedule's job is validated here exactly as ``POST /jobs`` validates a submission, so a
schedule that could never start its job is a 422 and nothing is stored. Ownership is that of
jobs: a client key sees and changes only its own schedules (another's is 404), an admin key all
of them, and the jobs a schedule starts belong to the schedule's owner.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request, url_for
from pydantic import ValidationError

from ..jobs import ScheduleLimitReached, ScheduleNotFound, catalog, schedule_schemas, schemas
from ..tasks import webhook
from .context import job_queue, principal, settings
from .parsing import invalid_cursor, page_limit, read_submission, refuse_query
from .problems import ApiProblem, field_errors, problem
from .ratelimit import limiter, read_limit, submit_limit

bp = Blueprint("schedules", __name__)

JSON_TYPES = "application/json"
PATCH_TYPES = "application/json, application/merge-patch+json"


@bp.post("/schedules")
@limiter.limit(submit_limit)
def create_schedule() -> Response:
    who = principal()
    spec = _validated(_read_json("Accept-Post", JSON_TYPES))
    try:
        resource = job_queue().create_schedule(spec, owner=who.name)
    except ScheduleLimitReached:
        return problem(409, f"this service holds its limit of {settings().max_schedules} schedules; delete one first")
    response = _json(resource, 201)
    response.headers["Location"] = resource["links"]["self"]
    return response


@bp.get("/schedules")
@limiter.limit(read_limit)
def list_schedules() -> Response:
    who = principal()
    args = request.args
    errors: list[dict] = []
    limit = page_limit(args.get("limit", "50"), errors)
    refuse_query(errors)
    try:
        page, next_cursor = job_queue().list_schedules(who, limit=limit, cursor=args.get("cursor"))
    except ValueError:
        raise invalid_cursor() from None
    next_url = url_for("schedules.list_schedules", **{**args.to_dict(), "cursor": next_cursor}) if next_cursor else None
    return _json({"schedules": page, "next": next_url})


@bp.get("/schedules/<schedule_id>")
@limiter.limit(read_limit)
def get_schedule(schedule_id: str) -> Response:
    who = principal()
    try:
        return _json(job_queue().get_schedule(schedule_id, who))
    except ScheduleNotFound:
        return _not_found()


@bp.patch("/schedules/<schedule_id>")
@limiter.limit(submit_limit)
def update_schedule(schedule_id: str) -> Response:
    who = principal()
    try:
        job_queue().get_schedule(schedule_id, who)  # an unknown id is 404 whatever the body
    except ScheduleNotFound:
        return _not_found()
    payload = _read_json("Accept-Patch", PATCH_TYPES)
    try:
        patch = schedule_schemas.SchedulePatch.model_validate(payload, context={"settings": settings()})
    except ValidationError as exc:
        raise ApiProblem(422, "the change is not valid", title="Validation Failed", errors=field_errors(exc)) from None
    try:
        return _json(job_queue().update_schedule(schedule_id, patch, who))
    except ScheduleNotFound:  # deleted meanwhile
        return _not_found()


@bp.delete("/schedules/<schedule_id>")
@limiter.limit(submit_limit)
def delete_schedule(schedule_id: str) -> Response:
    who = principal()
    try:
        job_queue().delete_schedule(schedule_id, who)
    except ScheduleNotFound:
        return _not_found()
    return Response(status=204)


# --- helpers -----------------------------------------------------------------------------


def _read_json(accept_header: str, accepted: str) -> dict:
    """The body as a JSON object (a 4xx otherwise): JSON only, no forms here."""
    mimetype = request.mimetype
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise ApiProblem(415, f"send {accepted.replace(', ', ' or ')}", headers={accept_header: accepted})
    return read_submission()


def _validated(payload: dict) -> schedule_schemas.ScheduleRequest:
    """The schedule, its job validated as POST /jobs validates one; all the errors at once."""
    errors: list[dict] = []
    too_large = False
    spec = None
    try:
        spec = schedule_schemas.ScheduleRequest.model_validate(payload, context={"settings": settings()})
    except ValidationError as exc:
        errors += field_errors(exc)
    job = payload.get("job")
    if isinstance(job, dict):
        message = "not allowed in a schedule's job: the schedule says when it runs"
        errors += [{"field": f"job.{name}", "message": message} for name in schedule_schemas.TIMING_FIELDS if name in job]
        try:
            job_spec = catalog.request_adapter(settings()).validate_python(
                job, context={"settings": settings()}
            )
        except ValidationError as exc:
            too_large = any(error["type"] == schemas.TOO_LARGE for error in exc.errors())
            errors += field_errors(exc, within="job")
        else:
            if job_spec.callback_url is not None:
                errors += _callback_errors(job_spec.callback_url)
    if too_large:
        limit = settings().max_text_bytes
        raise ApiProblem(413, f"the job's text must be at most {limit} bytes of UTF-8", errors=errors)
    if errors or spec is None:
        raise ApiProblem(422, "the schedule is not valid", title="Validation Failed", errors=errors)
    return spec


def _callback_errors(url: str) -> list[dict]:
    """As POST /jobs checks a callback URL (the worker checks it again before each delivery)."""
    if settings().webhook_secret is None:
        return [
            {"field": "job.callback_url", "message": "callbacks are not enabled on this server (no WEBHOOK_SECRET)"}
        ]
    try:
        webhook.check_url(url, settings().allow_private_callbacks)
    except webhook.CallbackRefused as exc:
        return [{"field": "job.callback_url", "message": str(exc)}]
    return []


def _not_found() -> Response:
    return problem(404, "no schedule with this id (it may never have existed, or it was deleted)")


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")

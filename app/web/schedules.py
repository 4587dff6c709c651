"""``/schedules``: periodic jobs. Create, list, get, change (enable, disable, new cadence) and
delete schedules; the workers run them (:mod:`app.jobs.scheduling.ticker`).

A schedule's job is validated here exactly as ``POST /jobs`` validates a submission, so a
schedule that could never start its job is a 422 and nothing is stored. Ownership is that of
jobs: a client key sees and changes only its own schedules (another's is 404), an admin key all
of them, and the jobs a schedule starts belong to the schedule's owner.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from flask import Blueprint, Response, request, url_for
from pydantic import BaseModel, ValidationError

from ..jobs import ScheduleLimitReached, ScheduleNotFound, catalog, schedule_schemas, schemas
from ..tasks import webhook
from . import answers
from .context import job_queue, principal, settings
from .parsing import invalid_cursor, page_limit, read_submission, refuse_query
from .problems import ApiProblem, field_errors, problem
from .ratelimit import limiter, read_limit, submit_limit
from .routes import Answer, Build, example_jobs, page_parameters, ref, route

bp = Blueprint("schedules", __name__)

JSON_TYPES = "application/json"
PATCH_TYPES = "application/json, application/merge-patch+json"

_LINKS = {
    "GetSchedule": {"operationId": "getSchedule", "parameters": {"schedule_id": "$response.body#/id"}},
    "UpdateSchedule": {"operationId": "updateSchedule", "parameters": {"schedule_id": "$response.body#/id"}},
    "DeleteSchedule": {"operationId": "deleteSchedule", "parameters": {"schedule_id": "$response.body#/id"}},
}


def _schedule(method: str, path: str, operation_id: str, summary: str, **declared) -> Callable:
    """Every schedule operation is tagged ``schedules``, carries ``X-Request-ID`` and may be 429."""
    declared["responses"] = {**declared["responses"], 429: "TooManyRequests"}
    parameters = (*declared.pop("parameters", ()), "RequestId")
    return route(bp, method, path, operation_id=operation_id, tag="schedules", summary=summary, parameters=parameters, **declared)


def _create_body(build: Build) -> dict:
    """From the tasks' own examples: one every minute, one by cron."""
    jobs = example_jobs(build.settings)
    examples = {"every_minute": {"summary": "A job every 60 seconds", "value": {"job": jobs[0], "every_seconds": 60}}}
    if len(jobs) > 1:
        examples["cron"] = {
            "summary": "A job at 07:00 UTC on weekdays",
            "value": {"name": "daily report", "cron": "0 7 * * MON-FRI", "job": jobs[1]},
        }
    return {"required": True, "content": {"application/json": {"schema": ref("ScheduleRequest"), "examples": examples}}}


_PATCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": ref("SchedulePatch"),
            "examples": {
                "disable": {"summary": "Pause it", "value": {"enabled": False}},
                "cadence": {"summary": "Every five minutes", "value": {"cron": "*/5 * * * *"}},
            },
        },
        "application/merge-patch+json": {"schema": ref("SchedulePatch")},
    },
}


@_schedule(
    "POST", "/schedules", "createSchedule", "Create a schedule",
    description="Run a job on a cron expression (UTC) or every N seconds. The job is validated as "
    "`POST /jobs` validates it; the jobs it starts carry `schedule_id` and belong to the caller. Each "
    "tick starts one job, however many workers run; after an outage longer than a period, the missed "
    "tick runs once and the schedule goes on at the next future tick.",
    body=_create_body,
    responses={
        201: Answer(
            "Created. Its first tick is the cadence's first after now.",
            schedule_schemas.ScheduleResource, headers=("ScheduleLocation",), links=_LINKS,
        ),
        400: "BadRequest", 409: "ScheduleLimitReached", 413: "ContentTooLarge",
        415: "ScheduleUnsupportedMediaType", 422: "ValidationFailed",
    },
)  # fmt: skip
@limiter.limit(submit_limit)
def create_schedule() -> Response:
    who = principal()
    spec = _validated(_read_json("Accept-Post", JSON_TYPES))
    try:
        resource = job_queue().create_schedule(spec, owner=who.name)
    except ScheduleLimitReached:
        return problem(409, f"this service holds its limit of {settings().max_schedules} schedules; delete one first")
    response = _json(schedule_schemas.ScheduleResource, resource, 201)
    response.headers["Location"] = resource["links"]["self"]
    return response


@_schedule(
    "GET", "/schedules", "listSchedules", "List schedules",
    description="Schedules newest first (a client key sees its own). Follow `next` to page on.",
    parameters=page_parameters("Where the previous page ended (take it from that page's `next`)."),
    responses={200: Answer("A page of schedules.", schedule_schemas.ScheduleList), 422: "ValidationFailed"},
)
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
    return _json(schedule_schemas.ScheduleList, {"schedules": page, "next": next_url})


@_schedule(
    "GET", "/schedules/{schedule_id}", "getSchedule", "Get a schedule",
    description="The schedule, with its next tick and the job its last tick started.",
    responses={200: Answer("The schedule.", schedule_schemas.ScheduleResource), 404: "ScheduleNotFound"},
)
@limiter.limit(read_limit)
def get_schedule(schedule_id: str) -> Response:
    who = principal()
    try:
        return _json(schedule_schemas.ScheduleResource, job_queue().get_schedule(schedule_id, who))
    except ScheduleNotFound:
        return _not_found()


@_schedule(
    "PATCH", "/schedules/{schedule_id}", "updateSchedule", "Change a schedule",
    description="Enable or disable it, rename it, or give it a new cadence (`cron` or `every_seconds`, "
    "which makes it that kind of schedule). A new cadence, or enabling a disabled schedule, starts "
    "the cadence afresh from now: no tick is run for the time it was disabled.",
    body=lambda _build: copy.deepcopy(_PATCH_BODY),
    responses={
        200: Answer("The schedule as it is now.", schedule_schemas.ScheduleResource),
        400: "BadRequest", 404: "ScheduleNotFound", 413: "ContentTooLarge",
        415: "PatchUnsupportedMediaType", 422: "ValidationFailed",
    },
)  # fmt: skip
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
        return _json(schedule_schemas.ScheduleResource, job_queue().update_schedule(schedule_id, patch, who))
    except ScheduleNotFound:  # deleted meanwhile
        return _not_found()


@_schedule(
    "DELETE", "/schedules/{schedule_id}", "deleteSchedule", "Delete a schedule",
    description="It starts no more jobs; the jobs it started already are left alone.",
    responses={204: Answer("Deleted."), 404: "ScheduleNotFound"},
)
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


def _json(model: type[BaseModel], body: dict, status: int = 200) -> Response:
    return Response(answers.as_json(model, body), status=status, mimetype="application/json")

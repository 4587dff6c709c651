"""The HTTP layer: ``/jobs`` and the health endpoints, as ``CONTRACT.md`` describes them.

Views parse and check the request, ask :class:`~app.queueing.JobQueue` to act, and render
its answer. They never touch Redis themselves.
"""

from __future__ import annotations

import json
import math

from flask import Blueprint, Response, current_app, g, request, url_for
from pydantic import ValidationError
from werkzeug.exceptions import BadRequest

from . import auth, schemas, webhooks
from .problems import ApiProblem, field_errors, problem
from .queueing import (
    IdempotencyClaim,
    IdempotencyConflict,
    IdempotencyInFlight,
    JobNotFound,
    JobQueue,
    JobStateConflict,
    Principal,
    QueueFull,
)
from .ratelimit import limiter, read_limit, submit_limit
from .settings import Settings

bp = Blueprint("api", __name__)

#: Seconds a client should wait before polling a job that is not finished.
POLL_AFTER = 1
QUEUE_FULL_RETRY_AFTER = 10
_NUMERIC_FORM_FIELDS = {"delay_seconds": float, "timeout_seconds": int, "max_retries": int}


def job_queue() -> JobQueue:
    return current_app.extensions["offload.queue"]


def settings() -> Settings:
    return current_app.extensions["offload.settings"]


def principal() -> Principal:
    if "principal" not in g:
        g.principal = auth.authenticate(request, settings())
    return g.principal


# --- health ------------------------------------------------------------------------------


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive; says nothing about Redis (that is /readyz)."""
    return _json({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    try:
        job_queue().ping()
    except Exception:  # noqa: BLE001 - any failure to ping means not ready
        return problem(503, "Redis is not answering", headers={"Retry-After": "5"})
    return _json({"status": "ready"})


# --- jobs --------------------------------------------------------------------------------


@bp.post("/jobs")
@limiter.limit(submit_limit)
def submit_job() -> Response:
    who = principal()
    payload = _read_submission()
    try:
        spec = schemas.request_adapter(settings().enable_diagnostic_tasks).validate_python(
            payload, context={"settings": settings()}
        )
    except ValidationError as exc:
        _raise_validation(exc)
    if spec.callback_url is not None:
        _check_callback(spec.callback_url)
    claim = _claim_idempotency_key(who, payload, spec.queue)
    if claim is not None and claim.replay is not None:
        response = _job_response(claim.replay, status=202)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    try:
        resource = job_queue().submit(spec, owner=who.name, request_id=g.get("request_id"), idempotency=claim)
    except QueueFull as exc:
        if claim is not None:
            claim.release()
        return problem(
            503, f"queue {exc} is over its depth limit; try again later", headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER)}
        )
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    return _job_response(resource, status=202)


def _check_callback(url: str) -> None:
    errors = None
    if settings().webhook_secret is None:
        errors = [{"field": "callback_url", "message": "callbacks are not enabled on this server (no WEBHOOK_SECRET)"}]
    else:
        try:
            webhooks.check_url(url, settings().allow_private_callbacks)
        except webhooks.CallbackRefused as exc:
            errors = [{"field": "callback_url", "message": str(exc)}]
    if errors:
        raise ApiProblem(422, "the callback URL cannot be used", title="Validation Failed", errors=errors)


def _claim_idempotency_key(who: Principal, payload: dict, queue: str) -> IdempotencyClaim | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise ApiProblem(
            400, "Idempotency-Key must be 1 to 255 printable characters", errors=[{"field": "Idempotency-Key", "message": "invalid"}]
        )
    try:
        return job_queue().claim_idempotency_key(who.name, key, payload, queue)
    except IdempotencyConflict:
        raise ApiProblem(
            422,
            "this Idempotency-Key was used with a different request body",
            title="Idempotency Key Reused",
            errors=[{"field": "Idempotency-Key", "message": "already used with a different body"}],
        ) from None
    except IdempotencyInFlight:
        raise ApiProblem(
            409, "a request with this Idempotency-Key is still being handled; retry shortly", headers={"Retry-After": "1"}
        ) from None


@bp.get("/jobs/<job_id>")
@limiter.limit(read_limit)
def get_job(job_id: str) -> Response:
    who = principal()
    wait = request.args.get("wait")
    try:
        if wait is None:
            resource = job_queue().get(job_id, who)
        else:
            resource = job_queue().wait(job_id, who, _wait_seconds(wait))
    except JobNotFound:
        return _not_found()
    return _job_response(resource)


@bp.post("/jobs/<job_id>/cancel")
@limiter.limit(read_limit)
def cancel_job(job_id: str) -> Response:
    who = principal()
    try:
        resource = job_queue().cancel(job_id, who)
    except JobNotFound:
        return _not_found()
    except JobStateConflict as exc:
        return problem(409, str(exc))
    return _job_response(resource, status=202)


@bp.post("/jobs/<job_id>/retry")
@limiter.limit(read_limit)
def retry_job(job_id: str) -> Response:
    who = principal()
    try:
        resource = job_queue().retry(job_id, who)
    except JobNotFound:
        return _not_found()
    except JobStateConflict as exc:
        return problem(409, str(exc))
    return _job_response(resource, status=202)


@bp.get("/jobs")
@limiter.limit(read_limit)
def list_jobs() -> Response:
    who = principal()
    args = request.args
    errors = []
    status = args.get("status")
    if status is not None and status not in schemas.JobStatusName.__args__:  # type: ignore[attr-defined]
        errors.append({"field": "status", "message": "not a job status"})
    queue = args.get("queue")
    if queue is not None and queue not in schemas.QueueName.__args__:  # type: ignore[attr-defined]
        errors.append({"field": "queue", "message": "not a queue"})
    limit_text = args.get("limit", "50")
    try:
        limit = int(limit_text) if limit_text.isdigit() else 0
    except ValueError:  # "²" is a digit that int() refuses, and so are 4301 digits or more
        limit = 0
    if not 1 <= limit <= 200:
        errors.append({"field": "limit", "message": "must be an integer from 1 to 200"})
    if errors:
        raise ApiProblem(422, "the query is not valid", title="Validation Failed", errors=errors)
    try:
        jobs, next_cursor = job_queue().list(
            who, status=status, type=args.get("type"), queue=queue, limit=limit, cursor=args.get("cursor")
        )
    except ValueError:
        raise ApiProblem(
            422, "the cursor is not valid", title="Validation Failed", errors=[{"field": "cursor", "message": "invalid"}]
        ) from None
    body = {
        "jobs": [_with_links(job) for job in jobs],
        "next": url_for("api.list_jobs", **{**args.to_dict(), "cursor": next_cursor}) if next_cursor else None,
    }
    return _json(body)


# --- helpers -----------------------------------------------------------------------------


def _read_submission() -> dict:
    """The submission as a dict, from JSON or (for ``count_words``) multipart form data."""
    mimetype = request.mimetype
    if mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raw = request.get_data(cache=False)
        if request.content_length is not None and len(raw) != request.content_length:
            # The server hands over what arrived; a body shorter than announced was cut off.
            raise ApiProblem(400, f"the body has {len(raw)} bytes, not the {request.content_length} Content-Length announced")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiProblem(400, "the body is not valid UTF-8") from None
        try:
            payload = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise ApiProblem(400, f"the body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise ApiProblem(400, "the body must be a JSON object")
        return payload
    if mimetype == "multipart/form-data":
        return _read_form()
    raise ApiProblem(
        415,
        "send application/json (or multipart/form-data with a 'file' for count_words)",
        headers={"Accept-Post": "application/json, multipart/form-data"},
    )


def _read_form() -> dict:
    try:
        form, files = request.form, request.files
    except BadRequest:
        raise ApiProblem(400, "the multipart body could not be parsed") from None
    payload: dict = {key: value for key, value in form.items() if key != "file"}
    payload.setdefault("type", "count_words")
    if payload["type"] != "count_words":
        raise ApiProblem(
            422,
            "only count_words accepts multipart/form-data",
            title="Validation Failed",
            errors=[{"field": "type", "message": "multipart/form-data is for count_words only"}],
        )
    upload = files.get("file")
    if upload is None:
        if "text" not in payload:
            raise ApiProblem(
                422,
                "send the text as a file field named 'file'",
                title="Validation Failed",
                errors=[{"field": "file", "message": "required"}],
            )
    else:
        limit = settings().max_text_bytes
        data = upload.stream.read(limit + 1)
        if len(data) > limit:
            raise ApiProblem(413, f"text must be at most {limit} bytes of UTF-8")
        try:
            payload["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiProblem(
                422,
                "the file is not UTF-8 text",
                title="Validation Failed",
                errors=[{"field": "file", "message": "must be UTF-8 text"}],
            ) from None
    errors = []
    for name, kind in _NUMERIC_FORM_FIELDS.items():
        if name in payload:
            try:
                payload[name] = kind(payload[name])
            except ValueError:
                errors.append({"field": name, "message": f"must be a {'number' if kind is float else 'whole number'}"})
    if "metadata" in payload:
        try:
            payload["metadata"] = json.loads(payload["metadata"])
        except (ValueError, RecursionError):
            errors.append({"field": "metadata", "message": "must be a JSON object"})
    if errors:
        raise ApiProblem(422, "the form is not valid", title="Validation Failed", errors=errors)
    return payload


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def _raise_validation(exc: ValidationError) -> None:
    if any(error["type"] == schemas.TOO_LARGE for error in exc.errors()):
        limit = settings().max_text_bytes
        raise ApiProblem(413, f"text must be at most {limit} bytes of UTF-8", errors=field_errors(exc))
    raise ApiProblem(422, "the job is not valid", title="Validation Failed", errors=field_errors(exc))


def _wait_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    limit = settings().max_wait_seconds
    if not 0 <= seconds <= limit:
        raise ApiProblem(
            422,
            f"wait must be a number of seconds from 0 to {limit}",
            title="Validation Failed",
            errors=[{"field": "wait", "message": f"must be from 0 to {limit}"}],
        )
    return seconds


def _with_links(resource: dict) -> dict:
    job_id = resource["id"]
    return {
        **resource,
        "links": {
            "self": url_for("api.get_job", job_id=job_id),
            "cancel": url_for("api.cancel_job", job_id=job_id),
        },
    }


def _job_response(resource: dict, status: int = 200) -> Response:
    body = _with_links(resource)
    response = _json(body, status)
    if status == 202:
        response.headers["Location"] = body["links"]["self"]
    if resource["status"] not in schemas.TERMINAL_STATUSES:
        response.headers["Retry-After"] = str(POLL_AFTER)
    return response


def _not_found() -> Response:
    return problem(404, "no job with this id (it may never have existed, or it has expired)")


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


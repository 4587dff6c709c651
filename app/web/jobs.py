"""``/jobs``: submit, get (and wait on), cancel, retry and list jobs.

Views parse and check the request (:mod:`.parsing`), ask the job service
(:class:`~app.jobs.JobQueue`) to act, and render its answer. They never touch Redis themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Blueprint, Response, current_app, g, request, url_for
from pydantic import TypeAdapter, ValidationError

from ..jobs import (
    IdempotencyClaim,
    IdempotencyConflict,
    IdempotencyInFlight,
    InvalidSubmission,
    JobNotFound,
    JobStateConflict,
    Principal,
    QueueFull,
    RateLimited,
    catalog,
    schemas,
)
from ..tasks import webhook
from . import answers
from .context import job_queue, principal, settings
from .parsing import form_name, invalid_cursor, page_limit, read_submission, refuse_query, wait_seconds
from .problems import ApiProblem, field_errors, problem
from . import ratelimit
from .ratelimit import limiter, read_limit, submission_limit
from .routes import Answer, Build, page_parameters, ref, route
from .search import SEARCH_NOTE, SEARCH_QUERY, search_parameters
from .tracing import begin as begin_trace
from .tracing import note as note_trace

bp = Blueprint("api", __name__)

#: Seconds a client should wait before polling a job that is not finished.
POLL_AFTER = 1
QUEUE_FULL_RETRY_AFTER = 10


#: What the document says of the job a 2xx answers: how to act on it next, by operation.
JOB_LINKS = {
    "GetJob": {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"}},
    "CancelJob": {"operationId": "cancelJob", "parameters": {"job_id": "$response.body#/id"}},
    "RetryJob": {"operationId": "retryJob", "parameters": {"job_id": "$response.body#/id"}},
}
#: The headers a submission may carry.
SUBMISSION_HEADERS = ("IdempotencyKey", "RequestId", "TraceParent", "TraceState")


def _submission_body(build: Build) -> dict:
    """JSON (each served task's example, and one with options), or a form for a task with upload
    fields. The form's metadata is a JSON part; its file parts get no ``contentType``: the server
    reads any part as UTF-8 text, whatever its type (curl -F sends application/octet-stream), and a
    part with a declared type is a typed value to a fuzzer, which then calls the text "123" of a
    mutated integer an invalid file accepted (schemathesis ST201, issue 25 item 2)."""
    examples = {
        task.type: {"summary": task.description or task.type, "value": {"type": task.type, **task.example}}
        for task in catalog.served(build.settings)
        if task.example is not None
    }
    forms = [ref(form_name(task)) for task in catalog.served(build.settings) if task.upload_fields]
    if examples:
        first = next(iter(examples.values()))["value"]
        examples["with_options"] = {
            "summary": "Run in ten minutes on the high queue, retrying twice on failure, with your own metadata",
            "value": {**first, "queue": "high", "delay_seconds": 600, "max_retries": 2, "metadata": {"order": 1234}},
        }
    return {
        "required": True,
        "content": {
            "application/json": {"schema": ref("JobRequest"), "examples": examples},
            "multipart/form-data": {
                "schema": forms[0] if len(forms) == 1 else {"oneOf": forms},
                "encoding": {"metadata": {"contentType": "application/json"}},
            },
        },
    }


def _job_answer(description: str, *headers: str, links: dict | None = None) -> Answer:
    return Answer(description, schemas.JobResource, headers=headers, links=links)


# --- jobs --------------------------------------------------------------------------------


@route(
    bp, "POST", "/jobs", operation_id="submitJob", tag="jobs", summary="Submit a job",
    description="Queue a job (or schedule it, with `delay_seconds` or `run_at`). The answer is the job "
    "resource; poll its `Location` (or `GET` it with `?wait=`) until it is terminal.",
    parameters=SUBMISSION_HEADERS,
    body=_submission_body,
    responses={
        202: _job_answer(
            "Accepted: the job is queued or scheduled. With an `Idempotency-Key` that was seen before with the "
            "same body, this is the first answer again (same job).",
            "Location", "OperationLocation", "RetryAfter", "IdempotentReplayed", "TraceParent",
            links=JOB_LINKS,
        ),
        400: "BadRequest", 409: "IdempotencyInFlight", 413: "ContentTooLarge", 415: "UnsupportedMediaType",
        422: "ValidationFailed", 429: "TooManyRequests",
    },
)  # fmt: skip
@limiter.limit(submission_limit)
def submit_job() -> Response:
    trace = begin_trace()  # the caller's traceparent continued (a bad one ignored), or a new trace
    who = principal()
    payload = read_submission()
    try:
        spec = catalog.request_adapter(settings()).validate_python(
            payload, context={"settings": settings()}
        )
    except ValidationError as exc:
        _raise_validation(exc)
    if spec.callback_url is not None:
        _check_callback(spec.callback_url)
    # The key is claimed by the submission's own script (no round trip of its own): the job and
    # the key's answer are written together, or the key's first answer comes back to replay.
    claim = _idempotency_of(who, payload)
    try:
        with _idempotency_problems():
            resource = job_queue().submit(
                spec, owner=who.name, request_id=g.get("request_id"), idempotency=claim, principal=who,
                extra_meta={"trace": trace}, rate=ratelimit.riding(),
            )  # fmt: skip
    except RateLimited:  # counted by the submission's script, over a limit: nothing was written
        _release(claim)
        return ratelimit.refused()
    except InvalidSubmission as exc:  # depends_on: an unknown job, or one that will never finish
        _release(claim)
        raise ApiProblem(422, "the job is not valid", title="Validation Failed", errors=exc.errors[0]) from None
    except QueueFull as exc:
        _release(claim)
        return problem(
            503, f"queue {exc} is over its depth limit; try again later", headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER)}
        )
    except BaseException:
        _release(claim)
        raise
    g.job_id = resource["id"]  # for the access line (app.web._finish)
    if claim is not None and claim.replay is not None:
        response = _job_response(claim.replay, status=202)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    note_trace(**{"offload.job.id": resource["id"], "offload.job.type": resource["type"], "offload.job.queue": resource["queue"]})
    return _job_response(resource, status=202)


def _check_callback(url: str) -> None:
    errors = None
    if settings().webhook_secret is None:
        errors = [{"field": "callback_url", "message": "callbacks are not enabled on this server (no WEBHOOK_SECRET)"}]
    else:
        try:
            webhook.check_url(url, settings().allow_private_callbacks)
        except webhook.CallbackRefused as exc:
            errors = [{"field": "callback_url", "message": str(exc)}]
    if errors:
        raise ApiProblem(422, "the callback URL cannot be used", title="Validation Failed", errors=errors)


def _release(claim: IdempotencyClaim | None) -> None:
    """Give the key back after a failed submission, if this request holds it (a claim the script
    would have made was never made; one taken for another request must stay)."""
    if claim is not None and claim.claimed:
        claim.release()


def _idempotency_key() -> str | None:
    """The request's ``Idempotency-Key``, checked (400 when malformed), or None."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not schemas.IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiProblem(
            400,
            "Idempotency-Key must be 1 to 255 printable ASCII characters (spaces only inside)",
            errors=[{"field": "Idempotency-Key", "message": "invalid"}],
        )
    return key


def _idempotency_of(who: Principal, payload: dict) -> IdempotencyClaim | None:
    """A claim of the request's key that :meth:`JobQueue.submit` makes in its own script."""
    key = _idempotency_key()
    return None if key is None else job_queue().idempotency(who.name, key, payload)


@contextmanager
def _idempotency_problems() -> Iterator[None]:
    """The contract's answers to a key used with another body (422) or still in flight (409)."""
    try:
        yield
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


@route(
    bp, "GET", "/jobs/{job_id}", operation_id="getJob", tag="jobs", summary="Get a job",
    description="The job resource. With `?wait=N` the answer is held until the job is terminal or "
    "N seconds have passed, whichever comes first.",
    parameters=(
        lambda build: {
            "name": "wait",
            "in": "query",
            "description": f"Seconds to wait for the job to end (at most {build.settings.max_wait_seconds}).",
            "schema": {"type": "number", "minimum": 0, "maximum": build.settings.max_wait_seconds},
        },
        "RequestId",
    ),
    responses={
        200: _job_answer("The job. `Retry-After` is there while the job is not terminal.", "RetryAfterWhilePending"),
        404: "NotFound", 405: "NotAJob", 422: "ValidationFailed",
    },
)  # fmt: skip
@limiter.limit(read_limit)
def get_job(job_id: str) -> Response:
    who = principal()
    wait = request.args.get("wait")
    try:
        if wait is None:
            resource = job_queue().get(job_id, who)
        else:
            resource = job_queue().wait(job_id, who, wait_seconds(wait), stop=_server_stopping)
    except JobNotFound:
        return _not_found()
    return _job_response(resource)


def _server_stopping() -> bool:
    """gunicorn is stopping this process (gunicorn.conf.py tells the app): a ``?wait=`` answers
    now rather than hold the graceful shutdown, and so Ctrl-C on make run, up to its end."""
    alive = current_app.extensions.get("offload.server_alive")
    return alive is not None and not alive()


@route(
    bp, "POST", "/jobs/{job_id}/cancel", operation_id="cancelJob", tag="jobs", summary="Cancel a job",
    description="A queued or scheduled job is canceled before it runs; a running job is stopped "
    "(status `stopped` once the worker has stopped it).",
    parameters=("RequestId",),
    responses={
        202: _job_answer("Canceled, or asked to stop.", "Location", "OperationLocation", "RetryAfterWhilePending"),
        404: "NotFound", 409: "StateConflict",
    },
)  # fmt: skip
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


@route(
    bp, "POST", "/jobs/{job_id}/retry", operation_id="retryJob", tag="jobs", summary="Retry a job",
    description="Put a failed, stopped or canceled job back on its queue.",
    parameters=("RequestId",),
    responses={
        202: _job_answer("Queued again.", "Location", "OperationLocation", "RetryAfter"),
        404: "NotFound", 409: "StateConflict",
    },
)  # fmt: skip
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


@route(
    bp, "GET", "/jobs", operation_id="listJobs", tag="jobs", summary="List jobs",
    description="Jobs newest first (a client key sees its own). Follow `next` to page on." + SEARCH_NOTE,
    parameters=(
        {"name": "status", "in": "query", "description": "Only jobs in this status.",
         "schema": TypeAdapter(schemas.JobStatusName).json_schema()},
        lambda build: {"name": "type", "in": "query", "description": "Only jobs of this type.", "schema": {"type": "string"},
                       "examples": {name: {"value": name} for name in catalog.type_names(build.settings)}},
        {"name": "queue", "in": "query", "description": "Only jobs on this queue.",
         "schema": TypeAdapter(schemas.QueueName).json_schema()},
        *page_parameters(
            "Where the previous page ended (take it from that page's `next`): the "
            "position `<created, as Unix seconds>:<job id>`; the page starts after it."
        ),
        *SEARCH_QUERY,
        "RequestId",
    ),
    responses={
        200: Answer("A page of jobs.", answers.JobList),
        422: "ValidationFailed",
    },
)  # fmt: skip
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
    limit = page_limit(args.get("limit", "50"), errors)
    found, search_errors = search_parameters(args)  # app/web/search.py
    errors += search_errors
    refuse_query(errors)
    filters = {"status": status, "type": args.get("type"), "queue": queue}
    try:
        if found is not None:
            jobs, next_cursor = job_queue().search(who, **filters, **found, limit=limit, cursor=args.get("cursor"))
        else:
            jobs, next_cursor = job_queue().list(who, **filters, limit=limit, cursor=args.get("cursor"))
    except ValueError:
        raise invalid_cursor() from None
    next_url = url_for("api.list_jobs", **{**args.to_dict(), "cursor": next_cursor}) if next_cursor else None
    return Response(answers.job_list_json(jobs, next_url), mimetype="application/json")


# --- helpers -----------------------------------------------------------------------------


def _raise_validation(exc: ValidationError) -> None:
    if any(error["type"] == schemas.TOO_LARGE for error in exc.errors()):
        limit = settings().max_text_bytes
        raise ApiProblem(413, f"text must be at most {limit} bytes of UTF-8", errors=field_errors(exc))
    raise ApiProblem(422, "the job is not valid", title="Validation Failed", errors=field_errors(exc))


def _job_response(resource: dict, status: int = 200) -> Response:
    response = Response(answers.job_json(resource), status=status, mimetype="application/json")
    if status == 202:
        # Azure's long-running-operation convention names the status URL Operation-Location.
        response.headers["Location"] = response.headers["Operation-Location"] = schemas.links(resource)["self"]
    if resource["status"] not in schemas.TERMINAL_STATUSES:
        response.headers["Retry-After"] = str(POLL_AFTER)
    return response


def _not_found() -> Response:
    return problem(404, "no job with this id (it may never have existed, or it has expired)")


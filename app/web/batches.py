"""``POST /jobs/batch`` and ``GET /batches/{id}``: many jobs in one request, counted together.

Each item of ``jobs`` is validated as ``POST /jobs`` validates a body; the valid ones are written
in one Redis transaction with the batch's record (:meth:`~app.jobs.JobQueue.submit_batch`),
and each invalid one gets its own 422 problem in ``results`` (no job is made for it). When no item
is valid the answer is a 422 and nothing is written; so it is when a queue would go over its depth
limit (503) or the body is over the server's size limit (413).
"""

from __future__ import annotations


from flask import Blueprint, Response, g, request
from pydantic import ValidationError

from ..jobs import BatchNotFound, InvalidSubmission, QueueFull, RateLimited, batch_schemas, catalog, schemas
from . import answers
from .context import job_queue, principal, settings
from . import ratelimit
from .jobs import POLL_AFTER, QUEUE_FULL_RETRY_AFTER, SUBMISSION_HEADERS, _check_callback, _idempotency_of, _idempotency_problems, _release
from .parsing import read_submission
from .problems import ApiProblem, field_errors, problem
from .ratelimit import limiter, read_limit, submission_limit
from .routes import Answer, Build, example_jobs, ref, route
from .tracing import begin as begin_trace
from .tracing import note as note_trace

bp = Blueprint("batches", __name__)

_ALLOW = "OPTIONS, POST"


def _batch_body(build: Build) -> dict:
    """From the tasks' own examples: several jobs at once, and one that waits for another."""
    jobs = example_jobs(build.settings)
    many = {"jobs": jobs[:3], "metadata": {"import": 42}}
    summary = "Jobs of several types at once, with your own metadata"
    if build.settings.webhook_secret is not None:  # else this server takes no callback_url
        many["callback_url"] = "https://example.com/hooks/offload"
        summary += ", and a callback when all have ended"
    examples = {"many": {"summary": summary, "value": many}}
    if len(jobs) > 1:
        examples["chain"] = {
            "summary": "A job that runs after an earlier item of the batch ($0)",
            "value": {"jobs": [jobs[0], {**jobs[1], "depends_on": ["$0"]}]},
        }
    return {"required": True, "content": {"application/json": {"schema": ref("BatchRequest"), "examples": examples}}}


@route(
    bp, "POST", "/jobs/batch", operation_id="submitBatch", tag="batches", summary="Submit a batch of jobs",
    description=lambda build: f"Up to {build.settings.max_batch_jobs} jobs, each as `POST /jobs` takes it, "
    "written in ONE Redis transaction with the batch's record. Each item is validated alone: the answer has a "
    "result for every item, in order, `202` with its job or `422` with its problem (no job was made for it). An "
    "item may wait for an earlier one (`depends_on: [\"$0\"]`). With a `callback_url`, the batch resource is "
    "POSTed there once, when every job of the batch has ended (event `batch.done`, signed as job callbacks are).\n\n"
    "Nothing at all is enqueued when no item is valid (`422`, with `errors` naming `jobs.<index>.<field>`), "
    "when a queue would go over its depth limit (`503`), or when the body is larger than the server "
    "accepts (`413`; the same limit as `POST /jobs`).",
    parameters=SUBMISSION_HEADERS,
    body=_batch_body,
    responses={
        202: Answer(
            "Accepted: the valid items are queued (or scheduled, or deferred) as one batch. "
            "With an `Idempotency-Key` seen before with the same body, this is the first answer again.",
            batch_schemas.BatchAnswer,
            headers=("BatchLocation", "BatchOperationLocation", "RetryAfterWhilePending", "IdempotentReplayed", "TraceParent"),
            links={"GetBatch": {"operationId": "getBatch", "parameters": {"batch_id": "$response.body#/batch/id"}}},
        ),
        400: "BadRequest", 409: "IdempotencyInFlight", 413: "ContentTooLarge", 415: "UnsupportedMediaType",
        422: "ValidationFailed", 429: "TooManyRequests",
    },
)  # fmt: skip
@limiter.limit(submission_limit)
def submit_batch() -> Response:
    trace = begin_trace()  # every job of the batch is a child of this request's span
    who = principal()
    if not request.mimetype.endswith(("/json", "+json")) or not request.mimetype.startswith("application/"):
        raise ApiProblem(415, "send the batch as application/json", headers={"Accept-Post": "application/json"})
    payload = read_submission()
    try:
        batch = batch_schemas.BatchRequest.model_validate(payload, context={"settings": settings()})
    except ValidationError as exc:
        raise ApiProblem(422, "the batch is not valid", title="Validation Failed", errors=field_errors(exc)) from None
    if batch.callback_url is not None:
        _check_callback(batch.callback_url)
    valid, rejected = _validate_items(batch.jobs)
    if not valid:
        _refuse({index: body["errors"] for index, body in rejected.items()})
    # As POST /jobs: the key claimed, and the rate limit counted, by the batch's own script.
    claim = _idempotency_of(who, payload)
    try:
        with _idempotency_problems():
            answer = job_queue().submit_batch(
                valid,
                owner=who.name,
                principal=who,
                request_id=g.get("request_id"),
                callback_url=batch.callback_url,
                metadata=batch.metadata,
                rejected=rejected,
                problem=_item_problem,
                idempotency=claim,
                extra_meta={"trace": trace},
                rate=ratelimit.riding(),
            )
    except RateLimited:  # counted by the batch's script, over a limit: nothing was written
        _release(claim)
        return ratelimit.refused()
    except InvalidSubmission as exc:
        _release(claim)
        _refuse({**{index: body["errors"] for index, body in rejected.items()}, **exc.errors})
    except QueueFull as exc:
        _release(claim)
        return problem(
            503,
            f"the batch would take queue {exc} over its depth limit; nothing was enqueued, try again later",
            headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER)},
        )
    except BaseException:
        _release(claim)
        raise
    if claim is not None and claim.replay is not None:
        response = _answer(claim.replay)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    note_trace(**{"offload.batch.id": answer["batch"]["id"], "offload.batch.jobs": len(valid)})
    return _answer(answer)


@bp.before_app_request
def _post_only() -> Response | None:
    """``/jobs/batch`` takes POST alone. Its path has the form of ``GET /jobs/{id}`` too: without
    this, a GET would look up a job called "batch", and OPTIONS and every 405 would offer GET."""
    if request.path != "/jobs/batch" or request.method == "POST":
        return None
    if request.method == "OPTIONS":
        return Response(status=200, headers={"Allow": _ALLOW})
    return problem(405, "POST /jobs/batch only", headers={"Allow": _ALLOW})


@route(
    bp, "GET", "/batches/{batch_id}", operation_id="getBatch", tag="batches", summary="Get a batch",
    description="The batch resource: its jobs, and how many of them are in each status now. `done` "
    "once every job has ended.",
    parameters=("RequestId",),
    responses={
        200: Answer(
            "The batch. `Retry-After` is there while it is not done.",
            batch_schemas.BatchResource,
            headers=("RetryAfterWhilePending",),
        ),
        404: "BatchNotFound",
    },
)  # fmt: skip
@limiter.limit(read_limit)
def get_batch(batch_id: str) -> Response:
    try:
        resource = job_queue().get_batch(batch_id, principal())
    except BatchNotFound:
        return problem(404, "no batch with this id (it may never have existed, or it has expired)")
    response = Response(answers.as_json(batch_schemas.BatchResource, resource), mimetype="application/json")
    if not resource["done"]:
        response.headers["Retry-After"] = str(POLL_AFTER)
    return response


def _validate_items(items: list) -> tuple[list[tuple[int, schemas.JobOptions]], dict[int, dict]]:
    """The valid items (index, request), and a problem for each invalid one, by index."""
    adapter = catalog.request_adapter(settings())
    valid, rejected = [], {}
    for index, item in enumerate(items):
        try:
            spec = adapter.validate_python(item, context={"settings": settings()})
            if spec.callback_url is not None:
                _check_callback(spec.callback_url)
        except ValidationError as exc:
            rejected[index] = _item_problem(field_errors(exc))
        except ApiProblem as exc:
            rejected[index] = _item_problem(exc.errors or [{"field": "body", "message": exc.detail}])
        else:
            valid.append((index, spec))
    return valid, rejected


def _item_problem(errors: list[dict]) -> dict:
    return {"type": "about:blank", "title": "Validation Failed", "status": 422, "detail": "the job is not valid", "errors": errors}


def _refuse(errors_by_index: dict[int, list[dict]]) -> None:
    errors = [
        {"field": f"jobs.{index}.{error['field']}", "message": error["message"]}
        for index in sorted(errors_by_index)
        for error in errors_by_index[index]
    ]
    raise ApiProblem(422, "no job of the batch is valid; nothing was enqueued", title="Validation Failed", errors=errors)


def _answer(answer: dict) -> Response:
    response = Response(answers.as_json(batch_schemas.BatchAnswer, answer), status=202, mimetype="application/json")
    # Azure's long-running-operation convention names the status URL Operation-Location.
    response.headers["Location"] = response.headers["Operation-Location"] = answer["batch"]["links"]["self"]
    if not answer["batch"]["done"]:
        response.headers["Retry-After"] = str(POLL_AFTER)
    return response

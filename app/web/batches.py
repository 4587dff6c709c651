"""``POST /jobs/batch`` and ``GET /batches/{id}``: many jobs in one request, counted together.

Each item of ``jobs`` is validated as ``POST /jobs`` validates a body; the valid ones are written
in one Redis transaction with the batch's record (:meth:`~app.jobs.JobQueue.submit_batch`),
and each invalid one gets its own 422 problem in ``results`` (no job is made for it). When no item
is valid the answer is a 422 and nothing is written; so it is when a queue would go over its depth
limit (503) or the body is over the server's size limit (413).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, g, request
from pydantic import ValidationError

from ..jobs import BatchNotFound, InvalidSubmission, QueueFull, batch_schemas, catalog, schemas
from .context import job_queue, principal, settings
from .jobs import POLL_AFTER, QUEUE_FULL_RETRY_AFTER, _check_callback, _claim_idempotency_key
from .parsing import read_submission
from .problems import ApiProblem, field_errors, problem
from .ratelimit import limiter, read_limit, submit_limit
from .tracing import begin as begin_trace
from .tracing import note as note_trace

bp = Blueprint("batches", __name__)

_ALLOW = "OPTIONS, POST"


@bp.post("/jobs/batch")
@limiter.limit(submit_limit)
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
    claim = _claim_idempotency_key(who, payload, None)
    if claim is not None and claim.replay is not None:
        response = _answer(claim.replay)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    try:
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
        )
    except InvalidSubmission as exc:
        if claim is not None:
            claim.release()
        _refuse({**{index: body["errors"] for index, body in rejected.items()}, **exc.errors})
    except QueueFull as exc:
        if claim is not None:
            claim.release()
        return problem(
            503,
            f"the batch would take queue {exc} over its depth limit; nothing was enqueued, try again later",
            headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER)},
        )
    except BaseException:
        if claim is not None:
            claim.release()
        raise
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


@bp.get("/batches/<batch_id>")
@limiter.limit(read_limit)
def get_batch(batch_id: str) -> Response:
    try:
        resource = job_queue().get_batch(batch_id, principal())
    except BatchNotFound:
        return problem(404, "no batch with this id (it may never have existed, or it has expired)")
    response = Response(json.dumps(resource), mimetype="application/json")
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
    response = Response(json.dumps(answer), status=202, mimetype="application/json")
    # Azure's long-running-operation convention names the status URL Operation-Location.
    response.headers["Location"] = response.headers["Operation-Location"] = answer["batch"]["links"]["self"]
    if not answer["batch"]["done"]:
        response.headers["Retry-After"] = str(POLL_AFTER)
    return response

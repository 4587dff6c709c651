"""``/queues``: each queue's depths, paused state and workers; pause and resume a queue.
``/concurrency``: the concurrency keys and fair shares in use, with their slots.

Reading is for any key: a client whose jobs wait needs to see that their queue is paused (the
figures are counts, never another client's jobs). Pausing and resuming are for admin keys
only (403 for a client key). The job service does the work (the Redis side is
:mod:`app.jobs.queues_admin`).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, request

from ..jobs import UnknownQueue
from . import auth
from .context import job_queue, principal, settings
from .problems import problem
from .ratelimit import limiter, read_limit, submit_limit

bp = Blueprint("queues", __name__)


@bp.get("/queues")
@limiter.limit(read_limit)
def list_queues() -> Response:
    principal()
    return _json({"queues": job_queue().list_queues()})


@bp.get("/concurrency")
@limiter.limit(read_limit)
def list_concurrency() -> Response:
    return _json({"keys": job_queue().concurrency(principal())})


@bp.get("/queues/<name>")
@limiter.limit(read_limit)
def get_queue(name: str) -> Response:
    principal()
    try:
        return _json(job_queue().describe_queue(name))
    except UnknownQueue:
        return _not_found()


@bp.post("/queues/<name>/pause")
@limiter.limit(submit_limit)
def pause_queue(name: str) -> Response:
    auth.authenticate(request, settings(), admin=True)
    try:
        return _json(job_queue().pause_queue(name))
    except UnknownQueue:
        return _not_found()


@bp.post("/queues/<name>/resume")
@limiter.limit(submit_limit)
def resume_queue(name: str) -> Response:
    auth.authenticate(request, settings(), admin=True)
    try:
        return _json(job_queue().resume_queue(name))
    except UnknownQueue:
        return _not_found()


def _not_found() -> Response:
    names = ", ".join(job_queue().queue_names)
    return problem(404, f"no queue of this name (offload's queues are {names})")


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")

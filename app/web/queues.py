"""``/queues``: each queue's depths, paused state and workers; pause and resume a queue.
``/concurrency``: the concurrency keys and fair shares in use, with their slots.

Reading is for any key: a client whose jobs wait needs to see that their queue is paused (the
figures are counts, never another client's jobs). Pausing and resuming are for admin keys
only (403 for a client key). The job service does the work (the Redis side is
:mod:`app.jobs.admin.queues_admin`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from flask import Blueprint, Response, request

from ..jobs import UnknownQueue, schemas
from . import auth
from .context import job_queue, principal, settings
from .problems import problem
from .ratelimit import limiter, read_limit, submit_limit
from .routes import Answer, route

bp = Blueprint("queues", __name__)

# --- what the answers are: the models the document shows and the views answer through -------------

Count = Annotated[int, Field(ge=0)]


class QueueLinks(BaseModel):
    self: str
    pause: str
    resume: str


class Queue(BaseModel):
    """One queue as it is now."""

    name: schemas.QueueName
    paused: bool = Field(description="Paused: it accepts jobs but no worker takes one (jobs already running finish).")
    queued: Count = Field(description="Jobs waiting on it.")
    scheduled: Count = Field(description="Jobs with a later start (`delay_seconds`, `run_at`, retries).")
    started: Count = Field(description="Jobs running now.")
    deferred: Count = Field(description="Jobs waiting for others.")
    failed: Count = Field(description="Failed jobs still kept (FAILURE_TTL_SECONDS).")
    workers: Count = Field(description="Live workers serving it.")
    links: QueueLinks


class QueueList(BaseModel):
    queues: list[Queue]


class ConcurrencyKey(BaseModel):
    """A `concurrency_key` (or a client's fair share, FAIR_SHARE) with jobs queued, running or waiting."""

    kind: Literal["key", "fair_share"] = Field(
        description="`key`: a client's `concurrency_key`; `fair_share`: the client's share of the workers."
    )
    key: str | None = Field(description="The `concurrency_key` as submitted; null for a fair share.")
    owner: str | None = Field(description="The API key's name it belongs to (null without keys).")
    limit: Count = Field(description="How many of its jobs may be queued or running at once.")
    active: Count = Field(description="Its jobs queued or running now (they hold its slots).")
    waiting: Count = Field(description="Its jobs waiting for a slot (their status is `queued`).")


class ConcurrencyList(BaseModel):
    keys: list[ConcurrencyKey]


def _queue_route(method: str, path: str, operation_id: str, summary: str, description: str, schema: type[BaseModel], *, found: bool = False, admin: bool = False) -> Callable:
    """A /queues operation: its 200, 429, and 404 for a queue's own path; 403 for admin ones."""
    responses: dict[int, Answer | str] = {
        200: Answer("The queue now." if admin else "OK.", schema),
        429: "TooManyRequests",
    }
    if found:
        responses[404] = "QueueNotFound"
    return route(
        bp, method, path, operation_id=operation_id, tag="queues", summary=summary, description=description,
        parameters=("RequestId",), responses=responses, admin=admin,
    )  # fmt: skip


@_queue_route(
    "GET", "/queues", "listQueues", "List the queues",
    "Every queue with its counts (queued, scheduled, started, deferred, failed), whether it is paused, and the "
    "live workers serving it. Any key may read it.",
    QueueList,
)  # fmt: skip

@limiter.limit(read_limit)
def list_queues() -> Response:
    principal()
    return _json(QueueList(queues=job_queue().list_queues()))


@_queue_route(
    "GET", "/concurrency", "listConcurrency", "List concurrency keys",
    "The `concurrency_key`s in use (jobs queued, running or waiting for a slot), and with FAIR_SHARE set each "
    "client's share: limit, active and waiting counts. An admin key sees every client's; a client key its own.",
    ConcurrencyList,
)  # fmt: skip
@limiter.limit(read_limit)
def list_concurrency() -> Response:
    return _json(ConcurrencyList(keys=job_queue().concurrency(principal())))


@_queue_route("GET", "/queues/{name}", "getQueue", "Get a queue", "One queue, as in `GET /queues`.", Queue, found=True)
@limiter.limit(read_limit)
def get_queue(name: str) -> Response:
    principal()
    try:
        return _json(Queue.model_validate(job_queue().describe_queue(name)))
    except UnknownQueue:
        return _not_found()


@_queue_route(
    "POST", "/queues/{name}/pause", "pauseQueue", "Pause a queue",
    "Admin keys only. The queue keeps accepting jobs (and scheduled jobs still move onto it) but no worker takes "
    "one until it is resumed; jobs already running finish. The state is kept in Redis: it survives worker "
    "restarts and failovers. Pausing a paused queue changes nothing.",
    Queue, found=True, admin=True,
)  # fmt: skip
@limiter.limit(submit_limit)
def pause_queue(name: str) -> Response:
    auth.authenticate(request, settings(), admin=True)
    try:
        return _json(Queue.model_validate(job_queue().pause_queue(name)))
    except UnknownQueue:
        return _not_found()


@_queue_route(
    "POST", "/queues/{name}/resume", "resumeQueue", "Resume a queue",
    "Admin keys only. Workers take jobs from the queue again. Resuming a running queue changes nothing.",
    Queue, found=True, admin=True,
)  # fmt: skip
@limiter.limit(submit_limit)
def resume_queue(name: str) -> Response:
    auth.authenticate(request, settings(), admin=True)
    try:
        return _json(Queue.model_validate(job_queue().resume_queue(name)))
    except UnknownQueue:
        return _not_found()


def _not_found() -> Response:
    names = ", ".join(job_queue().queue_names)
    return problem(404, f"no queue of this name (offload's queues are {names})")


def _json(answer: BaseModel) -> Response:
    """The answer through its model (the document's schema), written as ``json.dumps`` writes it."""
    return Response(json.dumps(answer.model_dump(mode="json")), mimetype="application/json")

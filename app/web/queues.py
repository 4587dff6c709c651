"""``/queues``: each queue's depths, paused state and workers; pause and resume a queue.
``/concurrency``: the concurrency keys and fair shares in use, with their slots.

Reading is for any key: a client whose jobs wait needs to see that their queue is paused (the
figures are counts, never another client's jobs). Pausing and resuming are for admin keys
only (403 for a client key). The job service does the work (the Redis side is
:mod:`app.jobs.queues_admin`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from ..jobs import UnknownQueue, schemas
from ..settings import QUEUE_NAMES
from . import auth
from .context import job_queue, principal, settings
from .problems import problem
from .ratelimit import limiter, read_limit, submit_limit
from .routes import Answer, ref, route

bp = Blueprint("queues", __name__)

# --- what the answers are, as the document says ----------------------------------------------------

_COUNT = {"type": "integer", "minimum": 0}

#: The answers' schemas (``components/schemas``), for the document.
SCHEMAS: dict[str, Any] = {
    "Queue": {
        "title": "Queue",
        "type": "object",
        "description": "One queue as it is now.",
        "properties": {
            "name": {"type": "string", "enum": list(QUEUE_NAMES)},
            "paused": {
                "type": "boolean",
                "description": "Paused: it accepts jobs but no worker takes one (jobs already running finish).",
            },
            "queued": {**_COUNT, "description": "Jobs waiting on it."},
            "scheduled": {**_COUNT, "description": "Jobs with a later start (`delay_seconds`, `run_at`, retries)."},
            "started": {**_COUNT, "description": "Jobs running now."},
            "deferred": {**_COUNT, "description": "Jobs waiting for others."},
            "failed": {**_COUNT, "description": "Failed jobs still kept (FAILURE_TTL_SECONDS)."},
            "workers": {**_COUNT, "description": "Live workers serving it."},
            "links": {
                "type": "object",
                "properties": {key: {"type": "string"} for key in ("self", "pause", "resume")},
                "required": ["self", "pause", "resume"],
            },
        },
        "required": ["name", "paused", "queued", "scheduled", "started", "deferred", "failed", "workers", "links"],
    },
    "QueueList": {
        "title": "QueueList",
        "type": "object",
        "properties": {"queues": {"type": "array", "items": ref("Queue")}},
        "required": ["queues"],
    },
}

SCHEMAS["ConcurrencyKey"] = {
    "title": "ConcurrencyKey",
    "type": "object",
    "description": "A `concurrency_key` (or a client's fair share, FAIR_SHARE) with jobs queued, running or waiting.",
    "properties": {
        "kind": {
            "type": "string",
            "enum": ["key", "fair_share"],
            "description": "`key`: a client's `concurrency_key`; `fair_share`: the client's share of the workers.",
        },
        "key": {"type": ["string", "null"], "description": "The `concurrency_key` as submitted; null for a fair share."},
        "owner": {"type": ["string", "null"], "description": "The API key's name it belongs to (null without keys)."},
        "limit": {**_COUNT, "description": "How many of its jobs may be queued or running at once."},
        "active": {**_COUNT, "description": "Its jobs queued or running now (they hold its slots)."},
        "waiting": {**_COUNT, "description": "Its jobs waiting for a slot (their status is `queued`)."},
    },
    "required": ["kind", "key", "owner", "limit", "active", "waiting"],
}
SCHEMAS["ConcurrencyList"] = {
    "title": "ConcurrencyList",
    "type": "object",
    "properties": {"keys": {"type": "array", "items": ref("ConcurrencyKey")}},
    "required": ["keys"],
}

_LINE = {"type": "array", "items": _COUNT}
SCHEMAS["QueueSeries"] = {
    "title": "QueueSeries",
    "type": "object",
    "description": "One queue's figures per minute, oldest first (one value per entry of `times`).",
    "properties": {
        "enqueued": {**_LINE, "description": "Jobs submitted (queued or scheduled)."},
        "finished": {**_LINE, "description": "Jobs that finished."},
        "failed": {**_LINE, "description": "Jobs that failed for good (an attempt that is retried is not counted)."},
        "mean_run_seconds": {
            "type": "array",
            "items": {"type": ["number", "null"], "minimum": 0},
            "description": "Mean run time of the jobs that ended that minute; null when none did.",
        },
    },
    "required": ["enqueued", "finished", "failed", "mean_run_seconds"],
}
SCHEMAS["Timeseries"] = {
    "title": "Timeseries",
    "type": "object",
    "properties": {
        "minutes": {"type": "integer", "minimum": 1, "maximum": schemas.MAX_TIMESERIES_MINUTES},
        "step_seconds": {"type": "integer", "const": 60},
        "times": {
            "type": "array",
            "items": {"type": "string", "format": "date-time"},
            "description": "The start of each minute (UTC), oldest first; the last is the current minute.",
        },
        "queues": {
            "type": "object",
            "properties": {name: ref("QueueSeries") for name in QUEUE_NAMES},
            "required": list(QUEUE_NAMES),
        },
    },
    "required": ["minutes", "step_seconds", "times", "queues"],
}



def _queue_route(method: str, path: str, operation_id: str, summary: str, description: str, schema: str, *, found: bool = False, admin: bool = False) -> Callable:
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
    "QueueList",
)  # fmt: skip

@limiter.limit(read_limit)
def list_queues() -> Response:
    principal()
    return _json({"queues": job_queue().list_queues()})


@_queue_route(
    "GET", "/concurrency", "listConcurrency", "List concurrency keys",
    "The `concurrency_key`s in use (jobs queued, running or waiting for a slot), and with FAIR_SHARE set each "
    "client's share: limit, active and waiting counts. An admin key sees every client's; a client key its own.",
    "ConcurrencyList",
)  # fmt: skip
@limiter.limit(read_limit)
def list_concurrency() -> Response:
    return _json({"keys": job_queue().concurrency(principal())})


@_queue_route("GET", "/queues/{name}", "getQueue", "Get a queue", "One queue, as in `GET /queues`.", "Queue", found=True)
@limiter.limit(read_limit)
def get_queue(name: str) -> Response:
    principal()
    try:
        return _json(job_queue().describe_queue(name))
    except UnknownQueue:
        return _not_found()


@_queue_route(
    "POST", "/queues/{name}/pause", "pauseQueue", "Pause a queue",
    "Admin keys only. The queue keeps accepting jobs (and scheduled jobs still move onto it) but no worker takes "
    "one until it is resumed; jobs already running finish. The state is kept in Redis: it survives worker "
    "restarts and failovers. Pausing a paused queue changes nothing.",
    "Queue", found=True, admin=True,
)  # fmt: skip
@limiter.limit(submit_limit)
def pause_queue(name: str) -> Response:
    auth.authenticate(request, settings(), admin=True)
    try:
        return _json(job_queue().pause_queue(name))
    except UnknownQueue:
        return _not_found()


@_queue_route(
    "POST", "/queues/{name}/resume", "resumeQueue", "Resume a queue",
    "Admin keys only. Workers take jobs from the queue again. Resuming a running queue changes nothing.",
    "Queue", found=True, admin=True,
)  # fmt: skip
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

"""The ``/queues`` and ``/stats`` operations of the document (routes in :mod:`app.web.queues` and
:mod:`app.web.stats`), with their schemas and problem answers.

:func:`add_queues` puts all of it into a built document, so the builder needs one line.
"""

from __future__ import annotations

from typing import Any

from ...settings import QUEUE_NAMES
from .components import PROBLEM_JSON, ref

_TAG = {
    "name": "queues",
    "description": "Each queue's depths, paused state and workers; pause and resume a queue (admin keys).",
}

_COUNT = {"type": "integer", "minimum": 0}

_SCHEMAS: dict[str, Any] = {
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

_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The queue's name. Any other name is 404.",
    "schema": {"type": "string"},
}


def add_queues(builder: Any, document: dict[str, Any]) -> None:
    """Add the /queues operations, with what they refer to, to ``document``."""
    components = document["components"]
    components["schemas"] = dict(sorted({**components["schemas"], **_SCHEMAS}.items()))
    components["parameters"]["QueueName"] = _NAME
    problems = {"QueueNotFound": ("No queue of this name.", {})}
    if builder.auth:
        problems["Forbidden"] = (
            "This needs an admin key.",
            {"WWW-Authenticate": ref("WwwAuthenticate", "headers")},
        )
    components["responses"].update(
        {
            name: {
                "description": description,
                "headers": {**headers, "X-Request-ID": ref("RequestId", "headers")},
                "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
            }
            for name, (description, headers) in problems.items()
        }
    )
    document["tags"].append(_TAG)
    paths = document["paths"]
    paths["/queues"] = {"get": _operation(builder, "listQueues", "List the queues", _LIST_TEXT, ref("QueueList"))}
    paths["/queues/{name}"] = {
        "parameters": [ref("QueueName", "parameters")],
        "get": _operation(builder, "getQueue", "Get a queue", "One queue, as in `GET /queues`.", ref("Queue"), found=True),
    }
    for action, text in (("pause", _PAUSE_TEXT), ("resume", _RESUME_TEXT)):
        paths[f"/queues/{{name}}/{action}"] = {
            "parameters": [ref("QueueName", "parameters")],
            "post": _operation(
                builder, f"{action}Queue", f"{action.capitalize()} a queue", text, ref("Queue"), found=True, admin=True
            ),
        }


_LIST_TEXT = (
    "Every queue with its counts (queued, scheduled, started, deferred, failed), whether it is paused, and the "
    "live workers serving it. Any key may read it."
)
_PAUSE_TEXT = (
    "Admin keys only. The queue keeps accepting jobs (and scheduled jobs still move onto it) but no worker takes "
    "one until it is resumed; jobs already running finish. The state is kept in Redis: it survives worker "
    "restarts and failovers. Pausing a paused queue changes nothing."
)
_RESUME_TEXT = "Admin keys only. Workers take jobs from the queue again. Resuming a running queue changes nothing."


def _operation(
    builder: Any, operation_id: str, summary: str, description: str, schema: dict, *, found: bool = False, admin: bool = False
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "The queue now." if admin else "OK.",
            "headers": {"X-Request-ID": ref("RequestId", "headers")},
            "content": {"application/json": {"schema": schema}},
        },
        "429": ref("TooManyRequests", "responses"),
    }
    if found:
        responses["404"] = ref("QueueNotFound", "responses")
    if admin and builder.auth:
        responses["403"] = ref("Forbidden", "responses")
    return builder._operation(
        {
            "tags": ["queues"],
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "parameters": [ref("RequestId", "parameters")],
            "responses": responses,
        }
    )

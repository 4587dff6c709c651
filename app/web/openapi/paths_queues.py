"""The ``/queues`` and ``/stats`` operations of the document (routes in :mod:`app.web.queues` and
:mod:`app.web.stats`), with their schemas and problem answers.

:func:`add_queues` puts all of it into a built document, so the builder needs one line.
"""

from __future__ import annotations

from typing import Any

from ...jobs import schemas
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

_SCHEMAS["ConcurrencyKey"] = {
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
_SCHEMAS["ConcurrencyList"] = {
    "title": "ConcurrencyList",
    "type": "object",
    "properties": {"keys": {"type": "array", "items": ref("ConcurrencyKey")}},
    "required": ["keys"],
}

_LINE = {"type": "array", "items": _COUNT}
_SCHEMAS["QueueSeries"] = {
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
_SCHEMAS["Timeseries"] = {
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
    paths["/concurrency"] = {
        "get": _operation(builder, "listConcurrency", "List concurrency keys", _CONCURRENCY_TEXT, ref("ConcurrencyList"))
    }
    stats = _operation(builder, "getTimeseries", "Jobs per minute", _STATS_TEXT, ref("Timeseries"))
    stats["parameters"].insert(0, _MINUTES)
    stats["responses"]["422"] = ref("ValidationFailed", "responses")
    stats["responses"] = dict(sorted(stats["responses"].items()))
    paths["/stats/timeseries"] = {"get": stats}
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
_CONCURRENCY_TEXT = (
    "The `concurrency_key`s in use (jobs queued, running or waiting for a slot), and with FAIR_SHARE set each "
    "client's share: limit, active and waiting counts. An admin key sees every client's; a client key its own."
)
_PAUSE_TEXT = (
    "Admin keys only. The queue keeps accepting jobs (and scheduled jobs still move onto it) but no worker takes "
    "one until it is resumed; jobs already running finish. The state is kept in Redis: it survives worker "
    "restarts and failovers. Pausing a paused queue changes nothing."
)
_STATS_TEXT = (
    "Per queue and per minute over the last `minutes` minutes: jobs enqueued, finished and failed, and the "
    "mean run time of the jobs that ended. What the charts on the page at `/` draw. Any key may read it."
)
_MINUTES = {
    "name": "minutes",
    "in": "query",
    "description": f"How many minutes, ending with the current one (at most {schemas.MAX_TIMESERIES_MINUTES}).",
    "schema": {"type": "integer", "minimum": 1, "maximum": schemas.MAX_TIMESERIES_MINUTES, "default": 60},
}
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

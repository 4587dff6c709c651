"""``GET /jobs/{job_id}/events`` in the document: a ``text/event-stream`` of the job's status,
progress and end (see :mod:`app.web.events`).

OpenAPI 3.1 has no item schema for streams: as tools read it (schemathesis among them), the
``schema`` of a ``text/event-stream`` describes one event, ``{"event", "data", "id", "retry"}``,
with the JSON in ``data`` described by ``contentMediaType`` and ``contentSchema``.
"""

from __future__ import annotations

from typing import Any

from .components import PROBLEM_JSON, ref

EVENT_STREAM = "text/event-stream"


def _event(name: str, description: str, data_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"{name} event",
        "description": description,
        "type": "object",
        "required": ["event", "data", "id"],
        "properties": {
            "event": {"const": name},
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "Counts up; send it back as `Last-Event-ID`."},
            "retry": {"type": "integer", "minimum": 0, "description": "On the first event: the reconnection delay (ms)."},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": data_schema},
        },
    }


class EventsPathsMixin:
    """The live-events operation of :class:`~app.web.openapi.document._Builder`."""

    def _job_events(self, job_ref: dict) -> dict[str, Any]:
        settings = self.settings  # type: ignore[attr-defined]
        lifetime = f"{settings.sse_max_seconds:g}"
        operation = self._operation(  # type: ignore[attr-defined]
            {
                "tags": ["jobs"],
                "operationId": "watchJob",
                "summary": "Watch a job live (Server-Sent Events)",
                "description": "A `text/event-stream` of the job: a `status` event first (the job resource, as "
                "`GET /jobs/{job_id}` answers it), another on every change of status, a `progress` event when only "
                "the progress moved, and once the job is terminal an `end` event (the final resource), after which "
                "the server closes the stream. A `: keepalive` comment follows 15 s of silence; every event has an "
                "`id` that counts up.\n\n"
                f"A stream lasts at most {lifetime} s here (or `timeout`), then closes without `end`: reconnect "
                "(EventSource does so by itself, sending `Last-Event-ID`; the status comes first again). Each "
                "server process keeps a bounded number of streams open; past it the answer is 503 with "
                "`Retry-After` (fall back to `GET /jobs/{job_id}?wait=`).",
                "parameters": [
                    {
                        "name": "timeout",
                        "in": "query",
                        "description": f"Close the stream after this many seconds (at most {lifetime}, the default). "
                        "0 sends the job's status (and `end`, if it is terminal) and closes.",
                        "schema": {"type": "number", "minimum": 0, "maximum": settings.sse_max_seconds},
                    },
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "The last `id` received, when reconnecting: ids go on from it. Nothing is "
                        "replayed (the current status comes first); a value that is not a number is ignored.",
                        "schema": {"type": "string"},
                    },
                    ref("RequestId", "parameters"),
                ],
                "responses": {
                    "200": {
                        "description": "The event stream. Each item below is one event as an EventSource sees it; "
                        "`data` is JSON.",
                        "headers": {"X-Request-ID": ref("RequestId", "headers")},
                        "content": {
                            EVENT_STREAM: {
                                "schema": {
                                    "oneOf": [
                                        _event("status", "The job, first and on every change of status.", job_ref),
                                        _event("progress", "Only the progress moved.", ref("Progress")),
                                        _event("end", "The job is terminal; the stream closes.", job_ref),
                                    ]
                                }
                            }
                        },
                    },
                    "404": ref("NotFound", "responses"),
                    "422": ref("ValidationFailed", "responses"),
                    "429": ref("TooManyRequests", "responses"),
                },
            }
        )
        operation["responses"]["503"] = {
            "description": "This server process has all of its live-event streams open (or Redis is not "
            "reachable); try again after `Retry-After`, or wait with `GET /jobs/{job_id}?wait=`.",
            "headers": {"Retry-After": ref("RetryAfter", "headers"), "X-Request-ID": ref("RequestId", "headers")},
            "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
        }
        return operation

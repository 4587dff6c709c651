"""``GET /jobs/{id}/events``: a job's status, progress and end, live, as Server-Sent Events.

The stream (``text/event-stream``), one event per block, each with an ``id:`` that counts up::

    id: 1
    retry: 1000
    event: status
    data: {"id": "...", "status": "queued", ..., "links": {...}}

    id: 2
    event: status
    data: {"id": "...", "status": "started", ...}

    id: 3
    event: progress
    data: {"done": 262144, "total": 1048576}

    : keepalive

    id: 4
    event: status
    data: {"id": "...", "status": "finished", "result": {...}, ...}

    id: 5
    event: end
    data: {"id": "...", "status": "finished", "result": {...}, ...}

``status`` comes first, then on every change of status; ``progress`` when only the progress
moved; ``end`` (the final resource, as ``GET /jobs/{id}`` renders it) once the job is
terminal, and the server closes the stream. A ``: keepalive`` comment follows 15 s of silence.

No polling loop: the stream waits on :class:`~app.jobs.running.events.JobEvents` (workers publish the
job's id when it starts, saves progress and ends) and re-reads the job when woken, or every
couple of seconds in case a message was lost.

Bounds, because each open stream holds one of the process's threads (gunicorn ``gthread``):

* at most ``SSE_MAX_STREAMS`` streams per web process (by default half of its threads); one
  more is ``503`` problem+json with ``Retry-After``;
* a stream lasts at most ``SSE_MAX_SECONDS`` (or ``?timeout=``, if shorter), then closes
  without ``end``: EventSource reconnects by itself (after the ``retry:`` delay) and sends
  ``Last-Event-ID``, from which the ids go on counting; the job's status comes first again;
* a stream ends within a couple of seconds when its client goes away (under gunicorn the
  connection is looked at on each wake) or when gunicorn stops the worker.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, current_app, request, stream_with_context

from ..jobs import STORE_UNAVAILABLE, JobNotFound, schemas
from . import answers
from .context import job_queue, principal, settings
from .jobs import _not_found
from .parsing import seconds_query
from .problems import PROBLEM_JSON, problem
from .ratelimit import limiter, read_limit
from .routes import Answer, Build, ref, route

log = logging.getLogger("offload.http")

bp = Blueprint("events", __name__)

#: Seconds of silence after which a ``: keepalive`` comment is sent (proxies close idle streams).
KEEPALIVE_SECONDS = 15.0
#: The reconnection delay (ms) the first event tells EventSource to use.
RETRY_MILLISECONDS = 1000
#: ``Retry-After`` of the 503 when every stream of the process is in use.
FULL_RETRY_AFTER = 5

_LAST_EVENT_ID = re.compile(r"^[0-9]{1,15}$")


class StreamSlots:
    """How many streams this process may still open: a counter that never blocks."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def acquire(self) -> Callable[[], None] | None:
        """A release function (idempotent) if a slot was free, else None."""
        with self._lock:
            if self.open >= self.limit:
                return None
            self.open += 1
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self.open -= 1

        return release


def stream_limit() -> int:
    """``SSE_MAX_STREAMS``, or half of the process's threads: gunicorn's real count when it
    told us (``gunicorn.conf.py``: a ``--threads`` on the command line wins over WEB_THREADS),
    else WEB_THREADS. Never all of them: the API keeps at least one thread."""
    threads = current_app.extensions.get("offload.web_threads") or settings().web_threads
    configured = settings().sse_max_streams
    limit = threads // 2 if configured is None else configured
    return max(0, min(limit, threads - 1))


_SLOTS_LOCK = threading.Lock()


def _slots() -> StreamSlots:
    slots = current_app.extensions.get("offload.sse_slots")
    if slots is None:
        with _SLOTS_LOCK:
            slots = current_app.extensions.setdefault("offload.sse_slots", StreamSlots(stream_limit()))
    return slots


EVENT_STREAM = "text/event-stream"


def _event(name: str, description: str, data_schema: dict) -> dict:
    """One event as the document says it. OpenAPI 3.1 has no item schema for streams: as tools
    read it (schemathesis among them), the ``schema`` of a ``text/event-stream`` describes one event,
    ``{"event", "data", "id", "retry"}``, with the JSON in ``data`` described by ``contentMediaType``
    and ``contentSchema``."""
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


_STREAM = {
    "oneOf": [
        _event("status", "The job, first and on every change of status.", ref("JobResource")),
        _event("progress", "Only the progress moved.", ref("Progress")),
        _event("end", "The job is terminal; the stream closes.", ref("JobResource")),
    ]
}


def _lifetime(build: Build) -> str:
    return f"{build.settings.sse_max_seconds:g}"


@route(
    bp, "GET", "/jobs/{job_id}/events", operation_id="watchJob", tag="jobs",
    summary="Watch a job live (Server-Sent Events)",
    description=lambda build: "A `text/event-stream` of the job: a `status` event first (the job resource, as "
    "`GET /jobs/{job_id}` answers it), another on every change of status, a `progress` event when only "
    "the progress moved, and once the job is terminal an `end` event (the final resource), after which "
    "the server closes the stream. A `: keepalive` comment follows 15 s of silence; every event has an "
    "`id` that counts up.\n\n"
    f"A stream lasts at most {_lifetime(build)} s here (or `timeout`), then closes without `end`: reconnect "
    "(EventSource does so by itself, sending `Last-Event-ID`; the status comes first again). Each "
    "server process keeps a bounded number of streams open; past it the answer is 503 with "
    "`Retry-After` (fall back to `GET /jobs/{job_id}?wait=`).",
    parameters=(
        lambda build: {
            "name": "timeout",
            "in": "query",
            "description": f"Close the stream after this many seconds (at most {_lifetime(build)}, the default). "
            "0 sends the job's status (and `end`, if it is terminal) and closes.",
            "schema": {"type": "number", "minimum": 0, "maximum": build.settings.sse_max_seconds},
        },
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "The last `id` received, when reconnecting: ids go on from it. Nothing is "
            "replayed (the current status comes first); a value that is not a number is ignored.",
            "schema": {"type": "string"},
        },
        "RequestId",
    ),
    responses={
        200: Answer(
            "The event stream. Each item below is one event as an EventSource sees it; `data` is JSON.",
            # JobResource's serialization schema is in the components through the other job answers
            _STREAM,
            media_type=EVENT_STREAM,
        ),
        404: "NotFound", 422: "ValidationFailed", 429: "TooManyRequests",
        503: Answer(
            "This server process has all of its live-event streams open (or Redis is not "
            "reachable); try again after `Retry-After`, or wait with `GET /jobs/{job_id}?wait=`.",
            "Problem", headers=("RetryAfter",), media_type=PROBLEM_JSON,
        ),
    },
)  # fmt: skip
@limiter.limit(read_limit)
def job_events(job_id: str) -> Response:
    who = principal()
    seconds = _stream_seconds(request.args.get("timeout"))
    first_id = _first_id(request.headers.get("Last-Event-ID", ""))
    try:
        updates = job_queue().follow(job_id, who, seconds)
    except JobNotFound:
        return _not_found()
    slots = _slots()
    release = slots.acquire()
    if release is None:
        updates.close()
        return problem(
            503,
            f"this server process has all of its {slots.limit} live-event streams open; try again later, "
            "or wait on the job with GET /jobs/{id}?wait=",
            headers={"Retry-After": str(FULL_RETRY_AFTER)},
        )
    alive = current_app.extensions.get("offload.server_alive") or _always
    connection = request.environ.get("gunicorn.socket")
    events = _events(updates, first_id, lambda: not alive() or _client_gone(connection), job_id)
    response = Response(stream_with_context(events), mimetype="text/event-stream")
    response.call_on_close(release)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _events(updates: Iterator[dict], first_id: int, stop: Callable[[], bool], job_id: str) -> Iterator[str]:
    counter = itertools.count(first_id)
    started = last_write = time.monotonic()
    sent = 0
    status = progress = None

    def event(name: str, data: str) -> str:
        nonlocal sent
        sent += 1
        retry = f"retry: {RETRY_MILLISECONDS}\n" if sent == 1 else ""
        return f"id: {next(counter)}\n{retry}event: {name}\ndata: {data}\n\n"

    try:
        for resource in updates:
            body = answers.job_json(resource)  # as GET /jobs/{job_id} answers it
            chunk = ""
            if resource["status"] != status:
                chunk = event("status", body)
                status, progress = resource["status"], resource["progress"]
            elif resource["progress"] is not None and resource["progress"] != progress:
                chunk = event("progress", json.dumps(schemas.Progress.model_validate(resource["progress"]).model_dump()))
                progress = resource["progress"]
            if status in schemas.TERMINAL_STATUSES:
                yield chunk + event("end", body)
                return
            now = time.monotonic()
            if chunk:
                yield chunk
                last_write = now
            elif now - last_write >= KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                last_write = now
            if stop():
                return
    except JobNotFound:
        pass  # deleted or expired meanwhile: a reconnect gets the 404
    except STORE_UNAVAILABLE as exc:
        log.warning("event stream of job %s lost Redis (%s); closing it", job_id, exc.__class__.__name__)
    finally:
        updates.close()  # type: ignore[attr-defined]
        log.info(
            "event stream of job %s closed after %.1f s, %d events",
            job_id,
            time.monotonic() - started,
            sent,
            extra={"job_id": job_id, "events": sent},
        )


def _stream_seconds(value: str | None) -> float:
    limit = settings().sse_max_seconds
    if value is None:
        return limit
    return seconds_query(value, "timeout", limit, f"{limit:g}")


def _first_id(last_event_id: str) -> int:
    """The id of the first event: one after the ``Last-Event-ID`` a reconnecting EventSource
    sends (ids go on counting across reconnections); 1 for a new stream or an id that is not
    one of ours (it is only a hint: nothing is replayed, the job's status comes first anyway)."""
    last_event_id = last_event_id.strip()
    return int(last_event_id) + 1 if _LAST_EVENT_ID.fullmatch(last_event_id) else 1


def _always() -> bool:
    return True


def _client_gone(connection: socket.socket | None) -> bool:
    """Whether the client closed the connection, without reading from it (gunicorn only; not
    through TLS terminated by gunicorn itself). Otherwise a write to a closed connection is
    what ends the stream: at the next event or keepalive."""
    if connection is None or isinstance(connection, ssl.SSLSocket):
        return False
    try:
        poller = select.poll()  # not select(): it fails on descriptors past 1023
        poller.register(connection, select.POLLIN)
        if not poller.poll(0):
            return False
        return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True

"""The client's side of ``GET /jobs/{id}/events`` (Server-Sent Events), behind ``Client.events``.

What the server does, and what the client makes of it:

* Every stream starts with a ``status`` event (the job resource), then sends ``status`` on
  each change, ``progress`` (``{"done", "total"}``) when only the progress moved, and ``end``
  (the final resource) once the job is terminal, after which it closes the stream.
* A stream also closes without ``end``: after the server's ``SSE_MAX_SECONDS``, or when a
  proxy or the network drops it. The client reconnects (after the ``retry:`` delay the server
  asked for) with ``Last-Event-ID``. The server starts again with the job's status; the client
  passes it on only if the status changed meanwhile (or as ``progress`` if only that moved),
  so a consumer sees one unbroken sequence. ``max_tries`` reconnections in a row that bring
  no event end it with :class:`~offload.errors.ConnectionFailed`.
* With a timeout the client asks the server to close the stream then (``?timeout=``, adopting
  the server's own ceiling if the 422 names one) and raises
  :class:`~offload.errors.WaitTimeout` with the last state seen.
* ``503`` means every stream slot of that server process is taken: retried after
  ``Retry-After``, or raised at once (``retry_busy=False``) for a caller that would rather
  poll ``GET /jobs/{id}?wait=`` as the server suggests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx

from . import errors
from .errors import ConnectionFailed, EventsUnavailable, OffloadError, WaitTimeout
from .models import Event, Job, Progress
from .sse import EventStreamParser, decode, expect_event_stream

#: Seconds past a deadline the client waits for the server to close the stream (?timeout=)
#: before it stops reading itself (a server or proxy that ignores ?timeout=).
DEADLINE_GRACE = 1.0


def stream(  # noqa: PLR0913 - the client's settings a stream uses
    http: httpx.Client,
    path: str,
    fetch: Callable[[], Job],
    *,
    timeout: float | None,
    retry_busy: bool,
    connect_timeout: float,
    read_timeout: float,
    max_tries: int,
    max_retry_after: float,
    sleep: Callable[[float], None],
) -> Iterator[Event]:
    """The events of the job at ``path`` (``/jobs/{id}/events``) read over ``http``; ``fetch``
    reads the job itself (``GET /jobs/{id}``). The rest are the :class:`~offload.Client`'s
    settings of the same names (``connect_timeout`` is its ``timeout``, ``read_timeout`` its
    ``events_read_timeout``)."""
    parser = EventStreamParser()
    deadline = None if timeout is None else time.monotonic() + timeout
    server_limit: float | None = None  # the server's ceiling for ?timeout=, once a 422 told it
    last: Job | None = None  # the last resource an event carried
    progress: Progress | None = None  # the last progress passed on
    failures = connects = 0
    while True:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if parser.last_event_id is not None:
            headers["Last-Event-ID"] = parser.last_event_id
        params = {}
        read = read_timeout
        if deadline is not None:
            remaining = max(0.0, deadline - time.monotonic())
            params["timeout"] = f"{round(min(remaining, server_limit or remaining), 3):g}"
            read = max(0.05, min(read, remaining + DEADLINE_GRACE))
        reconnect, connects = connects > 0, connects + 1
        delay: float | None = None
        problem: OffloadError
        try:
            with http.stream(
                "GET", path, params=params, headers=headers, timeout=httpx.Timeout(connect_timeout, read=read)
            ) as response:
                if not response.is_success:
                    response.read()
                    problem = errors.from_response(response)
                    limit = errors.limit_named(problem, "timeout")
                    if limit is not None and (server_limit is None or limit < server_limit):
                        server_limit = limit
                        continue  # at once, asking for no more than the server allows
                    if problem.status == 404:
                        fetch()  # raises NotFound when it is the job that is missing
                        raise EventsUnavailable(f"the server has no {path} (it predates live events)", status=404)
                    if not problem.retryable or (problem.status == 503 and not retry_busy):
                        raise problem
                    delay = problem.retry_after
                else:
                    expect_event_stream(response.headers.get("content-type", ""), path)
                    first = True
                    for line in response.iter_lines():
                        raw = parser.line(line)
                        if raw is not None:
                            failures = 0
                            decoded = decode(raw)
                            event: Event | None = decoded
                            if reconnect and first and last is not None:
                                event = _after_reconnect(last.status, progress, decoded)
                            first = False
                            if isinstance(decoded.data, Job):
                                last, progress = decoded.data, decoded.data.progress or progress
                            elif isinstance(decoded.data, Progress):
                                progress = decoded.data
                            if event is not None:
                                yield event
                            if raw.event == "end":
                                return
                        _check_deadline(fetch, deadline, timeout, last)
                    problem = ConnectionFailed(f"the event stream of {path} closed before its end event")
        except httpx.TransportError as exc:
            problem = ConnectionFailed(f"the event stream of {path} broke: {errors.describe(exc)}")
            problem.__cause__ = exc
        _check_deadline(fetch, deadline, timeout, last)
        failures += 1
        if failures >= max_tries:
            raise problem
        if delay is None:
            delay = parser.retry_ms / 1000 if parser.retry_ms is not None else errors.backoff(failures)
        sleep(min(delay, max_retry_after))


def _after_reconnect(status: str, progress: Progress | None, event: Event) -> Event | None:
    """The status a new stream starts with, as news: None if nothing moved since the events
    already passed on, a ``progress`` event if only the progress did."""
    job = event.data
    if event.event != "status" or not isinstance(job, Job) or job.status != status:
        return event
    if job.progress is not None and job.progress != progress:
        return Event("progress", job.progress)
    return None


def _check_deadline(fetch: Callable[[], Job], deadline: float | None, timeout: float | None, last: Job | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise WaitTimeout(last if last is not None else fetch(), timeout or 0.0)

"""A synchronous Python client for offload's HTTP API (``/jobs``), on httpx.

    from offload import Client

    with Client("http://127.0.0.1:8000", api_key="s3cret") as client:
        job = client.submit("count_words", text="the quick brown fox")
        job = client.wait(job.id, timeout=60)
        print(job.status, job.result)          # finished {'words': 4, 'characters': 19, 'lines': 1}

Tasks. :meth:`Client.submit` takes any job type the server has, built-in or registered by
your team with ``@offload.task``, with its fields as keywords; :meth:`Client.tasks` and
:meth:`Client.task` say which types there are and what fields each takes (``GET /tasks``).

Every method answers typed results (:class:`~offload.models.Job`, ...) or raises a typed
:class:`~offload.errors.OffloadError` carrying the server's problem+json. The URL and key
default to the environment (``OFFLOAD_URL``, ``OFFLOAD_API_KEY``).

Retries. A request that may safely be sent twice is retried on ``429`` and ``503`` after the
``Retry-After`` the server asks for, and on a connection failure after a short backoff, up to
``max_tries`` attempts in all (default 3). Safe means a GET, or a submission with an
``Idempotency-Key``: :meth:`Client.submit` makes a fresh key for every call unless given one,
so a retried submission can never enqueue the job twice (the server replays its first answer).
``cancel`` and ``retry`` are not retried: a lost answer would make the second attempt a
misleading ``409``.

Waiting. :meth:`Client.wait` holds ``GET /jobs/{id}?wait=N`` open (N at most ``max_wait``,
the contract's 30 s), again and again until the job ends or the timeout passes. A server with
a lower ``MAX_WAIT_SECONDS`` answers 422 naming its limit; the client adopts it and goes on.

Events. :meth:`Client.events` follows ``GET /jobs/{id}/events`` (server-sent events:
``status``, ``progress``, then ``end``), reconnecting with ``Last-Event-ID`` when a stream
closes before ``end`` (:mod:`offload.events` says how).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from importlib import metadata as _metadata
from pathlib import Path
from typing import IO, Any, Literal, Self, Unpack
from urllib.parse import quote

import httpx

from . import errors
from .errors import ConnectionFailed, ValidationFailed, WaitTimeout
from .events import stream as _stream_events
from .models import Event, Job, JobOptions, Page, TaskInfo

DEFAULT_URL = "http://127.0.0.1:8000"
#: The contract's ceiling for ``?wait=N``; a server may be configured lower (MAX_WAIT_SECONDS).
MAX_WAIT = 30.0

try:
    __version__ = _metadata.version("offload")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0"


class Client:
    """One connection pool to one offload server. Not for sharing across threads while
    :meth:`events` streams; otherwise as thread-safe as ``httpx.Client``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        max_tries: int = 3,
        max_retry_after: float = 60.0,
        max_wait: float = MAX_WAIT,
        events_read_timeout: float = 45.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``timeout`` bounds connecting and each read (a ``?wait`` read gets its N on top).
        ``max_tries`` counts attempts of a safe request; a ``Retry-After`` longer than
        ``max_retry_after`` is not waited out but raised. ``events_read_timeout`` must exceed
        the server's keepalive interval (15 s). ``transport`` and ``sleep`` are for tests."""
        self.base_url = (base_url or os.environ.get("OFFLOAD_URL") or DEFAULT_URL).rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get("OFFLOAD_API_KEY")
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        self.timeout = timeout
        self.max_tries = max_tries
        self.max_retry_after = max_retry_after
        self.max_wait = max_wait
        self.events_read_timeout = events_read_timeout
        self._sleep = sleep
        headers = {"Accept": "application/json", "User-Agent": f"offload-client/{__version__}"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- submitting ----------------------------------------------------------------------

    def submit(
        self,
        type: str,
        args: Mapping[str, Any] | Any | None = None,
        /,
        *,
        idempotency_key: str | Literal[False] | None = None,
        queue: str | None = None,
        delay_seconds: float | None = None,
        run_at: datetime | str | None = None,
        timeout_seconds: int | None = None,
        max_retries: int | None = None,
        callback_url: str | None = None,
        metadata: dict[str, Any] | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
        depends_on: list[str] | None = None,
        traceparent: str | None = None,
        **fields: Any,
    ) -> Job:
        """``POST /jobs``: a job of ``type`` (any task the server has: :meth:`tasks` lists
        them) with its fields as keywords, ``submit("reverse_text", text="abc")``, or as a
        mapping or a pydantic model of the task's arguments, ``submit("reverse_text",
        ReverseArgs(text="abc"))`` (keywords go on top). The other keywords are the job options
        every type takes (None: the task's default).

        ``idempotency_key``: None makes a fresh one (safe retries), a string is sent as given,
        False sends none (and then a 429 or 503 is raised at once, never retried).
        ``traceparent``: a W3C trace context header of yours, so the job (its ``trace_id``,
        worker log lines and callback) joins your trace; without it the server starts one."""
        options = _options(
            queue=queue, delay_seconds=delay_seconds, run_at=run_at, timeout_seconds=timeout_seconds,
            max_retries=max_retries, callback_url=callback_url, metadata=metadata, concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit, depends_on=depends_on,
        )  # fmt: skip
        body = {**_fields_of(args), **fields, **options, "type": type}
        return self._submit({"json": body}, idempotency_key, traceparent)

    def submit_text_file(
        self,
        file: str | os.PathLike[str] | IO[bytes],
        *,
        idempotency_key: str | Literal[False] | None = None,
        **options: Unpack[JobOptions],
    ) -> Job:
        """``count_words`` of a text file, sent as ``multipart/form-data`` (the file is read
        once, so a retry sends the same bytes). ``options`` as for :meth:`submit`."""
        if isinstance(file, (str, os.PathLike)):
            name, content = Path(file).name, Path(file).read_bytes()
        else:
            name, content = Path(getattr(file, "name", None) or "text.txt").name, file.read()
        form = {"type": "count_words"}
        for key, value in _options(**options).items():
            form[key] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        return self._submit({"data": form, "files": {"file": (name, content, "text/plain")}}, idempotency_key)

    def _submit(self, body: dict[str, Any], idempotency_key: str | Literal[False] | None, traceparent: str | None = None) -> Job:
        headers = {"traceparent": traceparent} if traceparent else {}
        if idempotency_key is None:
            idempotency_key = str(uuid.uuid4())
        if idempotency_key is not False:
            headers["Idempotency-Key"] = idempotency_key
        response = self._request("POST", "/jobs", safe=idempotency_key is not False, headers=headers, **body)
        return Job.from_dict(response.json())

    # --- the tasks the server takes -------------------------------------------------------

    def tasks(self) -> list[TaskInfo]:
        """``GET /tasks``: every job type a client may submit, sorted by type, each with its
        description, the JSON Schema of its fields and its default options."""
        body = self._request("GET", "/tasks", safe=True).json()
        return [TaskInfo.from_dict(item) for item in body["tasks"]]

    def task(self, type: str) -> TaskInfo:
        """``GET /tasks/{type}``; :class:`~offload.errors.NotFound` for a type the server
        does not take."""
        return TaskInfo.from_dict(self._request("GET", f"/tasks/{quote(type, safe='')}", safe=True).json())

    # --- one job -------------------------------------------------------------------------

    def get(self, job_id: str, *, wait: float | None = None) -> Job:
        """``GET /jobs/{id}``; with ``wait`` the server holds the answer up to that many
        seconds (at most the server's limit) unless the job ends sooner."""
        if wait is None:
            return Job.from_dict(self._request("GET", _job_path(job_id), safe=True).json())
        response = self._request(
            "GET", _job_path(job_id), safe=True, params={"wait": _seconds(wait)}, read_timeout=wait + self.timeout
        )
        return Job.from_dict(response.json())

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it is terminal (finished, failed, canceled, stopped). Raises
        :class:`~offload.errors.WaitTimeout` (with the last state seen) after ``timeout``
        seconds; None waits as long as it takes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = self.max_wait if deadline is None else max(0.0, min(self.max_wait, deadline - time.monotonic()))
            job = self._get_waiting(job_id, step)
            if job.terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(job, timeout or 0.0)

    def _get_waiting(self, job_id: str, seconds: float) -> Job:
        try:
            return self.get(job_id, wait=seconds)
        except ValidationFailed as exc:
            limit = errors.limit_named(exc, "wait")
            if limit is None or limit >= seconds:
                raise
            self.max_wait = limit  # the server allows less than the contract's 30 s: use its limit
            return self.get(job_id, wait=limit)

    def cancel(self, job_id: str) -> Job:
        """``POST /jobs/{id}/cancel``: a queued or scheduled job is ``canceled``, a running one
        ``stopped``. :class:`~offload.errors.Conflict` if it has already ended."""
        return Job.from_dict(self._request("POST", _job_path(job_id, "cancel"), safe=False).json())

    def retry(self, job_id: str) -> Job:
        """``POST /jobs/{id}/retry``: a failed, stopped or canceled job back on its queue.
        :class:`~offload.errors.Conflict` otherwise."""
        return Job.from_dict(self._request("POST", _job_path(job_id, "retry"), safe=False).json())

    # --- many jobs -----------------------------------------------------------------------

    def pages(
        self, *, status: str | None = None, type: str | None = None, queue: str | None = None, page_size: int = 50
    ) -> Iterator[Page]:
        """``GET /jobs`` page by page (newest first), following each page's ``next``."""
        query = {"status": status, "type": type, "queue": queue, "limit": page_size}
        params: dict[str, Any] | None = {key: value for key, value in query.items() if value is not None}
        path: str | None = "/jobs"
        while path is not None:
            body = self._request("GET", path, safe=True, params=params).json()
            page = Page(jobs=[Job.from_dict(item) for item in body["jobs"]], next=body.get("next"))
            yield page
            path, params = page.next, None  # the next link carries the filters and the cursor

    def list(
        self,
        *,
        status: str | None = None,
        type: str | None = None,
        queue: str | None = None,
        page_size: int = 50,
        limit: int | None = None,
    ) -> Iterator[Job]:
        """Every job that matches (newest first) across all pages; at most ``limit`` jobs."""
        if limit is not None:
            if limit <= 0:
                return
            page_size = min(page_size, limit)
        count = 0
        for page in self.pages(status=status, type=type, queue=queue, page_size=page_size):
            for job in page.jobs:
                yield job
                count += 1
                if limit is not None and count >= limit:
                    return

    # --- live events ---------------------------------------------------------------------

    def events(self, job_id: str, timeout: float | None = None, *, retry_busy: bool = True) -> Iterator[Event]:
        """``GET /jobs/{id}/events``: ``(event, data)`` pairs until the ``end`` event.

        ``status`` (first, then on every change) and ``end`` carry a :class:`Job`,
        ``progress`` a :class:`Progress`. A stream that closes before ``end`` is opened again
        and goes on where it was (see :mod:`offload.events`). With ``timeout``,
        :class:`~offload.errors.WaitTimeout` once that many seconds pass without ``end``.
        :class:`~offload.errors.EventsUnavailable` if the server has no such endpoint (the
        job exists, its events do not). ``retry_busy=False``: a ``503`` (every stream of the
        server process in use) is raised at once instead of retried, to poll instead.
        """
        return _stream_events(
            self.http, _job_path(job_id, "events"), lambda: self.get(job_id), timeout=timeout, retry_busy=retry_busy,
            connect_timeout=self.timeout, read_timeout=self.events_read_timeout, max_tries=self.max_tries,
            max_retry_after=self.max_retry_after, sleep=self._sleep,
        )  # fmt: skip

    # --- transport -----------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, safe: bool, read_timeout: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One call, retried when ``safe`` (see the module's docstring); a 2xx answer or a raise."""
        if read_timeout is not None:
            kwargs["timeout"] = httpx.Timeout(self.timeout, read=read_timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if safe and attempt < self.max_tries:
                    self._sleep(errors.backoff(attempt))
                    continue
                raise ConnectionFailed(f"{method} {self.base_url}{path}: {errors.describe(exc)}") from exc
            if response.is_success:
                return response
            error = errors.from_response(response)
            if safe and attempt < self.max_tries and error.retryable:
                delay = error.retry_after if error.retry_after is not None else errors.backoff(attempt)
                if delay <= self.max_retry_after:
                    self._sleep(delay)
                    continue
            raise error


def _options(**options: Any) -> dict[str, Any]:
    run_at = options.get("run_at")
    if isinstance(run_at, datetime):
        options["run_at"] = run_at.isoformat()
    return {key: value for key, value in options.items() if value is not None}


def _fields_of(args: Any) -> dict[str, Any]:
    """A task's fields given as a mapping or as a pydantic model (dumped as JSON would be)."""
    if args is None:
        return {}
    if isinstance(args, Mapping):
        return dict(args)
    dump = getattr(args, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"a task's fields are a mapping or a pydantic model, not {type(args).__name__}")


def _job_path(job_id: str, action: str | None = None) -> str:
    # Quoted whole: an id typed by a user ("../x", "a?b") can never address another path.
    path = f"/jobs/{quote(job_id, safe='')}"
    return f"{path}/{action}" if action else path


def _seconds(value: float) -> str:
    return f"{round(value, 3):g}"

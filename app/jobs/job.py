"""The job class: an RQ job that only ever runs offload's tasks, with validated arguments.

Three choices made here matter for users:

* A worker runs only the tasks of :data:`app.jobs.catalog.TASKS`. :meth:`OffloadJob._execute`
  looks the job's stored function name up in that table instead of importing it, so a job
  that names any other function fails with a clear error and nothing is imported or run.
* A task's arguments are validated again, by the same models the API uses, just before it
  runs, so a job written to Redis by something else cannot feed a task bad input.
* Jobs are stored with RQ's JSON serializer (never pickle; see :mod:`app.jobs.queue`).
"""

from __future__ import annotations

from typing import Any

import redis
from pydantic import ValidationError
from rq.job import Job, JobStatus

from ..settings import get_settings
from . import catalog, endings
from .errors import InvalidArgumentsError, MissingTextError, UnknownTaskError
from .events import publish_job_event
from .keys import METRICS_KEY, text_key

#: A ``count_words`` text longer than this (characters) is kept in a key of its own
#: (:func:`~app.jobs.keys.text_key`), written in the submit transaction, instead of inside
#: RQ's job payload, where it would be JSON-encoded and zlib-compressed by the web process
#: and decompressed and decoded again by the worker. The job's meta says so
#: (:data:`TEXT_FIELD`: its size in bytes).
TEXT_INLINE_MAX_CHARS = 64 * 1024
TEXT_FIELD = "text_bytes"


ATTEMPTS_FIELD = "offload_attempts"


class OffloadJob(Job):
    """An RQ job that only ever runs registered tasks, with validated arguments.

    It also counts its attempts in its own hash field, and announces that it started (for
    ``GET /jobs/{id}/events``), both in the transaction that marks the job started (the fast
    worker's ``_start`` and RQ's ``prepare_job_execution`` alike): no extra round trip.
    """

    attempts: int = 0
    #: Set by the worker's maintenance when the job's worker died (its heartbeat lapsed): see retry().
    abandoned: bool = False

    def retry(self, queue, pipeline: redis.client.Pipeline) -> None:  # noqa: ANN001
        """RQ's, except for a job whose worker died: that failure was not the job's, so its retry
        is queued at once (at the front) instead of after the backoff meant for a failing task.
        Without this, a worker SIGKILLed mid-job cost its job the backoff on top of the heartbeat
        lapse (issue 16: 62 s against the 35 s the README promises)."""
        if not self.abandoned:
            super().retry(queue, pipeline)
            return
        assert self.retries_left
        self.retries_left -= 1
        queue._enqueue_job(self, pipeline=pipeline, at_front=True)

    def prepare_for_execution(self, worker_name: str, pipeline: redis.client.Pipeline) -> None:
        super().prepare_for_execution(worker_name, pipeline)
        self.attempts += 1
        pipeline.hincrby(self.key, ATTEMPTS_FIELD, 1)
        pipeline.hincrby(METRICS_KEY, f"started:{self.meta.get('type', 'unknown')}", 1)
        publish_job_event(self.connection, self.id, pipeline=pipeline)

    def restore(self, raw_data: dict) -> Any:
        result = super().restore(raw_data)
        self.attempts = int(raw_data.get(ATTEMPTS_FIELD.encode(), raw_data.get(ATTEMPTS_FIELD, 0)) or 0)
        return result

    def _handle_success(self, result_ttl: int, pipeline: redis.client.Pipeline, *args: Any, **kwargs: Any) -> None:
        """RQ's, and the end of the job in its batch, in the same transaction (see :mod:`.endings`)."""
        super()._handle_success(result_ttl, pipeline, *args, **kwargs)
        endings.job_ended(self, pipeline, finished=True)

    def _handle_failure(self, exc_string: str, pipeline: redis.client.Pipeline, *args: Any, **kwargs: Any) -> None:
        """RQ's (a final failure or stop), and the end of the job in its batch and for its
        dependents, in the same transaction (see :mod:`.endings`)."""
        super()._handle_failure(exc_string, pipeline, *args, **kwargs)
        endings.job_ended(self, pipeline, finished=False)

    def cleanup(self, ttl: int | None = None, pipeline: redis.client.Pipeline | None = None, remove_from_queue: bool = True) -> None:
        """RQ's, and the job's text key (if it has one) goes with the job: deleted once the job
        has finished (nothing can run it again), else it expires when the job does (a failed
        job can be retried until then)."""
        super().cleanup(ttl, pipeline=pipeline, remove_from_queue=remove_from_queue)
        if ttl and ttl > 0 and self.meta.get(TEXT_FIELD) is not None:
            connection = pipeline if pipeline is not None else self.connection
            if self.get_status(refresh=False) == JobStatus.FINISHED:
                connection.delete(text_key(self.id))
            else:
                connection.expire(text_key(self.id), ttl)

    def delete(self, pipeline: redis.client.Pipeline | None = None, remove_from_queue: bool = True, delete_dependents: bool = False) -> None:
        super().delete(pipeline=pipeline, remove_from_queue=remove_from_queue, delete_dependents=delete_dependents)
        if self.meta.get(TEXT_FIELD) is not None:
            (pipeline if pipeline is not None else self.connection).delete(text_key(self.id))

    #: The text read ahead by :meth:`prefetch_text`, used (once) by the run.
    _prefetched_text: bytes | None = None

    def prefetch_text(self) -> None:
        """Read a text kept in a key of its own before the run needs it: the fast worker's
        horse does while its worker records the start, so the read (1 MiB: ~1 ms) overlaps
        that round trip. A failed read is left for the run to make again and report."""
        if self.meta.get(TEXT_FIELD) is None:
            return
        try:
            self._prefetched_text = self.connection.get(text_key(self.id))
        except redis.RedisError:
            pass  # the run reads it again, and says what went wrong

    def _stored_arguments(self) -> dict:
        """The job's keyword arguments, with a text kept in a key of its own put back."""
        if self.meta.get(TEXT_FIELD) is None:
            return self.kwargs
        raw, self._prefetched_text = self._prefetched_text, None
        if raw is None:
            raw = self.connection.get(text_key(self.id))
        if raw is None:
            raise MissingTextError(
                f"the text of job {self.id} (key {text_key(self.id)}) is no longer in Redis: it expired or was "
                "deleted, so there is nothing to count; submit the text again"
            )
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            raise InvalidArgumentsError(f"the text kept in {text_key(self.id)} is not UTF-8") from None
        return {**self.kwargs, "text": text}

    def _execute(self) -> Any:
        task = catalog.by_func_name(self.func_name)
        if task is None:
            raise UnknownTaskError(f"{self.func_name!r} is not an offload task; it was not run")
        settings = get_settings()  # the worker process's, validated when it started
        if task.diagnostic and not settings.enable_diagnostic_tasks:
            raise UnknownTaskError(f"{task.type!r} is a diagnostic task and ENABLE_DIAGNOSTIC_TASKS is off")
        if self.args:
            raise InvalidArgumentsError("offload tasks take keyword arguments only")
        stored = self._stored_arguments()
        try:
            arguments = task.args_model.model_validate(stored, context={"settings": settings})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise InvalidArgumentsError(f"arguments no longer valid: {problems}") from None
        return task.run(self, arguments.model_dump(), settings)

"""The job class: an RQ job that only ever runs registered tasks, with validated arguments.

Three choices made here matter for users:

* A worker runs only the tasks registered in its own process (:mod:`app.jobs.catalog`): it
  finds a job's task by the type the job stores, so a job of any other type fails with
  ``UnknownTask`` naming it, and nothing is imported or run by a stored name.
* A task's arguments are validated again, by the same model the API used, just before it
  runs, so a job written to Redis by something else cannot feed a task bad input.
* Jobs are stored with RQ's JSON serializer (never pickle; see :mod:`app.jobs.engine.queue`).
"""

from __future__ import annotations

from typing import Any

import redis
from pydantic import ValidationError
from rq.job import Job, JobStatus

from ...settings import get_settings
from .. import catalog
from ..errors import InvalidArgumentsError, MissingTextError, UnknownTask
from ..keys import text_key
from ..running import context, endings

#: A text of a task's ``long_text`` field longer than this (characters) is kept in a key of its
#: own (:func:`~app.jobs.keys.text_key`), written in the submit transaction, instead of inside
#: RQ's job payload, where it would be JSON-encoded and zlib-compressed by the web process and
#: decompressed and decoded again by the worker. The job's meta says which fields are kept so
#: (:data:`APART_FIELD`: each one's size in bytes).
TEXT_INLINE_MAX_CHARS = 64 * 1024
APART_FIELD = "apart"
#: What earlier versions wrote for count_words's ``text`` kept apart (its size in bytes).
LEGACY_TEXT_FIELD = "text_bytes"


def apart_fields(meta: dict) -> dict[str, int]:
    """The job's fields kept in keys of their own, with their sizes in bytes."""
    fields = dict(meta.get(APART_FIELD) or {})
    if meta.get(LEGACY_TEXT_FIELD) is not None:
        fields.setdefault("text", meta[LEGACY_TEXT_FIELD])
    return fields


ATTEMPTS_FIELD = "offload_attempts"


class OffloadJob(Job):
    """An RQ job that only ever runs registered tasks, with validated arguments.

    It also counts its attempts in its own hash field, in the transaction that marks the job
    started (the fast worker's ``_start`` and RQ's ``prepare_job_execution`` alike): no extra
    round trip. (The worker's listeners add the start's counter and announcement to it.)
    """

    attempts: int = 0
    #: Set by the worker's maintenance when the job's worker died (its heartbeat lapsed): see retry().
    abandoned: bool = False

    def retry(self, queue, pipeline: redis.client.Pipeline) -> None:  # noqa: ANN001
        """RQ's, except for a job whose worker died: that failure was not the job's, so its retry
        is queued at once (at the front) instead of after the backoff meant for a failing task.
        Without this, a worker SIGKILLed mid-job cost its job the backoff on top of the heartbeat
        lapse (issue 16: 62 s against the 35 s docs/reliability.md promises)."""
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
        """RQ's, and the job's texts kept apart (if any) go with the job: deleted once the job
        has finished (nothing can run it again), else they expire when the job does (a failed
        job can be retried until then)."""
        super().cleanup(ttl, pipeline=pipeline, remove_from_queue=remove_from_queue)
        apart = apart_fields(self.meta)
        if ttl and ttl > 0 and apart:
            connection = pipeline if pipeline is not None else self.connection
            finished = self.get_status(refresh=False) == JobStatus.FINISHED
            for name in apart:
                if finished:
                    connection.delete(text_key(self.id, name))
                else:
                    connection.expire(text_key(self.id, name), ttl)

    def delete(self, pipeline: redis.client.Pipeline | None = None, remove_from_queue: bool = True, delete_dependents: bool = False) -> None:
        super().delete(pipeline=pipeline, remove_from_queue=remove_from_queue, delete_dependents=delete_dependents)
        apart = apart_fields(self.meta)
        if apart:
            (pipeline if pipeline is not None else self.connection).delete(*(text_key(self.id, name) for name in apart))

    #: The texts read ahead by :meth:`prefetch_text`, used (once) by the run.
    _prefetched: dict[str, bytes | None] | None = None

    def prefetch_text(self) -> None:
        """Read the texts kept apart before the run needs them: the fast worker's horse does
        while its worker records the start, so the read (1 MiB: ~1 ms) overlaps that round trip.
        A failed read is left for the run to make again and report."""
        apart = list(apart_fields(self.meta))
        if not apart:
            return
        try:
            self._prefetched = dict(zip(apart, self.connection.mget([text_key(self.id, name) for name in apart]), strict=True))
        except redis.RedisError:
            pass  # the run reads it again, and says what went wrong

    def _stored_arguments(self) -> dict:
        """The job's keyword arguments, with the texts kept apart put back."""
        apart = list(apart_fields(self.meta))
        if not apart:
            return self.kwargs
        raws, self._prefetched = self._prefetched, None
        if raws is None:
            raws = dict(zip(apart, self.connection.mget([text_key(self.id, name) for name in apart]), strict=True))
        arguments = dict(self.kwargs)
        for name, raw in raws.items():
            key = text_key(self.id, name)
            if raw is None:
                raise MissingTextError(
                    f"the {name} of job {self.id} (key {key}) is no longer in Redis: it expired or was "
                    "deleted, so the job cannot run; submit it again"
                )
            try:
                arguments[name] = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            except UnicodeDecodeError:
                raise InvalidArgumentsError(f"the {name} kept in {key} is not UTF-8") from None
        return arguments

    def _execute(self) -> Any:
        task = catalog.task_of(self.func_name, self.meta)
        if task is None:
            raise UnknownTask(catalog.unknown_task(self.func_name, self.meta))
        settings = get_settings()  # the worker process's, validated when it started
        if task.diagnostic and not settings.enable_diagnostic_tasks:
            raise UnknownTask(f"{task.type!r} is a diagnostic task and ENABLE_DIAGNOSTIC_TASKS is off")
        if self.args:
            raise InvalidArgumentsError("offload tasks take keyword arguments only")
        stored = self._stored_arguments()
        try:
            arguments = task.args.model_validate(stored, context={"settings": settings})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise InvalidArgumentsError(f"arguments no longer valid: {problems}") from None
        return context.run(task, arguments, self, settings)

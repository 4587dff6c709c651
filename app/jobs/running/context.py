"""A task inside its job: the :class:`~offload.tasks.Context` a task gets, and :func:`run`.

Every task, offload's and a team's, runs through :func:`run`: one dispatch for all. The context
is the only thing a task sees of its job, and it hides RQ and Redis: progress saved on the job
(and announced to ``GET /jobs/{id}/events``), the job's own state kept across attempts (what makes
``send_email`` at most once), the cancel request of a client, a logger whose lines carry the
job's id, and the settings and secrets the task declared. What a task raises or returns is
turned into the job's outcome here too: :class:`~offload.tasks.PermanentFailure` ends the
retries, :class:`~offload.tasks.RetryLater` sets the next retry's delay, and the result must
be JSON of at most ``MAX_RESULT_BYTES``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import redis
from pydantic import BaseModel, SecretStr
from rq.job import Job

from offload.tasks import PermanentFailure, RetryLater, Task, TaskDefinitionError

from ...settings import Settings
from ..engine import storage
from ..errors import InvalidResult, ResultTooLarge
from ..keys import cancel_key, state_key
from .events import publish_job_event

log = logging.getLogger(__name__)

#: Seconds between two progress writes of a running task (and two reads of its cancel flag).
PROGRESS_INTERVAL = 0.25

#: Set by a worker that saves the job's ``meta`` in the transaction recording its outcome (the
#: fast worker's horse, :mod:`app.worker.fast`): the last progress report (``done == total``) then
#: only updates ``job.meta`` and rides that transaction, one fsynced round trip less per job. RQ's
#: own workers save the outcome without ``meta``, so for them the report is written as it comes.
final_progress_rides_outcome: ContextVar[bool] = ContextVar("final_progress_rides_outcome", default=False)

#: Each task's ``env`` and ``secrets``, read from the environment once (:func:`read_config`).
_CONFIG: dict[str, tuple[dict[str, str], dict[str, SecretStr]]] = {}


def read_config(tasks: list[Task]) -> None:
    """Read every task's declared variables now; a worker calls it at start, so a missing
    secret stops the worker with its name instead of failing jobs one by one."""
    missing = []
    for task in tasks:
        try:
            _CONFIG[task.type] = task.read_config()
        except TaskDefinitionError as exc:
            missing.append(str(exc))
    if missing:
        raise TaskDefinitionError("; ".join(missing))


def run(task: Task, arguments: BaseModel, job: Job, settings: Settings) -> Any:
    """Run ``task`` for ``job``, and check what it returns (JSON, at most MAX_RESULT_BYTES)."""
    ctx = JobContext(job, task, settings)
    try:
        return checked_result(task(arguments, ctx), settings.max_result_bytes)
    except PermanentFailure:
        job.retries_left = 0
        raise
    except RetryLater as exc:
        _retry_after(job, exc.after)
        raise


def checked_result(result: Any, limit: int) -> Any:
    """The result as stored: a pydantic model becomes its JSON; anything that is not JSON, or
    larger than ``limit`` bytes as JSON, fails the job for good (a retry would return it again)."""
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json")
    try:
        size = len(json.dumps(result, allow_nan=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError) as exc:
        raise InvalidResult(f"the task's result is not JSON: {exc}") from None
    if size > limit:
        raise ResultTooLarge(
            f"the task's result is {size} bytes of JSON, over MAX_RESULT_BYTES ({limit}); keep large data "
            "elsewhere (object storage, your database) and return where it is"
        )
    return result


def _retry_after(job: Job, seconds: float) -> None:
    """Make the next retry wait ``seconds`` (RQ picks a retry's delay from ``retry_intervals``
    by how many retries are left)."""
    if not job.retries_left:
        return
    intervals = list(job.retry_intervals or [0])
    index = max(len(intervals) - job.retries_left, 0)
    intervals += [intervals[-1]] * (index + 1 - len(intervals))
    intervals[index] = math.ceil(seconds)
    job.retry_intervals = intervals


class JobContext:
    """The :class:`offload.tasks.Context` of a job run by a worker."""

    def __init__(self, job: Job, task: Task, settings: Settings) -> None:
        self.job_id = job.id
        self.type = task.type
        self.attempt = max(1, getattr(job, "attempts", 1))
        self.settings = settings
        self.metadata: Mapping[str, Any] | None = job.meta.get("metadata")
        config = _CONFIG.get(task.type)
        if config is None:
            config = _CONFIG[task.type] = task.read_config()
        self.env, self.secrets = config
        self.logger = logging.LoggerAdapter(
            logging.getLogger(f"offload.task.{task.type}"),
            {"job_id": job.id, "job_type": task.type, "attempt": self.attempt},
        )
        self.state = RedisState(job, max(settings.result_ttl_seconds, settings.failure_ttl_seconds))
        self._progress = ProgressReporter(job)
        self._job = job
        self._cancel_checked = 0.0
        self._cancelled = False

    def progress(self, done: int, total: int) -> None:
        self._progress(done, total)

    def cancelled(self) -> bool:
        """Read the job's cancel flag, at most four times a second; once set it stays set."""
        now = time.monotonic()
        if not self._cancelled and now - self._cancel_checked >= PROGRESS_INTERVAL:
            self._cancel_checked = now
            try:
                self._cancelled = bool(self._job.connection.exists(cancel_key(self.job_id)))
            except redis.RedisError:
                log.warning("could not read the cancel flag of job %s", self.job_id, extra={"job_id": self.job_id})
        return self._cancelled


class RedisState:
    """:class:`offload.tasks.JobState` in Redis, one key a name beside the job, kept as long as
    the job may be (its result or failure TTL) and across its attempts."""

    def __init__(self, job: Job, ttl: int) -> None:
        self._connection = job.connection
        self._job_id = job.id
        self._ttl = ttl

    def get(self, name: str) -> str | None:
        value = self._connection.get(state_key(self._job_id, name))
        return value.decode("utf-8") if isinstance(value, bytes) else value

    def set(self, name: str, value: str) -> None:
        self._connection.set(state_key(self._job_id, name), value, ex=self._ttl)

    def claim(self, name: str, value: str = "1") -> bool:
        return bool(self._connection.set(state_key(self._job_id, name), value, nx=True, ex=self._ttl))

    def delete(self, *names: str) -> None:
        if names:
            self._connection.delete(*(state_key(self._job_id, name) for name in names))


class ProgressReporter:
    """Writes ``progress`` into the job's meta, at most four times a second (and at the end),
    and announces it (for ``GET /jobs/{id}/events``) in the same round trip. The end's report
    goes with the job's outcome where the worker allows it (:data:`final_progress_rides_outcome`).

    The first report comes a quarter of a second in: a task faster than that (count_words on
    1 MiB takes ~15 ms) saves its progress once, at the end, instead of paying a Redis round
    trip for its first chunk too."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < PROGRESS_INTERVAL:
            return
        self.last = now
        job = self.job
        job.meta["progress"] = {"done": done, "total": total}
        if done >= total and final_progress_rides_outcome.get():
            return
        try:
            # RQ's save_meta, and the announcement, in one transaction.
            with job.connection.pipeline() as pipe:
                storage.save_meta(job, pipe)
                publish_job_event(job.connection, job.id, pipeline=pipe, kind="progress")
                pipe.execute()
        except redis.RedisError:
            log.warning("could not save progress of job %s", self.job.id, extra={"job_id": self.job.id})

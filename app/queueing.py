"""Offload's one door into RQ and Redis.

Everything that knows RQ's keys, registries, job fields and serializer lives here; the
HTTP layer and the worker entry point talk to :class:`JobQueue` and :class:`OffloadJob`
and never to Redis directly.

Three choices made here matter for users:

* Jobs are stored with RQ's :class:`~rq.serializers.JSONSerializer`, never pickle: data in
  Redis is plain JSON that any process can read and none can use to run code.
* A worker runs only the tasks in :data:`TASKS`. :meth:`OffloadJob._execute` looks the job's
  function name up in that table instead of importing it, so a job that names any other
  function fails with a clear error and nothing is imported or run.
* A task's arguments are validated again, by the same models the API uses, just before
  it runs, so a job written to Redis by something else cannot feed a task bad input.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from pydantic import BaseModel, ValidationError
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.defaults import RQ_KEY_PREFIX
from rq.exceptions import DequeueTimeout, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus, get_current_job
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from . import connections, schemas, tasks, webhooks
from .settings import QUEUE_NAMES, Settings, get_settings

log = logging.getLogger(__name__)

#: Prefix of every key offload itself writes; it shares RQ's prefix (and so its hash tag).
KEY_PREFIX = f"{RQ_KEY_PREFIX}:offload"
EVENTS_CHANNEL = f"{KEY_PREFIX}:events"
JOB_INDEX_KEY = f"{KEY_PREFIX}:jobs"
METRICS_KEY = f"{KEY_PREFIX}:metrics"
WAKE_KEY = f"{KEY_PREFIX}:wake"
#: Upper bounds (seconds) of the job run-time histogram buckets.
RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

#: A ``count_words`` text longer than this (characters) is kept in a key of its own
#: (:func:`text_key`), written in the submit transaction, instead of inside RQ's job payload,
#: where it would be JSON-encoded and zlib-compressed by the web process and decompressed and
#: decoded again by the worker. The job's meta says so (:data:`TEXT_FIELD`: its size in bytes).
TEXT_INLINE_MAX_CHARS = 64 * 1024
TEXT_FIELD = "text_bytes"

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EXCEPTION_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")
_PROGRESS_INTERVAL = 0.25


# --- connections -------------------------------------------------------------------------


def connect(settings: Settings, *, for_worker: bool = False) -> redis.Redis:
    """A Redis client that fails fast when the server is away.

    The web side must answer 503 within a couple of seconds, so it gets short timeouts and
    one quick retry. Workers block on BLMOVE for longer than any socket timeout, so they get
    no socket read timeout and rely on RQ's own reconnect loop.
    """
    return connections.redis_client(settings, for_worker=for_worker)  # one server, Sentinel or Cluster


def register_queues(connection: redis.Redis) -> None:
    """Make all of offload's queues known to RQ (and so to the dashboard) before any job exists."""
    keys = [Queue(name, connection=connection).key for name in QUEUE_NAMES]
    connection.sadd(Queue.redis_queues_keys, *keys)


# --- reliable dequeue --------------------------------------------------------------------

#: Take the first job of the first non-empty queue, moving it (atomically) onto that queue's
#: intermediate list, where it stays until the worker has registered it as started.
_DEQUEUE_SCRIPT = """
for i = 1, #KEYS, 2 do
  local job_id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
  if job_id then return {KEYS[i], job_id} end
end
return false
"""
_WAKE_TOKENS = 64
_IDLE_POLL = 1


class OffloadQueue(Queue):
    """An RQ queue whose dequeue never loses a job.

    RQ pops from several queues with BLPOP: a worker killed between the pop and the moment
    the job is registered as started loses the job for good (it stays ``queued`` and is in
    no list). Offload's workers instead LMOVE the job onto the queue's intermediate list in
    a script that serves the queues in priority order, and maintenance puts back any job
    stranded there (:func:`requeue_stranded`).

    Having no BLMOVE over several lists, an idle worker blocks on a wake-up list that every
    enqueue through this class pushes a token onto, and looks again at least once a second
    for jobs that arrive another way (RQ's scheduler, the dashboard).
    """

    def push_job_id(self, job_id: str, pipeline: redis.client.Pipeline | None = None, at_front: bool = False) -> None:
        super().push_job_id(job_id, pipeline=pipeline, at_front=at_front)
        connection = pipeline if pipeline is not None else self.connection
        connection.lpush(WAKE_KEY, 1)
        connection.ltrim(WAKE_KEY, 0, _WAKE_TOKENS - 1)

    @classmethod
    def dequeue_any(  # type: ignore[override]
        cls,
        queues,
        timeout: int | None,
        connection: redis.Redis,
        job_class=None,
        serializer=None,
        death_penalty_class=None,
    ):
        keys: list[str] = []
        for queue in queues:
            keys += [queue.key, queue.intermediate_queue_key]
        script = connection.register_script(_DEQUEUE_SCRIPT)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = script(keys=keys)
            if found:
                queue_key, job_id = (part.decode() if isinstance(part, bytes) else part for part in found)
                fetched = cls._fetch_dequeued_job(
                    connection, queue_key, job_id, job_class=job_class, serializer=serializer,
                    death_penalty_class=death_penalty_class,
                )  # fmt: skip
                if fetched is None:  # the job expired while queued
                    connection.lrem(f"{queue_key}:intermediate", 1, job_id)
                    continue
                return fetched
            if deadline is None:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DequeueTimeout(timeout, keys[::2])
            connection.blpop([WAKE_KEY], timeout=max(1, min(_IDLE_POLL, int(remaining))))


def requeue_stranded(queue: Queue, connection: redis.Redis, grace_seconds: int) -> list[str]:
    """Put back jobs left on a queue's intermediate list by a worker that died before it
    registered them as started. A job is put back at the front of its queue once it has been
    seen stranded for ``grace_seconds``; it never ran, so it keeps its attempts."""
    started = {job_id for job_id in queue.started_job_registry.get_job_ids(cleanup=False)}
    requeued = []
    for raw in connection.lrange(queue.intermediate_queue_key, 0, -1):
        job_id = raw.decode()
        if job_id in started:
            continue
        seen_key = f"{KEY_PREFIX}:stranded:{job_id}"
        if connection.set(seen_key, time.time(), nx=True, ex=24 * 3600):
            continue  # first sighting: give a live worker time to register it
        first_seen = float(connection.get(seen_key) or time.time())
        if time.time() - first_seen < grace_seconds:
            continue
        with connection.pipeline() as pipe:
            pipe.lrem(queue.intermediate_queue_key, 1, job_id)
            pipe.lpush(queue.key, job_id)
            pipe.lpush(WAKE_KEY, 1)
            pipe.delete(seen_key)
            removed = pipe.execute()[0]
        if removed:
            requeued.append(job_id)
            log.warning("job %s was stranded by a dead worker; requeued", job_id, extra={"job_id": job_id})
    return requeued


# --- tasks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A job type: its arguments model and how to call the plain function behind it."""

    type: str
    func: Callable[..., dict]
    args_model: type[BaseModel]
    diagnostic: bool = False

    @property
    def func_name(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"


TASKS: dict[str, Task] = {
    task.type: task
    for task in (
        Task("count_words", tasks.count_words, schemas.CountWordsArgs),
        Task("send_email", tasks.send_email, schemas.SendEmailArgs),
        Task("sleep", tasks.sleep, schemas.SleepArgs, diagnostic=True),
        Task("noop", tasks.noop, schemas.NoopArgs, diagnostic=True),
        Task("fail", tasks.fail, schemas.FailArgs, diagnostic=True),
        Task("webhook", webhooks.deliver, schemas.WebhookArgs),
    )
}
_TASKS_BY_FUNC = {task.func_name: task for task in TASKS.values()}


class UnknownTaskError(Exception):
    """The job names a function that is not one of offload's tasks."""


class DeliveryUnknown(Exception):
    """A previous attempt died mid-transfer; the message is not sent again (at most once)."""


class InvalidArgumentsError(Exception):
    """The job's stored arguments do not pass the task's validation any more."""


class MissingTextError(Exception):
    """The job's text, kept in a key of its own, is not in Redis any more."""


def text_key(job_id: str) -> str:
    """Where a large ``count_words`` text is kept: offload's prefix, so RQ's hash tag too."""
    return f"{KEY_PREFIX}:text:{job_id}"


ATTEMPTS_FIELD = "offload_attempts"


class OffloadJob(Job):
    """An RQ job that only ever runs registered tasks, with validated arguments.

    It also counts its attempts in its own hash field, bumped in the same pipeline that
    marks the job started, so counting costs no extra round trip.
    """

    attempts: int = 0

    def prepare_for_execution(self, worker_name: str, pipeline: redis.client.Pipeline) -> None:
        super().prepare_for_execution(worker_name, pipeline)
        self.attempts += 1
        pipeline.hincrby(self.key, ATTEMPTS_FIELD, 1)
        pipeline.hincrby(METRICS_KEY, f"started:{self.meta.get('type', 'unknown')}", 1)

    def restore(self, raw_data: dict) -> Any:
        result = super().restore(raw_data)
        self.attempts = int(raw_data.get(ATTEMPTS_FIELD.encode(), raw_data.get(ATTEMPTS_FIELD, 0)) or 0)
        return result

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

    def _stored_arguments(self) -> dict:
        """The job's keyword arguments, with a text kept in a key of its own put back."""
        if self.meta.get(TEXT_FIELD) is None:
            return self.kwargs
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
        task = _TASKS_BY_FUNC.get(self.func_name or "")
        if task is None:
            raise UnknownTaskError(f"{self.func_name!r} is not an offload task; it was not run")
        settings = _worker_settings()
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
        return _run_task(task, arguments.model_dump(), self, settings)


def _run_task(task: Task, arguments: dict, job: Job, settings: Settings) -> dict:
    if task.type == "count_words":
        return tasks.count_words(arguments["text"], progress=ProgressReporter(job))
    if task.type == "send_email":
        return _send_email_once(job, arguments, settings)
    if task.type == "webhook":
        if settings.webhook_secret is None:
            raise webhooks.DeliveryFailed("WEBHOOK_SECRET is not set on the worker; cannot sign the delivery")
        return webhooks.deliver(
            **arguments,
            secret=settings.webhook_secret.get_secret_value(),
            delivery_id=job.id,
            allow_private=settings.allow_private_callbacks,
            timeout=settings.webhook_timeout_seconds,
        )
    return task.func(**arguments)


def _send_email_once(job: Job, arguments: dict, settings: Settings) -> dict:
    """Send at most once per job, across retries and worker deaths.

    The receipt is written to Redis the moment the SMTP server accepts the message; an
    attempt that finds it (the previous attempt's worker died after sending) returns it
    instead of sending again. The one window left is between the server's 250 and that
    write, about a millisecond.
    """
    sent_key = f"{KEY_PREFIX}:sent:{job.id}"
    sending_key = f"{KEY_PREFIX}:sending:{job.id}"
    previous, in_doubt = job.connection.mget(sent_key, sending_key)
    if previous is not None:
        log.warning("job %s: message already sent by an earlier attempt; not sending again", job.id)
        return json.loads(previous)
    if in_doubt is not None:
        # An attempt died while the message itself was being transferred: it may have been
        # delivered. Sending again could duplicate it, so say so and stop (no more retries).
        job.retries_left = 0
        raise DeliveryUnknown(
            "an earlier attempt died while the SMTP server was receiving the message; it may or may not "
            "have been delivered, and it is not sent again to avoid a duplicate"
        )

    def sending() -> None:
        # NX: if two attempts of one job ever run at once (a worker starved past its heartbeat
        # and was presumed dead), only the first may transfer the message.
        if not job.connection.set(sending_key, 1, nx=True, ex=settings.result_ttl_seconds):
            job.retries_left = 0
            raise DeliveryUnknown("another attempt of this job is sending (or died sending) this message; not sending it twice")

    def record(receipt: dict) -> None:
        with job.connection.pipeline() as pipe:
            pipe.set(sent_key, json.dumps(receipt), ex=settings.result_ttl_seconds)
            pipe.delete(sending_key)
            pipe.execute()

    try:
        return tasks.send_email(
            **arguments,
            smtp=settings.smtp,
            mail_from=settings.mail_from,
            timeout=settings.smtp_timeout,
            message_id=f"<{job.id}@{settings.mail_from.rpartition('@')[2] or 'offload'}>",
            on_sent=record,
            on_sending=sending,
        )
    except tasks.SmtpError as exc:
        if not exc.in_doubt:  # the server refused or never got the message: a retry may send it
            job.connection.delete(sending_key)
        raise


def _worker_settings() -> Settings:
    return get_settings()


class ProgressReporter:
    """Writes ``progress`` into the job's meta, at most four times a second (and at the end).

    The first report comes a quarter of a second in: a text counted faster than that (1 MiB
    takes ~15 ms) saves its progress once, at the end, instead of paying a Redis round trip
    for its first chunk too."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < _PROGRESS_INTERVAL:
            return
        self.last = now
        self.job.meta["progress"] = {"done": done, "total": total}
        try:
            self.job.save_meta()
        except redis.RedisError:
            log.warning("could not save progress of job %s", self.job.id, extra={"job_id": self.job.id})


# --- the queue ---------------------------------------------------------------------------


class JobNotFound(Exception):
    """No such job, or not one the caller may see."""


class QueueFull(Exception):
    """The queue holds MAX_QUEUE_DEPTH jobs already (503: backpressure)."""


class JobStateConflict(Exception):
    """The job is in a state where the operation makes no sense (409)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: a key name, and whether it may see every job."""

    name: str | None
    is_admin: bool

    def may_see(self, owner: str | None) -> bool:
        return self.is_admin or self.name == owner


ANONYMOUS = Principal(name=None, is_admin=True)


class JobQueue:
    """Submit, look up, wait on, cancel, retry and list offload jobs."""

    serializer = JSONSerializer

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.queues = {
            name: OffloadQueue(name, connection=connection, serializer=self.serializer, job_class=OffloadJob)
            for name in QUEUE_NAMES
        }
        self._events = JobEvents(connection)

    # -- health --

    def ping(self) -> bool:
        return bool(self.connection.ping())

    # -- submit --

    def submit(
        self,
        request: schemas.JobOptions,
        *,
        owner: str | None,
        request_id: str | None = None,
        idempotency: IdempotencyClaim | None = None,
    ) -> dict:
        """Create the job and put it on its queue (or in the schedule); returns the resource.

        With an idempotency claim, the answer is recorded under the key in the same Redis
        transaction that enqueues the job: either both happen or neither does.
        """
        task = TASKS[request.type]  # type: ignore[attr-defined]
        queue = self.queues[request.queue]
        depth = idempotency.queue_depth if idempotency is not None else None
        if depth is None:
            depth = self.connection.llen(queue.key)
        if depth >= self.settings.max_queue_depth:
            raise QueueFull(queue.name)
        max_retries = self.settings.default_max_retries if request.max_retries is None else request.max_retries
        meta = {
            "type": task.type,
            "owner": owner,
            "max_retries": max_retries,
            "metadata": request.metadata,
            "callback_url": request.callback_url,
            "request_id": request_id,
        }
        kwargs = request.task_arguments()
        text = None
        if task.type == "count_words" and len(kwargs["text"]) > TEXT_INLINE_MAX_CHARS:
            text = kwargs.pop("text").encode("utf-8")
            meta[TEXT_FIELD] = len(text)
        job = queue.create_job(
            task.func_name,
            kwargs=kwargs,
            timeout=request.timeout_seconds or self.settings.default_timeout_seconds,
            result_ttl=self.settings.result_ttl_seconds,
            failure_ttl=self.settings.failure_ttl_seconds,
            meta=meta,
            retry=self.retry_policy(max_retries),
            description=task.type,
        )
        run_at = _run_at(request)
        with self.connection.pipeline() as pipe:
            if run_at is not None and run_at > datetime.now(UTC):
                queue.schedule_job(job, run_at, pipeline=pipe)
            else:
                queue.enqueue_job(job, pipeline=pipe)
            self._index(job, owner, pipe)
            if text is not None:  # in the job's transaction (after RQ's WATCH): both exist or neither
                pipe.set(text_key(job.id), text)
            resource = self.describe(job)
            if idempotency is not None:
                idempotency.record(resource, pipe)
            pipe.execute()
        # Under Sentinel: no 202 before a replica holds the job (NotReplicated is a 503).
        connections.wait_for_replicas(self.connection, self.settings)
        log.info("job submitted", extra={"job_id": job.id, "job_type": task.type, "queue": queue.name})
        return resource

    def retry_policy(self, max_retries: int) -> Retry | None:
        """Exponential backoff with ±20% jitter, capped; RQ takes it as a list of intervals."""
        if max_retries < 1:
            return None
        base, cap = self.settings.retry_backoff_base_seconds, self.settings.retry_backoff_max_seconds
        intervals = [
            max(1, round(min(cap, base * 2**attempt) * random.uniform(0.8, 1.2))) for attempt in range(max_retries)
        ]
        return Retry(max=max_retries, interval=intervals)

    def _index(self, job: Job, owner: str | None, pipe: redis.client.Pipeline) -> None:
        score = job.created_at.timestamp() if job.created_at else time.time()
        pipe.zadd(JOB_INDEX_KEY, {job.id: score})
        pipe.hincrby(METRICS_KEY, f"enqueued:{job.meta['type']}", 1)

    def queue_depths(self) -> dict[str, int]:
        with self.connection.pipeline(transaction=False) as pipe:
            for queue in self.queues.values():
                pipe.llen(queue.key)
            return dict(zip(self.queues, pipe.execute(), strict=True))

    def stats(self) -> dict:
        """Counters and gauges for /metrics, read from Redis so that every web process
        reports the same figures for jobs run by any worker on any host."""
        from rq import Worker

        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hgetall(METRICS_KEY)
            for queue in self.queues.values():
                pipe.llen(queue.key)
                pipe.zcard(queue.scheduled_job_registry.key)
                pipe.zcard(queue.started_job_registry.key)
            replies = pipe.execute()
        counters = {key.decode(): float(value) for key, value in replies[0].items()}
        depth = {}
        for index, name in enumerate(self.queues):
            queued, scheduled, started = replies[1 + 3 * index : 4 + 3 * index]
            depth[name] = {"queued": queued, "scheduled": scheduled, "started": started}
        workers = Worker.all(connection=self.connection, serializer=self.serializer)
        return {"counters": counters, "queues": depth, "workers": len(workers)}

    def enqueue_callback(self, job: Job) -> Job | None:
        """Queue the delivery of ``job``'s end to its ``callback_url``, if it has one."""
        url = job.meta.get("callback_url")
        status = _public_status(job.get_status(refresh=True))
        if not url or status not in ("finished", "failed"):
            return None
        resource = self.describe(job)
        resource["links"] = {"self": f"/jobs/{job.id}", "cancel": f"/jobs/{job.id}/cancel"}
        task = TASKS["webhook"]
        delivery = self.queues["high"].enqueue_call(
            task.func_name,
            kwargs={"url": url, "body": json.dumps(resource), "event": f"job.{status}"},
            timeout=int(self.settings.webhook_timeout_seconds) + 5,
            result_ttl=self.settings.result_ttl_seconds,
            failure_ttl=self.settings.failure_ttl_seconds,
            meta={"type": "webhook", "owner": job.meta.get("owner"), "for_job": job.id, "max_retries": self.settings.webhook_max_retries},
            retry=self.retry_policy(self.settings.webhook_max_retries),
            description=f"webhook for {job.id}",
        )
        log.info("callback queued", extra={"job_id": job.id, "delivery_id": delivery.id})
        return delivery

    def claim_idempotency_key(self, owner: str | None, key: str, payload: dict, queue: str | None = None) -> IdempotencyClaim:
        """Claim ``key``; with ``queue``, the claim also carries that queue's depth, read in the
        same round trip (:meth:`submit` then needs no LLEN of its own)."""
        depth_key = self.queues[queue].key if queue in self.queues else None
        return claim_idempotency_key(self.connection, owner, key, payload, depth_key=depth_key)

    # -- look up --

    def fetch(self, job_id: str, principal: Principal = ANONYMOUS) -> Job:
        if not _JOB_ID.match(job_id):
            raise JobNotFound(job_id)
        try:
            job = OffloadJob.fetch(job_id, connection=self.connection, serializer=self.serializer)
        except NoSuchJobError:
            raise JobNotFound(job_id) from None
        if job.meta.get("type") not in TASKS or not principal.may_see(job.meta.get("owner")):
            raise JobNotFound(job_id)
        return job

    def get(self, job_id: str, principal: Principal = ANONYMOUS) -> dict:
        return self.describe(self.fetch(job_id, principal))

    def wait(self, job_id: str, principal: Principal, timeout: float) -> dict:
        """The job once it is terminal, or as it is after ``timeout`` seconds.

        Waiting is event driven: workers publish a job's id when it ends, and one listener
        thread per process wakes the waiters. A re-read every couple of seconds covers an
        event lost to a reconnect.
        """
        deadline = time.monotonic() + timeout
        with self._events.watch(job_id) as event:
            while True:
                resource = self.get(job_id, principal)
                remaining = deadline - time.monotonic()
                if resource["status"] in schemas.TERMINAL_STATUSES or remaining <= 0:
                    return resource
                event.wait(min(remaining, 2.0))
                event.clear()

    def describe(self, job: Job) -> dict:
        """The job resource of CONTRACT.md, without ``links`` (the HTTP layer adds those)."""
        status = _public_status(job.get_status(refresh=False))
        meta = job.meta
        attempts = getattr(job, "attempts", 0)
        result = error = None
        if status == "finished":
            result = job.return_value()
        elif status in ("failed", "stopped") or (status in ("queued", "scheduled") and attempts):
            error = _error_of(job)
        return {
            "id": job.id,
            "type": meta.get("type"),
            "status": status,
            "queue": job.origin,
            "created_at": _rfc3339(job.created_at),
            "enqueued_at": _rfc3339(job.enqueued_at),
            "started_at": _rfc3339(job.started_at) if attempts else None,
            "ended_at": _rfc3339(job.ended_at) if status in schemas.TERMINAL_STATUSES else None,
            "attempts": attempts,
            "max_retries": meta.get("max_retries", 0),
            "progress": meta.get("progress"),
            "result": result,
            "error": error,
            "metadata": meta.get("metadata"),
        }

    # -- control --

    def cancel(self, job_id: str, principal: Principal) -> dict:
        """Cancel a queued or scheduled job, or stop a running one."""
        job = self.fetch(job_id, principal)
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED:
            try:
                send_stop_job_command(self.connection, job.id, serializer=self.serializer)
            except InvalidJobOperation:
                raise JobStateConflict("the job is between workers; try again") from None
        elif _public_status(status) in ("queued", "scheduled", "deferred"):
            job.cancel()
            self._events.publish(job.id)
        else:
            raise JobStateConflict(f"the job is already {_public_status(status)}")
        job.refresh()
        return self.describe(job)

    def retry(self, job_id: str, principal: Principal) -> dict:
        """Put a failed, stopped or canceled job back on its queue."""
        job = self.fetch(job_id, principal)
        status = job.get_status(refresh=False)
        if status in (JobStatus.FAILED, JobStatus.STOPPED):
            registry = FailedJobRegistry(job.origin, self.connection, job_class=OffloadJob, serializer=self.serializer)
        elif status == JobStatus.CANCELED:
            registry = CanceledJobRegistry(
                job.origin, self.connection, job_class=OffloadJob, serializer=self.serializer
            )
        else:
            raise JobStateConflict(f"only failed, stopped or canceled jobs can be retried; this one is {status.value}")
        try:
            registry.requeue(job)
        except InvalidJobOperation:
            # Not in the registry (e.g. a stopped job): put it on its queue directly.
            self.queues[job.origin].enqueue_job(job)
        job.refresh()
        return self.describe(job)

    def list(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        type: str | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """Jobs newest first; the cursor is the (score, id) of the last job returned."""
        max_score: str = "+inf"
        after_id: str | None = None
        if cursor:
            max_score, after_id = _decode_cursor(cursor)
        found: list[dict] = []
        batch = max(limit * 2, 100)
        offset = 0
        while len(found) <= limit:
            entries = self.connection.zrevrangebyscore(
                JOB_INDEX_KEY, max_score, "-inf", start=offset, num=batch, withscores=True
            )
            if not entries:
                break
            offset += len(entries)
            ids = [entry[0].decode() for entry in entries]
            scores = {entry[0].decode(): entry[1] for entry in entries}
            jobs = OffloadJob.fetch_many(ids, connection=self.connection, serializer=self.serializer)
            for job_id, job in zip(ids, jobs, strict=True):
                if after_id is not None:
                    # Skip up to and including the cursor's job among equal scores.
                    if scores[job_id] == float(max_score) and job_id >= after_id:
                        continue
                if job is None:
                    self.connection.zrem(JOB_INDEX_KEY, job_id)  # expired: drop it from the index
                    continue
                if not principal.may_see(job.meta.get("owner")) or job.meta.get("type") not in TASKS:
                    continue
                resource = self.describe(job)
                if status and resource["status"] != status:
                    continue
                if type and resource["type"] != type:
                    continue
                if queue and resource["queue"] != queue:
                    continue
                resource["_score"] = scores[job_id]
                found.append(resource)
                if len(found) > limit:
                    break
            if len(entries) < batch:
                break
        page, more = found[:limit], len(found) > limit
        next_cursor = None
        if more and page:
            last = page[-1]
            next_cursor = _encode_cursor(last["_score"], last["id"])
        for resource in page:
            resource.pop("_score", None)
        return page, next_cursor


# --- idempotency -------------------------------------------------------------------------


class IdempotencyConflict(Exception):
    """Same key, different body (422)."""


class IdempotencyInFlight(Exception):
    """Same key while the first request is still being handled (409)."""


IDEMPOTENCY_TTL = 24 * 3600 + 3600  # the contract promises at least 24 hours
_IN_FLIGHT_TTL = 30


@dataclass
class IdempotencyClaim:
    """The right to answer for an idempotency key; ``replay`` is set when the answer exists."""

    connection: redis.Redis
    key: str
    fingerprint: str
    replay: dict | None = None
    #: The queue's length when the key was claimed (read in the same round trip), if asked for.
    queue_depth: int | None = None

    def record(self, resource: dict, pipe: redis.client.Pipeline) -> None:
        entry = {"state": "done", "fingerprint": self.fingerprint, "resource": resource}
        pipe.set(self.key, json.dumps(entry), ex=IDEMPOTENCY_TTL)

    def release(self) -> None:
        """Give the key back after a failed submission, so the client may try again."""
        try:
            entry = self.connection.get(self.key)
            if entry is not None and json.loads(entry).get("state") == "pending":
                self.connection.delete(self.key)
        except redis.RedisError:
            pass  # the in-flight marker expires on its own


def claim_idempotency_key(
    connection: redis.Redis, owner: str | None, key: str, payload: dict, depth_key: str | None = None
) -> IdempotencyClaim:
    """Claim ``key`` for this request, or explain why not.

    Keys are scoped to the caller (two clients may use the same key) and the body is
    compared by a hash of its canonical JSON. Raises IdempotencyConflict or
    IdempotencyInFlight; returns a claim whose ``replay`` is the first answer when there is one.
    """
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    redis_key = f"{KEY_PREFIX}:idempotency:{owner or '-'}:{digest}"
    fingerprint = hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    ).hexdigest()
    pending = json.dumps({"state": "pending", "fingerprint": fingerprint})
    if depth_key is None:
        claimed, depth = connection.set(redis_key, pending, nx=True, ex=_IN_FLIGHT_TTL), None
    else:  # one round trip for the claim and the queue's depth (same hash tag: one node)
        with connection.pipeline(transaction=False) as pipe:
            pipe.set(redis_key, pending, nx=True, ex=_IN_FLIGHT_TTL)
            pipe.llen(depth_key)
            claimed, depth = pipe.execute()
    if claimed:
        return IdempotencyClaim(connection, redis_key, fingerprint, queue_depth=depth)
    raw = connection.get(redis_key)
    if raw is None:  # expired between the two calls: try once more
        if connection.set(redis_key, pending, nx=True, ex=_IN_FLIGHT_TTL):
            return IdempotencyClaim(connection, redis_key, fingerprint)
        raw = connection.get(redis_key) or pending.encode()
    entry = json.loads(raw)
    if entry["fingerprint"] != fingerprint:
        raise IdempotencyConflict(key)
    if entry["state"] != "done":
        raise IdempotencyInFlight(key)
    return IdempotencyClaim(connection, redis_key, fingerprint, replay=entry["resource"])


# --- events ------------------------------------------------------------------------------


class JobEvents:
    """Wakes threads waiting on a job when a worker publishes that the job ended.

    One pub/sub connection and one daemon thread per process serve every waiter, so a
    waiting request costs a parked thread, not a Redis connection or a polling loop.
    """

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._waiters: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def publish(self, job_id: str) -> None:
        publish_job_ended(self.connection, job_id)

    class _Watch:
        def __init__(self, events: JobEvents, job_id: str) -> None:
            self.events, self.job_id, self.event = events, job_id, threading.Event()

        def __enter__(self) -> threading.Event:
            self.events._add(self.job_id, self.event)
            return self.event

        def __exit__(self, *exc: object) -> None:
            self.events._remove(self.job_id, self.event)

    def watch(self, job_id: str) -> JobEvents._Watch:
        return JobEvents._Watch(self, job_id)

    def _add(self, job_id: str, event: threading.Event) -> None:
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(event)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._listen, name="offload-job-events", daemon=True)
                self._thread.start()

    def _remove(self, job_id: str, event: threading.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(EVENTS_CHANNEL)
                backoff = 0.1
                for message in _messages(pubsub):
                    job_id = message["data"].decode() if isinstance(message["data"], bytes) else message["data"]
                    with self._lock:
                        for event in self._waiters.get(job_id, ()):
                            event.set()
            except (redis.RedisError, OSError):
                # Waiters fall back to re-reading the job until the listener is back.
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                pubsub.close()


def _messages(pubsub: redis.client.PubSub) -> Iterator[dict]:
    while True:
        message = pubsub.get_message(timeout=30.0)
        if message is not None and message.get("type") == "message":
            yield message


def publish_job_ended(connection: redis.Redis, job_id: str) -> None:
    """Called by workers when a job reaches an end state (or is about to be retried)."""
    try:
        connection.publish(EVENTS_CHANNEL, job_id)
    except redis.RedisError:
        log.warning("could not publish the end of job %s", job_id, extra={"job_id": job_id})


# --- helpers ---


def _encode_cursor(score: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score!r}:{job_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    """Raises ValueError for anything this module did not make."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("bad cursor") from exc
    score, _, job_id = text.partition(":")
    if not _JOB_ID.match(job_id) or not math.isfinite(float(score)):
        raise ValueError("bad cursor")
    return score, job_id




def _run_at(request: schemas.JobOptions) -> datetime | None:
    """When to run, rounded up to a whole second: RQ's schedule keeps whole seconds, and a
    job must never run before the time the client asked for."""
    if request.delay_seconds:
        moment = datetime.now(UTC) + timedelta(seconds=request.delay_seconds)
    elif request.run_at is not None:
        moment = request.run_at.astimezone(UTC)
    else:
        return None
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def _public_status(status: JobStatus | None) -> str:
    if status is None:
        return "queued"
    value = status.value if isinstance(status, JobStatus) else str(status)
    if value in ("created", "ready_to_enqueue", "rate_limited"):
        return "queued"
    return value


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_outcome(connection: redis.Redis, job: Job, outcome: str) -> None:
    """Count a job's end (``finished``, ``failed`` or ``retried``) and its run time, by type."""
    job_type = job.meta.get("type", "unknown")
    with connection.pipeline(transaction=False) as pipe:
        pipe.hincrby(METRICS_KEY, f"{outcome}:{job_type}", 1)
        if job.started_at and job.ended_at and outcome != "retried":
            seconds = max(0.0, (job.ended_at - job.started_at).total_seconds())
            bucket = next((str(le) for le in RUNTIME_BUCKETS if seconds <= le), "+Inf")
            pipe.hincrby(METRICS_KEY, f"runtime_bucket:{job_type}:{bucket}", 1)
            pipe.hincrbyfloat(METRICS_KEY, f"runtime_sum:{job_type}", seconds)
        try:
            pipe.execute()
        except redis.RedisError:
            log.warning("could not count the end of job %s", job.id, extra={"job_id": job.id})


def remember_failure(job: Job, exc_string: str) -> None:
    """Keep an attempt's error on a job that is about to be retried (RQ keeps only final ones)."""
    job.meta["last_error"] = describe_exception(exc_string, timeout=job.timeout)
    try:
        job.save_meta()
    except redis.RedisError:
        log.warning("could not save the error of job %s", job.id, extra={"job_id": job.id})


def _error_of(job: Job) -> dict | None:
    """The last failure as ``{"type", "message"}``, from the traceback RQ keeps."""
    result = job.latest_result()
    if result is None or result.type == Result.Type.SUCCESSFUL or not result.exc_string:
        if job.get_status(refresh=False) == JobStatus.STOPPED:
            return {"type": "Stopped", "message": "the job was stopped while it ran"}
        return job.meta.get("last_error")
    return describe_exception(result.exc_string, timeout=job.timeout)


def describe_exception(exc_string: str, timeout: int | None = None) -> dict:
    lines = [line for line in exc_string.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else "unknown error"
    match = _EXCEPTION_LINE.match(last)
    if "AbandonedJobError" in last or last.startswith("Work-horse terminated"):
        return {"type": "WorkerDied", "message": f"the worker running the job died ({last.rstrip('; ')})"}
    if not match or " " in (match.group("type") or ""):
        return {"type": "Error", "message": last}
    exc_type = match.group("type").rpartition(".")[2]
    message = match.group("message") or exc_type
    if exc_type == "WorkerShutdown":
        return {"type": "WorkerDied", "message": message}
    if exc_type == "JobTimeoutException":
        return {"type": "JobTimeout", "message": f"timed out: the attempt ran longer than {timeout} seconds"}
    return {"type": exc_type, "message": message}


def current_job_id() -> str | None:
    job = get_current_job()
    return job.id if job else None

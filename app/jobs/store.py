"""The job store: submit, look up, wait on, cancel, retry and list offload jobs.

:class:`JobQueue` is the one door the HTTP layer has into RQ and Redis: views ask it to act
and render what it answers; they never touch Redis themselves.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import redis
from rq import Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.serializers import JSONSerializer

from .. import connections
from ..settings import QUEUE_NAMES, Settings
from . import schemas, timeseries
from .access import ANONYMOUS, Principal
from .catalog import TASKS
from .errors import JobNotFound, JobStateConflict, QueueFull
from .events import JobEvents
from .idempotency import IdempotencyClaim, claim_idempotency_key
from .job import TEXT_FIELD, TEXT_INLINE_MAX_CHARS, OffloadJob
from .keys import JOB_INDEX_KEY, METRICS_KEY, text_key
from .listing import JOB_ID, list_jobs
from .callbacks import retry_policy
from .queue import OffloadQueue
from .resource import describe as describe_job
from .resource import public_status

log = logging.getLogger(__name__)


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
        job_id: str | None = None,
        extra_meta: dict | None = None,
        pipeline: redis.client.Pipeline | None = None,
    ) -> dict:
        """Create the job and put it on its queue (or in the schedule); returns the resource.

        With an idempotency claim, the answer is recorded under the key in the same Redis
        transaction that enqueues the job: either both happen or neither does.

        With ``pipeline``, a transaction the caller has begun (after a WATCH of its own), the
        job's commands join it and nothing is sent: the caller executes it, then waits for
        replicas. A schedule's tick does so, naming the job after the tick (``job_id``) and
        marking it with ``extra_meta`` (see :mod:`app.jobs.ticker`).
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
            **(extra_meta or {}),
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
            job_id=job_id,
        )
        run_at = _run_at(request)
        with self.connection.pipeline() if pipeline is None else nullcontext(pipeline) as pipe:
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
            if pipeline is not None:
                return resource
            pipe.execute()
        # Under Sentinel: no 202 before a replica holds the job (NotReplicated is a 503).
        connections.wait_for_replicas(self.connection, self.settings)
        log.info("job submitted", extra={"job_id": job.id, "job_type": task.type, "queue": queue.name})
        return resource

    def retry_policy(self, max_retries: int) -> Retry | None:
        return retry_policy(self.settings, max_retries)

    def _index(self, job: Job, owner: str | None, pipe: redis.client.Pipeline) -> None:
        score = job.created_at.timestamp() if job.created_at else time.time()
        pipe.zadd(JOB_INDEX_KEY, {job.id: score})
        pipe.hincrby(METRICS_KEY, f"enqueued:{job.meta['type']}", 1)
        timeseries.count(pipe, "enqueued", job.origin)

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

    def claim_idempotency_key(self, owner: str | None, key: str, payload: dict, queue: str | None = None) -> IdempotencyClaim:
        """Claim ``key``; with ``queue``, the claim also carries that queue's depth, read in the
        same round trip (:meth:`submit` then needs no LLEN of its own)."""
        depth_key = self.queues[queue].key if queue in self.queues else None
        return claim_idempotency_key(self.connection, owner, key, payload, depth_key=depth_key)

    # -- look up --

    def fetch(self, job_id: str, principal: Principal = ANONYMOUS) -> Job:
        if not JOB_ID.match(job_id):
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

    #: The job resource, without ``links`` (see :func:`app.jobs.resource.describe`).
    describe = staticmethod(describe_job)

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
        elif public_status(status) in ("queued", "scheduled", "deferred"):
            job.cancel()
            self._events.publish(job.id)
        else:
            raise JobStateConflict(f"the job is already {public_status(status)}")
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
        type: str | None = None,  # noqa: A002 - the query parameter's name
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """Jobs newest first, and the cursor of the next page (see :mod:`app.jobs.listing`)."""
        return list_jobs(
            self.connection, principal, status=status, type=type, queue=queue, limit=limit, cursor=cursor
        )


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

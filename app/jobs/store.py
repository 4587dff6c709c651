"""The job service: everything the HTTP layer may ask of jobs, and its one door into RQ and Redis.

:class:`JobQueue` is made once per app (``create_app`` keeps it in ``app.extensions``). Views parse
and check a request, ask it to act and render what it answers; they never touch Redis or RQ, and
see nothing of this package but its public API (:mod:`app.jobs`: this class, the contract
models, the errors, the catalog). A job's own life (submit, look up, wait, cancel, retry) is
written here; the rest is handed to the module that owns it, made once here too: listing and
search, batches, bulk actions (:mod:`~app.jobs.admin.bulk`), queues (:mod:`~app.jobs.admin.queues_admin`),
schedules (:mod:`~app.jobs.scheduling.schedules`), the figures of /metrics and of the page's charts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import redis
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.serializers import JSONSerializer

from .. import connections
from ..settings import QUEUE_NAMES, Settings
from . import keys
from .access import ANONYMOUS, Principal
from .admin.bulk import BulkActions, BulkOutcome
from .admin.queues_admin import QueueAdmin
from .admin.timeseries import read as read_timeseries
from .catalog import is_offload_job
from .contract import schemas
from .contract.bulk_schemas import BulkAction
from .contract.schedule_schemas import SchedulePatch, ScheduleRequest
from .engine.job import OffloadJob
from .engine.queue import OffloadQueue
from .engine.submit import Exists, RateCount
from .errors import InvalidSubmission, JobNotFound, JobStateConflict
from .keys import METRICS_KEY, cancel_key
from .reading import dashboard
from .reading.listing import list_jobs
from .reading.resource import describe as describe_job
from .reading.resource import public_status
from .reading.search import JobFilter, search_jobs
from .running import concurrency, endings
from .running.counters import RUNTIME_BUCKETS
from .running.events import REREAD_SECONDS, JobEvents, follow
from .scheduling.schedules import ScheduleStore
from .submitting import batches, dependencies, submission
from .submitting.idempotency import IdempotencyClaim, claim_now, settle, unclaimed

log = logging.getLogger(__name__)


class JobQueue:
    """What the HTTP layer may ask of jobs: submit, look up, wait on, follow, cancel, retry, list
    and search them; batches, bulk actions, queues, schedules, figures; readiness."""

    serializer = JSONSerializer
    #: Flask-Limiter's key prefix: the rate limits' counters are kept beside offload's own keys.
    rate_limit_prefix = keys.rate_limit_prefix()

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.queues = {
            name: OffloadQueue(name, connection=connection, serializer=self.serializer, job_class=OffloadJob)
            for name in QUEUE_NAMES
        }
        self._events = JobEvents(connection)
        self._bulk = BulkActions(connection)
        self._admin = QueueAdmin(connection, settings, self.queues)
        self._schedules = ScheduleStore(connection, settings)

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
        principal: Principal | None = None,
        rate: RateCount | None = None,
    ) -> dict:
        """Create the job and put it on its queue (or in the schedule, or deferred until its
        dependencies finish); returns the resource.

        With an idempotency claim, the answer is recorded under the key in the same Redis
        transaction that enqueues the job: either both happen or neither does. A claim from
        :meth:`idempotency` is made here, in that same script: when the key already has an
        answer, nothing is written, ``claim.replay`` is set and that answer is returned (or
        IdempotencyConflict / IdempotencyInFlight raised), so a new submission is one round trip
        with or without a key. ``principal``
        (default: the owner's own view) decides which jobs ``depends_on`` may name; a dependency
        that is unknown or will never finish raises InvalidSubmission.

        With ``pipeline``, a transaction the caller has begun (after a WATCH of its own), the
        job's commands join it and nothing is sent: the caller executes it, then waits for
        replicas. A schedule's tick does so, naming the job after the tick (``job_id``) and
        marking it with ``extra_meta`` (see :mod:`app.jobs.scheduling.ticker`).

        ``rate``: the caller's rate-limit windows, counted by the same script before anything is
        written (``rate.replies`` then holds each window's count and TTL); over a limit,
        RateLimited is raised and nothing is written. Counted once, whatever else is raised.
        """
        item = submission.draft(
            request, queues=self.queues, settings=self.settings, owner=owner, request_id=request_id,
            job_id=job_id, extra_meta=extra_meta,
        )  # fmt: skip
        answer: dict = {}
        if idempotency is not None and not idempotency.claimed and not submission.one_script([item], pipeline):
            idempotency = claim_now(idempotency)
            if idempotency.replay is not None:
                return idempotency.replay

        def record(pipe: redis.client.Pipeline, kept: list[submission.Draft], errors: dict) -> None:
            answer.update(self.describe(kept[0].job))
            if idempotency is not None:
                idempotency.record(answer, pipe)

        try:
            kept, errors = submission.write(
                self.connection,
                [item],
                principal=principal or Principal(name=owner, is_admin=owner is None),
                max_queue_depth=self.settings.max_queue_depth,
                known_depth=idempotency.queue_depth if idempotency is not None else None,
                also=record,
                pipeline=pipeline,
                absent=[idempotency.key] if idempotency is not None and not idempotency.claimed else None,
                rate=rate,
            )
        except Exists as exc:
            return settle(idempotency, exc.args[1])  # type: ignore[arg-type] - only with a claim
        if errors:
            raise InvalidSubmission(errors)
        if pipeline is not None:
            return answer
        # Under Sentinel: no 202 before a replica holds the job (NotReplicated is a 503).
        connections.wait_for_replicas(self.connection, self.settings)
        log.info("job submitted", extra={"job_id": item.job.id, "job_type": answer["type"], "queue": item.queue.name})
        return answer

    def idempotency(self, owner: str | None, key: str, payload: dict) -> IdempotencyClaim:
        """An ``Idempotency-Key`` for :meth:`submit` (or :meth:`submit_batch`) to claim itself, in
        the script that writes the job: no round trip of its own (:func:`~app.jobs.submitting.idempotency.unclaimed`).
        After the submission, ``claim.replay`` is set when the key already had an answer: the
        answer returned is that one, to replay."""
        return unclaimed(self.connection, owner, key, payload)

    # -- look up --

    def fetch(self, job_id: str, principal: Principal = ANONYMOUS) -> Job:
        if not schemas.JOB_ID.fullmatch(job_id):  # fullmatch: "$" takes a trailing newline
            raise JobNotFound(job_id)
        try:
            job = OffloadJob.fetch(job_id, connection=self.connection, serializer=self.serializer)
        except NoSuchJobError:
            raise JobNotFound(job_id) from None
        if not is_offload_job(job.meta) or not principal.may_see(job.meta.get("owner")):
            raise JobNotFound(job_id)
        return job

    def get(self, job_id: str, principal: Principal = ANONYMOUS) -> dict:
        return self.describe(self.fetch(job_id, principal))

    def wait(self, job_id: str, principal: Principal, timeout: float, stop: Callable[[], bool] | None = None) -> dict:
        """The job once it is terminal, or as it is after ``timeout`` seconds (or once ``stop()``
        says the server is stopping: a wait must not hold its graceful shutdown up).

        Waiting is event driven: workers publish a job's id when it starts, reports progress
        and ends, and one listener thread per process wakes the waiters, which read the job
        again when the change may have ended it (not for a start or a progress report). A
        re-read every couple of seconds covers an event lost to a reconnect.
        """
        deadline = time.monotonic() + timeout
        with self._events.watch(job_id) as event:
            while True:
                resource = self.get(job_id, principal)
                while True:
                    remaining = deadline - time.monotonic()
                    if resource["status"] in schemas.TERMINAL_STATUSES or remaining <= 0 or (stop is not None and stop()):
                        return resource
                    woken = event.wait(min(remaining, REREAD_SECONDS))
                    reread = not woken or event.may_have_ended  # a start or progress cannot end it: wait on
                    event.clear()
                    if reread:
                        break

    def follow(self, job_id: str, principal: Principal, seconds: float) -> Iterator[dict]:
        """The job now, then again each time a worker announces a change, for ``seconds``
        (see :func:`app.jobs.running.events.follow`). An unknown job raises :class:`JobNotFound` here,
        before anything is streamed."""
        self.fetch(job_id, principal)
        return follow(self._events, job_id, lambda: self.get(job_id, principal), seconds)

    #: The job resource, without ``links`` (see :func:`app.jobs.reading.resource.describe`).
    describe = staticmethod(describe_job)

    # -- control --

    def cancel(self, job_id: str, principal: Principal) -> dict:
        """Cancel a queued or scheduled job, or stop a running one."""
        job = self.fetch(job_id, principal)
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED:
            # The task's ctx.cancelled() reads it; the worker kills the job after CANCEL_GRACE_SECONDS.
            self.connection.set(cancel_key(job.id), 1, ex=self.settings.failure_ttl_seconds)
            try:
                send_stop_job_command(self.connection, job.id, serializer=self.serializer)
            except InvalidJobOperation:
                raise JobStateConflict("the job is between workers; try again") from None
        elif public_status(status) in ("queued", "scheduled", "deferred"):
            with self.connection.pipeline() as pipe:
                if job.has_rate_limit:
                    concurrency.cancel(job)  # RQ frees and refills its slot in a script of its own
                else:
                    job.cancel(pipeline=pipe)
                endings.job_ended(job, pipe, finished=False)  # its batch; its dependents will wait in vain
                pipe.execute()
            self._events.publish(job.id)
            self.settle_ends()
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
        waiting_on = dependencies.unfinished_dependency(self.connection, job)
        if waiting_on is not None:
            raise JobStateConflict(f"its dependency {waiting_on[0]} is {waiting_on[1]}: retry this job once that has finished")
        try:
            registry.requeue(job)
        except InvalidJobOperation:
            # Not in the registry (e.g. a stopped job): put it on its queue directly.
            self.queues[job.origin].enqueue_job(job)
        if job.meta.get("batch_id"):
            with self.connection.pipeline() as pipe:
                endings.job_reopened(job, pipe)
                pipe.execute()
        job.refresh()
        return self.describe(job)

    def settle_ends(self) -> None:
        """Fail the dependents of jobs that will never finish, and queue the callbacks of batches
        that have ended (workers do this too, and their maintenance catches anything left)."""
        try:
            dependencies.fail_orphans(self.connection, self.settings)
            batches.queue_due_callbacks(self.connection, self.settings)
        except redis.RedisError:
            log.warning("could not settle the ends of jobs now; worker maintenance will")

    # -- batches --

    def submit_batch(self, items: list[tuple[int, schemas.JobOptions]], **options: Any) -> dict:
        """Many jobs in one transaction, as one batch (see :func:`app.jobs.submitting.batches.submit`)."""
        answer = batches.submit(self.connection, self.queues, self.settings, items, **options)
        connections.wait_for_replicas(self.connection, self.settings)
        return answer

    def get_batch(self, batch_id: str, principal: Principal = ANONYMOUS) -> dict:
        return batches.get(self.connection, batch_id, principal)

    # -- list, search, bulk actions --

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
        """Jobs newest first, and the cursor of the next page (see :mod:`app.jobs.reading.listing`)."""
        return list_jobs(
            self.connection, principal, status=status, type=type, queue=queue, limit=limit, cursor=cursor
        )

    def search(
        self,
        principal: Principal,
        *,
        status: str | None = None,
        type: str | None = None,  # noqa: A002 - the query parameter's name
        queue: str | None = None,
        id_prefix: str | None = None,
        metadata_key: str | None = None,
        metadata_value: str | None = None,
        error_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict], str | None]:
        """The jobs ``GET /jobs`` finds with search parameters, newest first, and the cursor to go on
        from (ValueError for a bad cursor); a page may be short, even empty, with a cursor
        (:mod:`app.jobs.reading.search`). ``metadata_key`` and ``metadata_value`` together: that key with
        that value; alone: has that key, or some key has that value."""
        job_filter = JobFilter(
            statuses=frozenset([status]) if status else frozenset(),
            type=type,
            queue=queue,
            id_prefix=id_prefix,
            metadata={metadata_key: metadata_value} if metadata_key is not None and metadata_value is not None else {},
            metadata_key=metadata_key if metadata_value is None else None,
            metadata_value=metadata_value if metadata_key is None else None,
            error_type=error_type,
        )
        return search_jobs(self.connection, principal, job_filter, limit=limit, cursor=cursor)

    def bulk(self, request: BulkAction, principal: Principal) -> BulkOutcome:
        """One page of a bulk action (``POST /jobs/bulk``; :mod:`app.jobs.admin.bulk`): ValueError for a
        bad cursor."""
        job_filter = request.filter.job_filter()
        return self._bulk.run(request.action, principal, job_filter, limit=request.limit, cursor=request.cursor)

    # -- queues (app.jobs.admin.queues_admin) --

    @property
    def queue_names(self) -> list[str]:
        return list(self.queues)

    def list_queues(self) -> list[dict]:
        """Each queue's counts, paused state and live workers."""
        return self._admin.overview()

    def describe_queue(self, name: str) -> dict:
        """One queue as :meth:`list_queues` shows it; :class:`UnknownQueue` if offload has none so named."""
        return self._admin.describe(name)

    def pause_queue(self, name: str) -> dict:
        """Stop workers taking jobs from the queue (idempotent); answers the queue as it now is."""
        return self._admin.pause(name)

    def resume_queue(self, name: str) -> dict:
        """Let workers take jobs from the queue again (idempotent); answers the queue as it now is."""
        return self._admin.resume(name)

    def concurrency(self, principal: Principal) -> list[dict]:
        """The concurrency keys and fair shares in use: everyone's for an admin, else the caller's."""
        return self._admin.concurrency(principal)

    def held_back(self) -> dict:
        """What offload holds back that RQ's own tools cannot see: the paused queues, and the
        jobs waiting for a concurrency slot (:meth:`app.jobs.admin.queues_admin.QueueAdmin.held_back`)."""
        return self._admin.held_back()

    # -- schedules (app.jobs.scheduling.schedules; the workers' tickers run them) --

    def create_schedule(self, request: ScheduleRequest, owner: str | None) -> dict:
        """Store a schedule (its job validated by the caller); :class:`ScheduleLimitReached` at
        MAX_SCHEDULES."""
        return self._schedules.create(request, owner)

    def get_schedule(self, schedule_id: str, principal: Principal) -> dict:
        return self._schedules.get(schedule_id, principal)

    def update_schedule(self, schedule_id: str, patch: SchedulePatch, principal: Principal) -> dict:
        return self._schedules.update(schedule_id, patch, principal)

    def delete_schedule(self, schedule_id: str, principal: Principal) -> None:
        self._schedules.delete(schedule_id, principal)

    def list_schedules(
        self, principal: Principal, *, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict], str | None]:
        """Schedules newest first, and the cursor of the next page (ValueError for a bad cursor)."""
        return self._schedules.list(principal, limit=limit, cursor=cursor)

    # -- figures --

    def stats(self) -> dict:
        """Counters and gauges for /metrics, read from Redis so that every web process
        reports the same figures for jobs run by any worker on any host; ``runtime_buckets`` are
        the upper bounds (seconds) the run-time counters are kept in."""
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
        return {"counters": counters, "queues": depth, "workers": len(workers), "runtime_buckets": RUNTIME_BUCKETS}

    def timeseries(self, minutes: int) -> dict:
        """Per-minute counts per queue over the last ``minutes`` minutes, for the page's charts
        (:mod:`app.jobs.admin.timeseries`)."""
        return read_timeseries(self.connection, list(self.queues), minutes)

    # -- rq-dashboard --

    @staticmethod
    def prepare_rq_dashboard(web: ModuleType) -> None:
        """Tell rq-dashboard's ``web`` module how offload stores jobs (:mod:`app.jobs.reading.dashboard`)."""
        dashboard.prepare(web)

"""An opt-in faster worker: one long-lived work horse instead of a fork per job, and three
Redis round trips per job instead of about twenty.

Selected with ``WORKER_CLASS=fast`` (the default stays RQ's forking worker). It keeps what
the forking worker promises:

* **Isolation.** Jobs run in a child process (the *work horse*), never in the worker
  process itself. The horse is forked once and then serves job after job over a pipe, as a
  Celery prefork child does; it is replaced when it dies, when it has run
  :attr:`horse_max_jobs` jobs, or when its memory passes :attr:`horse_max_rss_mb`.
* **Abandoned jobs are found.** The worker process (not the horse) writes the job's
  execution, heartbeats and result, exactly as RQ's worker does: a ``started`` entry whose
  heartbeat lapses (two missed beats, see :class:`~app.workers.OffloadWorkerMixin`) is
  retried or failed by maintenance.
* **The horse dies with its worker** (``PR_SET_PDEATHSIG``), and a horse that dies or is
  killed mid-job (timeout + 60 s, ``POST /jobs/{id}/cancel``, OOM) fails, stops or retries
  its job as with RQ (``Work-horse terminated unexpectedly``).
* **Shutdown.** SIGTERM finishes the job in hand and exits; a second SIGTERM kills the horse
  and requeues the job at once (the mixin's cold-shutdown path).
* **At-most-once email** is the task's own receipt check, unchanged.

Where the time went, measured with a profiler and Valkey's ``INFO commandstats`` (see
``bench/FINDINGS.md``): a fork and reap per job, and about 23 round trips per job, most of
them lone ``HSET``/``EXPIRE`` heartbeats and status writes. Here a job costs:

1. one ``EVALSHA``: a Lua script checks ``rq suspend``, pops the first non-empty queue (in
   the worker's order; ``LMOVE`` into RQ's intermediate queue when the worker serves one
   queue, as RQ does) and returns the job's hash;
2. one ``MULTI``/``EXEC`` marking it started: RQ's ``prepare_execution`` and the horse's
   ``prepare_job_execution`` (execution, started registry, worker state, heartbeats,
   offload's attempt and ``started`` counters) in one transaction instead of two;
3. one ``MULTI``/``EXEC`` with the outcome: the result, registries, execution clean-up,
   worker counters, offload's metrics and the ``?wait=`` announcement (``PUBLISH`` inside
   the transaction, so a waiter never reads the job before its result).

The horse itself touches Redis only when the task does (progress, the email receipt), and
hands back, with the result, what the task changed on its job (``meta``, ``retries_left``:
see ``_HORSE_STATE``), so the outcome is recorded as RQ's horse would record it. The job's
compressed payload is decompressed only in the horse, and written back as read instead of
compressed again (RQ re-saves the whole job on success: ~30 ms of zlib for a 1 MiB text).

Differences you can see: two INFO lines per job (taken; "Successfully completed job ... in ...");
no ``RQ_JOB_ID`` environment variable (glibc keeps every value ever set, a leak of ~50 bytes a
job; ``rq.get_current_job()`` still works). The scheduler is offload's (``OffloadScheduler``,
from the mixin): it survives failovers and dies with its worker, as with the forking worker.

Jobs that use RQ features offload never sets (dependents, RQ webhooks, repeats, RQ rate
limits, a ``Retry`` return value) and every failure take RQ's own code paths unchanged.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import time
import zlib
from multiprocessing.connection import Connection, Pipe
from typing import Any

import redis
from rq.callbacks import execute_failure_callback, execute_success_callback
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DequeueTimeout, StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus, Retry
from rq.job_lifecycle import format_exc_info
from rq.logutils import blue, green
from rq.queue import Queue
from rq.suspension import WORKERS_SUSPENDED
from rq.timeouts import JobTimeoutException
from rq.utils import now, utcformat
from rq.worker import Worker, WorkerStatus
from rq.worker.base import DequeueStrategy

from . import logs
from .queueing import publish_job_ended, record_outcome
from .workers import OffloadWorkerMixin

log = logging.getLogger("offload.worker")
rq_log = logging.getLogger("rq.worker")

# KEYS: the suspension flag, then each queue followed by its intermediate list, in the order
# the worker serves them. ARGV[1]: the job key prefix.
# Returns false (queues empty), {"suspended"}, {"again"} (too many vanished jobs in a row),
# or {queue_key, job_id, [the job's hash as a flat list]}. The job moves (LMOVE) onto its
# queue's intermediate list, where it stays until the start transaction registers it as
# started and takes it off: a worker killed in between strands it there, and maintenance
# puts it back, instead of losing it as a plain LPOP/BLPOP would.
_DEQUEUE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {'suspended'} end
for _ = 1, 100 do
  local moved = false
  for i = 2, #KEYS, 2 do
    local id = redis.call('LMOVE', KEYS[i], KEYS[i + 1], 'LEFT', 'RIGHT')
    if id then
      moved = true
      local fields = redis.call('HGETALL', ARGV[1] .. id)
      if #fields > 0 then return {KEYS[i], id, fields} end
      redis.call('LREM', KEYS[i + 1], 1, id)  -- the job expired while queued: skip it, as RQ does
      break
    end
  end
  if not moved then return false end
end
return {'again'}
"""


class _NullPipeline:
    """Swallows the writes of ``Job.prepare_for_execution`` when the horse replays it to get
    the same in-memory job the worker process has (the worker already wrote them)."""

    def __getattr__(self, name: str):  # noqa: ANN204
        return lambda *args, **kwargs: self


class _Batched:
    """A stand-in for the Redis client that queues commands on ``pipe`` instead of sending them.

    Passed to offload's own ``record_outcome`` and ``publish_job_ended`` so that their
    commands ride in the outcome transaction, and stay whatever those functions write."""

    def __init__(self, pipe: redis.client.Pipeline) -> None:
        self._pipe = pipe

    def pipeline(self, transaction: bool = True) -> _Batched:  # noqa: ARG002
        return self

    def __enter__(self) -> _Batched:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self) -> list:
        return []

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._pipe, name)


_PENDING = object()
_EMPTY_PAYLOAD = zlib.compress(b"")


class _KeepsStoredPayload:
    """Job mixin for the stored payload (the zlib-compressed function and arguments).

    * It is decompressed on first use, not on restore: the worker process never needs the
      arguments (only the horse does), and for a 1 MiB text that is ~3 ms saved per job.
    * On save, the payload read from Redis is written back as it was while ``data`` is
      unchanged, instead of being compressed again (RQ saves the whole job on success:
      for a 1 MiB text a zlib pass of ~10 ms)."""

    _stored_payload: bytes | None = None
    _stored_data: Any = None
    _stored_hash: dict | None = None

    def restore(self, raw_data):  # noqa: ANN001, ANN201
        payload = raw_data.get(b"data", raw_data.get("data"))
        if not isinstance(payload, bytes):
            return super().restore(raw_data)  # type: ignore[misc]
        key = b"data" if b"data" in raw_data else "data"
        result = super().restore({**raw_data, key: _EMPTY_PAYLOAD})  # type: ignore[misc]
        self._data = _PENDING  # type: ignore[attr-defined]
        self._stored_payload, self._stored_data = payload, _PENDING
        self._stored_hash = raw_data  # what the horse rebuilds the job from
        return result

    @property
    def data(self) -> bytes:
        if self._data is _PENDING:  # type: ignore[attr-defined]
            try:
                self._data = zlib.decompress(self._stored_payload)  # type: ignore[arg-type,attr-defined]
            except zlib.error:
                self._data = self._stored_payload  # type: ignore[attr-defined] - stored uncompressed (RQ's fallback)
            self._stored_data = self._data  # type: ignore[attr-defined]
        return Job.data.fget(self)  # type: ignore[attr-defined]

    @data.setter
    def data(self, value: bytes) -> None:
        Job.data.fset(self, value)  # type: ignore[attr-defined]

    # RQ builds a new registry object each time one of these is read (a few times a job), and
    # each build checks its serializer against a runtime Protocol, which is slow.
    @property
    def started_job_registry(self):  # noqa: ANN201
        return self._registry("started_job_registry")

    @property
    def finished_job_registry(self):  # noqa: ANN201
        return self._registry("finished_job_registry")

    def _registry(self, which: str):  # noqa: ANN202
        cache = self.__dict__.setdefault("_registries", {})
        registry = cache.get(which)
        if registry is None or registry.name != self.origin or registry.connection is not self.connection:  # type: ignore[attr-defined]
            registry = cache[which] = getattr(super(), which)
        return registry

    def to_dict(self, include_meta: bool = True, include_result: bool = True) -> dict:
        payload = self._stored_payload
        if payload is None or self._data is not self._stored_data:  # type: ignore[attr-defined]
            return super().to_dict(include_meta=include_meta, include_result=include_result)  # type: ignore[misc]
        data = self._data  # type: ignore[attr-defined]
        self._data = b""  # compressing nothing costs nothing; the real payload goes back below
        try:
            mapping = super().to_dict(include_meta=include_meta, include_result=include_result)  # type: ignore[misc]
        finally:
            self._data = data
        mapping["data"] = payload
        return mapping


_payload_keeping_classes: dict[type, type] = {}


def _payload_keeping(job_class: type[Job]) -> type[Job]:
    if issubclass(job_class, _KeepsStoredPayload):
        return job_class
    if job_class not in _payload_keeping_classes:
        _payload_keeping_classes[job_class] = type(job_class.__name__, (_KeepsStoredPayload, job_class), {})
    return _payload_keeping_classes[job_class]


class PersistentHorseWorker(Worker):
    """RQ's worker with a long-lived work horse and batched bookkeeping (see the module)."""

    #: Replace the horse after this many jobs (0: never), as Celery's max_tasks_per_child.
    horse_max_jobs: int = 10_000
    #: Replace the horse once its resident memory passes this many MiB (0: never).
    horse_max_rss_mb: int = 512
    #: Check the horse's memory every this many jobs.
    horse_rss_check_every: int = 50

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        job_class = kwargs.get("job_class") or self.job_class
        if isinstance(job_class, str):
            from rq.utils import import_job_class

            job_class = import_job_class(job_class)
        kwargs["job_class"] = _payload_keeping(job_class)
        super().__init__(*args, **kwargs)
        self._horse_process: int = 0  # the horse's pid, busy or idle; _horse_pid is set only while it runs a job
        self._horse_conn: Connection | None = None
        self._horse_jobs = 0
        self._queues_by_key: dict[str, Queue] = {}
        self._dequeue_script = self.connection.register_script(_DEQUEUE_LUA)
        self._burst = False

    # -- the work loop: RQ's, less a suspension check and a heartbeat per job (both are
    #    folded into the dequeue script and the outcome transaction) --

    def work(  # noqa: C901 - RQ's loop, kept recognisable
        self,
        burst: bool = False,
        logging_level: str | None = None,
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
        max_jobs: int | None = None,
        max_idle_time: int | None = None,
        with_scheduler: bool = False,
        dequeue_strategy: DequeueStrategy = DequeueStrategy.DEFAULT,
    ) -> bool:
        self.bootstrap(logging_level, date_format, log_format)
        self._dequeue_strategy = dequeue_strategy
        self._burst = burst
        completed_jobs = 0
        if with_scheduler:
            self._start_scheduler(burst, logging_level, date_format, log_format)
        self._install_signal_handlers()
        try:
            while True:
                try:
                    if self.should_run_maintenance_tasks:
                        self.run_maintenance_tasks()
                    if self._stop_requested:
                        self.log.info("Worker %s: stopping on request", self.name)
                        break
                    timeout = None if burst else self.dequeue_timeout
                    result = self.dequeue_job_and_maintain_ttl(timeout, max_idle_time)
                    if result is None:
                        if burst:
                            self.log.info("Worker %s: done, quitting", self.name)
                        elif max_idle_time is not None:
                            self.log.info("Worker %s: idle for %d seconds, quitting", self.name, max_idle_time)
                        break
                    job, queue = result
                    self.execute_job(job, queue)
                    completed_jobs += 1
                    if max_jobs is not None and completed_jobs >= max_jobs:
                        self.log.info("Worker %s: finished executing %d jobs, quitting", self.name, completed_jobs)
                        break
                except redis.exceptions.TimeoutError:
                    self.log.error("Worker %s: Redis connection timeout, quitting...", self.name)
                    break
                except StopRequested:
                    break
                except SystemExit:
                    raise
                except:  # noqa: E722 - as RQ: log anything and leave the loop (run() starts again)
                    self.log.error("Worker %s: found an unhandled exception, quitting...", self.name, exc_info=True)
                    break
        finally:
            self.teardown()
        return bool(completed_jobs)

    def teardown(self) -> None:
        if not self.is_horse:
            self._retire_horse()
        super().teardown()

    # -- dequeue --

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):  # noqa: ANN201
        while True:
            try:
                popped = self._pop_ready()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                break  # the blocking path below waits for Redis with RQ's backoff
            if popped == "suspended":
                self.check_for_suspension(self._burst)  # waits (or raises StopRequested in burst mode)
                continue
            if popped == "again":
                continue
            if popped is not None:
                return popped
            break
        return self._blocking_dequeue(timeout, max_idle_time)

    def _pop_ready(self) -> tuple[Job, Queue] | str | None:
        """One round trip: the next job of the first non-empty queue, with its hash."""
        keys = [WORKERS_SUSPENDED]
        for queue in self._ordered_queues:
            keys += [queue.key, queue.intermediate_queue_key]
        reply = self._dequeue_script(keys=keys, args=[self.job_class.redis_job_namespace_prefix])
        if not reply:
            return None
        if len(reply) == 1:
            return reply[0].decode()
        queue_key, job_id, flat = reply[0].decode(), reply[1].decode(), reply[2]
        queue = self._queue_for(queue_key)
        job = self.job_class(job_id, connection=self.connection, serializer=self.serializer)
        job.restore(dict(zip(flat[::2], flat[1::2], strict=True)))
        self._dequeued(job, queue)
        return job, queue

    def _queue_for(self, queue_key: str) -> Queue:
        queue = self._queues_by_key.get(queue_key)
        if queue is None:
            queue = self.queue_class.from_queue_key(
                queue_key,
                connection=self.connection,
                job_class=self.job_class,
                serializer=self.serializer,
                death_penalty_class=self.death_penalty_class,
            )
            self._queues_by_key[queue_key] = queue
        return queue

    def _dequeued(self, job: Job, queue: Queue) -> None:
        self.reorder_queues(reference_queue=queue)
        job.redis_server_version = self.get_redis_server_version()
        # As RQ's: the worker that takes a job says so (the other INFO line is at its end).
        if self.log.isEnabledFor(logging.INFO):
            if self.log_job_description:
                self.log.info("Worker %s: %s: %s (%s)", self.name, green(queue.name), blue(job.description), job.id)
            else:
                self.log.info("Worker %s: %s: %s", self.name, green(queue.name), job.id)

    def _blocking_dequeue(self, timeout: int | None, max_idle_time: int | None):  # noqa: ANN202
        """RQ's ``dequeue_job_and_maintain_ttl`` with its heartbeats pipelined and without the
        one after the pop (the start transaction carries it)."""
        qnames = ",".join(self.queue_names())
        self.procline("Listening on " + qnames)
        connection_wait_time = 1.0
        idle_since = now()
        idle_time_left = max_idle_time
        result = None
        while True:
            try:
                with self.connection.pipeline() as pipe:
                    self.set_state(WorkerStatus.IDLE, pipeline=pipe)
                    self.heartbeat(pipeline=pipe)
                    pipe.execute()
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                if timeout is not None and idle_time_left is not None:
                    timeout = min(timeout, idle_time_left)
                result = self.queue_class.dequeue_any(
                    self._ordered_queues,
                    timeout,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
                if result is not None:
                    self._dequeued(*result)
                break
            except DequeueTimeout:
                if max_idle_time is not None:
                    idle_for = (now() - idle_since).total_seconds()
                    idle_time_left = int(max_idle_time - idle_for + 0.999)
                    if idle_time_left <= 0:
                        break
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                self.log.error(
                    "Worker %s: could not connect to Redis instance: %s retrying in %d seconds...",
                    self.name,
                    exc,
                    connection_wait_time,
                )
                time.sleep(connection_wait_time)
                connection_wait_time = min(connection_wait_time * self.exponential_backoff_factor, self.max_connection_wait_time)
        return result

    # -- one job --

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution, has_dependents = self._start(job, queue)
        reply = self._run_in_horse(job, queue, execution)
        if reply is None:
            self._horse_lost(job, queue, execution)
            self.set_state(WorkerStatus.IDLE)
            return
        outcome, value, started_at, ended_at, state = reply
        job.started_at, job.ended_at = started_at, ended_at
        for name, attribute in state.items():  # what the task changed on its job (see _HORSE_STATE)
            setattr(job, name, attribute)
        if outcome == "ok" and not isinstance(value, Retry) and not has_dependents and self._plain(job):
            self._succeeded(job, queue, execution, value)  # sets IDLE in its transaction
            return
        if outcome == "ok":
            self._succeeded_as_rq(job, queue, execution, value)
        else:
            self._failed(job, queue, execution, value)
        self.set_state(WorkerStatus.IDLE)

    def _start(self, job: Job, queue: Queue) -> tuple[Execution, bool]:
        """RQ's ``prepare_execution`` (worker) and ``prepare_job_execution`` (horse) in one transaction."""
        heartbeat_ttl = self.get_heartbeat_ttl(job)
        with self.connection.pipeline() as pipe:
            execution = Execution.create(job, heartbeat_ttl, pipeline=pipe, worker_name=self.name)
            self.executions[execution.id] = execution
            self._beat(pipe, WorkerStatus.BUSY, heartbeat_ttl)
            job.prepare_for_execution(self.name, pipeline=pipe)  # also the job's heartbeat (RQ writes it twice)
            pipe.persist(job.key)
            # Off the intermediate list in the same transaction that registers it as started
            # (RQ does this only when it serves one queue; the dequeue script always uses it).
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            pipe.scard(job.dependents_key)
            replies = pipe.execute()
        return execution, bool(replies[-1])

    def _beat(self, pipe: redis.client.Pipeline, state: str, ttl: int | None = None) -> None:
        """RQ's ``set_state`` and ``heartbeat`` in one HSET (RQ sends two)."""
        ttl = ttl or self.worker_ttl + 60
        self._state = state
        self.last_heartbeat = now()
        pipe.hset(self.key, mapping={"state": state, "last_heartbeat": utcformat(self.last_heartbeat)})
        pipe.expire(self.key, ttl)
        pipe.expire(self.executions_key, ttl)

    @staticmethod
    def _plain(job: Job) -> bool:
        """No RQ feature whose bookkeeping the fast outcome path leaves to RQ's own code."""
        return not job.webhooks and not job.repeats_left and not job.has_rate_limit

    def _succeeded(self, job: Job, queue: Queue, execution: Execution, return_value: Any) -> None:
        """RQ's ``handle_job_success`` plus offload's outcome bookkeeping, in one transaction."""
        job._result = return_value
        job._status = JobStatus.FINISHED
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        callback = bool(job.meta.get("callback_url"))
        with self.connection.pipeline() as pipe:
            batched = _Batched(pipe)
            job.last_heartbeat = now()  # saved with the job below (RQ writes it on its own first)
            self.increment_successful_job_count(pipeline=pipe)
            self.increment_total_working_time(job.ended_at - job.started_at, pipe)
            if result_ttl != 0:
                job._handle_success(
                    result_ttl,
                    pipeline=pipe,
                    worker_name=self.name,
                    execution_id=execution.id,
                    execution_started_at=execution.created_at,
                    execution_ended_at=job.ended_at,
                )
            job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
            job._status = JobStatus.FINISHED
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            record_outcome(batched, job, "finished")  # type: ignore[arg-type]
            if not callback:
                publish_job_ended(batched, job.id)  # type: ignore[arg-type]
            self._beat(pipe, WorkerStatus.IDLE)
            # A dependent added while the job ran (offload adds none) is enqueued below.
            pipe.scard(job.dependents_key)
            replies = pipe.execute()
        if replies[-1]:
            self._enqueue_dependents_safely(queue, job)
        self._release_slot_safely(job)
        if callback:
            self._job_ended(job)  # type: ignore[attr-defined] - the mixin's: announce, queue the callback
        self._log_success(job)

    def _succeeded_as_rq(self, job: Job, queue: Queue, execution: Execution, return_value: Any) -> None:
        """RQ's ``_finalize_success``, less the success callback (the horse ran it)."""
        ended_at = job.ended_at
        self.handle_execution_ended(job, queue, job.success_callback_timeout)
        job.ended_at = ended_at or job.ended_at
        job._result = return_value
        if isinstance(return_value, Retry):
            self.handle_job_retry(
                job=job, queue=queue, retry=return_value, started_job_registry=queue.started_job_registry, execution=execution
            )
            return
        job._status = JobStatus.FINISHED
        self.handle_job_success(job=job, queue=queue, started_job_registry=queue.started_job_registry, execution=execution)
        job.send_webhooks(JobStatus.FINISHED)
        self._log_success(job)

    def _failed(self, job: Job, queue: Queue, execution: Execution, exc_string: str) -> None:
        """RQ's ``_finalize_failure``, less the failure callback and exception handlers (the horse ran them)."""
        job._status = JobStatus.FAILED
        ended_at = job.ended_at
        self.handle_execution_ended(job, queue, job.failure_callback_timeout)
        job.ended_at = ended_at or job.ended_at
        self.handle_job_failure(
            job=job, exc_string=exc_string, queue=queue, started_job_registry=queue.started_job_registry, execution=execution
        )

    def _log_success(self, job: Job) -> None:
        """One line per finished job at INFO, with its duration, after the dequeue line. RQ
        writes three at the end ("Job OK", how long the result is kept): at a few hundred jobs
        a second, JSON log lines are a tenth of the worker's CPU."""
        self.log.info("Successfully completed job %s in %ss on worker %s", job.id, job.ended_at - job.started_at, self.name)

    # -- the horse, seen from the worker --

    def _run_in_horse(self, job: Job, queue: Queue, execution: Execution):  # noqa: ANN202
        """Hand the job to the horse and wait for its answer, beating the heartbeats meanwhile.
        Returns None when the horse died or was killed before answering."""
        raw = getattr(job, "_stored_hash", None) or self.connection.hgetall(job.key)
        payload = (job.id, raw, job.worker_name)
        for attempt in (1, 2):
            if not self._horse_alive():
                self._spawn_horse()
            try:
                self._horse_conn.send(payload)  # type: ignore[union-attr]
                break
            except OSError:
                self._reap_horse(block=True)  # died while idle (e.g. OOM): start another and hand it the job
                if attempt == 2:
                    raise
        # (Unlike RQ, no RQ_JOB_ID in the environment: glibc keeps every value ever given to
        # setenv(), so a variable that changes per job grows the process by ~50 bytes a job.
        # rq.get_current_job() is the way to the job.)
        self._horse_pid = self._horse_process
        self.procline(f"Horse {self._horse_process} running {job.id} since {time.time()}")
        conn = self._horse_conn
        assert conn is not None
        while True:
            try:
                if conn.poll(self.job_monitoring_interval):
                    reply = conn.recv()
                    break
            except (EOFError, OSError):
                reply = None
                break
            working_time = (now() - job.started_at).total_seconds() if job.started_at else 0.0
            if job.timeout != -1 and working_time > (job.timeout or self.queue_class.DEFAULT_TIMEOUT) + 60:
                # The horse ignored its own alarm (stuck in C code): kill it from here, as RQ does.
                self.heartbeat(self.job_monitoring_interval + 60)
                self.kill_horse()
                reply = None
                break
            self.maintain_heartbeats(job, execution)
        self._horse_pid = 0
        if reply is not None:
            self._horse_jobs += 1
            self._maybe_recycle_horse()
        return reply

    def _horse_lost(self, job: Job, queue: Queue, execution: Execution) -> None:
        """The end of RQ's ``monitor_work_horse`` when the horse exits without answering."""
        retpid, ret_val, rusage = self._reap_horse(block=True)
        self.executions.pop(execution.id, None)
        try:
            job_status = job.get_status()
        except Exception:  # noqa: BLE001 - InvalidJobOperation: finished and expired
            return
        if self._stopped_job_id == job.id:
            self._handle_stopped_job(job, queue, execution)
        elif job_status not in (JobStatus.FINISHED, JobStatus.FAILED):
            job.ended_at = now()
            signal_msg = f" (signal {os.WTERMSIG(ret_val)})" if ret_val and os.WIFSIGNALED(ret_val) else ""
            exc_string = f"Work-horse terminated unexpectedly; waitpid returned {ret_val}{signal_msg}; "
            self.log.warning("Worker %s: job %s failed (%s)", self.name, job.id, exc_string)
            self.handle_work_horse_killed(job, retpid, ret_val, rusage)
            self.handle_job_failure(job, queue=queue, exc_string=exc_string, execution=execution)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Kill the horse's process group, but only while it runs a job: RQ's version turns a
        horse pid of 0 (a job that just ended) into this worker's own process group."""
        pid = self._horse_pid
        if not pid:
            return
        try:
            os.killpg(pid, sig)  # the horse leads its own group (setpgrp)
            self.log.info("Worker %s: killed horse pid %s", self.name, pid)
        except ProcessLookupError:
            self.log.debug("Worker %s: horse already dead", self.name)

    def _horse_alive(self) -> bool:
        if not self._horse_process:
            return False
        try:
            pid, _ = os.waitpid(self._horse_process, os.WNOHANG)
        except ChildProcessError:
            pid = self._horse_process
        if pid == 0:
            return True
        self._forget_horse()
        return False

    def _reap_horse(self, block: bool):  # noqa: ANN202
        pid = self._horse_process
        result: tuple = (None, None, None)
        if pid:
            try:
                result = os.wait4(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                pass
        self._forget_horse()
        return result

    def _forget_horse(self) -> None:
        if self._horse_conn is not None:
            self._horse_conn.close()
        self._horse_conn = None
        self._horse_process = 0
        self._horse_pid = 0

    def _spawn_horse(self) -> None:
        ours, theirs = Pipe(duplex=True)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the horse
            ours.close()
            code = 1
            try:
                self._horse_main(theirs, parent)
                code = 0
            except BaseException:  # noqa: BLE001
                pass
            os._exit(code)
        theirs.close()
        self._horse_process, self._horse_conn, self._horse_jobs = pid, ours, 0
        self.procline(f"Forked horse {pid} at {time.time()}")

    def _maybe_recycle_horse(self) -> None:
        if self.horse_max_jobs and self._horse_jobs >= self.horse_max_jobs:
            self._retire_horse()
        elif self.horse_max_rss_mb and self._horse_jobs % self.horse_rss_check_every == 0:
            if _rss_mb(self._horse_process) > self.horse_max_rss_mb:
                log.info("work horse %s is over %s MiB; replacing it", self._horse_process, self.horse_max_rss_mb)
                self._retire_horse()

    def _retire_horse(self) -> None:
        """Ask an idle horse to exit (kill it if it does not within 5 s) and reap it."""
        pid, conn = self._horse_process, self._horse_conn
        if not pid:
            return
        try:
            if conn is not None:
                conn.send(None)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            time.sleep(0.005)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._forget_horse()

    # -- the horse itself --

    def _horse_main(self, conn: Connection, parent: int) -> None:
        os.setpgrp()
        random.seed()
        self.setup_work_horse_signals()  # SIGINT ignored, SIGTERM default, dies with the worker
        if os.getppid() != parent:  # the worker died before the death signal was armed
            return
        self._is_horse = True
        self.log = rq_log
        self.executions = {}
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message is None:
                return
            reply = self._horse_perform(*message)
            try:
                conn.send(reply)
            except OSError:
                raise
            except Exception as exc:  # noqa: BLE001 - the return value does not pickle (nothing was sent)
                conn.send(("failed", f"{type(exc).__name__}: cannot hand the result back: {exc}", *reply[2:]))

    def _horse_perform(self, job_id: str, raw: dict, worker_name: str):  # noqa: ANN202
        """RQ's ``perform_job`` minus its Redis writes, which the worker process makes."""
        job = self.job_class(job_id, connection=self.connection, serializer=self.serializer)
        job.restore(raw)
        job.prepare_for_execution(worker_name, pipeline=_NullPipeline())  # same in-memory job as the worker's
        job_token = logs.job_id_var.set(job.id)
        request_token = logs.request_id_var.set(job.meta.get("request_id"))
        job.started_at = now()
        try:
            timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
            with self.death_penalty_class(timeout, JobTimeoutException, job_id=job.id):
                self.log.debug("Worker %s: performing job %s ...", self.name, job.id)
                return_value = job.perform()
            job.ended_at = now()
            if not isinstance(return_value, Retry):
                self.serializer.dumps(return_value)  # fails here, as the result save would in RQ
                execute_success_callback(job, self.death_penalty_class, return_value)
            return ("ok", return_value, job.started_at, job.ended_at, _job_state(job))
        except:  # noqa: E722 - as RQ's perform_job: any failure is the job's
            exc_info = sys.exc_info()
            job.ended_at = job.ended_at or now()
            try:
                execute_failure_callback(job, self.death_penalty_class, *exc_info)
            except:  # noqa: E722
                exc_info = sys.exc_info()
            self.handle_exception(job, *exc_info)
            return ("failed", format_exc_info(exc_info), job.started_at, job.ended_at, _job_state(job))
        finally:
            logs.job_id_var.reset(job_token)
            logs.request_id_var.reset(request_token)


#: What a task may change on its own job, handed back from the horse so that the worker
#: process records the outcome with it, as RQ's horse (which records it itself) would:
#: offload's send_email sets ``retries_left = 0`` when a retry could duplicate a message,
#: and count_words writes ``meta["progress"]``.
_HORSE_STATE = ("meta", "retries_left", "retry_intervals", "result_ttl", "failure_ttl", "ttl", "description")


def _job_state(job: Job) -> dict:
    return {name: getattr(job, name) for name in _HORSE_STATE if hasattr(job, name)}


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class OffloadFastWorker(OffloadWorkerMixin, PersistentHorseWorker):
    """offload's worker (``WORKER_CLASS=fast``): the mixin's announcements, metrics,
    callbacks, short heartbeats and shutdown handling on :class:`PersistentHorseWorker`."""

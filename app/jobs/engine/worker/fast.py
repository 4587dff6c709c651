"""offload's default worker: one long-lived work horse instead of a fork per job, and one
Redis round trip per job in steady state instead of about twenty.

Selected with ``WORKER_CLASS=fast`` (the default; ``forking`` selects RQ's own worker). It
keeps what the forking worker promises:

* **Isolation.** Jobs run in a child process (the *work horse*, :mod:`.horse`), never in the
  worker process itself. The horse is forked once and then serves job after job over a pipe, as
  a Celery prefork child does; it is replaced when it dies, when it has run
  :attr:`~.horse.HorseMixin.horse_max_jobs` jobs, or when its memory passes ``horse_max_rss_mb``.
* **Abandoned jobs are found.** The worker process (not the horse) writes the job's
  execution, heartbeats and result, exactly as RQ's worker does: a ``started`` entry whose
  heartbeat lapses (two missed beats, see :class:`~.base.EngineWorker`) is retried or failed
  by maintenance.
* **The horse dies with its worker** (``PR_SET_PDEATHSIG``), and a horse that dies or is
  killed mid-job (timeout + 60 s, ``POST /jobs/{id}/cancel``, OOM) fails, stops or retries
  its job as with RQ (``Work-horse terminated unexpectedly``).
* **Shutdown.** SIGTERM finishes the job in hand (and one already taken with its predecessor's
  outcome) and exits; a second SIGTERM kills the horse and requeues the job at once (the
  cold-shutdown path of :class:`~.base.EngineWorker`).
* **At-most-once email** is the task's own receipt check, unchanged.

Where the forking worker's time goes (measured in ``bench/FINDINGS.md``): a fork and reap per
job, and about 23 round trips per job, most of them lone ``HSET``/``EXPIRE`` heartbeats and
status writes. Here (the three steps of :meth:`app.worker.lifecycle.Lifecycle.run`):

1. **take and start**, one script: ``lua/dequeue.lua`` checks ``rq suspend``, takes the first
   job of the first non-empty queue not paused (in the worker's order; ``LMOVE`` onto that
   queue's intermediate list), and runs the start transaction's commands for it: RQ's
   ``prepare_execution`` and ``prepare_job_execution`` (execution, started registry, worker
   state, heartbeats, the job's attempts) and the listeners' start commands, recorded in Python
   by :meth:`PersistentHorseWorker._recorded_start` for a placeholder job (its id, queue and
   type), so the Lua knows nothing of RQ's storage. A job never waits taken but not started;
2. **perform**: the job goes to the horse, which runs it and answers over the pipe;
3. **book**, one ``MULTI``/``EXEC``: the result, registries, execution clean-up, worker counters
   and the listeners' outcome commands (metrics, and the ``?wait=`` announcement: ``PUBLISH``
   inside the transaction, so a waiter never reads the job before its result), and, last, the
   same dequeue script taking and starting the next job (BullMQ's ``moveToFinished``). So a
   queue that stays non-empty costs one round trip, one fsync, a job.

The next job is not taken with an outcome when a stop was asked for, when maintenance is due or
when ``max_jobs`` is reached; nor by RQ's own outcome code (failures, retries, a job with
dependents). An idle worker, woken by a token on the wake-up list, takes and starts its job
with the same script (:meth:`_dequeue_watching_stop`), so a job is never taken but not started. A worker
that dies with a job started but not run leaves it to maintenance, as a worker that dies mid-job.

The horse itself touches Redis only when the task does (progress, the email receipt, a long
text kept in a key of its own), and hands back, with the result, what the task changed on its
job (``meta``, ``retries_left``: see ``_HORSE_STATE``), so the outcome is recorded as RQ's
horse would record it; a task's last progress report is saved in the outcome transaction
(:data:`app.jobs.running.context.final_progress_rides_outcome`). The horse receives each job once
it is started, in one message, and runs it.
The job's compressed payload is decompressed only in the horse, and written back as read instead
of compressed again (:mod:`.payload`; RQ re-saves the whole job on success: ~30 ms of zlib for a
1 MiB text).

Differences you can see: two INFO lines per job (taken; "Successfully completed job ... in ...");
no ``RQ_JOB_ID`` environment variable (glibc keeps every value ever set, a leak of ~50 bytes a
job; ``rq.get_current_job()`` still works). The scheduler is offload's (``OffloadScheduler``):
it survives failovers and dies with its worker, as with the forking worker.

A job with dependents (``depends_on``; RQ moves them onto their queues), jobs that use RQ
features offload never sets (RQ webhooks, repeats, RQ rate limits, a ``Retry`` return value)
and every failure take RQ's own outcome code unchanged.
"""

from __future__ import annotations
import logging
import time
from multiprocessing.connection import Connection
from dataclasses import dataclass
from typing import Any

import redis
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DequeueTimeout, StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus, Retry
from rq.logutils import blue, green
from rq.queue import Queue
from rq.suspension import WORKERS_SUSPENDED
from rq.utils import now, utcformat
from rq.worker import Worker, WorkerStatus
from rq.worker.base import DequeueStrategy

from ...keys import PAUSED_QUEUES_KEY
from .. import scripts
from ..queue import take_or_wait
from .base import STOP_CHECK_SECONDS, EngineWorker
from .horse import HorseMixin, _NullPipeline
from .payload import payload_keeping

log = logging.getLogger("offload.worker")

#: The placeholders of a recorded start: the job's id, its queue's name, its type (see
#: ``_recorded_start`` and ``lua/dequeue.lua``, which fills them in for the job it takes). Each
#: ends with ``_MARK``: a word without it holds none, and the script leaves it as it is.
_MARK = "--9f3e7c1a"
_ID, _QUEUE, _TYPE = f"offload--job-id{_MARK}", f"offload--queue{_MARK}", f"offload--type{_MARK}"
_MARK_BYTES = _MARK.encode()


#: The RQ modules that build an object per job (a job, a result, an execution registry) and
#: check its serializer each time with ``resolve_serializer`` (see :func:`_check_serializers_once`).
_SERIALIZER_CHECKS = ("rq.job", "rq.results", "rq.registry", "rq.queue")


def _check_serializers_once() -> None:
    """Make RQ's ``resolve_serializer`` remember what it resolved, in this process (the worker
    and its horse). RQ calls it for every Job, Result, registry and Queue it builds, a few times
    a job, and each call checks the serializer against a runtime ``Protocol``: ~7 us on Python
    3.11 (the check got a cache only in 3.12). The same serializer resolves to the same answer,
    so the answer is kept; anything unhashable is resolved as before."""
    import importlib

    import rq.serializers

    resolve = rq.serializers.resolve_serializer
    if getattr(resolve, "offload_remembers", False):
        return
    resolved: dict = {}

    def resolve_serializer(serializer=None):  # noqa: ANN001, ANN202 - RQ's signature
        try:
            return resolved[serializer]
        except (KeyError, TypeError):
            answer = resolve(serializer)
            try:
                if len(resolved) < 64:
                    resolved[serializer] = answer
            except TypeError:
                pass
            return answer

    resolve_serializer.offload_remembers = True  # type: ignore[attr-defined]
    resolve_serializer.__doc__ = resolve.__doc__
    for name in _SERIALIZER_CHECKS:
        module = importlib.import_module(name)
        if getattr(module, "resolve_serializer", None) is resolve:
            module.resolve_serializer = resolve_serializer  # type: ignore[attr-defined]


@dataclass
class InHand:
    """A job between its start and its outcome: what ``start`` hands to ``perform`` and ``book``."""

    execution: Execution
    #: The job had dependents when it started: its outcome takes RQ's code (it moves them).
    has_dependents: bool


class PersistentHorseWorker(HorseMixin, EngineWorker, Worker):
    """RQ's worker with a long-lived work horse and batched bookkeeping (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        job_class = kwargs.get("job_class") or self.job_class
        if isinstance(job_class, str):
            from rq.utils import import_job_class

            job_class = import_job_class(job_class)
        kwargs["job_class"] = payload_keeping(job_class)
        _check_serializers_once()
        super().__init__(*args, **kwargs)
        self._horse_process: int = 0  # the horse's pid, busy or idle; _horse_pid is set only while it runs a job
        self._horse_conn: Connection | None = None
        self._horse_jobs = 0
        self._queues_by_key: dict[str, Queue] = {}
        self._dequeue_script = scripts.register(self.connection, "dequeue")
        self._burst = False
        #: The dequeue script's reply with a job the last outcome transaction took and started
        #: (see ``_succeeded``), and the recorded start's execution: the job run next.
        self._next: tuple[list, Execution] | None = None
        #: The job the dequeue script started, and what ``start`` then hands on.
        self._prestarted: tuple[str, InHand] | None = None
        #: Whether the job in hand may be followed by one taken in its outcome transaction.
        self._may_take_next = True

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
                    if self._stop_requested and self._next is None:  # before maintenance, which would restart the scheduler
                        self.log.info("Worker %s: stopping on request", self.name)
                        break
                    if self.should_run_maintenance_tasks:
                        self.run_maintenance_tasks()
                    timeout = None if burst else self.dequeue_timeout
                    result = self.dequeue_job_and_maintain_ttl(timeout, max_idle_time)
                    if result is None:
                        if burst:
                            self.log.info("Worker %s: done, quitting", self.name)
                        elif max_idle_time is not None:
                            self.log.info("Worker %s: idle for %d seconds, quitting", self.name, max_idle_time)
                        break
                    job, queue = result
                    self._may_take_next = max_jobs is None or completed_jobs + 1 < max_jobs
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
        if self._next is not None:  # taken and started by the last job's outcome transaction
            (reply, execution), self._next = self._next, None
            return self._taken(reply, execution)
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
        """One round trip: the next job of the first non-empty queue, taken and started."""
        keys, args = self._dequeue_words()
        words, execution = self._recorded_start()
        return self._taken(self._dequeue_script(keys=keys, args=args + words), execution)

    def _dequeue_words(self) -> tuple[list, list]:
        """The dequeue script's keys and arguments for this worker's queues, in its order."""
        keys = [WORKERS_SUSPENDED, PAUSED_QUEUES_KEY]
        args: list = [self.job_class.redis_job_namespace_prefix]
        for queue in self._ordered_queues:
            keys += [queue.key, queue.intermediate_queue_key]
            args.append(queue.name)
        return keys, args

    def _taken(self, reply: list | None, execution: Execution) -> tuple[Job, Queue] | str | None:
        """The job the dequeue script took (and started, with the recorded start's ``execution``)."""
        if not reply:
            return None
        if len(reply) == 1:
            return reply[0].decode()
        queue_key, job_id, flat = reply[0].decode(), reply[1].decode(), reply[2]
        queue = self._queue_for(queue_key)
        job = self.job_class(job_id, connection=self.connection, serializer=self.serializer)
        job.restore(dict(zip(flat[::2], flat[1::2], strict=True)))  # as read before its start
        if len(reply) > 3:  # the script ran the start too: the same job in memory as after _start
            execution.job_id, execution._job = job.id, job
            self.executions[execution.id] = execution
            job.prepare_for_execution(self.name, pipeline=_NullPipeline())
            self._state, self.last_heartbeat = WorkerStatus.BUSY, now()
            self._prestarted = (job.id, InHand(execution, bool(reply[3])))
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
                result = self._dequeue_watching_stop(timeout)  # taken and started (_taken said so)
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

    def _dequeue_watching_stop(self, timeout: int | None):  # noqa: ANN202
        """The next job (:func:`~..queue.take_or_wait`) in waits of at most STOP_CHECK_SECONDS, with the stop flag read
        between them: a stop request is a flag (EngineWorker's ``_shutdown``), so an idle worker
        sees it within about a second. Raises StopRequested, or DequeueTimeout at ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._stop_requested:
                raise StopRequested()
            wait = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DequeueTimeout(timeout, self.queue_keys())
                wait = max(1, min(STOP_CHECK_SECONDS, int(left + 0.999)))
            # Taken and started by the dequeue script (one round trip, as a busy worker's). RQ's
            # dequeue_any, which the forking worker keeps, takes a job alone and starts it in a
            # transaction after: a woken worker's job waited one fsynced round trip more.
            found = take_or_wait(self._pop_ready, self.connection, wait)
            if found is not None or wait is None:  # without a timeout (burst), empty is the answer
                return found

    # -- one job: the three steps of app.worker.lifecycle.Lifecycle.run --

    def start(self, job: Job, queue: Queue) -> InHand:
        """A job the dequeue script took and started goes to the horse, which runs it. (Every job
        comes so: the script starts what it takes, for a busy worker and a woken one alike.)"""
        prestarted, self._prestarted = self._prestarted, None
        if prestarted is not None and prestarted[0] == job.id:
            in_hand = prestarted[1]
        else:  # the dequeue script starts every job it takes; a job from elsewhere is started here
            execution, has_dependents = self._start(job, queue)
            in_hand = InHand(execution, has_dependents)
        self._hand_to_horse(job)  # started: the horse runs it at once
        return in_hand

    def perform(self, job: Job, queue: Queue, in_hand: InHand) -> tuple | None:
        """The horse's answer (None: the horse died or was killed)."""
        return self._run_in_horse(job, queue, in_hand.execution)

    def book(self, job: Job, queue: Queue, in_hand: InHand, reply: tuple | None) -> None:
        """The outcome, once: in one transaction of this worker's when it can (``_succeeded``),
        else through RQ's outcome code, which books it through EngineWorker's hooks."""
        execution = in_hand.execution
        if reply is None:
            self._horse_lost(job, queue, execution)
            self.set_state(WorkerStatus.IDLE)
            return
        outcome, value, started_at, ended_at, state = reply
        job.started_at, job.ended_at = started_at, ended_at
        # The horse leaves the last progress report to the outcome (final_progress_rides_outcome).
        meta_changed = "meta" in state and state["meta"] != job.meta
        for name, attribute in state.items():  # what the task changed on its job (see _HORSE_STATE)
            setattr(job, name, attribute)
        if outcome == "ok" and not isinstance(value, Retry) and not in_hand.has_dependents and self._plain(job):
            self._succeeded(job, queue, execution, value, save_meta=meta_changed)  # sets IDLE in its transaction
            return
        if meta_changed:  # RQ's outcome paths below save the job without its meta
            job.save_meta()
        if outcome == "ok":
            self._succeeded_as_rq(job, queue, execution, value)
        else:
            self._failed(job, queue, execution, value)
        self.set_state(WorkerStatus.IDLE)

    def _start(self, job: Job, queue: Queue) -> tuple[Execution, bool]:
        """The start transaction, for a job taken without it (not by the dequeue script)."""
        with self.connection.pipeline() as pipe:
            execution = self._write_start(job, queue, pipe)
            replies = pipe.execute()
        self.executions[execution.id] = execution
        return execution, bool(replies[-1])

    def _write_start(self, job: Job, queue: Queue, pipe: redis.client.Pipeline) -> Execution:
        """RQ's ``prepare_execution`` (worker) and ``prepare_job_execution`` (horse), and the
        lifecycle's start commands, in one transaction; the last command answers whether the job
        has dependents."""
        heartbeat_ttl = self.get_heartbeat_ttl(job)
        execution = Execution.create(job, heartbeat_ttl, pipeline=pipe, worker_name=self.name)
        self._beat(pipe, WorkerStatus.BUSY, heartbeat_ttl)
        job.prepare_for_execution(self.name, pipeline=pipe)  # also the job's heartbeat (RQ writes it twice)
        pipe.persist(job.key)
        self.lifecycle.started(self, job, pipe)
        # Off the intermediate list in the same transaction that registers it as started
        # (RQ does this only when it serves one queue; the dequeue script always uses it).
        pipe.lrem(queue.intermediate_queue_key, 1, job.id)
        pipe.scard(job.dependents_key)
        return execution

    def _recorded_start(self) -> tuple[list, Execution]:
        """The start transaction's commands, written by ``_write_start`` (RQ's code and the
        listeners', unchanged) for a job whose id, queue and type are placeholders, as the words
        ``lua/dequeue.lua`` runs for the job it takes (the commands that hold a placeholder
        flagged): a job is taken and started in one round trip, and never waits taken but not
        started. So a start command may depend on the job's id, queue and type only
        (``Listener.on_start`` says so)."""
        job, queue = self._placeholders()
        job.meta = {"type": _TYPE}
        state, last_heartbeat = self._state, self.last_heartbeat
        pipe = self.connection.pipeline()
        try:
            execution = self._write_start(job, queue, pipe)
            words: list = [_ID, _QUEUE, _TYPE]
            # redis-py keeps a pipeline's commands in command_stack; a cluster pipeline in its
            # execution strategy's queue (its own command_stack stays empty in a transaction).
            strategy = getattr(pipe, "_execution_strategy", None)
            stack = pipe.command_stack or (strategy.command_queue if strategy is not None else [])
            if not stack:
                raise RuntimeError("the start transaction recorded no command: this redis-py keeps them elsewhere")
            for command in stack:
                args = command.args if hasattr(command, "args") else command[0]  # a cluster pipeline's, or redis-py's
                # Negative: the script fills the placeholders in this command's words (a command
                # without any runs as it is: a gsub over every word was most of the script's time).
                marked = any(_MARK in arg if isinstance(arg, str) else isinstance(arg, bytes) and _MARK_BYTES in arg for arg in args)
                words.append(-len(args) if marked else len(args))
                words.extend(args)
        finally:
            pipe.reset()
            self._state, self.last_heartbeat = state, last_heartbeat
        return words, execution

    def _placeholders(self) -> tuple[Job, Queue]:
        """The placeholder job and queue a start is recorded for, made once per worker (each
        recording sets again what it reads: RQ's and the listeners' start commands read the
        job's id, origin and ``meta["type"]``, and write the fields a start writes)."""
        made = self.__dict__.get("_placeholder_job_and_queue")
        if made is None or made[0].connection is not self.connection:
            job = self.job_class(_ID, connection=self.connection, serializer=self.serializer)
            job.origin = _QUEUE
            queue = self.queue_class(_QUEUE, connection=self.connection, job_class=self.job_class, serializer=self.serializer)
            made = self._placeholder_job_and_queue = (job, queue)
        return made

    def _beat(self, pipe: redis.client.Pipeline, state: str, ttl: int | None = None) -> None:
        """RQ's ``set_state`` and ``heartbeat`` in one HSET (RQ sends two)."""
        ttl = ttl or self.worker_ttl + 60
        self._state = state
        self.last_heartbeat = now()
        pipe.hset(self.key, mapping={"state": state, "last_heartbeat": utcformat(self.last_heartbeat)})
        pipe.expire(self.key, ttl)
        pipe.expire(self.executions_key, ttl)

    # -- the outcome --

    @staticmethod
    def _plain(job: Job) -> bool:
        """No RQ feature whose bookkeeping the fast outcome path leaves to RQ's own code."""
        return not job.webhooks and not job.repeats_left and not job.has_rate_limit

    def _succeeded(self, job: Job, queue: Queue, execution: Execution, return_value: Any, save_meta: bool = False) -> None:
        """RQ's ``handle_job_success`` plus the lifecycle's outcome commands, in one transaction;
        with ``save_meta``, the job's ``meta`` too (a task's last progress report, held back)."""
        job._result = return_value
        job._status = JobStatus.FINISHED
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        with self.connection.pipeline() as pipe:
            if save_meta:
                pipe.hset(job.key, "meta", job._serialize_meta())  # as Job.save_meta
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
            self.lifecycle.booked(self, job, "finished", pipe)
            self._beat(pipe, WorkerStatus.IDLE)
            # A dependent submitted (depends_on) while the job ran is enqueued below; a job that had
            # dependents when it started takes RQ's path instead (execute_job).
            pipe.scard(job.dependents_key)
            take_next = self._may_take_next and not self._stop_requested and not self.should_run_maintenance_tasks
            if take_next:  # and the next job, taken and started: one round trip a job (BullMQ's moveToFinished)
                keys, args = self._dequeue_words()
                words, next_execution = self._recorded_start()
                # EVAL, not EVALSHA: a Redis Cluster pipeline refuses EVALSHA, and no NOSCRIPT to recover from.
                pipe.execute_command("EVAL", scripts.source("dequeue"), len(keys), *keys, *args, *words)
            replies = pipe.execute(raise_on_error=not take_next)
        if take_next:
            taken, replies = replies[-1], replies[:-1]
            for reply in replies:  # the outcome's errors raise, as they would without the next job
                if isinstance(reply, Exception):
                    raise reply
            if isinstance(taken, Exception):  # the outcome stands; the next job is looked for as usual
                log.warning("could not take the next job with the outcome of %s: %s", job.id, taken)
            elif taken and len(taken) > 3:
                self._next = (taken, next_execution)
        if replies[-1]:
            self._enqueue_dependents_safely(queue, job)
        self.lifecycle.settled(self, job, "finished")
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

"""What offload adds to an RQ worker (:class:`OffloadWorkerMixin`), and the two RQ-based
workers built with it: RQ's forking worker, and the in-process one the unit tests use."""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time

import redis
from rq import SimpleWorker, Worker, worker_registration
from rq.command import parse_payload
from rq.exceptions import AbandonedJobError, StopRequested
from rq.group import Group
from rq.registry import clean_registries
from rq.utils import now
from rq.worker import WorkerStatus

from .. import logs, telemetry, tracing
from ..jobs.submitting.batches import queue_due_callbacks
from ..jobs.running import concurrency
from ..jobs.running.callbacks import enqueue_callback
from ..jobs.running.counters import record_outcome, remember_failure
from ..jobs.submitting.dependencies import fail_orphans
from ..jobs.running.events import publish_job_event
from ..jobs.engine.job import OffloadJob
from ..jobs.keys import PAUSED_QUEUES_KEY
from ..jobs.engine.queue import OffloadQueue, requeue_stranded
from ..jobs.running.tracing import end_attempt, start_attempt
from ..settings import Settings, get_settings
from .process import die_with_parent
from .scheduler import OffloadScheduler

log = logging.getLogger("offload.worker")

#: The longest an idle worker waits for a job before it looks at its stop flag (see ``_shutdown``).
STOP_CHECK_SECONDS = 1
#: How long a stopping worker waits for its scheduler process after SIGTERM before killing it.
SCHEDULER_STOP_SECONDS = 5


class OffloadWorkerMixin:
    """What offload adds to an RQ worker: it announces each job's end (for ``?wait=``),
    counts it for /metrics, queues its callback, logs with its ids, shortens the time
    an abandoned job stays ``started``, and runs a scheduler that survives failovers."""

    job_class = OffloadJob
    queue_class = OffloadQueue
    #: Set by :func:`app.worker.build_worker`; ``None``: the process's settings.
    offload_settings: Settings | None = None
    #: Set by :func:`run` (one name per process); ``None``: a fresh name, as RQ does.
    scheduler_name: str | None = None

    def _start_scheduler(self, burst=False, logging_level="INFO", date_format=None, log_format=None) -> None:  # noqa: ANN001
        """RQ's, with :class:`OffloadScheduler` and this process's scheduler name, started
        whether or not it got RQ's per-queue locks (periodic schedules need no lock)."""
        from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT

        self.scheduler = OffloadScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format or DEFAULT_LOGGING_DATE_FORMAT,
            log_format=log_format or DEFAULT_LOGGING_FORMAT,
            serializer=self.serializer,
            name=self.scheduler_name,
        )
        self.scheduler.acquire_locks()
        if not burst:
            # Locks or not: every worker's scheduler also runs the periodic schedules.
            self.scheduler.start()
        elif self.scheduler.acquired_locks:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()

    #: Which of this worker's queues offload has paused (POST /queues/{name}/pause), as last read.
    _paused_here: tuple[str, ...] = ()

    def set_state(self, state: str, pipeline=None) -> None:  # noqa: ANN001
        """RQ's, except that an idle worker some of whose queues offload has paused says so: the
        state is what ``rq info`` and rq-dashboard print for a worker, and a bare "idle" beside
        queued jobs hides why they wait (issue 25)."""
        if state == WorkerStatus.IDLE and self._paused_here:
            state = idle_with_paused_queues(self._paused_here)
        super().set_state(state, pipeline=pipeline)

    def _note_paused_queues(self) -> None:
        """Which of this worker's queues are paused, looked at on each maintenance pass (half a
        heartbeat; see run_maintenance_tasks): an idle worker's state follows a pause or resume."""
        try:
            paused = {_text(name) for name in self.connection.smembers(PAUSED_QUEUES_KEY)}
        except redis.RedisError:
            return
        here = tuple(queue.name for queue in self.queues if queue.name in paused)
        if here != self._paused_here:
            self._paused_here = here
            state = self.get_state()
            if (state.value if isinstance(state, WorkerStatus) else str(state)).startswith(WorkerStatus.IDLE.value):
                self.set_state(WorkerStatus.IDLE)  # idle, with or without the paused queues now

    def execute_job(self, job, queue) -> None:  # noqa: ANN001
        """Run the job with its id (and the id of the request that submitted it) in every
        log line written meanwhile, by this process and by the work horse, and the attempt's
        span (a child of the submission's: :mod:`app.jobs.tracing`) current, so those lines carry
        its trace id and span id; the span is exported at the end if export is on."""
        parent, span = start_attempt(job)
        job_token = logs.job_id_var.set(job.id)
        request_token = logs.request_id_var.set(job.meta.get("request_id"))
        span_token = tracing.current.set(span)
        start_ns = time.time_ns()
        try:
            super().execute_job(job, queue)
        finally:
            end_attempt(job, parent, span, start_ns)
            tracing.current.reset(span_token)
            logs.job_id_var.reset(job_token)
            logs.request_id_var.reset(request_token)

    def perform_job(self, job, queue, *args, **kwargs):  # noqa: ANN001, ANN201
        """RQ's; a forked work horse (which leaves by ``os._exit``, skipping atexit) exports its
        spans (a callback's delivery) before it goes."""
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            if getattr(self, "_is_horse", False):
                telemetry.flush()

    def handle_payload(self, message) -> None:  # noqa: ANN001
        """RQ's, except that a cancel of the running job gives the task ``CANCEL_GRACE_SECONDS``
        to see ``ctx.cancelled()`` and stop by itself before its horse is killed: the job then
        ends ``stopped`` if the task raised, or ``finished`` with what it returned."""
        payload = parse_payload(message)
        settings = getattr(self, "offload_settings", None)
        grace = settings.cancel_grace_seconds if settings is not None else 0
        job_id = payload.get("job_id")
        if payload.get("command") != "stop-job" or grace <= 0 or not job_id or self.get_current_job_id() != job_id:
            super().handle_payload(message)
            return
        self._stopped_job_id = job_id

        def kill_if_still_running() -> None:
            if self.get_current_job_id() == job_id:
                self.kill_horse()

        timer = threading.Timer(grace, kill_if_still_running)
        timer.daemon = True
        timer.start()

    def handle_job_success(self, job, queue, started_job_registry, execution):  # noqa: ANN001
        super().handle_job_success(job, queue, started_job_registry, execution)
        record_outcome(self.connection, job, "finished")
        self._job_ended(job)
        self._settle_ends(job, finished=True)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):  # noqa: ANN001
        stopped = self._stopped_job_id == job.id
        retrying = job.should_retry and not stopped
        if exc_string and retrying:
            # RQ records a failure only when no retry follows; keep this attempt's error so the
            # job shows why it is being retried.
            remember_failure(job, exc_string)
        record_outcome(self.connection, job, "stopped" if stopped else "retried" if retrying else "failed")
        super().handle_job_failure(
            job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution
        )
        self._job_ended(job)
        if not retrying:
            self._settle_ends(job, finished=False)

    def _release_slot_safely(self, job) -> None:  # noqa: ANN001
        """RQ's, waking an idle worker for the job the freed slot promotes (app/jobs/concurrency.py):
        it reaches its queue without the wake-up token every other enqueue pushes."""
        try:
            concurrency.release(job)
        except Exception:
            log.exception("could not release the concurrency slot of job %s; maintenance will", job.id, extra={"job_id": job.id})

    def prepare_job_execution(self, job, remove_from_intermediate_queue: bool = False) -> None:  # noqa: ANN001
        # OffloadQueue always dequeues through the intermediate list, whatever the number of
        # queues (RQ does only for one), so the job always leaves it here.
        super().prepare_job_execution(job, remove_from_intermediate_queue=True)

    def clean_registries(self) -> None:
        """RQ's maintenance, with a lock that lapses in one maintenance interval.

        RQ holds its per-queue maintenance lock for 15 minutes; a worker killed while holding
        it stops all maintenance (and so the recovery of abandoned jobs) for that long. Ours
        lapses by the next pass. Jobs stranded on intermediate lists are put back too.
        """
        lock_seconds = max(5, int(self.maintenance_interval))
        for queue in self.queues:
            if not self.connection.set(queue.registry_cleaning_key, self.name, nx=True, ex=lock_seconds):
                continue
            try:
                self.log.debug("Worker %s: cleaning registries for queue: %s", self.name, queue.name)
                clean_registries(queue, [_mark_abandoned, *self._exc_handlers])
                worker_registration.clean_worker_registry(queue)
                requeue_stranded(queue, self.connection, grace_seconds=lock_seconds)
            finally:
                if self.connection.get(queue.registry_cleaning_key) == self.name.encode():
                    self.connection.delete(queue.registry_cleaning_key)
        # Abandoned jobs failed above, and anything a process died before settling.
        self._settle_ends(None, finished=False)
        self.last_cleaned_at = now()

    def clean_group_registries(self) -> None:
        """RQ's, with its line at DEBUG as the per-queue one above: maintenance runs every half
        heartbeat, so at INFO one worker of the fleet wrote "cleaning group registries" every
        5 s (``make run``'s defaults), most of an idle worker's log."""
        if Group.acquire_maintenance_lock(self.connection, max(int(self.maintenance_interval) - 1, 1)):
            self.log.debug("Worker %s: cleaning group registries", self.name)
            Group.clean_registries(connection=self.connection)

    @property
    def dequeue_timeout(self) -> int:
        """How long an idle worker blocks for a job before it beats and runs maintenance.

        RQ blocks ``worker_ttl - 15`` s (15 s here), so an idle worker ran maintenance every
        15 s whatever ``maintenance_interval`` said: capped at the interval."""
        return max(1, min(super().dequeue_timeout, int(self.maintenance_interval)))

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:  # noqa: ANN001
        """How long a running job's heartbeat lasts: two beats and a margin.

        RQ adds a flat minute, so a job whose worker was SIGKILLed stays ``started`` for well
        over a minute before maintenance notices. Two missed beats (plus 5 s) is enough: with
        the default 10 s beat and maintenance every half beat (idle workers included: see
        dequeue_timeout), an abandoned job is requeued at once or failed within 25 + 5 s.
        """
        return self.job_monitoring_interval * 2 + 5

    # -- stopping (issue 25, item 8): a bounded stop however the signal lands --

    def _shutdown(self) -> None:
        """The warm stop asked for by SIGTERM/SIGINT (RQ's ``request_stop`` calls this inside the
        signal handler): a flag, which the work loop reads before each job.

        RQ raises StopRequested from the handler whenever no job is running, wherever the main
        thread happens to be. Any ``except Exception`` on the way swallows it and the worker
        serves on with its stop forgotten: ``logging.Handler.emit`` is one ("--- Logging error
        --- ... StopRequested", a signal landing while a job's line was written), the slot release
        another. supervisord then waited its ``stopwaitsecs`` for a worker that never left. Here
        the handler raises nothing: the job in hand finishes, the loop stops before the next one,
        and an idle worker waits for jobs in slices of STOP_CHECK_SECONDS, so it leaves within
        about a second. (The second signal is still RQ's cold stop: see request_force_stop.)"""
        self._stop_requested = True

    def run_maintenance_tasks(self) -> None:
        """RQ's, but not once a stop is asked for: it restarts a scheduler process it finds
        dead, and the one that was just stopped counts, so a stopping worker forked a new one.
        Then a look at which of this worker's queues are paused (:meth:`_note_paused_queues`)."""
        if self._stop_requested:
            return
        super().run_maintenance_tasks()
        self._note_paused_queues()

    def stop_scheduler(self) -> None:
        """RQ's (SIGTERM, then wait), with the wait bounded: SCHEDULER_STOP_SECONDS, then SIGKILL."""
        process = getattr(self.scheduler, "_process", None)
        if process is None or not process.pid or not process.is_alive():
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
        except OSError:
            pass
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():
            log.warning("scheduler process %s did not stop within %s s; killing it", process.pid, SCHEDULER_STOP_SECONDS)
            process.kill()
            process.join(1)

    def unsubscribe(self) -> None:
        """RQ's, without its unbounded wait: redis-py 8.2's ``PubSubWorkerThread.stop()`` joins the
        thread with no time limit, and a thread that read the UNSUBSCRIBE reply before being told
        to stop waits up to a minute for a subscription that never comes. The thread is told to
        stop first (redis-py's own first step), then the reply wakes it and it leaves."""
        thread = getattr(self, "pubsub_thread", None)
        if not thread:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
        running = getattr(thread, "_running", None)
        if running is not None:
            running.clear()
        try:
            self.pubsub.unsubscribe()
        except redis.RedisError:
            pass
        thread.join(timeout=1)
        self.pubsub.close()

    def setup_work_horse_signals(self) -> None:
        """The work horse dies with its worker, so a killed worker never leaves an orphan
        finishing (and duplicating) a job that maintenance is about to retry."""
        super().setup_work_horse_signals()
        die_with_parent()

    def request_force_stop(self, signum: int, frame: object) -> None:
        """Cold shutdown (a second SIGTERM/SIGINT): the job in hand is retried now, not left
        ``started`` until its heartbeat lapses."""
        job = self.get_current_job() if self.horse_pid else None
        try:
            super().request_force_stop(signum, frame)
        except SystemExit:
            if job is not None:
                self._requeue_after_cold_shutdown(job)
            raise

    def _requeue_after_cold_shutdown(self, job) -> None:  # noqa: ANN001
        try:
            job.refresh()
            if job.get_status(refresh=False) != "started":
                return
            queue = next((q for q in self.queues if q.name == job.origin), None)
            if queue is None:
                return
            if not job.retries_left:
                job.retries_left = 1  # a shutdown is not the job's fault: give it its attempt back
            self.handle_job_failure(job, queue, exc_string="WorkerShutdown: the worker was stopped while the job ran")
            log.warning("job %s requeued after cold shutdown", job.id, extra={"job_id": job.id})
        except redis.RedisError:
            log.exception("could not requeue job %s after cold shutdown; maintenance will", job.id)

    def record_success(self, job, pipeline) -> None:  # noqa: ANN001
        """The fast worker's outcome transaction carries the counters and, for a job without a
        callback, the announcement (a waiter then never reads the job before its result)."""
        record_outcome(self.connection, job, "finished", pipeline=pipeline)
        if not self._announce_after(job):
            publish_job_event(self.connection, job.id, pipeline=pipeline)

    def after_success(self, job) -> None:  # noqa: ANN001
        if self._announce_after(job):
            self._job_ended(job)
        self._settle_ends(job, finished=True)

    def _settle_ends(self, job, *, finished: bool) -> None:  # noqa: ANN001
        """After a job's outcome transaction (see :mod:`app.jobs.endings`): fail the dependents of
        a job that will never finish, and queue the callback of a batch that has ended. ``job``
        None: whatever is noted (maintenance)."""
        if job is not None and finished and not job.meta.get("batch_id"):
            return
        settings = self.offload_settings or get_settings()
        try:
            failed = 0 if finished else fail_orphans(self.connection, settings)
            if job is None or failed or job.meta.get("batch_id"):
                queue_due_callbacks(self.connection, settings)
        except redis.RedisError:
            log.exception("could not settle the end of a job; the next maintenance pass will")

    def _announce_after(self, job) -> bool:  # noqa: ANN001
        """Announce (and queue the callback) after the outcome transaction rather than in it:
        a job with a callback, which is queued once the result is stored."""
        return bool(job.meta.get("callback_url"))

    def _job_ended(self, job) -> None:  # noqa: ANN001
        publish_job_event(self.connection, job.id)
        if job.meta.get("callback_url"):
            try:
                enqueue_callback(self.connection, job, self.offload_settings or get_settings())
            except redis.RedisError:
                log.exception("could not queue the callback of job %s", job.id, extra={"job_id": job.id})


def idle_with_paused_queues(names: tuple[str, ...]) -> str:
    """The state of an idle worker some of whose queues are paused: RQ's word first, then why."""
    return f"{WorkerStatus.IDLE.value} (offload paused: {', '.join(names)})"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _mark_abandoned(job, exc_type, exc_value, traceback) -> bool:  # noqa: ANN001 - RQ's handler signature
    """Maintenance found the job's worker dead (its heartbeat lapsed): its retry goes at once."""
    if exc_type is AbandonedJobError:
        job.abandoned = True
    return True  # on to the next handler


class OffloadWorker(OffloadWorkerMixin, Worker):
    """RQ's forking worker, each job in a work horse of its own (``WORKER_CLASS=forking``)."""

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):  # noqa: ANN001, ANN201
        """RQ's, waiting in slices of STOP_CHECK_SECONDS with the stop flag read between them
        (see ``_shutdown``): RQ's waits until a job comes."""
        if timeout is None:  # burst: one look
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        idle_since = time.monotonic()
        while True:
            if self._stop_requested:
                raise StopRequested()
            left = None if max_idle_time is None else max_idle_time - (time.monotonic() - idle_since)
            if left is not None and left <= 0:
                return None
            wait = STOP_CHECK_SECONDS if left is None else max(1, min(STOP_CHECK_SECONDS, math.ceil(left)))
            result = super().dequeue_job_and_maintain_ttl(timeout, wait)
            if result is not None:
                return result


class OffloadSimpleWorker(OffloadWorkerMixin, SimpleWorker):
    """Runs jobs in the worker process itself (tests on fakeredis)."""

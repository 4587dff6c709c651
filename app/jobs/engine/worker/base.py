"""What every offload worker changes of RQ's worker (:class:`EngineWorker`), and where it hands
a job to offload's lifecycle.

RQ runs the loop (dequeue, maintenance, signals, heartbeats); offload decides what happens around
a job. The two meet at a few points, all here or in :mod:`.fast`:

* ``execute_job`` hands the job to ``self.lifecycle.run`` (:mod:`app.worker.lifecycle`), which
  calls back ``start``, ``perform`` and ``book``, the three steps each worker class implements;
* the start transaction calls ``lifecycle.started(worker, job, pipeline)``;
* whichever transaction records the outcome (the fast worker's own, or RQ's
  ``handle_job_success``/``handle_job_failure``, through their ``increment_*_job_count``)
  calls ``lifecycle.booked(worker, job, outcome, pipeline)``, and after it commits
  ``lifecycle.settled(worker, job, outcome)``; so an outcome is booked once, on every path;
* a maintenance pass ends with ``lifecycle.maintained(worker)``.

The lifecycle is given by the worker layer as a class attribute (this package never imports it).
Every RQ private name this relies on is tested in ``tests/jobs/engine/test_rq_private_worker.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, Protocol

import redis
from rq import worker_registration
from rq.command import parse_payload
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import AbandonedJobError
from rq.group import Group
from rq.job import Job
from rq.queue import Queue
from rq.registry import clean_registries
from rq.utils import now
from rq.worker import WorkerStatus

from ....settings import Settings
from ...running.counters import remember_failure
from ..job import OffloadJob
from ...keys import PAUSED_QUEUES_KEY
from ..queue import OffloadQueue, requeue_stranded
from .scheduler import OffloadScheduler, die_with_parent

log = logging.getLogger("offload.worker")

#: The longest an idle worker waits for a job before it looks at its stop flag (see ``_shutdown``).
STOP_CHECK_SECONDS = 1
#: How long a stopping worker waits for its scheduler process after SIGTERM before killing it.
SCHEDULER_STOP_SECONDS = 5


class Lifecycle(Protocol):
    """What the worker layer does around a job (:class:`app.worker.lifecycle.Lifecycle`)."""

    def run(self, worker: Any, job: Job, queue: Queue) -> None: ...
    def started(self, worker: Any, job: Job, pipeline: redis.client.Pipeline) -> None: ...
    def booked(self, worker: Any, job: Job, outcome: str, pipeline: redis.client.Pipeline) -> None: ...
    def settled(self, worker: Any, job: Job, outcome: str) -> None: ...
    def maintained(self, worker: Any) -> None: ...


class EngineWorker:
    """RQ's worker as offload runs it (a mixin on RQ's ``Worker`` or ``SimpleWorker``): short
    heartbeats, a bounded stop, maintenance under a lock that lapses, a scheduler that survives
    failovers, a grace period for cancels, and the job handed to :attr:`lifecycle`."""

    job_class = OffloadJob
    queue_class = OffloadQueue
    #: Set by :func:`app.worker.build_worker`; ``None``: the process's settings.
    offload_settings: Settings | None = None
    #: Set by :func:`app.worker.run` (one name per process); ``None``: a fresh name, as RQ does.
    scheduler_name: str | None = None
    #: What happens around a job; the worker layer's classes set it.
    lifecycle: Lifecycle
    #: Which of this worker's queues offload has paused (POST /queues/{name}/pause), as last read.
    _paused_here: tuple[str, ...] = ()
    #: The job and outcome RQ's outcome code is recording (see ``_book_into``).
    _booking: tuple[Job, str] | None = None

    # -- a job: the lifecycle drives it --

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.lifecycle.run(self, job, queue)

    def handle_job_success(self, job, queue, started_job_registry, execution):  # noqa: ANN001
        """RQ's, with the lifecycle's outcome commands in its transaction (``_book_into``)."""
        self._booking = (job, "finished")
        try:
            super().handle_job_success(job, queue, started_job_registry, execution)
        finally:
            self._booking = None
        self.lifecycle.settled(self, job, "finished")

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):  # noqa: ANN001
        """RQ's (a failure, a retry, a stop), with the lifecycle's outcome commands in its transaction."""
        stopped = self._stopped_job_id == job.id
        retrying = job.should_retry and not stopped
        if exc_string and retrying:
            # RQ records a failure only when no retry follows; keep this attempt's error so the
            # job shows why it is being retried.
            remember_failure(job, exc_string)
        outcome = "stopped" if stopped else "retried" if retrying else "failed"
        self._booking = (job, outcome)
        try:
            super().handle_job_failure(
                job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution
            )
        finally:
            self._booking = None
        self.lifecycle.settled(self, job, outcome)

    def increment_successful_job_count(self, pipeline=None) -> None:  # noqa: ANN001
        super().increment_successful_job_count(pipeline=pipeline)
        self._book_into(pipeline)

    def increment_failed_job_count(self, pipeline=None) -> None:  # noqa: ANN001
        super().increment_failed_job_count(pipeline=pipeline)
        self._book_into(pipeline)

    def _book_into(self, pipeline) -> None:  # noqa: ANN001
        """RQ counts a job's end on the worker inside the transaction that records the outcome
        (``handle_job_success``, ``handle_job_failure``): the lifecycle's outcome commands
        (counters, the announcement) join that transaction there, so they commit with it."""
        if self._booking is not None and pipeline is not None:
            job, outcome = self._booking
            self.lifecycle.booked(self, job, outcome, pipeline)

    def _release_slot_safely(self, job) -> None:  # noqa: ANN001
        """Nothing: a job's concurrency slot is released after its outcome, on every path, by the
        lifecycle's slots listener (:mod:`app.worker.listeners.slots`), which also wakes a worker."""

    # -- the scheduler --

    def _start_scheduler(self, burst=False, logging_level="INFO", date_format=None, log_format=None) -> None:  # noqa: ANN001
        """RQ's, with :class:`OffloadScheduler` and this process's scheduler name, started
        whether or not it got RQ's per-queue locks (periodic schedules need no lock)."""
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

    # -- the worker's state --

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

    # -- commands --

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

    # -- maintenance --

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
        self.lifecycle.maintained(self)
        self.last_cleaned_at = now()

    def clean_group_registries(self) -> None:
        """RQ's, with its line at DEBUG as the per-queue one above: maintenance runs every half
        heartbeat, so at INFO one worker of the fleet wrote "cleaning group registries" every
        5 s (``make run``'s defaults), most of an idle worker's log."""
        if Group.acquire_maintenance_lock(self.connection, max(int(self.maintenance_interval) - 1, 1)):
            self.log.debug("Worker %s: cleaning group registries", self.name)
            Group.clean_registries(connection=self.connection)

    def run_maintenance_tasks(self) -> None:
        """RQ's, but not once a stop is asked for: it restarts a scheduler process it finds
        dead, and the one that was just stopped counts, so a stopping worker forked a new one.
        Then a look at which of this worker's queues are paused (:meth:`_note_paused_queues`)."""
        if self._stop_requested:
            return
        super().run_maintenance_tasks()
        self._note_paused_queues()

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

    @property
    def stop_asked(self) -> bool:
        """A warm or cold stop was asked for (SIGTERM, SIGINT): the loop left for good, not
        because Redis went away."""
        return bool(self._stop_requested or self._shutdown_requested_date)

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

"""The worker process: an RQ worker bound to offload's job class, queues and serializer.

:func:`run` is what ``worker.py`` calls. It serves ``high``, then ``default``, then ``low``,
runs RQ's scheduler alongside (so delayed jobs and retry backoffs fire), shuts down warmly
on SIGTERM (the job in hand finishes first; a second signal stops it), and when Redis goes
away it waits for it to come back and starts serving again instead of exiting.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Sequence
from uuid import uuid4

import redis
from rq import SimpleWorker, Worker
from rq import worker_registration
from rq.registry import clean_registries
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.utils import now

from . import logs
from .connections import check_server_settings
from .queueing import JobQueue, OffloadJob, OffloadQueue, connect, requeue_stranded, record_outcome, remember_failure, publish_job_ended, register_queues
from .settings import QUEUE_NAMES, Settings, get_settings

log = logging.getLogger("offload.worker")


class OffloadScheduler(RQScheduler):
    """RQ's scheduler (moves due delayed jobs and retries onto their queues), surviving a
    Redis outage or a Sentinel failover instead of dying with its connection.

    RQ's scheduler process exits at the first Redis error while holding its per-queue locks
    (``rq:scheduler-lock:<queue>``, 61 s); those are replicated, so after a failover the new
    primary holds them for a scheduler that is gone, and no scheduler of another name can move
    a delayed job until they lapse. This one keeps its process, its name and its locks through
    the outage, and carries on (refreshing its locks) as soon as Redis answers again.
    """

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self._worker_pid = os.getpid()  # built in the worker, run in a child of it

    def work(self) -> None:
        # RQ forks this process with no parent-death signal: a SIGKILLed worker would leave it
        # running, holding the locks. SIGTERM makes it release them and stop within a second.
        _die_with_parent(signal.SIGTERM)
        self._install_signal_handlers()
        if os.getppid() != self._worker_pid:  # the worker died before the signal was armed
            return
        self._until_redis_answers(self.register_birth)
        backoff = 0.25
        while True:
            if self._stop_requested:
                try:
                    self.stop()
                except redis.RedisError as exc:  # the locks then lapse by themselves
                    self.log.warning("scheduler %s stopped without releasing its locks (%s)", self.name, exc)
                break
            try:
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
                backoff = 0.25
                time.sleep(self.interval)
            except redis.RedisError as exc:
                self.log.warning("scheduler %s lost Redis (%s); retrying in %.2f s", self.name, exc, backoff)
                self._scheduled_job_registries = []  # rebuilt on the next pass
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _until_redis_answers(self, action) -> None:  # noqa: ANN001
        while not self._stop_requested:
            try:
                action()
                return
            except redis.RedisError:
                time.sleep(0.5)


def scheduler_name() -> str:
    """One scheduler name for the whole life of a worker process: a worker that had to start
    over after losing Redis gets a new worker name, but its scheduler keeps the locks its
    predecessor held (same owner: refreshed, not waited out)."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid4().hex[:12]}"


class OffloadWorkerMixin:
    """What offload adds to an RQ worker: it announces each job's end (for ``?wait=``),
    counts it for /metrics, queues its callback, logs with its ids, shortens the time
    an abandoned job stays ``started``, and runs a scheduler that survives failovers."""

    job_class = OffloadJob
    #: Set by :func:`run` (one name per process); ``None``: a fresh name, as RQ does.
    scheduler_name: str | None = None

    def _start_scheduler(self, burst=False, logging_level="INFO", date_format=None, log_format=None) -> None:  # noqa: ANN001
        """RQ's, with :class:`OffloadScheduler` and this process's scheduler name."""
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
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()

    def execute_job(self, job, queue) -> None:  # noqa: ANN001
        """Run the job with its id (and the id of the request that submitted it) in every
        log line written meanwhile, by this process and by the work horse."""
        job_token = logs.job_id_var.set(job.id)
        request_token = logs.request_id_var.set(job.meta.get("request_id"))
        try:
            super().execute_job(job, queue)
        finally:
            logs.job_id_var.reset(job_token)
            logs.request_id_var.reset(request_token)

    def handle_job_success(self, job, queue, started_job_registry, execution):  # noqa: ANN001
        super().handle_job_success(job, queue, started_job_registry, execution)
        record_outcome(self.connection, job, "finished")
        self._job_ended(job)

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

    queue_class = OffloadQueue

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
                clean_registries(queue, self._exc_handlers)
                worker_registration.clean_worker_registry(queue)
                requeue_stranded(queue, self.connection, grace_seconds=lock_seconds)
            finally:
                if self.connection.get(queue.registry_cleaning_key) == self.name.encode():
                    self.connection.delete(queue.registry_cleaning_key)
        self.last_cleaned_at = now()

    def get_heartbeat_ttl(self, job, working_time: float = 0.0) -> int:  # noqa: ANN001
        """How long a running job's heartbeat lasts: two beats and a margin.

        RQ adds a flat minute, so a job whose worker was SIGKILLed stays ``started`` for well
        over a minute before maintenance notices. Two missed beats (plus 5 s) is enough: with
        the default 10 s beat and maintenance every beat, an abandoned job is retried or
        failed within 35 s.
        """
        return self.job_monitoring_interval * 2 + 5

    def setup_work_horse_signals(self) -> None:
        """The work horse dies with its worker, so a killed worker never leaves an orphan
        finishing (and duplicating) a job that maintenance is about to retry."""
        super().setup_work_horse_signals()
        _die_with_parent()

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

    def _job_ended(self, job) -> None:  # noqa: ANN001
        publish_job_ended(self.connection, job.id)
        if job.meta.get("callback_url"):
            try:
                JobQueue(self.connection, get_settings()).enqueue_callback(job)
            except redis.RedisError:
                log.exception("could not queue the callback of job %s", job.id, extra={"job_id": job.id})


class OffloadWorker(OffloadWorkerMixin, Worker):
    """RQ's forking worker, each job in a work horse of its own (``WORKER_CLASS=forking``)."""


class OffloadSimpleWorker(OffloadWorkerMixin, SimpleWorker):
    """Runs jobs in the worker process itself (tests on fakeredis)."""


def _die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the orphan finishes its job instead
        pass


def build_worker(connection: redis.Redis, settings: Settings, queues: Sequence[str] = QUEUE_NAMES) -> OffloadWorker:
    worker_class: type[Worker] = OffloadWorker
    if settings.worker_class == "fast":
        from .fastworker import OffloadFastWorker  # it imports this module: not at the top

        worker_class = OffloadFastWorker
    return worker_class(
        [OffloadQueue(name, connection=connection, serializer=JSONSerializer, job_class=OffloadJob) for name in queues],
        queue_class=OffloadQueue,
        connection=connection,
        serializer=JSONSerializer,
        job_class=OffloadJob,
        default_result_ttl=settings.result_ttl_seconds,
        # A dead worker's registration lapses in worker_ttl; its job's heartbeat after two
        # missed beats (get_heartbeat_ttl); maintenance, run every beat, then retries or fails it.
        worker_ttl=max(30, settings.job_heartbeat_seconds * 3),
        job_monitoring_interval=settings.job_heartbeat_seconds,
        maintenance_interval=settings.job_heartbeat_seconds,
        log_job_description=False,
    )


def run(queues: Sequence[str] = QUEUE_NAMES, *, burst: bool = False, settings: Settings | None = None) -> None:
    """Serve jobs until told to stop, surviving Redis outages."""
    settings = settings or get_settings()
    logs.configure(settings.log_level, process="worker")
    connection = connect(settings, for_worker=True)
    stop = _StopFlag()
    backoff = 0.5
    checked = False
    scheduler = scheduler_name()
    while not stop.requested:
        try:
            connection.ping()
        except redis.RedisError as exc:
            log.warning("Redis is not answering (%s); retrying in %.1f s", exc, backoff)
            stop.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        backoff = 0.5
        if not checked:
            check_server_settings(connection)
            checked = True
        register_queues(connection)
        worker = build_worker(connection, settings, queues)
        worker.scheduler_name = scheduler
        log.info("worker %s serving queues %s", worker.name, ", ".join(queues))
        stop.release()  # RQ installs its own SIGTERM/SIGINT handlers for the work loop.
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
        except redis.RedisError as exc:
            log.warning("worker %s lost Redis (%s)", worker.name, exc)
        if burst or getattr(worker, "_stop_requested", False) or worker._shutdown_requested_date:
            break
        stop.install()
        log.warning("worker %s left its loop; starting again once Redis answers", worker.name)
    log.info("worker stopped")


class _StopFlag:
    """SIGTERM/SIGINT handling while no RQ work loop is running (e.g. waiting for Redis)."""

    def __init__(self) -> None:
        self.requested = False
        self.install()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def release(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = True

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self.requested and time.monotonic() < end:
            time.sleep(0.1)

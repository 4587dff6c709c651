"""RQ's own workers as offload runs them: the forking worker (``WORKER_CLASS=forking``), a work
horse forked per job, and the simple worker (the job in the worker process: unit tests).

Their three steps for :meth:`app.worker.lifecycle.Lifecycle.run` follow RQ's design, where the
horse records its job's start and outcome itself:

* ``start``: RQ's ``prepare_execution`` in the worker process (the execution record);
* ``perform``: RQ's fork and watch (or, simple, the job in this process). The horse's
  ``prepare_job_execution`` is the start transaction (the lifecycle's ``started`` rides it) and
  RQ's ``handle_job_success``/``handle_job_failure`` the outcome's (``booked`` rides it, see
  :class:`~.base.EngineWorker`); a horse that dies is failed by the worker process, the same way;
* ``book``: nothing is left to record; the worker goes idle.
"""

from __future__ import annotations

import math
import time
from typing import Any

from rq import SimpleWorker as RQSimpleWorker
from rq import Worker as RQWorker
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus

from .... import telemetry
from .base import STOP_CHECK_SECONDS, EngineWorker


class _RQSteps:
    """``start``, ``perform`` and ``book`` for RQ's two worker classes."""

    def start(self, job: Job, queue: Queue) -> Execution:
        return self.prepare_execution(job)

    def book(self, job: Job, queue: Queue, execution: Execution, reply: Any) -> None:
        self.set_state(WorkerStatus.IDLE)

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """RQ's (the start transaction, in the horse), with the lifecycle's start commands in it,
        and always off the intermediate list: OffloadQueue dequeues through it whatever the
        number of queues (RQ does only for one)."""
        with self.connection.pipeline() as pipeline:
            heartbeat_ttl = self.get_heartbeat_ttl(job)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)
            job.heartbeat(now(), heartbeat_ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            pipeline.persist(job.key)
            pipeline.lrem(self.queue_class(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
            self.lifecycle.started(self, job, pipeline)
            pipeline.execute()
        self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")

    def perform_job(self, job, queue, *args, **kwargs):  # noqa: ANN001, ANN201
        """RQ's; a forked work horse (which leaves by ``os._exit``, skipping atexit) exports its
        spans (a callback's delivery) before it goes."""
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            if getattr(self, "_is_horse", False):
                telemetry.flush()


class ForkingWorker(_RQSteps, EngineWorker, RQWorker):
    """RQ's forking worker, each job in a work horse of its own (``WORKER_CLASS=forking``)."""

    def perform(self, job: Job, queue: Queue, execution: Execution) -> None:
        self.fork_work_horse(job, queue)
        self.monitor_work_horse(job, queue, execution)

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


class SimpleWorker(_RQSteps, EngineWorker, RQSimpleWorker):
    """Runs jobs in the worker process itself (tests on fakeredis)."""

    def perform(self, job: Job, queue: Queue, execution: Execution) -> None:
        self.perform_job(job, queue, execution)

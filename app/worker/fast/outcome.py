"""Recording a job's outcome: the result, registries, counters and announcements in one
transaction when the job used no RQ feature that needs RQ's own code (``_plain``)."""

from __future__ import annotations

from typing import Any

import redis
from rq.executions import Execution
from rq.job import Job, JobStatus, Retry
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus


class OutcomeMixin:
    """The outcome side of :class:`~app.worker.fast.worker.PersistentHorseWorker`."""

    def record_success(self, job: Job, pipeline: redis.client.Pipeline) -> None:
        """Hook: add a finished job's bookkeeping to its outcome transaction (none here)."""

    def after_success(self, job: Job) -> None:
        """Hook: what follows a finished job's outcome transaction (nothing here)."""

    @staticmethod
    def _plain(job: Job) -> bool:
        """No RQ feature whose bookkeeping the fast outcome path leaves to RQ's own code."""
        return not job.webhooks and not job.repeats_left and not job.has_rate_limit

    def _succeeded(self, job: Job, queue: Queue, execution: Execution, return_value: Any, save_meta: bool = False) -> None:
        """RQ's ``handle_job_success`` plus offload's outcome bookkeeping, in one transaction;
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
            self.record_success(job, pipe)
            self._beat(pipe, WorkerStatus.IDLE)
            # A dependent submitted (depends_on) while the job ran is enqueued below; a job that had
            # dependents when it started takes RQ's path instead (execute_job).
            pipe.scard(job.dependents_key)
            replies = pipe.execute()
        if replies[-1]:
            self._enqueue_dependents_safely(queue, job)
        self._release_slot_safely(job)
        self.after_success(job)
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

"""A job's end for its batch and its dependents, after the outcome has committed.

The outcome transaction itself already counted the job out of its batch and noted a job that
will never finish (:mod:`app.jobs.running.endings`, in RQ's ``_handle_success``/``_handle_failure``); here
the batch whose last job this was gets its callback queued, and the dependents of a job that
failed or was stopped are failed in turn. Maintenance settles whatever a process died before
settling."""

from __future__ import annotations

import logging
from typing import Any

import redis
from rq.job import Job

from ...jobs.submitting.batches import queue_due_callbacks
from ...jobs.submitting.dependencies import fail_orphans
from ...settings import get_settings
from .base import Listener

log = logging.getLogger("offload.worker")


class BatchesAndDependents(Listener):
    def after_outcome(self, worker: Any, job: Job, outcome: str) -> None:
        if outcome == "retried" or (outcome == "finished" and not job.meta.get("batch_id")):
            return  # nothing ended for good, or nothing waits on this job's end
        _settle(worker, finished=outcome == "finished", in_batch=bool(job.meta.get("batch_id")))

    def after_maintenance(self, worker: Any) -> None:
        _settle(worker, finished=False, in_batch=True)


def _settle(worker: Any, *, finished: bool, in_batch: bool) -> None:
    settings = worker.offload_settings or get_settings()
    try:
        failed = 0 if finished else fail_orphans(worker.connection, settings)
        if failed or in_batch:
            queue_due_callbacks(worker.connection, settings)
    except redis.RedisError:
        log.exception("could not settle the end of a job; the next maintenance pass will")

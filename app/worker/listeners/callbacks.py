"""The delivery of a job's end to its ``callback_url``: queued as a job of its own once the
outcome has committed, when the job has finished or failed for good (:mod:`app.jobs.running.callbacks`)."""

from __future__ import annotations

import logging
from typing import Any

import redis
from rq.job import Job

from ...jobs.running.callbacks import enqueue_callback
from ...settings import get_settings
from .base import Listener

log = logging.getLogger("offload.worker")


class Callbacks(Listener):
    def after_outcome(self, worker: Any, job: Job, outcome: str) -> None:
        if not job.meta.get("callback_url") or outcome in ("retried", "stopped"):
            return
        try:
            enqueue_callback(worker.connection, job, worker.offload_settings or get_settings())
        except redis.RedisError:
            log.exception("could not queue the callback of job %s", job.id, extra={"job_id": job.id})

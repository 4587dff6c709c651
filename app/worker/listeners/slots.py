"""The job's concurrency slot (``concurrency_key``, ``FAIR_SHARE``: :mod:`app.jobs.running.concurrency`):
freed once the outcome has committed, on every path, promoting the next job waiting for it and
waking an idle worker for that job (it reaches its queue without the wake-up token every other
enqueue pushes). A slot left behind by a process that died is freed by maintenance."""

from __future__ import annotations

import logging
from typing import Any

from rq.job import Job

from ...jobs.running import concurrency
from .base import Listener

log = logging.getLogger("offload.worker")


class Slots(Listener):
    def after_outcome(self, worker: Any, job: Job, outcome: str) -> None:
        try:
            concurrency.release(job)
        except Exception:
            log.exception("could not release the concurrency slot of job %s; maintenance will", job.id, extra={"job_id": job.id})

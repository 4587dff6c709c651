"""The attempt's span and log context: every log line written while a job runs, by the worker
process and by its work horse, carries the job's id (and that of the request that submitted it),
and the attempt's span (a child of the submission's: :mod:`app.jobs.running.tracing`) is current, so those
lines carry its trace id and span id; the span is exported at the end if export is on."""

from __future__ import annotations

import time
from typing import Any

from rq.job import Job

from ... import logs, tracing
from ...jobs.running.tracing import end_attempt, start_attempt
from .base import Listener


class Tracing(Listener):
    def __init__(self) -> None:
        self._open: dict[str, tuple] = {}  # job id -> what after_job closes

    def before_job(self, worker: Any, job: Job) -> None:
        parent, span = start_attempt(job)
        tokens = (logs.job_id_var.set(job.id), logs.request_id_var.set(job.meta.get("request_id")), tracing.current.set(span))
        self._open[job.id] = (parent, span, tokens, time.time_ns())

    def after_job(self, worker: Any, job: Job) -> None:
        opened = self._open.pop(job.id, None)
        if opened is None:
            return
        parent, span, (job_token, request_token, span_token), start_ns = opened
        try:
            end_attempt(job, parent, span, start_ns)
        finally:
            tracing.current.reset(span_token)
            logs.request_id_var.reset(request_token)
            logs.job_id_var.reset(job_token)

"""The announcements of a job's start and end (``?wait=`` and ``GET /jobs/{id}/events`` wait for
them, :mod:`app.jobs.running.events`).

Published inside the transaction that records the change (``PUBLISH`` in ``MULTI`` goes out at
``EXEC``), so a waiter woken by it never reads the job before its new state. A job with a
callback is announced once the outcome has committed instead, just before its callback is queued
(:mod:`.callbacks`)."""

from __future__ import annotations

from typing import Any

import redis
from rq.job import Job

from ...jobs.running.events import publish_job_event
from .base import Listener


def announced_after(job: Job) -> bool:
    return bool(job.meta.get("callback_url"))


class Events(Listener):
    def on_start(self, worker: Any, job: Job, pipeline: redis.client.Pipeline) -> None:
        publish_job_event(worker.connection, job.id, pipeline=pipeline, kind="started")  # a ?wait= does not read again

    def on_outcome(self, worker: Any, job: Job, outcome: str, pipeline: redis.client.Pipeline) -> None:
        if not announced_after(job):
            publish_job_event(worker.connection, job.id, pipeline=pipeline)

    def after_outcome(self, worker: Any, job: Job, outcome: str) -> None:
        if announced_after(job):
            publish_job_event(worker.connection, job.id)

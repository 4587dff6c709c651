"""The /metrics counters and the charts' per-minute series: a job's start and its outcome, by
type, each in the transaction that records it (:mod:`app.jobs.running.counters`)."""

from __future__ import annotations

from typing import Any

import redis
from rq.job import Job

from ...jobs.running.counters import record_outcome
from ...jobs.keys import METRICS_KEY
from .base import Listener


class Counters(Listener):
    def on_start(self, worker: Any, job: Job, pipeline: redis.client.Pipeline) -> None:
        pipeline.hincrby(METRICS_KEY, f"started:{job.meta.get('type', 'unknown')}", 1)

    def on_outcome(self, worker: Any, job: Job, outcome: str, pipeline: redis.client.Pipeline) -> None:
        record_outcome(worker.connection, job, outcome, pipeline=pipeline)

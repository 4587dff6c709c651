"""The hooks a listener may answer, in the order of a job's life (see :mod:`app.worker.lifecycle`)."""

from __future__ import annotations

from typing import Any

import redis
from rq.job import Job

#: What an attempt ended in: ``finished``, ``failed``, ``retried`` (it will run again) or ``stopped``.
OUTCOMES = ("finished", "failed", "retried", "stopped")


class Listener:
    """One concern's part in a job's life. Every hook does nothing unless overridden.

    ``worker`` is the RQ worker running the job (``worker.connection``, ``worker.offload_settings``).
    The two ``pipeline`` hooks add commands to a transaction that commits the start or the outcome:
    they send nothing themselves, so they cost no round trip and commit with the state they follow.
    """

    def before_job(self, worker: Any, job: Job) -> None:
        """In the worker process, before the job is started."""

    def on_start(self, worker: Any, job: Job, pipeline: redis.client.Pipeline) -> None:
        """In the transaction that marks the job started. The fast worker records these commands
        once per job for a job not yet known and runs them in the script that takes the job
        (:mod:`app.jobs.engine.worker.fast`): they may depend on the job's id, queue
        (``job.origin``) and ``meta["type"]`` only."""

    def on_outcome(self, worker: Any, job: Job, outcome: str, pipeline: redis.client.Pipeline) -> None:
        """In the transaction that records the attempt's outcome (one of :data:`OUTCOMES`)."""

    def after_outcome(self, worker: Any, job: Job, outcome: str) -> None:
        """Once the outcome has committed: what may take round trips of its own."""

    def after_job(self, worker: Any, job: Job) -> None:
        """In the worker process, at the very end, whatever happened (an exception included)."""

    def after_maintenance(self, worker: Any) -> None:
        """After a maintenance pass (which may have failed jobs whose worker died)."""

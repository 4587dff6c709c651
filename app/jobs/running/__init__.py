"""Running: what happens around a job while a worker runs it, and when it ends.

The worker's listeners (:mod:`app.worker`) call these; the job class (:mod:`app.jobs.engine.job`)
calls :mod:`.context` to run a task and :mod:`.endings` in a job's outcome transaction.

================  ================================================================================
``context``       each task inside its job: its ``ctx`` (progress, state, cancel), and ``run``
``endings``       what a job's end adds to its outcome transaction (its batch, its dependents)
``callbacks``     retry backoff; queueing a job's callback delivery
``counters``      counters for /metrics, kept in Redis
``events``        job-events pub/sub, for ``?wait=`` and live streams
``tracing``       a job's attempts as spans of its W3C trace; its callback's trace
``concurrency``   per-key concurrency and fair shares, on RQ's rate limiter
================  ================================================================================
"""

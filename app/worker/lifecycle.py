"""A job's life in a worker, in one function (:meth:`Lifecycle.run`), and the one place the
listeners (:mod:`app.worker.listeners`) are called from, for both worker classes.

The worker classes (:mod:`app.jobs.engine.worker`, where RQ's private API is kept) implement
the three steps ``start``, ``perform`` and ``book``, and call back :meth:`Lifecycle.started`,
:meth:`~Lifecycle.booked` and :meth:`~Lifecycle.settled` from inside them, with the transaction
that commits the start or the outcome. Where each step happens:

=========  =======================================  ============================================
step       fast worker (the default)                forking worker (RQ's; and the simple one)
=========  =======================================  ============================================
start      the worker: one transaction              the horse: RQ's ``prepare_job_execution``
perform    the persistent horse, over a pipe        a horse forked for the job (RQ's fork)
book       the worker: one transaction (or RQ's     the horse: RQ's ``handle_job_success`` or
           outcome code for RQ's features)          ``handle_job_failure`` (the worker's, when
                                                    the horse died)
=========  =======================================  ============================================

Whatever the path, the outcome is booked once: ``booked`` rides the transaction that records it
and ``settled`` follows its commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis
from rq.job import Job
from rq.queue import Queue

from .listeners import LISTENERS, Listener

log = logging.getLogger("offload.worker")


class Lifecycle:
    """The listeners' hooks, called in the order of a job's life."""

    def __init__(self, listeners: Iterable[Listener] = LISTENERS) -> None:
        self.listeners = tuple(listeners)

    def run(self, worker: Any, job: Job, queue: Queue) -> None:
        """A job's whole life, from the moment the worker has taken it off its queue."""
        for listener in self.listeners:
            listener.before_job(worker, job)  # the attempt's span, the job's ids in the log
        try:
            # started(): the listeners' start commands ride the start transaction.
            in_hand = worker.start(job, queue)
            # The task runs, in a work horse; None if the horse died.
            reply = worker.perform(job, queue, in_hand)
            # The outcome, once: booked() rides its transaction, settled() follows the commit.
            worker.book(job, queue, in_hand, reply)
        finally:
            for listener in reversed(self.listeners):
                listener.after_job(worker, job)

    def started(self, worker: Any, job: Job, pipeline: redis.client.Pipeline) -> None:
        """Called by the start transaction, before it executes."""
        for listener in self.listeners:
            listener.on_start(worker, job, pipeline)

    def booked(self, worker: Any, job: Job, outcome: str, pipeline: redis.client.Pipeline) -> None:
        """Called by the outcome transaction, before it executes."""
        for listener in self.listeners:
            listener.on_outcome(worker, job, outcome, pipeline)

    def settled(self, worker: Any, job: Job, outcome: str) -> None:
        """Called once the outcome has committed. A listener that fails is logged and the others
        still run: each one's work is also redone by maintenance, or is an announcement."""
        for listener in self.listeners:
            try:
                listener.after_outcome(worker, job, outcome)
            except Exception:
                log.exception("%s failed after job %s ended", type(listener).__name__, job.id, extra={"job_id": job.id})

    def maintained(self, worker: Any) -> None:
        """Called after each maintenance pass."""
        for listener in self.listeners:
            listener.after_maintenance(worker)

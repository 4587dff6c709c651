"""RQ's scheduler, made to survive Redis outages and failovers (see :class:`OffloadScheduler`)."""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import datetime
from uuid import uuid4

import redis
from rq.scheduler import RQScheduler

from ....settings import get_settings
from ...scheduling.ticker import ScheduleTicker

#: How often a scheduler without RQ's per-queue locks tries to take them (see should_reacquire_locks).
LOCK_RETRY_SECONDS = 5


class OffloadScheduler(RQScheduler):
    """RQ's scheduler (moves due delayed jobs and retries onto their queues), surviving a
    Redis outage or a Sentinel failover instead of dying with its connection.

    Every worker runs one, with or without RQ's per-queue locks (only a holder moves delayed
    jobs): it also runs the periodic schedules (``/schedules``, :mod:`app.jobs.scheduling.ticker`), which
    any number of processes may do at once.

    RQ's scheduler process exits at the first Redis error while holding its per-queue locks
    (``rq:scheduler-lock:<queue>``, 61 s); those are replicated, so after a failover the new
    primary holds them for a scheduler that is gone, and no scheduler of another name can move
    a delayed job until they lapse. This one keeps its process, its name and its locks through
    the outage, and carries on (refreshing its locks) as soon as Redis answers again.
    """

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self._worker_pid = os.getpid()  # built in the worker, run in a child of it
        self._ticker: ScheduleTicker | None = None  # made in the scheduler process (its connection)

    @property
    def should_reacquire_locks(self) -> bool:
        """Every worker runs a scheduler process (for periodic schedules), so one without RQ's
        locks tries for them again every LOCK_RETRY_SECONDS, instead of RQ's two minutes: when
        the holder dies its successor takes over as fast as before, when a worker without a
        scheduler retried at each maintenance pass."""
        if self._queue_names == self.acquired_locks:
            return False
        if not self.lock_acquisition_time:
            return True
        return (datetime.now() - self.lock_acquisition_time).total_seconds() > LOCK_RETRY_SECONDS

    def work(self) -> None:
        # RQ forks this process with no parent-death signal: a SIGKILLed worker would leave it
        # running, holding the locks. SIGTERM makes it release them and stop within a second.
        die_with_parent(signal.SIGTERM)
        self._install_signal_handlers()
        if os.getppid() != self._worker_pid:  # the worker died before the signal was armed
            return
        self._until_redis_answers(self.register_birth)
        backoff = 0.25
        while True:
            if self._stop_requested:
                try:
                    self.stop()
                except redis.RedisError as exc:  # the locks then lapse by themselves
                    self.log.warning("scheduler %s stopped without releasing its locks (%s)", self.name, exc)
                break
            try:
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                self.enqueue_scheduled_jobs()
                backoff = 0.25
                self._tick_schedules(until=time.monotonic() + self.interval)
            except redis.RedisError as exc:
                self.log.warning("scheduler %s lost Redis (%s); retrying in %.2f s", self.name, exc, backoff)
                self._scheduled_job_registries = []  # rebuilt on the next pass
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _tick_schedules(self, until: float) -> None:
        """Until the next pass of RQ's loop: run periodic schedules (app/jobs/ticker.py) as
        they fall due, sleeping in between until the earliest next tick (at most a second), so
        a tick starts a few milliseconds after its time, not up to a second late."""
        if self._ticker is None:
            self._ticker = ScheduleTicker(self.connection, get_settings())
        while not self._stop_requested:
            wait = self._ticker.tick()
            remaining = until - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(max(wait, 0.005), remaining))

    def _until_redis_answers(self, action) -> None:  # noqa: ANN001
        while not self._stop_requested:
            try:
                action()
                return
            except redis.RedisError:
                time.sleep(0.5)


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (prctl PR_SET_PDEATHSIG):
    a work horse or scheduler process never outlives its worker."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, sig, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the orphan finishes its job instead
        pass


def scheduler_name() -> str:
    """One scheduler name for the whole life of a worker process: a worker that had to start
    over after losing Redis gets a new worker name, but its scheduler keeps the locks its
    predecessor held (same owner: refreshed, not waited out)."""
    return f"{socket.gethostname()}.{os.getpid()}.{uuid4().hex[:12]}"

"""The worker: an RQ worker bound to offload's job class, queues, serializer and lifecycle.

A job's life in the worker is :meth:`app.worker.lifecycle.Lifecycle.run`; what happens around it
(events, counters, callbacks, batches, slots, tracing) is :mod:`app.worker.listeners`. The RQ
classes the three workers below are made of, with every use of RQ's private API, are in
:mod:`app.jobs.engine.worker`.

:func:`run` is what ``worker.py`` calls. It serves ``high``, then ``default``, then ``low``,
runs RQ's scheduler alongside (so delayed jobs and retry backoffs fire), shuts down warmly
on SIGTERM (the job in hand finishes first; a second signal stops it), and when Redis goes
away it waits for it to come back and starts serving again instead of exiting.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from rq.serializers import JSONSerializer

from .. import logs, telemetry
from ..connections import check_server_settings, connect
from ..jobs import catalog
from ..jobs.engine.worker import ForkingWorker, PersistentHorseWorker, SimpleWorker, scheduler_name
from ..jobs.engine.job import OffloadJob
from ..jobs.engine.queue import OffloadQueue, register_queues
from ..settings import QUEUE_NAMES, Settings, get_settings
from .lifecycle import Lifecycle
from .process import StopFlag

log = logging.getLogger("offload.worker")

__all__ = ["OffloadFastWorker", "OffloadSimpleWorker", "OffloadWorker", "build_worker", "run"]

#: One lifecycle for every worker of the process: the listeners of app/worker/listeners.
LIFECYCLE = Lifecycle()


class OffloadFastWorker(PersistentHorseWorker):
    """offload's default worker (``WORKER_CLASS=fast``): a persistent work horse."""

    lifecycle = LIFECYCLE


class OffloadWorker(ForkingWorker):
    """RQ's forking worker (``WORKER_CLASS=forking``): a work horse forked per job."""

    lifecycle = LIFECYCLE


class OffloadSimpleWorker(SimpleWorker):
    """Jobs run in the worker process itself (tests on fakeredis)."""

    lifecycle = LIFECYCLE


def build_worker(
    connection: redis.Redis, settings: Settings, queues: Sequence[str] = QUEUE_NAMES
) -> OffloadWorker | OffloadFastWorker:
    worker_class = OffloadFastWorker if settings.worker_class == "fast" else OffloadWorker
    worker = worker_class(
        [OffloadQueue(name, connection=connection, serializer=JSONSerializer, job_class=OffloadJob) for name in queues],
        queue_class=OffloadQueue,
        connection=connection,
        serializer=JSONSerializer,
        job_class=OffloadJob,
        default_result_ttl=settings.result_ttl_seconds,
        # A dead worker's registration lapses in worker_ttl; its job's heartbeat after two
        # missed beats (get_heartbeat_ttl); maintenance, run every half beat, then requeues or
        # fails it (one pass is a few round trips under a lock: one worker does it).
        worker_ttl=max(30, settings.job_heartbeat_seconds * 3),
        job_monitoring_interval=settings.job_heartbeat_seconds,
        maintenance_interval=max(1, settings.job_heartbeat_seconds // 2),
        log_job_description=False,
    )
    worker.offload_settings = settings
    return worker


def run(queues: Sequence[str] = QUEUE_NAMES, *, burst: bool = False, settings: Settings | None = None) -> None:
    """Serve jobs until told to stop, surviving Redis outages."""
    settings = settings or get_settings()
    logs.configure(settings.log_level, process="worker")
    telemetry.configure(settings, "offload-worker")  # nothing unless an OTLP endpoint is set
    loaded = catalog.load_or_exit(worker=True)  # the same tasks as the web; their secrets read now
    if loaded:
        log.info("tasks loaded from %s: %s", ", ".join(loaded), ", ".join(t.type for t in catalog.registry))
    connection = connect(settings, for_worker=True)
    stop = StopFlag()
    backoff = 0.5
    checked = False
    scheduler = scheduler_name()
    while not stop.requested:
        try:
            connection.ping()
        except redis.RedisError as exc:
            log.warning("Redis is not answering (%s); retrying in %.1f s", exc, backoff)
            stop.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        backoff = 0.5
        if not checked:
            check_server_settings(connection)
            checked = True
        register_queues(connection)
        worker = build_worker(connection, settings, queues)
        worker.scheduler_name = scheduler
        log.info("worker %s serving queues %s", worker.name, ", ".join(queues))
        stop.release()  # RQ installs its own SIGTERM/SIGINT handlers for the work loop.
        try:
            worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level)
        except redis.RedisError as exc:
            log.warning("worker %s lost Redis (%s)", worker.name, exc)
        if burst or worker.stop_asked:
            break
        stop.install()
        log.warning("worker %s left its loop; starting again once Redis answers", worker.name)
    telemetry.shutdown()  # the spans still queued go before the process does
    log.info("worker stopped")

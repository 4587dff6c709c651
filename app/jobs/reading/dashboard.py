"""What rq-dashboard needs to read offload's jobs: JSON (offload never pickles) and
:class:`~app.jobs.engine.job.OffloadJob`.

rq-dashboard keeps its serializer in a module-level ``config`` and calls ``Worker.all()`` without
a serializer, so reading a busy worker's current job would unpickle JSON (a 500). The HTTP layer
mounts the dashboard (``app/web/dashboard.py``); what it tells rq-dashboard about RQ is here.
"""

from __future__ import annotations

from types import ModuleType

from rq import Worker
from rq.serializers import JSONSerializer

from ..engine.job import OffloadJob


class JsonWorker(Worker):
    """RQ's Worker, listed with offload's job class and serializer unless told otherwise."""

    @classmethod
    def all(cls, connection=None, job_class=None, queue_class=None, queue=None, serializer=None):  # noqa: ANN001, ANN206
        return super().all(
            connection=connection,
            job_class=job_class or OffloadJob,
            queue_class=queue_class,
            queue=queue,
            serializer=serializer or JSONSerializer,
        )


def prepare(web: ModuleType) -> None:
    """Point rq-dashboard's ``web`` module at JSON and at a Worker that reads it."""
    web.config.serializer = JSONSerializer
    web.Worker = JsonWorker

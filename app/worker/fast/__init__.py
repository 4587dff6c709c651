"""The fast worker (``WORKER_CLASS=fast``, the default): a persistent work horse and three
Redis round trips a job. :mod:`.worker` explains the design; :mod:`.horse`, :mod:`.outcome`
and :mod:`.payload` are its parts."""

from __future__ import annotations

from ..mixin import OffloadWorkerMixin
from .worker import PersistentHorseWorker


class OffloadFastWorker(OffloadWorkerMixin, PersistentHorseWorker):
    """offload's worker: the mixin's announcements, metrics, callbacks, short heartbeats and
    shutdown handling on :class:`PersistentHorseWorker`."""


__all__ = ["OffloadFastWorker", "PersistentHorseWorker"]

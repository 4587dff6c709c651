"""The worker's side of RQ's private API: every RQ class offload's workers subclass, every RQ
method they override and every private name they use, so an RQ upgrade that changes one shows
here and in ``tests/jobs/engine/test_rq_private_worker.py`` (one test per name), nowhere else.

==============  ===========================================================================
``base``        :class:`EngineWorker`: what every offload worker changes of RQ's worker, and
                the points where it hands a job to the lifecycle (:mod:`app.worker.lifecycle`)
``fast``        :class:`PersistentHorseWorker`: the default worker (a long-lived horse, three
                round trips a job), RQ's loop with its own dequeue, start and outcome
``horse``       the persistent work horse, both sides of its pipe
``payload``     the job's stored payload (RQ's zlib ``data`` field) kept as read
``forking``     RQ's forking and simple workers, with the same lifecycle
``scheduler``   RQ's scheduler, made to survive failovers
==============  ===========================================================================

What happens around a job (events, counters, callbacks, batches, slots, tracing) is not here:
it is the worker layer's (:mod:`app.worker.listeners`); this package calls it at fixed points.
"""

from .base import SCHEDULER_STOP_SECONDS, STOP_CHECK_SECONDS, EngineWorker
from .fast import PersistentHorseWorker
from .forking import ForkingWorker, SimpleWorker
from .scheduler import OffloadScheduler, die_with_parent, scheduler_name

__all__ = [
    "SCHEDULER_STOP_SECONDS", "STOP_CHECK_SECONDS", "EngineWorker", "ForkingWorker", "OffloadScheduler",
    "PersistentHorseWorker", "SimpleWorker", "die_with_parent", "scheduler_name",
]  # fmt: skip

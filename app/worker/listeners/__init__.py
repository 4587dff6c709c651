"""What happens around a job, one concern a module, as Dramatiq's middleware: each listener
answers some of the named hooks of :class:`Listener`, and :data:`LISTENERS` lists them all, in
the order they are called. :mod:`app.worker.lifecycle` calls them, for both worker classes.

==============  ===========================================================================
``tracing``     the attempt's span, and the job's ids in every log line meanwhile
``counters``    the /metrics counters and the charts' time series
``slots``       the job's concurrency slot, freed and handed to the next job waiting for it
``events``      the announcements ``?wait=`` and ``GET /jobs/{id}/events`` wait for
``callbacks``   the delivery of a job's end to its ``callback_url``
``batches``     a batch's end (its callback), and the dependents of a job that will never finish
==============  ===========================================================================
"""

from __future__ import annotations

from .base import Listener
from .batches import BatchesAndDependents
from .callbacks import Callbacks
from .counters import Counters
from .events import Events
from .slots import Slots
from .tracing import Tracing

#: Every listener, in the order its hooks are called (``after_job`` in the reverse order). The
#: slot goes first after an outcome, so the next job waiting for it starts as soon as possible.
LISTENERS: tuple[Listener, ...] = (Tracing(), Counters(), Slots(), Events(), Callbacks(), BatchesAndDependents())

__all__ = ["LISTENERS", "Listener"]

"""offload's own tasks, registered with the public task API (:func:`offload.task`) as any
team's are: ``count_words``, ``send_email``, the ``webhook`` delivery of callbacks and the
diagnostics (``sleep``, ``noop``, ``fail``; only with ``ENABLE_DIAGNOSTIC_TASKS=1``).

Each module keeps the work itself as a plain function with no knowledge of RQ or Redis
(``count_words(text, progress)``, ``send_email(...)``, ``deliver(...)``), so a test calls it
directly, and beside it the job type: its arguments model and a ``@task`` function of
``(args, ctx)`` that gives the plain function what it needs from the job's context. Importing
this package registers them in :data:`offload.tasks.registry`.
"""

from . import diagnostic, http_request, mail, webhook, words
from .diagnostic import fail, noop, sleep
from .mail import DeliveryUnknown, SmtpError, send_email
from .webhook import deliver as deliver_webhook
from .words import LINE_BOUNDARIES, PROGRESS_CHUNK, count_lines, count_words

#: The modules whose import registers offload's own tasks.
BUILTIN_MODULES = (words, mail, webhook, http_request, diagnostic)

__all__ = [
    "BUILTIN_MODULES",
    "LINE_BOUNDARIES",
    "PROGRESS_CHUNK",
    "DeliveryUnknown",
    "SmtpError",
    "count_lines",
    "count_words",
    "deliver_webhook",
    "fail",
    "http_request",
    "noop",
    "send_email",
    "sleep",
]

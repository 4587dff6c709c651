"""The work itself: plain functions with no knowledge of RQ or Redis.

Each task takes its validated arguments and returns a JSON-ready dict. Anything a task
needs from its surroundings (where to send mail, how to report progress, the webhook
secret) is passed in, so a test calls a task directly. :mod:`app.jobs.catalog` binds each
to its job type and arguments model; :mod:`app.jobs.runners` supplies the surroundings.

Jobs store these functions under the names ``app.tasks.<name>`` (this package's exports),
which is what RQ and the dashboard show.
"""

from . import http_request
from .diagnostic import fail, noop, sleep
from .mail import SmtpError, send_email
from .webhook import deliver as deliver_webhook
from .words import LINE_BOUNDARIES, PROGRESS_CHUNK, count_lines, count_words

__all__ = [
    "LINE_BOUNDARIES",
    "PROGRESS_CHUNK",
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

"""The page at ``/``: submit a job from a browser and watch it finish.

One server-rendered template and a little plain JavaScript (``static/offload.js``) that
talks to the public JSON API, exactly as any other client does: ``GET /tasks`` for the tasks,
whose forms ``static/taskforms.js`` makes from each task's JSON Schema (the page knows no task
of its own), ``POST /jobs``, then the
job's live events (``GET /jobs/{id}/events``, ``static/events.js``; ``GET /jobs/{id}?wait=``
until the job ends when a stream cannot be had), and ``GET /jobs`` for the recent ones.
Nothing comes from a CDN and there is no build step: every asset is in ``app/web/static``.

The page itself needs no key. When ``API_KEYS`` is set it shows a field for one; the
script keeps it in the tab's ``sessionStorage`` and sends it as ``Authorization: Bearer``
(the event stream too: it is then read with ``fetch``, since EventSource cannot send the
header, and a key never goes into a URL).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template

from ..jobs import schemas
from ..settings import QUEUE_NAMES, Settings
from .headers import content_security_policy

bp = Blueprint("web", __name__)

#: Seconds each ``?wait=`` request of the page holds on; the script loops until the job ends.
WAIT_SECONDS = 10

#: Only this origin's scripts, styles and API: the page loads nothing from anywhere else.
CONTENT_SECURITY_POLICY = content_security_policy()


@bp.get("/")
def index() -> Response:
    settings: Settings = current_app.extensions["offload.settings"]
    html = render_template(
        "index.html",
        queues=QUEUE_NAMES,
        auth_enabled=settings.auth_enabled,
        wait_seconds=min(WAIT_SECONDS, settings.max_wait_seconds) or 1,
        statuses=schemas.JobStatusName.__args__,  # type: ignore[attr-defined] - the search block's choices
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "same-origin"
    return response


"""rq-dashboard, mounted at ``/dashboard`` in the same app and reading jobs as JSON.

rq-dashboard keeps its serializer in a module-level ``config`` and its Redis connection on
the app; the job service tells it how offload stores jobs (``JobQueue.prepare_rq_dashboard``)
and its connection is set here. Every dashboard route, its JSON endpoints and its POST actions
included, needs an admin key when keys are configured (HTTP Basic, any user name, so a
browser can log in, or ``Authorization: Bearer``).

rq-dashboard knows nothing of what offload holds back: it shows a paused queue's jobs as
queued and its workers as idle, and jobs waiting for a concurrency slot are on no queue it
lists. Each of its pages gets a banner (``templates/dashboard_banner.html``) naming the paused
queues and the waiting jobs, with a link back to offload's page; ``static/dashboard_banner.js``
keeps it current from ``/dashboard/offload-state.json``, as the dashboard keeps its tables.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, json, render_template, request, url_for

from . import auth
from ..connections import dashboard_connection
from ..jobs import STORE_UNAVAILABLE, JobQueue
from ..settings import Settings
from .context import job_queue
from .problems import ApiProblem

URL_PREFIX = "/dashboard"
#: What offload holds back, as the banner's script reads it (same guard as the dashboard).
STATE_PATH = f"{URL_PREFIX}/offload-state.json"


#: rq-dashboard routes that change state; it also serves requeue-all over GET, which we refuse.
_ACTION_ENDPOINTS = frozenset(
    {
        "rq_dashboard.delete_job_view",
        "rq_dashboard.requeue_job_view",
        "rq_dashboard.requeue_all",
        "rq_dashboard.empty_queue",
        "rq_dashboard.compact_queue",
        "rq_dashboard.quit_workers",
    }
)


def _refuse_unsafe_actions() -> None:
    """Actions only by POST, and only from the dashboard's own pages.

    Browsers send Basic credentials with cross-site requests too, so a POST must prove it
    comes from this origin: ``Sec-Fetch-Site: same-origin`` (every current browser sends it),
    or an ``Origin``/``Referer`` on this host. Scripts with a Bearer key are not browsers and
    are not at risk; they pass.
    """
    if request.endpoint not in _ACTION_ENDPOINTS and request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.method != "POST":
        raise ApiProblem(405, "dashboard actions need POST", headers={"Allow": "POST"})
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        if site in ("same-origin", "none"):
            return
        raise ApiProblem(403, "dashboard actions are refused from other sites")
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source and same_origin(source, request.host):
        return
    raise ApiProblem(403, "dashboard actions need a same-origin Origin or Referer header")


def same_origin(source: str, host: str) -> bool:
    """Whether an Origin or Referer names this host. One that cannot be parsed (``http://[::1``,
    a bad port) names no host: False, never a ValueError (a 500)."""
    try:
        return urlsplit(source).netloc == host
    except ValueError:
        return False


def held_back() -> dict | None:
    """The paused queues and the jobs waiting for a concurrency slot, or None when Redis is away."""
    try:
        return job_queue().held_back()
    except STORE_UNAVAILABLE:
        return None


state_bp = Blueprint("offload_dashboard", __name__)


@state_bp.get(STATE_PATH)
def offload_state() -> Response:
    state = held_back()
    if state is None:
        return Response(json.dumps({"available": False}), status=503, mimetype="application/json", headers={"Retry-After": "5"})
    return Response(json.dumps({"available": True, **state}), mimetype="application/json")


def _with_banner(response: Response) -> Response:
    """Put offload's banner at the top of an rq-dashboard page (after its navigation bar)."""
    if request.blueprint != "rq_dashboard" or response.mimetype != "text/html" or response.status_code != 200:
        return response
    if response.direct_passthrough or response.is_streamed:
        return response
    page = response.get_data(as_text=True)
    at = page.find('<div class="container">')
    if at < 0:
        return response  # not one of its pages as this version of rq-dashboard writes them
    banner = render_template("dashboard_banner.html", state=held_back(), state_url=STATE_PATH, home=url_for("web.index"))
    response.set_data(page[:at] + banner + page[at:])
    return response


def mount(app: Flask, settings: Settings, service: JobQueue) -> None:
    import rq_dashboard
    from rq_dashboard import web

    # JSON, not pickle; its worker views call Worker.all() without a serializer, so reading a busy
    # worker's current job would unpickle JSON (a 500): the job service gives it a Worker that reads JSON.
    service.prepare_rq_dashboard(web)
    app.config["RQ_DASHBOARD_REDIS_URL"] = dashboard_connection(app, settings)
    app.config["RQ_DASHBOARD_POLL_INTERVAL"] = 2500
    with app.app_context():
        web.setup_rq_connection(app)

    # An app-level hook runs before the blueprint's own, so nothing of the dashboard runs unauthenticated.
    @app.before_request
    def _guard() -> None:
        if request.blueprint not in ("rq_dashboard", "offload_dashboard"):
            return
        auth.authenticate(request, settings, admin=True, basic=True)
        _refuse_unsafe_actions()

    app.after_request(_with_banner)
    if "rq_dashboard" not in app.blueprints:
        app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    if "offload_dashboard" not in app.blueprints:
        app.register_blueprint(state_bp)

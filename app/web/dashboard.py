"""rq-dashboard, mounted at ``/dashboard`` in the same app and reading jobs as JSON.

rq-dashboard keeps its serializer in a module-level ``config`` and its Redis connection on
the app; both are set here. Every dashboard route, its JSON endpoints and its POST actions
included, needs an admin key when keys are configured (HTTP Basic, any user name, so a
browser can log in, or ``Authorization: Bearer``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, request
from rq import Worker
from rq.serializers import JSONSerializer

from . import auth
from ..connections import dashboard_connection
from .problems import ApiProblem
from ..jobs.job import OffloadJob
from ..settings import Settings

URL_PREFIX = "/dashboard"


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
    if source and urlsplit(source).netloc == request.host:
        return
    raise ApiProblem(403, "dashboard actions need a same-origin Origin or Referer header")


class _JsonWorker(Worker):
    @classmethod
    def all(cls, connection=None, job_class=None, queue_class=None, queue=None, serializer=None):  # noqa: ANN001, ANN206
        return super().all(
            connection=connection,
            job_class=job_class or OffloadJob,
            queue_class=queue_class,
            queue=queue,
            serializer=serializer or JSONSerializer,
        )


def mount(app: Flask, settings: Settings) -> None:
    import rq_dashboard
    from rq_dashboard import web

    web.config.serializer = JSONSerializer
    # Its worker views call Worker.all() without a serializer, so reading a busy worker's
    # current job would unpickle JSON (a 500); give the module a Worker that reads JSON.
    web.Worker = _JsonWorker
    app.config["RQ_DASHBOARD_REDIS_URL"] = dashboard_connection(app, settings)
    app.config["RQ_DASHBOARD_POLL_INTERVAL"] = 2500
    with app.app_context():
        web.setup_rq_connection(app)

    # An app-level hook runs before the blueprint's own, so nothing of the dashboard runs unauthenticated.
    @app.before_request
    def _guard() -> None:
        if request.blueprint != "rq_dashboard":
            return
        auth.authenticate(request, settings, admin=True, basic=True)
        _refuse_unsafe_actions()

    if "rq_dashboard" not in app.blueprints:
        app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)

"""rq-dashboard, mounted at ``/dashboard`` in the same app and reading jobs as JSON.

rq-dashboard keeps its serializer in a module-level ``config`` and its Redis connection on
the app; both are set here. Every dashboard route, its JSON endpoints and its POST actions
included, needs an admin key when keys are configured (HTTP Basic, any user name, so a
browser can log in, or ``Authorization: Bearer``).
"""

from __future__ import annotations

from flask import Flask, request
from rq.serializers import JSONSerializer

from . import auth
from .settings import Settings

URL_PREFIX = "/dashboard"


def mount(app: Flask, settings: Settings) -> None:
    import rq_dashboard
    from rq_dashboard import web

    web.config.serializer = JSONSerializer
    app.config["RQ_DASHBOARD_REDIS_URL"] = settings.redis_url
    app.config["RQ_DASHBOARD_POLL_INTERVAL"] = 2500
    with app.app_context():
        web.setup_rq_connection(app)

    # An app-level hook runs before the blueprint's own, so nothing of the dashboard runs unauthenticated.
    @app.before_request
    def _require_admin() -> None:
        if request.blueprint == "rq_dashboard":
            auth.authenticate(request, settings, admin=True, basic=True)

    if "rq_dashboard" not in app.blueprints:
        app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)

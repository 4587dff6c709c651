"""The HTTP layer: the application factory and the blueprints it registers.

:func:`create_app` is the factory; ``wsgi.py`` calls it for gunicorn and the tests call it
with their own settings. Views parse and check a request, ask the job service
(:class:`~app.jobs.JobQueue`, made here once and kept in ``app.extensions``) to act and render its
answer; they never touch Redis or RQ, and see nothing of :mod:`app.jobs` but its public API.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

from .. import logs, telemetry
from ..connections import connect
from ..jobs import JobQueue
from ..settings import Settings, get_settings
from . import batches, dashboard, health, jobs, metrics, openapi, page, problems, ratelimit, tasks, tracing
from .bulk import bp as bulk_bp
from .events import bp as events_bp
from .queues import bp as queues_bp
from .schedules import bp as schedules_bp
from .stats import bp as stats_bp
from .headers import REQUEST_ID_PATTERN

log = logging.getLogger("offload.http")

_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def create_app(
    settings: Settings | None = None, *, job_queue: JobQueue | None = None, rate_limit_storage: str | None = None
) -> Flask:
    """The offload app. Tests pass their own ``job_queue`` (on fakeredis); its rate limits
    are then kept in memory unless ``rate_limit_storage`` names a store."""
    settings = settings or get_settings()
    if job_queue is not None and rate_limit_storage is None:
        rate_limit_storage = "memory://"
    app = Flask(__name__)  # templates/ and static/ beside this file
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["offload.settings"] = settings
    service = app.extensions["offload.queue"] = job_queue or JobQueue(connect(settings), settings)

    _install_request_ids(app)
    _refuse_repeated_query(app)
    tracing.install(app)  # traceparent on the submissions' answers; their spans exported if configured
    telemetry.configure(settings, "offload-web")
    problems.register(app)
    metrics.install(app)
    ratelimit.install(app, settings, service.rate_limit_prefix, rate_limit_storage)
    app.register_blueprint(health.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(tasks.bp)
    app.register_blueprint(events_bp)
    app.register_blueprint(batches.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(page.bp)
    app.register_blueprint(schedules_bp)
    app.register_blueprint(queues_bp)
    app.register_blueprint(stats_bp)
    app.register_blueprint(bulk_bp)
    dashboard.mount(app, settings, service)
    return app


def _refuse_repeated_query(app: Flask) -> None:
    """Each query parameter of the API takes one value (the document declares none a list): one
    given twice (``?limit=5&limit=x``) is a 422 naming it, rather than the first silently winning."""

    @app.before_request
    def _once() -> None:
        if request.path.startswith("/dashboard"):
            return  # rq-dashboard's pages, its own parameters
        repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
        if repeated:
            raise problems.ApiProblem(
                422, "the query is not valid", title="Validation Failed",
                errors=[{"field": name, "message": "given more than once"} for name in repeated],
            )  # fmt: skip


def access_line(response: Response) -> None:
    """The request's one INFO line: method, path, status, duration and the job it is about.
    Written for every request, so nothing is computed when INFO is off, and the request and
    ``g`` are looked up once (each lookup through Flask's context-local proxies costs ~1 µs)."""
    if not log.isEnabledFor(logging.INFO):
        return
    current, context = request._get_current_object(), g._get_current_object()  # noqa: SLF001 - werkzeug's documented way
    started = context.get("started")
    method, path, status = current.method, current.path, response.status_code
    log.info(
        "%s %s %s",
        method,
        path,
        status,
        extra={
            "http_method": method,
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            # the job the request made or is about, as logs.py promises (None: the filter's)
            "job_id": context.get("job_id") or (current.view_args or {}).get("job_id"),
        },
    )


def _install_request_ids(app: Flask) -> None:
    """Echo a sane ``X-Request-ID`` (or make one), put it in every log line, log each request."""

    @app.before_request
    def _start() -> None:
        supplied = request.headers.get("X-Request-ID", "")
        g.request_id = supplied if _REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
        g.started = time.perf_counter()
        g.log_token = logs.request_id_var.set(g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers["X-Request-ID"] = request_id
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        access_line(response)
        return response

    @app.teardown_request
    def _reset(exc: BaseException | None) -> None:
        token = g.pop("log_token", None)
        if token is not None:
            logs.request_id_var.reset(token)

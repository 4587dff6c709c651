"""``GET /metrics``: Prometheus text, correct with many gunicorn and RQ worker processes.

Two sources, so that every figure is right however the service is spread out:

* HTTP metrics (requests by route, method and status; latency by route) are counted by
  each gunicorn process with prometheus_client. Under gunicorn, ``gunicorn.conf.py`` sets
  ``PROMETHEUS_MULTIPROC_DIR`` and the figures of all processes are summed at scrape time.
* Job metrics (enqueued, started, finished, failed, retried by type; run time by type;
  queue depth; workers alive) live in Redis, written by the API and by workers wherever
  they run, and are read at scrape time. Any web process answers with the same totals.
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from . import auth

bp = Blueprint("metrics", __name__)

HTTP_REQUESTS = Counter("offload_http_requests", "HTTP requests answered", ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "offload_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

_JOB_EVENTS = ("enqueued", "started", "finished", "failed", "retried", "stopped")


class JobCollector:
    """Reads the job figures from Redis (through the job service) at scrape time."""

    def __init__(self, job_queue) -> None:  # noqa: ANN001
        self.job_queue = job_queue

    def collect(self):  # noqa: ANN201
        stats = self.job_queue.stats()
        counters = stats["counters"]
        events = CounterMetricFamily("offload_jobs", "Job lifecycle events by type", labels=["event", "type"])
        for key, value in sorted(counters.items()):
            event, _, job_type = key.partition(":")
            if event in _JOB_EVENTS:
                events.add_metric([event, job_type], value)
        yield events

        runtime = HistogramMetricFamily("offload_job_run_seconds", "Job run time by type", labels=["type"])
        for job_type in sorted({key.split(":")[1] for key in counters if key.startswith("runtime_bucket:")}):
            cumulative, buckets = 0.0, []
            for le in [*map(str, stats["runtime_buckets"]), "+Inf"]:
                cumulative += counters.get(f"runtime_bucket:{job_type}:{le}", 0.0)
                buckets.append((le, cumulative))
            runtime.add_metric([job_type], buckets, counters.get(f"runtime_sum:{job_type}", 0.0))
        yield runtime

        depth = GaugeMetricFamily("offload_queue_jobs", "Jobs per queue and state", labels=["queue", "state"])
        for queue, states in stats["queues"].items():
            for state, count in states.items():
                depth.add_metric([queue, state], count)
        yield depth
        yield GaugeMetricFamily("offload_workers", "Workers registered and alive", value=stats["workers"])


_CHILDREN: dict[tuple[str, str, str], tuple] = {}


def _children(route: str, method: str, status: str) -> tuple:
    """The (counter, histogram) children of one label set, looked up once per process
    (``labels()`` takes a lock and validates the labels on every call)."""
    key = (route, method, status)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = (HTTP_REQUESTS.labels(route, method, status), HTTP_LATENCY.labels(route))
    return found


def install(app: Flask) -> None:
    """Count every request; register /metrics."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        if route.startswith("/dashboard"):
            route = "/dashboard"  # its many routes would only add noise
        requests, latency = _children(route, request.method, str(response.status_code))
        requests.inc()
        started = g.get("metrics_started")
        if started is not None:
            latency.observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics() -> Response:
    settings = current_app.extensions["offload.settings"]
    auth.authenticate(request, settings, admin=True)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_LocalHttpCollector())
    registry.register(JobCollector(current_app.extensions["offload.queue"]))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0], content_type=CONTENT_TYPE_LATEST)


class _LocalHttpCollector:
    """This process's HTTP metrics, when not under gunicorn's multiprocess mode."""

    def collect(self):  # noqa: ANN201
        yield from HTTP_REQUESTS.collect()
        yield from HTTP_LATENCY.collect()

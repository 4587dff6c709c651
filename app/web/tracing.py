"""The submission's span: ``traceparent`` in, the job's trace stored, ``traceparent`` out.

:func:`begin` (called by ``POST /jobs`` and ``POST /jobs/batch``) continues the caller's trace
(or starts one when the header is missing or invalid: W3C says to ignore a bad one, so it is
never a 4xx) with a span of its own, current for the rest of the request so the request's log
lines carry it. Its answer carries that span as ``traceparent``; the jobs store it as their
parent. With OpenTelemetry export on, the span is exported when the answer is ready
(:func:`install`).
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from .. import telemetry, tracing


def begin() -> dict:
    """Start the submission's span; returns the meta ``trace`` its jobs get."""
    parent, span = tracing.continue_trace(
        request.headers.getlist(tracing.TRACEPARENT), request.headers.getlist(tracing.TRACESTATE)
    )
    g.trace = (parent, span, time.time_ns())
    g.trace_token = tracing.current.set(span)
    return tracing.to_meta(span)


def note(**attributes: object) -> None:
    """Attributes for the submission's span (the job's id, type, queue...), when it is exported."""
    if telemetry.enabled():
        g.setdefault("trace_attributes", {}).update(attributes)


def install(app: Flask) -> None:
    @app.after_request
    def _answer(response: Response) -> Response:
        found = g.get("trace")
        if found is None:
            return response
        parent, span, start_ns = found
        response.headers[tracing.TRACEPARENT] = span.traceparent()
        if telemetry.enabled():
            rule = request.url_rule.rule if request.url_rule is not None else request.path
            telemetry.export(
                f"{request.method} {rule}",
                span,
                parent,
                start_ns=start_ns,
                kind="server",
                remote_parent=True,
                attributes={
                    "http.request.method": request.method,
                    "http.route": rule,
                    "http.response.status_code": response.status_code,
                    "offload.request_id": g.get("request_id"),
                    **g.get("trace_attributes", {}),
                },
                error=f"HTTP {response.status_code}" if response.status_code >= 500 else None,
            )
        return response

    @app.teardown_request
    def _reset(exc: BaseException | None) -> None:
        token = g.pop("trace_token", None)
        if token is not None:
            tracing.current.reset(token)
